"""The ``tracerl`` command line: ``train``, ``eval``, ``list`` and ``copytask``.

Every field of :class:`~tracerl.algos.PPOConfig` and :class:`~tracerl.policies.PolicyConfig` is a
flag of ``tracerl train`` (generated from the dataclasses, with their field docstrings as help).
Algorithm fields left unset take the chosen ``--algo``'s defaults.

``tracerl train --out DIR`` keeps one run per directory (see :mod:`tracerl.io.rundir`): a used DIR is refused
unless ``--resume`` (continue it) or ``--overwrite`` (replace it); the run holds a lock on DIR while it runs; every
argument is checked, and the agent built, before anything is written. Errors are one line on stderr: exit code 2
for a bad argument, file or setting, 1 when the system refused (a failed final save, with a fallback file),
130 when training was interrupted (Ctrl-C: the agent is saved to ``agent.interrupted.tracerl`` in DIR).
"""

from __future__ import annotations

import ast
import dataclasses
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence

import tyro

from .config_docs import field_docs
from .errors import CheckpointError, ConfigError, TraceRLError
from .io.rundir import (
    CONFIG_NAME,
    EVAL_NAME,
    FINAL_NAME,
    INTERRUPTED_NAME,
    RunDirError,
    RunLock,
    check_outputs_writable,
    clear_previous_run,
    foreign_entries,
    new_run_id,
    read_config,
    resolve_checkpoint,
    run_entries,
    write_json,
)

COMMANDS = ("train", "eval", "list", "copytask", "bench", "inspect", "export", "record")


def parse_kwargs(items: Sequence[str], flag: str) -> dict[str, Any]:
    """``["delay=64", "difficulty=1"]`` -> ``{"delay": 64, "difficulty": 1}`` (values as Python literals,
    else strings). A malformed item raises ValueError naming the flag and the item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag}: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _generated_fields(cls: type, skip: set[str]) -> list[tuple[str, Any, Any]]:
    """Optional copies of ``cls``'s fields (default None = keep the library's default), with help text."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        typ = hints[f.name]
        if typing.get_origin(typ) is tuple:
            typ = tuple[str, ...] if str in typing.get_args(typ) else tuple[int, ...]
        help_text = docs.get(f.name, "") + " Unset (None) keeps the default of --algo."
        out.append((f.name, Annotated[Optional[typ], tyro.conf.arg(help=help_text)], dataclasses.field(default=None)))
    return out


