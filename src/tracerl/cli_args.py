"""The typed arguments of the ``tracerl`` commands, from which tyro generates their flags and ``--help``.

``tracerl train`` nests the library's own configs instead of copying their fields::

    TrainArgs
      algo       one of the registered algorithms (tracerl.algos.registry), chosen before the rest is built
      run        RunSettings: budget, seed, output directory, checkpoints, resume / overwrite
      env        EnvSettings: env id, KEY=VALUE kwargs, trusted modules
      algorithm  the chosen algorithm's config class (PPOConfig, SACConfig, R2D2Config, ... or a registered one)
      policy     PolicyConfig (the network: memory core, widths, encoder)
      memory_kwargs  KEY=VALUE keyword arguments of the memory core
      retention  RetentionConfig (the memory core's retention knobs)
      explore    ExploreConfig (RND, intrinsic reward, reward scaling), with the algorithm kind's defaults
      env_options  EnvConfig (vectorization, crash / hang restarts), with the algorithm kind's defaults
      agent      MemoryAgentConfig (aux losses, env runners)

Every group's fields are flags without a prefix (``--n-envs``, ``--hidden-size``, ``--use-rnd``); a field whose
name an earlier group already uses gets its group as a prefix (``--policy.NAME``), so no field is ever dropped.
Help texts are the fields' docstrings. The defaults shown are the chosen algorithm's (``--algo a2c --help`` shows
A2C's ``n_epochs 1``). A config group is parsed into a *view* of its class (:func:`config_view`): the same fields,
without the class's ``__post_init__`` checks, so bad values reach the library's own validation and come back as a
one-line ConfigError (exit code 2) rather than tyro's box; only the fields set differently from the defaults are
passed on to :class:`~tracerl.TraceRL`, so library-side defaults that depend on other fields keep working.

Config booleans take a value (``--use-rnd True``, as ``TraceRL(use_rnd=True)``); the switches of a run are flags
(``--progress/--no-progress``, ``--overwrite``).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Callable, Literal, Optional

import tyro

DEFAULT_ENV = "tracerl/CueDelay-v0"


@dataclasses.dataclass(kw_only=True)
class EnvSettings:
    """Which environment to run: a Gymnasium id, its keyword arguments, the modules its id may import."""

    env: Optional[str] = None
    """Gymnasium env id, e.g. tracerl/CueDelay-v0 or CartPole-v1 (eval / inspect: default the one the checkpoint
    was trained on)."""
    env_kwargs: tuple[str, ...] = ()
    """Env keyword arguments as KEY=VALUE (Python literals, else strings). eval / inspect: they replace the
    checkpoint's; without them the checkpoint's are used only when the env is the one it was trained on (an --env
    that differs gets none)."""
    env_module: tuple[str, ...] = ()
    """Python modules an env id read from a file may import ('module:Env-v0'): the checkpoint's, or with train
    --resume the one in the run's config.json; such an id imports none unless named here (tracerl and an
    installed popgym are trusted)."""


@dataclasses.dataclass
class RunSettings:
    """Budget, seed, device, logging, checkpoints and the run directory of `tracerl train`."""

    steps: int = 100_000
    """Total env steps to train."""
    seed: int = 0
    """Random seed."""
    out: str = "runs/tracerl"
    """Output directory (checkpoint, config, logs): one run per directory."""
    device: str = "cpu"
    """torch device (cpu, cuda, cuda:N or mps)."""
    threads: int = 1
    """torch CPU threads (1 is fastest for small nets)."""
    log_interval: int = 10
    """Log every N rollouts."""
    progress: bool = True
    """Show a progress bar."""
    verbose: int = 1
    """0 silent, 1 log table."""
    eval_episodes: int = 100
    """Held-out evaluation episodes after training (0: none)."""
    checkpoint_every: int = 0
    """Save a checkpoint into OUT/checkpoints every N env steps (0: only the final one)."""
    keep_checkpoints: int = 3
    """Periodic checkpoints to keep."""
    resume: Optional[str] = None
    """Resume the run in this directory from its newest loadable checkpoint (its config.json gives every other
    setting; only --steps (a new total), --threads, --verbose, --progress and --env-module may be given with it).
    On tracerl's envs the result equals an uninterrupted run; envs without get_state/set_state restart from a
    seeded reset (a warning says so)."""
    overwrite: bool = False
    """Start a new run in a --out that holds a previous run: its files (agent.tracerl, config.json, progress.csv,
    eval.json, tb/, checkpoints/) are deleted first; refused if --out holds anything else. Without it, a non-empty
    --out is refused."""


RESUME_FLAGS = ("resume", "steps", "threads", "verbose", "progress", "env_module")
"""The flags `tracerl train --resume` accepts: the others would change the run recorded in its config.json."""


# -- views of library configs ------------------------------------------------------------------------------------

def _no_checks(self: Any) -> None:
    """A view is checked by the library when the real config is built from it."""


def config_view(cls: type, hidden: tuple[str, ...] = (), renamed: dict[str, str] | None = None) -> type:
    """A dataclass subclass of config ``cls`` for parsing: the same fields, docstrings (read from ``cls``) and
    defaults, no ``__post_init__`` checks; the fields in ``hidden`` are not flags, those in ``renamed`` get the
    flag name given (``"policy.hidden-size"``)."""
    renamed = renamed or {}
    hints = typing.get_type_hints(cls, include_extras=True)
    changed = []
    for f in dataclasses.fields(cls):
        if f.name not in hidden and f.name not in renamed:
            continue
        marker = tyro.conf.Suppress if f.name in hidden else tyro.conf.arg(name=renamed[f.name])
        default = ({"default": f.default} if f.default is not dataclasses.MISSING
                   else {"default_factory": f.default_factory})
        changed.append((f.name, Annotated[hints[f.name], marker], dataclasses.field(**default)))
    return dataclasses.make_dataclass(
        cls.__name__, changed, bases=(cls,),
        namespace={"__doc__": cls.__doc__, "__module__": cls.__module__, "__post_init__": _no_checks})


def flag_fields(cls: type) -> list[str]:
    """The names of ``cls``'s fields that a constructor takes (``init=True``)."""
    return [f.name for f in dataclasses.fields(cls) if f.init]