def _train_args_class() -> type:
    from .algos.ppo import PPOConfig
    from .algos.registry import available_algos
    from .policies.policy import PolicyConfig

    own: list[tuple[str, Any, Any]] = [
        ("env", Annotated[str, tyro.conf.arg(help="Gymnasium env id, e.g. tracerl/CueDelay-v0 or CartPole-v1")],
         dataclasses.field(default="tracerl/CueDelay-v0")),
        ("env_kwargs", Annotated[tuple[str, ...], tyro.conf.arg(help="env keyword arguments as KEY=VALUE")],
         dataclasses.field(default=())),
        ("env_module", Annotated[tuple[str, ...], tyro.conf.arg(
            help="with --resume: Python modules the run's recorded env id may import ('module:Env-v0'); an env id "
                 "read from config.json imports none unless named here")], dataclasses.field(default=())),
        ("memory", Annotated[str, tyro.conf.arg(help="memory core name (see `tracerl list`)")],
         dataclasses.field(default="gru")),
        ("memory_kwargs", Annotated[tuple[str, ...], tyro.conf.arg(help="memory core keyword arguments as KEY=VALUE")],
         dataclasses.field(default=())),
        ("algo", Annotated[str, tyro.conf.arg(help=", ".join(available_algos()))], dataclasses.field(default="ppo")),
        ("steps", Annotated[int, tyro.conf.arg(help="total env steps to train")], dataclasses.field(default=100_000)),
        ("seed", Annotated[int, tyro.conf.arg(help="random seed")], dataclasses.field(default=0)),
        ("out", Annotated[str, tyro.conf.arg(help="output directory (checkpoint, config, logs)")],
         dataclasses.field(default="runs/tracerl")),
        ("device", Annotated[str, tyro.conf.arg(help="torch device")], dataclasses.field(default="cpu")),
        ("threads", Annotated[int, tyro.conf.arg(help="torch CPU threads (1 is fastest for small nets)")],
         dataclasses.field(default=1)),
        ("log_interval", Annotated[int, tyro.conf.arg(help="log every N rollouts")], dataclasses.field(default=10)),
        ("progress", Annotated[bool, tyro.conf.arg(help="show a progress bar")], dataclasses.field(default=True)),
        ("verbose", Annotated[int, tyro.conf.arg(help="0 silent, 1 log table")], dataclasses.field(default=1)),
        ("eval_episodes", Annotated[int, tyro.conf.arg(help="held-out evaluation episodes after training (0: none)")],
         dataclasses.field(default=100)),
        ("checkpoint_every", Annotated[int, tyro.conf.arg(help="save a checkpoint into OUT/checkpoints every N env "
                                                               "steps (0: only the final one)")],
         dataclasses.field(default=0)),
        ("keep_checkpoints", Annotated[int, tyro.conf.arg(help="periodic checkpoints to keep")],
         dataclasses.field(default=3)),
        ("resume", Annotated[Optional[str], tyro.conf.arg(
            help="resume the run in this directory from its newest loadable checkpoint (its config.json gives "
                 "every other setting; only --steps (a new total), --threads, --verbose and --progress may be "
                 "given with it). On tracerl's envs the result equals an uninterrupted run; envs without "
                 "get_state/set_state restart from a seeded reset (a warning says so)")],
         dataclasses.field(default=None)),
        ("overwrite", Annotated[bool, tyro.conf.arg(
            help="start a new run in a --out that holds a previous run: its files (agent.tracerl, config.json, "
                 "progress.csv, eval.json, tb/, checkpoints/) are deleted first; refused if --out holds anything "
                 "else. Without it, a non-empty --out is refused")],
         dataclasses.field(default=False)),
    ]
    taken = {name for name, _, _ in own}
    from .agent_config import MemoryAgentConfig

    generated = _generated_fields(PPOConfig, taken) + _generated_fields(
        PolicyConfig, taken | {"memory_kwargs", "intrinsic_value"})
    generated += _generated_fields(MemoryAgentConfig, taken | {name for name, _, _ in generated})
    from .algos.offpolicy_learner import offpolicy_cli_fields  # sac / td3 / r2d2 fields not shared with PPO

    generated += offpolicy_cli_fields(taken | {name for name, _, _ in generated} | {"memory_kwargs"})
    return dataclasses.make_dataclass("TrainArgs", own + generated)


@dataclasses.dataclass
class EvalArgs:
    """Evaluate a checkpoint on held-out episodes."""

    checkpoint: tyro.conf.Positional[str]
    """A .tracerl checkpoint written by `tracerl train` or TraceRL.save, or a run directory (its agent.tracerl, else its
    newest checkpoint)."""
    episodes: int = 200
    """Number of evaluation episodes."""
    env: Optional[str] = None
    """Env id (default: the one the agent was trained on)."""
    env_kwargs: tuple[str, ...] = ()
    """Env keyword arguments as KEY=VALUE. They replace the checkpoint's; without them the checkpoint's are used
    only when the env is the one it was trained on (an --env that differs gets none)."""
    env_module: tuple[str, ...] = ()
    """Python modules the checkpoint's env id may import ('module:Env-v0'); an env id from a file imports none
    unless named here (tracerl and an installed popgym are trusted)."""
    seed: int = 10_000
    """Evaluation seed (keep it apart from training seeds)."""
    stochastic: bool = False
    """Sample actions instead of taking the distribution's mode."""
    threads: int = 1
    """torch CPU threads."""


@dataclasses.dataclass
class InspectArgs:
    """Record what a checkpoint's memory holds and attends to; write inspection.json and inspection.png."""

    checkpoint: tyro.conf.Positional[str]
    """A .tracerl checkpoint, or a run directory (its agent.tracerl, else its newest checkpoint)."""
    env: Optional[str] = None
    """Env id (default: the one the agent was trained on)."""
    env_kwargs: tuple[str, ...] = ()
    """Env keyword arguments as KEY=VALUE. They replace the checkpoint's; without them the checkpoint's are used
    only when the env is the one it was trained on (an --env that differs gets none)."""
    env_module: tuple[str, ...] = ()
    """Python modules the checkpoint's env id may import ('module:Env-v0'); an env id from a file imports none
    unless named here (tracerl and an installed popgym are trusted)."""
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
    """Export a checkpoint's acting policy with its memory state as explicit inputs and outputs, plus a JSON sidecar."""

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


_RESUME_FLAGS = ("resume", "steps", "threads", "verbose", "progress", "env_module")
"""The flags `tracerl train --resume` accepts: the others would change the run recorded in its config.json."""

MAX_SEED = 2**63 - 1


def _given_flags(argv: Sequence[str], names: set[str]) -> list[str]:
    """The field names of the flags written in ``argv`` (``--n-envs 4``, ``--n_envs=4``, ``--no-progress``)."""
    given: list[str] = []
    for token in argv:
        if not token.startswith("--") or len(token) == 2:
            continue
        name = token[2:].split("=", 1)[0].replace("-", "_")
        if name not in names and name.startswith("no_") and name[3:] in names:
            name = name[3:]
        if name not in given:
            given.append(name)
    return given


def _check_int(value: Any, flag: str, low: int, high: int | None = None) -> None:
    """ConfigError naming ``flag`` unless ``low <= value (<= high)``."""
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{flag} {value} is invalid: must be {bound}")