def as_view(view: type, config: Any) -> Any:
    """``config``'s values in an instance of ``view`` (the parse defaults)."""
    return view(**{name: getattr(config, name) for name in flag_fields(view)})


def changed_fields(value: Any, default: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of ``value`` that differ from ``default``'s (the ones the command line set), except ``skip``."""
    return {name: getattr(value, name) for name in flag_fields(type(value))
            if name not in skip and getattr(value, name) != getattr(default, name, dataclasses.MISSING)}


@dataclasses.dataclass(frozen=True)
class ConfigGroup:
    """One library config nested in `tracerl train`'s arguments."""

    name: str
    """Attribute of TrainArgs (and the prefix of a clashing field's flag)."""
    config_class: type
    """The config dataclass."""
    make_default: Callable[[], Any]
    """The config holding the defaults shown and compared against."""
    hidden: tuple[str, ...] = ()
    """Fields that are not flags (set by the library or given another way)."""


def config_groups(algo: str) -> list[ConfigGroup]:
    """The library configs `tracerl train --algo ALGO` exposes, in flag-priority order: the algorithm's own config,
    the network, the agent options (one config per owner: :mod:`tracerl.agent_config`)."""
    from .agent_config import agent_configs

    # memory_kwargs: --memory-kwargs KEY=VALUE; intrinsic_value: set by the agent from use_rnd
    hidden = {"policy": ("memory_kwargs", "intrinsic_value")}
    return [ConfigGroup(name, cls, make, hidden.get(name, ())) for name, cls, make in agent_configs(algo)]


def train_args_class(algo: str = "ppo") -> type:
    """The arguments of ``tracerl train --algo ALGO``: RunSettings, EnvSettings and the nested configs of
    :func:`config_groups`, with ALGO's defaults; ``--algo`` chooses among the registered algorithms."""
    from .algos.registry import available_algos, get_algo

    spec = get_algo(algo)
    names = available_algos()
    algos_help = "; ".join(f"{n}: {get_algo(n).doc}" if get_algo(n).doc else n for n in names)
    own: list[tuple[str, Any, Any]] = [
        ("algo", Annotated[Literal[names], tyro.conf.arg(  # type: ignore[valid-type]
            help=f"The algorithm ({algos_help}). Its hyperparameters are the flags below; "
                 f"`tracerl train --algo NAME --help` lists NAME's, with its defaults.")],
         dataclasses.field(default=spec.name)),
        ("run", Annotated[RunSettings, tyro.conf.OmitArgPrefixes], dataclasses.field(default_factory=RunSettings)),
        ("env", Annotated[EnvSettings, tyro.conf.OmitArgPrefixes],
         dataclasses.field(default_factory=lambda: EnvSettings(env=DEFAULT_ENV))),
    ]
    taken = {"algo", "memory_kwargs"} | set(flag_fields(RunSettings)) | set(flag_fields(EnvSettings))
    nested: list[tuple[str, Any, Any]] = []
    for group in config_groups(algo):
        fields = [n for n in flag_fields(group.config_class) if n not in group.hidden]
        clash = {n: f"{group.name}.{n.replace('_', '-')}" for n in fields if n in taken}
        taken.update(fields)
        view = config_view(group.config_class, group.hidden, clash)
        default = as_view(view, group.make_default())
        nested.append((group.name, Annotated[view, tyro.conf.OmitArgPrefixes, tyro.conf.FlagConversionOff],
                       dataclasses.field(default_factory=lambda default=default: default)))
        if group.name == "policy":
            nested.append(("memory_kwargs", Annotated[tuple[str, ...], tyro.conf.arg(
                help="Memory core keyword arguments as KEY=VALUE (Python literals, else strings), e.g. "
                     "memory_slots=64.")], dataclasses.field(default=())))
    cls = dataclasses.make_dataclass("TrainArgs", own + nested)
    cls.__doc__ = "Train a memory agent."
    return cls


def leaf_names(cls: type) -> set[str]:
    """Every field name of ``cls`` and of the dataclasses nested in it (the flag names without prefixes)."""
    out: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        out.add(f.name)
        typ = hints.get(f.name)
        if dataclasses.is_dataclass(typ):
            out |= leaf_names(typ)  # type: ignore[arg-type]
    return out


def algo_in(argv: typing.Sequence[str], default: str = "ppo") -> str:
    """The value of ``--algo`` in ``argv`` (the last one given), else ``default``."""
    algo = default
    for i, token in enumerate(argv):
        if token == "--algo" and i + 1 < len(argv):
            algo = argv[i + 1]
        elif token.startswith("--algo="):
            algo = token.split("=", 1)[1]
    return algo


# -- eval, inspect, export ----------------------------------------------------------------------------------------

@dataclasses.dataclass(kw_only=True)
class EvalArgs(EnvSettings):
    """Evaluate a checkpoint on held-out episodes."""

    checkpoint: tyro.conf.Positional[str]
    """A .tracerl checkpoint written by `tracerl train` or TraceRL.save, or a run directory (its agent.tracerl, else
    its newest checkpoint)."""
    episodes: int = 200
    """Number of evaluation episodes."""
    seed: int = 10_000
    """Evaluation seed (keep it apart from training seeds)."""
    stochastic: bool = False
    """Sample actions instead of taking the distribution's mode."""
    threads: int = 1
    """torch CPU threads."""


@dataclasses.dataclass(kw_only=True)
class InspectArgs(EnvSettings):
    """Record what a checkpoint's memory holds and attends to; write inspection.json and inspection.png."""

    checkpoint: tyro.conf.Positional[str]
    """A .tracerl checkpoint, or a run directory (its agent.tracerl, else its newest checkpoint)."""
    episodes: int = 20
    """Number of episodes to record (the linear probe needs at least 4)."""
    out: str = "inspection"
    """Output folder."""
    info_key: str = "cue"
    """The hidden variable in info to decode from the memory features."""
    seed: int = 20_000
    """Env seed (held-out episodes)."""
    stochastic: bool = False
    """Sample actions instead of taking the distribution's mode."""
    threads: int = 1
    """torch CPU threads."""


@dataclasses.dataclass
class ExportArgs:
    """Export a checkpoint's acting policy with its memory state as explicit inputs and outputs, plus a JSON
    sidecar."""

    checkpoint: tyro.conf.Positional[str]
    """A .tracerl checkpoint, or a run directory (its agent.tracerl, else its newest checkpoint)."""
    out: str
    """The model file to write (the sidecar goes to OUT.json)."""
    format: str = "onnx"
    """onnx or torchscript."""
    stochastic: bool = False
    """Export the sampling form (PPO agents): the action is drawn from a noise input instead of the mode."""
    batch_size: Optional[int] = None
    """Trace the graph for this batch size only (default: any batch size)."""


__all__ = ["DEFAULT_ENV", "RESUME_FLAGS", "ConfigGroup", "EnvSettings", "EvalArgs", "ExportArgs", "InspectArgs",
           "RunSettings", "algo_in", "as_view", "changed_fields", "config_groups", "config_view", "flag_fields",
           "leaf_names", "train_args_class"]