def _check_device(device: str) -> None:
    """ConfigError unless ``device`` is a torch device this machine has (cpu, cuda[:N], mps)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:N or mps)") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device!r}: no CUDA device is available (torch {torch.__version__}); "
                              "use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"--device {device!r}: MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {device!r} is not supported: use cpu, cuda, cuda:N or mps")


def _check_train_args(args: Any) -> None:
    """Every command-line value `tracerl train` checks itself, before anything is built or written."""
    _check_int(args.steps, "--steps", 1)
    _check_int(args.threads, "--threads", 1)
    _check_int(args.seed, "--seed", 0, MAX_SEED)
    _check_int(args.log_interval, "--log-interval", 1)
    _check_int(args.checkpoint_every, "--checkpoint-every", 0)
    _check_int(args.keep_checkpoints, "--keep-checkpoints", 1)
    _check_int(args.eval_episodes, "--eval-episodes", 0)
    _check_device(args.device)
    if args.resume is not None and args.overwrite:
        raise ConfigError("--resume continues a run and --overwrite deletes one: give one of them")


def _build_agent(args: Any, out: Path) -> Any:
    """The agent `tracerl train` trains (configs validated, env built); nothing is written."""
    import gymnasium as gym

    from .agent import TraceRL
    from .agent_config import MemoryAgentConfig
    from .algos.offpolicy_learner import offpolicy_cli_values
    from .algos.registry import get_algo
    from .algos.ppo import PPOConfig
    from .policies.policy import PolicyConfig

    env_kwargs = parse_kwargs(args.env_kwargs, "--env-kwargs")
    hyper = {f.name: getattr(args, f.name) for f in dataclasses.fields(PPOConfig) if getattr(args, f.name) is not None}
    hyper.update({f.name: getattr(args, f.name) for f in dataclasses.fields(PolicyConfig)
                  if f.name not in ("memory", "memory_kwargs", "intrinsic_value") and getattr(args, f.name) is not None})
    hyper.update({f.name: getattr(args, f.name) for f in dataclasses.fields(MemoryAgentConfig)
                  if getattr(args, f.name) is not None})
    hyper.update(offpolicy_cli_values(args, {f.name for f in dataclasses.fields(PPOConfig)}))
    memory_kwargs = parse_kwargs(args.memory_kwargs, "--memory-kwargs")
    if memory_kwargs:
        hyper["memory_kwargs"] = memory_kwargs
    policy_class = None
    on_policy = get_algo(args.algo).kind == "on_policy"
    if args.memory == "strategic" and on_policy:
        from .policies.strategic import StrategicMemoryTransformerPolicy

        policy_class = StrategicMemoryTransformerPolicy  # raw steps into the memory (seed 001's policy)
    hyper["threads"] = args.threads  # TraceRL.learn sets torch's thread count to it
    try:
        return TraceRL(policy_class, env=args.env, env_kwargs=env_kwargs, memory=args.memory, algo=args.algo,
                       device=args.device, verbose=args.verbose, seed=args.seed, tensorboard_log=out, **hyper)
    except (gym.error.Error, ImportError) as exc:
        if isinstance(exc, ImportError) and ":" not in args.env:
            raise  # not the env id's module: a missing dependency of something else
        raise ConfigError(f"--env {args.env!r}: {exc}") from exc


def _output_names(eval_episodes: int) -> tuple[str, ...]:
    return (FINAL_NAME, CONFIG_NAME, "progress.csv") + ((EVAL_NAME,) if eval_episodes > 0 else ())


def _train(argv: Sequence[str]) -> int:
    import torch

    cls = _train_args_class()
    args = tyro.cli(cls, args=list(argv), prog="tracerl train", description="Train a memory agent.")
    _check_train_args(args)
    torch.set_num_threads(args.threads)
    if args.resume is not None:
        return _resume(Path(args.resume), args, _given_flags(argv, {f.name for f in dataclasses.fields(cls)}))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} exists and is not a directory")
    _refuse_used_out(out, args.overwrite)  # before building anything: a used --out is refused at once
    agent = _build_agent(args, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"--out {out}: cannot create it: {exc.strerror or exc}") from exc
    with RunLock(out):
        _refuse_used_out(out, args.overwrite)  # again, under the lock (another run may have started meanwhile)
        check_outputs_writable(out, ())
        if args.overwrite:
            removed = clear_previous_run(out)
            if removed:
                print(f"--overwrite: removed the previous run's {', '.join(removed)} from {out}")
        agent.run_id = new_run_id()
        config = {"run_id": agent.run_id, "env": args.env, "env_kwargs": agent.env_kwargs, "algo": args.algo,
                  "steps": args.steps, "seed": args.seed, "checkpoint_every": args.checkpoint_every,
                  "keep_checkpoints": args.keep_checkpoints, "log_interval": args.log_interval,
                  "eval_episodes": args.eval_episodes, "ppo": agent.config.to_json(),
                  "policy": agent.policy_config.to_json()}
        write_json(out / CONFIG_NAME, config)
        return _finish_training(agent, config, out, args.steps, args.progress, reset=True)


def _refuse_used_out(out: Path, overwrite: bool) -> None:
    """RunDirError unless ``out`` is absent or empty (with ``overwrite``: unless it holds only a run's files)."""
    entries = run_entries(out)
    if not entries:
        return
    foreign = foreign_entries(out)
    names = ", ".join(p.name for p in entries[:6]) + (", ..." if len(entries) > 6 else "")
    if foreign:
        raise RunDirError(f"--out {out} is not empty ({names}) and does not hold only a tracerl run's files; "
                          "choose an empty or new directory")
    if not overwrite:
        raise RunDirError(f"--out {out} already holds a run ({names}); resume it with `tracerl train --resume "
                          f"{out}`, replace it with --overwrite (deletes its files), or choose another --out")


def _finish_training(agent: Any, config: dict[str, Any], out: Path, steps: int, progress: bool, reset: bool,
                     saved: bool = False) -> int:
    """Train ``steps`` more env steps (none when <= 0) with the run's checkpointing, save the final agent (unless
    ``saved``: it is already ``out/agent.tracerl``), evaluate. Returns the exit code."""
    from .evaluation import evaluate

    if steps > 0:
        every = config.get("checkpoint_every") or None
        try:
            agent.learn(steps, log_interval=config["log_interval"], progress_bar=progress, reset_num_timesteps=reset,
                        checkpoint_every=every, checkpoint_dir=out / "checkpoints" if every else None,
                        keep_checkpoints=config["keep_checkpoints"])
        except KeyboardInterrupt:
            return _save_interrupted(agent, out)
        finally:
            if agent.logger is not None:  # progress.csv and the TensorBoard events complete on disk
                agent.logger.close()
                agent.logger = None
    if not saved:
        code = _save_final(agent, out)
        if code != 0:
            return code
    if config["eval_episodes"] > 0:
        res = evaluate(agent, config["env"], config["eval_episodes"], env_kwargs=config["env_kwargs"])
        _print_eval(res.to_json())
        try:
            write_json(out / EVAL_NAME, res.to_json())
        except OSError as exc:
            print(f"tracerl train: error: could not write {out / EVAL_NAME}: {exc}; the agent is saved in "
                  f"{out / FINAL_NAME}", file=sys.stderr)
            return 1
    return 0


def _save_interrupted(agent: Any, out: Path) -> int:
    """Training was interrupted (Ctrl-C): save the agent to ``out/agent.interrupted.tracerl`` (atomically, never
    over ``agent.tracerl``), say on stderr where it is and how to evaluate it or resume the run; return 130."""
    from .io.rotation import list_checkpoints

    target = out / INTERRUPTED_NAME
    steps = getattr(agent, "num_timesteps", "?")
    newest = list_checkpoints(out / "checkpoints")
    final = out / FINAL_NAME
    sources = ([f"its newest periodic checkpoint ({newest[-1].name})"] if newest else []) + (
        [final.name] if final.is_file() else [])
    if sources:
        resume = (f"`tracerl train --resume {out}` continues the run from {' or '.join(sources)}"
                  f"{', whichever is further' if len(sources) > 1 else ''}")
    else:
        resume = (f"`tracerl train --resume {out}` cannot continue this run (it wrote no periodic checkpoint: "
                  "--checkpoint-every); `TraceRL.load(path, env=...)` continues the interrupted agent in Python")
    try:
        agent.save(target)
    except Exception as exc:  # noqa: BLE001 - say what happened; the periodic checkpoints are still there
        print(f"tracerl train: interrupted at {steps} steps; could not save the agent to {target}: {exc}. {resume}",
              file=sys.stderr)
        return 130
    print(f"tracerl train: interrupted at {steps} steps; the agent was saved to {target} (`tracerl eval {target}` "
          f"evaluates it; it was saved mid-training, so a resume does not start from it). {resume}",
          file=sys.stderr)
    return 130


def _save_final(agent: Any, out: Path) -> int:
    """Save ``out/agent.tracerl``; if that fails, save the agent to a fallback file (beside it, else in the
    temporary directory), say where on stderr and return 1, so a finished training is never lost silently."""
    import os
    import tempfile

    target = out / FINAL_NAME
    try:
        agent.save(target)
    except Exception as exc:  # noqa: BLE001 - whatever stopped the save, the trained agent must still be kept
        first = exc
    else:
        print(f"saved {target}")
        return 0
    tag = f"{agent.run_id or 'run'}.{os.getpid()}"
    tried = []
    for fallback in (out / f"agent.{os.getpid()}.fallback.tracerl",
                     Path(tempfile.gettempdir()) / f"tracerl-{tag}.fallback.tracerl"):
        try:
            agent.save(fallback)
        except Exception as exc:  # noqa: BLE001
            tried.append(f"{fallback}: {exc}")
            continue
        print(f"tracerl train: error: could not write {target}: {first}. The trained agent was saved to {fallback} "
              f"instead (`tracerl eval {fallback}` evaluates it; move it to {target} to complete the run)",
              file=sys.stderr)
        return 1
    print(f"tracerl train: error: could not write {target}: {first}; no fallback could be written either "
          f"({'; '.join(tried)}). The newest periodic checkpoint in {out / 'checkpoints'}, if any, is what remains",
          file=sys.stderr)
    return 1


def _resume_source(out: Path, kind: str, run_id: str | None) -> tuple[Path, dict[str, Any]]:
    """The file to resume from: the newest loadable checkpoint of the run, or ``agent.tracerl`` when that is at
    least as far (a run killed after its final save, or one continued with a larger --steps). Files of another
    run are refused (CheckpointError naming them)."""
    import warnings

    from .io.checkpoint import load_checkpoint
    from .io.rotation import checkpoint_run_id, newest_loadable

    metas: dict[Path, dict[str, Any]] = {}

    def check(path: Path) -> None:
        metas[path] = load_checkpoint(path, kind=kind)[1]

    candidates: list[Path] = []
    try:
        candidates.append(newest_loadable(out / "checkpoints", check, run_id=run_id))
    except CheckpointError as exc:
        if exc.entry == "meta.run_id":
            raise
    final = out / FINAL_NAME
    if final.is_file():
        try:
            check(final)
            found = checkpoint_run_id(final) if run_id is not None else None
        except CheckpointError as exc:
            warnings.warn(f"skipping unloadable final agent: {exc}", RuntimeWarning, stacklevel=2)
        else:
            if found != run_id:
                raise CheckpointError(f"this agent belongs to run {found!r}, not to run {run_id!r} of "
                                      f"{out / CONFIG_NAME}; move it away to resume", path=str(final),
                                      entry="meta.run_id")
            candidates.append(final)
    if not candidates:
        raise CheckpointError("no loadable checkpoint in checkpoints/ and no loadable agent.tracerl (a run with "
                              "--checkpoint-every 0 can only be resumed once it has saved agent.tracerl)",
                              path=str(out))

    def steps(path: Path) -> int:
        try:
            return int(metas[path]["counters"]["num_timesteps"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"no step counter: {exc}", path=str(path), entry="meta.counters") from exc

    best = max(candidates, key=lambda p: (steps(p), p == final))
    return best, metas[best]


def _resume(out: Path, args: Any, given: list[str]) -> int:
    """Continue the run in ``out`` from its newest loadable checkpoint to its step count (or --steps), then write
    its final files. Flags that would change the run are refused; the lock is held throughout."""
    import warnings

    import gymnasium as gym

    from .agent import TraceRL
    from .algos.registry import get_algo

    refused = [name for name in given if name not in _RESUME_FLAGS]
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ConfigError(f"--resume {out} continues the run recorded in its {CONFIG_NAME}; {flags} would change it "
                          "and cannot be given with --resume (only --steps as a new total, --threads, --verbose and "
                          "--progress/--no-progress and --env-module can). To change the run, start a new one with another --out or "
                          "--overwrite")
    if not out.is_dir():
        raise RunDirError(f"--resume {out}: no such directory")
    with RunLock(out):
        config = read_config(out)
        from .envs.safe_make import env_id_from_file

        config["env"] = env_id_from_file(config.get("env"), out / CONFIG_NAME, args.env_module)  # imports no module unless named
        missing = [k for k in ("env", "env_kwargs", "algo", "steps", "checkpoint_every", "keep_checkpoints",
                               "log_interval", "eval_episodes") if k not in config]
        if missing:
            raise RunDirError(f"--resume {out}: {out / CONFIG_NAME} lacks {', '.join(missing)}")
        run_id = config.get("run_id")
        if run_id is None:
            warnings.warn(f"{out / CONFIG_NAME} records no run id (written by an older tracerl): its checkpoints "
                          "cannot be told apart from another run's", RuntimeWarning, stacklevel=2)
        check_outputs_writable(out, _output_names(config["eval_episodes"]))
        spec = get_algo(config["algo"])
        kind = spec.learner_class.checkpoint_kind
        source, meta = _resume_source(out, kind, run_id)
        at = int(meta["counters"]["num_timesteps"])
        target = args.steps if "steps" in given else int(config["steps"])
        if "steps" in given and target < at:
            raise ConfigError(f"--steps {target} is invalid: the run in {out} is already at {at} steps ({source.name})")
        try:
            agent = TraceRL.load(source, env=config["env"], verbose=args.verbose, import_modules=args.env_module)
        except (gym.error.Error, ImportError) as exc:
            raise ConfigError(f"--resume {out}: env {config['env']!r} of {CONFIG_NAME}: {exc}") from exc
        if target != config["steps"]:  # the run's new total, recorded once the checkpoint has loaded
            config["steps"] = target
            write_json(out / CONFIG_NAME, config)
        agent.run_id = run_id
        agent.tensorboard_log = out
        agent.threads = args.threads  # TraceRL.learn sets torch's thread count to it
        remaining = target - agent.num_timesteps
        exact = "env_state" in meta and callable(getattr(agent.env, "set_state", None)) and (
            spec.kind == "on_policy" or "replay" in meta)
        if remaining > 0 and not exact:
            warnings.warn(
                f"{config['env']} cannot save and restore its state (no get_state/set_state), so this resume is not "
                f"bit-identical to an uninterrupted run: every sub-env restarts from a reset seeded with the run's "
                f"seed ({agent.seed}) at step {at}, the episodes in progress there are cut and the memory starts "
                "empty. Weights, optimizer state and counters are restored exactly, and resuming from the same "
                "checkpoint again gives the same result", RuntimeWarning, stacklevel=2)
        print(f"resuming {out} from {source.name} at {at} steps; {max(remaining, 0)} to go")
        final_done = source.name == FINAL_NAME and remaining <= 0
        if final_done and (config["eval_episodes"] <= 0 or (out / EVAL_NAME).is_file()):
            print(f"{out} is complete: {FINAL_NAME} is at {at} steps")
            return 0
        return _finish_training(agent, config, out, remaining, args.progress, reset=False, saved=final_done)


def _print_eval(r: dict[str, Any]) -> None:
    from tabulate import tabulate

    print(tabulate([[r["episodes"], f"{r['mean_return']:.3f}", f"{r['std_return']:.3f}", f"{r['success_rate']:.3f}"]],
                   headers=["episodes", "mean return", "std", "success rate"]))


def _load_checkpoint_and_env(args: Any, prog: str) -> tuple[Any, str, dict[str, Any]]:
    """The agent of ``args.checkpoint`` and the env to run it on (``--env`` / ``--env-kwargs`` or the recorded ones)."""
    import torch

    from .agent import TraceRL

    _check_int(args.threads, "--threads", 1)
    _check_int(args.seed, "--seed", 0, MAX_SEED)
    _check_int(args.episodes, "--episodes", 1)
    torch.set_num_threads(args.threads)
    source = resolve_checkpoint(args.checkpoint)
    if source != Path(args.checkpoint):
        print(f"{prog}: {args.checkpoint} is a run directory: loading {source}", file=sys.stderr)
    agent = TraceRL.load(source, verbose=0, import_modules=args.env_module)
    env_id = args.env or agent.env_id
    if env_id is None:
        from .envs.recipe import not_rebuildable

        raise ConfigError(not_rebuildable(f"the checkpoint {source}", None))
    if args.env_kwargs:
        env_kwargs = parse_kwargs(args.env_kwargs, "--env-kwargs")
    elif args.env is None or args.env == agent.env_id:
        env_kwargs = agent.env_kwargs  # the checkpoint's env: its kwargs
    else:
        env_kwargs = {}  # another env: the checkpoint's kwargs were for a different constructor
    return agent, env_id, env_kwargs


def _eval(argv: Sequence[str]) -> int:
    from .evaluation import evaluate

    import gymnasium as gym

    args = tyro.cli(EvalArgs, args=list(argv), prog="tracerl eval")
    agent, env_id, env_kwargs = _load_checkpoint_and_env(args, "tracerl eval")
    try:
        res = evaluate(agent, env_id, args.episodes, deterministic=not args.stochastic, seed=args.seed,
                       env_kwargs=env_kwargs)
    except (gym.error.Error, ImportError) as exc:
        if isinstance(exc, ImportError) and ":" not in env_id:
            raise  # not the env id's module: a missing dependency of something else
        raise ConfigError(f"--env {env_id!r}: {exc}") from exc
    _print_eval(res.to_json())
    return 0


def _inspect(argv: Sequence[str]) -> int:
    import gymnasium as gym

    args = tyro.cli(InspectArgs, args=list(argv), prog="tracerl inspect")
    agent, env_id, env_kwargs = _load_checkpoint_and_env(args, "tracerl inspect")
    try:
        report = agent.inspect(env_id, episodes=args.episodes, out=args.out, env_kwargs=env_kwargs, seed=args.seed,
                               deterministic=not args.stochastic, info_key=args.info_key)
    except (gym.error.Error, ImportError) as exc:
        if isinstance(exc, ImportError) and ":" not in env_id:
            raise  # not the env id's module: a missing dependency of something else
        raise ConfigError(f"--env {env_id!r}: {exc}") from exc
    for key, value in report.summary.items():
        print(f"{key:40s} {value:.3f}")
    for kind, path in report.files.items():
        print(f"wrote {kind}: {path}")
    return 0


def _export(argv: Sequence[str]) -> int:
    from .agent import TraceRL

    args = tyro.cli(ExportArgs, args=list(argv), prog="tracerl export")
    source = resolve_checkpoint(args.checkpoint)
    agent = TraceRL.load(source, verbose=0)
    spec = agent.export(args.out, args.format, deterministic=not args.stochastic, batch_size=args.batch_size)
    print(f"exported {source} ({spec.algo}, memory {spec.memory}) to {args.out} ({spec.model_format}); "
          f"sidecar {args.out}.json; verified over {spec.verified.get('steps', 0)} steps, largest difference "
          f"{spec.verified.get('max_abs_diff', float('nan')):.2g}")
    return 0


def _list(argv: Sequence[str]) -> int:
    from .algos.registry import available_algos
    from .envs import REGISTERED_ENV_IDS
    from .memory import available_memories

    if argv:
        raise SystemExit(f"tracerl list takes no arguments, got {' '.join(argv)}")
    print("envs (tracerl):  " + ", ".join(REGISTERED_ENV_IDS) + "   (any Gymnasium id works too)")
    print("memories:        " + ", ".join(available_memories()))
    print("algorithms:      " + ", ".join(available_algos()))
    return 0


def _copytask(argv: Sequence[str]) -> int:
    from .supervised.copy_task import copytask_main

    return copytask_main(argv)


def _bench(argv: Sequence[str]) -> int:
    from .bench.cli import bench_main

    return bench_main(argv)


def _record(argv: Sequence[str]) -> int:
    from .offline.cli import record_main

    return record_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tracerl`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: tracerl {train,eval,list,copytask,bench,inspect,export,record} [--help]\n\n"
              "  train     train a memory agent (tracerl train --help lists every hyperparameter)\n"
              "  eval      evaluate a checkpoint on held-out episodes\n"
              "  list      the envs, memories and algorithms tracerl provides\n"
              "  copytask  train any memory core on the copy task (Graves et al. 2014), bit error per length\n"
              "  bench     benchmark suites against SB3 PPO / RecurrentPPO (tracerl bench --help, --list)\n"
              "  inspect   what a checkpoint's memory holds and attends to (JSON, PNG, linear probe)\n"
              "  export    the acting policy with explicit memory state, to ONNX or TorchScript (+ JSON sidecar)\n"
              "  record    episodes of agents, random or scripted policies to a Minari dataset (offline RL)")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"tracerl: unknown command {cmd!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return {"train": _train, "eval": _eval, "list": _list, "copytask": _copytask, "bench": _bench,
                "inspect": _inspect, "export": _export, "record": _record}[cmd](rest)
    except (TraceRLError, ValueError, TypeError) as exc:  # a bad argument, file or setting: one line, exit 2
        print(f"tracerl {cmd}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the disk or the system refused (exit 1): one line, naming the file
        print(f"tracerl {cmd}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
