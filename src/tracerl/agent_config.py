"""The agent options of :class:`~tracerl.TraceRL` beyond the algorithm's config and the network, one config per owner.

* :class:`RetentionConfig`: the memory core's retention knobs (``memory_learn_retention``, ``memory_retention_coef``),
  applied to every core that declares them (:attr:`~tracerl.memory.MemoryCore.training_options`);
* :class:`ExploreConfig`: exploration and reward scaling (RND, intrinsic reward, ``reward_norm``);
* :class:`EnvConfig`: how the sub-envs run (vectorization, crash / hang restarts);
* :class:`MemoryAgentConfig`: the rest of seed 001's memory-agent options (auxiliary losses; env runners);
* ``her`` is the off-policy algorithms' own field (:class:`~tracerl.algos.offpolicy.OffPolicyConfig`).

Every field is a ``TraceRL`` keyword argument and a ``tracerl train`` flag, as before the split: the learners take
the fields they use (:func:`take_options`). A moved field passed where it no longer lives (``MemoryAgentConfig(
use_rnd=True)``) raises a ConfigError naming its new home. Checkpoints store all of them in one flat
``meta.extras`` object, as before; :func:`options_from_json` splits a flat object written by any version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, ClassVar, Literal

from .config_checks import NON_NEGATIVE, POSITIVE, Range, validate_fields
from .errors import ConfigError


def _kinds(kind: str) -> str:
    from .algos.registry import available_algos

    return ", ".join(available_algos(kind))  # type: ignore[arg-type]


@dataclass
class RetentionConfig:
    """The memory core's retention knobs (cores that declare them in ``training_options``: the strategic memory)."""

    memory_learn_retention: bool | None = None
    """Strategic memory: learn which entries to keep from their usefulness (False: reservoir sampling;
    None: the memory's own setting)."""
    memory_retention_coef: float | None = None
    """Strategic memory: weight of the usefulness loss (None: the memory's own setting, 0.01)."""

    _field_ranges = {"memory_retention_coef": NON_NEGATIVE}
    _attributes: ClassVar[dict[str, str]] = {"memory_learn_retention": "learn_retention",
                                             "memory_retention_coef": "retention_coef"}

    def __post_init__(self) -> None:
        validate_fields(self)

    def validate(self, algo: str) -> None:
        """ConfigError naming the first invalid field."""
        validate_fields(self)

    def apply(self, cores: list[Any], memory_name: str) -> None:
        """Set the knobs that are not None on every core in ``cores`` (ConfigError when a core does not declare
        one: it has no retention to learn)."""
        for field_name, attr in self._attributes.items():
            value = getattr(self, field_name)
            if value is None:
                continue
            for core in cores:
                if attr not in core.training_options:
                    raise ConfigError(
                        f"{field_name}={value!r}: memory {memory_name!r} has no retention to learn "
                        f"(it declares no {attr!r} option; the strategic memory has one)")
                setattr(core, attr, type(getattr(core, attr))(value))


@dataclass
class ExploreConfig:
    """Exploration bonuses and reward scaling (every algorithm of the PPO family; SAC, TD3, R2D2 and DRQN)."""

    reward_norm: bool = True
    """Divide the rewards the algorithm trains on by the running std of the discounted return (Engstrom et al.
    2020; statistics are saved in checkpoints; logged returns stay raw). On by default for the PPO family: it puts
    the critic's targets near unit scale whatever the env's reward scale, so the value loss keeps its weight in the
    shared torso. On POPGym, whose per-step rewards are ~1/episode length, this took RepeatPrevious from 0.21 to
    1.00 at 200k steps (BENCHMARKS.md, "defaults that generalize"). Off by default for the off-policy algorithms
    (SAC, TD3, R2D2, DRQN), which scale the replayed rewards by the current statistics when sampling."""
    intrinsic_expl: bool = False
    """Add an intrinsic exploration reward (its source is RND: needs use_rnd=True)."""
    intrinsic_eta: float = 0.01
    """Weight η of the intrinsic reward: PPO family A = A_ext + η A_int; off-policy r = r_ext + η r_int."""
    use_rnd: bool = False
    """Train Random Network Distillation and compute its novelty bonus (logged as rnd_net_dist/mean_rnd_bonus)."""
    rnd_emb_dim: int = 32
    """Embedding width of the RND target and predictor networks."""
    rnd_lr: float = 1e-3
    """Learning rate of the RND predictor."""

    _field_ranges = {"intrinsic_eta": NON_NEGATIVE, "rnd_emb_dim": Range(1, 4096), "rnd_lr": POSITIVE}

    def __post_init__(self) -> None:
        validate_fields(self)

    @classmethod
    def for_kind(cls, kind: str, **kwargs: Any) -> "ExploreConfig":
        """The defaults of an algorithm kind: ``reward_norm`` is on for the PPO family, off for off-policy ones."""
        if kind != "on_policy":
            kwargs.setdefault("reward_norm", False)
        return cls(**kwargs)

    def validate(self, algo: str) -> None:
        """ConfigError naming the first invalid field or combination."""
        validate_fields(self)
        if self.intrinsic_expl and not self.use_rnd:
            raise ConfigError("intrinsic_expl=True needs an intrinsic reward source: set use_rnd=True (RND)")


@dataclass
class EnvConfig:
    """How the sub-envs of an env id or factory run: vectorization and crash / hang restarts (every algorithm)."""

    env_max_restarts: int | None = None
    """Crashing envs: run the sub-envs in a ResilientVectorEnv that rebuilds a sub-env that raises (or hangs) up to
    this many times each, then stops with EnvCrashError (None: no wrapper, an env exception stops training at once).
    The PPO family drops the crashed episode's steps of the current rollout from training; the off-policy algorithms
    end the episode at its last real observation (a truncation) and never store the crashed step."""
    env_subprocess: bool = False
    """With env_max_restarts: run every sub-env in its own spawned process (needed for env_step_timeout)."""
    env_step_timeout: float | None = None
    """With env_max_restarts and env_subprocess: seconds a sub-env has to answer a step before it is killed and
    rebuilt (None: the default, 60 s, tracerl.envs.resilient.DEFAULT_STEP_TIMEOUT)."""
    env_vectorization: Literal["auto", "sync", "async"] = "auto"
    """How the sub-envs of an env id or factory run: 'sync' all in this process, 'async' one subprocess each with
    observations in shared memory (gymnasium's AsyncVectorEnv), 'auto' times a few random steps of one env at
    construction and uses subprocesses only when the env is slow enough to gain from them (printed with verbose=1;
    tracerl.envs.vector.choose_vectorization). tracerl's own tasks always run natively batched. The off-policy
    algorithms default to 'sync'."""

    _field_ranges = {"env_max_restarts": Range(0, 10_000), "env_step_timeout": Range(0, 10**6, lo_open=True)}

    def __post_init__(self) -> None:
        validate_fields(self)

    def validate(self, algo: str) -> None:
        """ConfigError naming the first invalid field or combination."""
        validate_fields(self)
        if (self.env_subprocess or self.env_step_timeout is not None) and self.env_max_restarts is None:
            raise ConfigError("env_subprocess / env_step_timeout need env_max_restarts (the resilient env wrapper)")

    @classmethod
    def for_kind(cls, kind: str, **kwargs: Any) -> "EnvConfig":
        """The defaults of an algorithm kind: off-policy sub-envs run in this process unless asked otherwise."""
        if kind != "on_policy":
            kwargs.setdefault("env_vectorization", "sync")
        return cls(**kwargs)

    def vec_env_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`tracerl.envs.make_vec_env`."""
        resilient = {} if self.env_max_restarts is None else dict(
            resilient=True, max_restarts=self.env_max_restarts, subprocess=self.env_subprocess,
            step_timeout=self.env_step_timeout)
        return {**resilient, "vectorization": self.env_vectorization}


MOVED_FIELDS: dict[str, str] = {
    **{f: "RetentionConfig" for f in ("memory_learn_retention", "memory_retention_coef")},
    **{f: "ExploreConfig" for f in ("reward_norm", "intrinsic_expl", "intrinsic_eta", "use_rnd", "rnd_emb_dim",
                                    "rnd_lr")},
    **{f: "EnvConfig" for f in ("env_max_restarts", "env_subprocess", "env_step_timeout", "env_vectorization")},
    "her": "the off-policy algorithms' config (OffPolicyConfig.her: SACConfig, TD3Config, R2D2Config, ...)",
}
"""Fields that were MemoryAgentConfig's before the split -> where they live now."""


def _moved_error(cls_name: str, names: list[str]) -> ConfigError:
    where = "; ".join(f"{n} moved to {MOVED_FIELDS[n]}" for n in names)
    return ConfigError(f"{cls_name}() got field(s) that moved out of it: {where} (as TraceRL keyword arguments and "
                       "tracerl train flags they work as before)")


@dataclass(init=False)
class MemoryAgentConfig:
    """Auxiliary losses and env runners (the PPO family). Retention, exploration, env settings and ``her`` moved
    to :class:`RetentionConfig`, :class:`ExploreConfig`, :class:`EnvConfig` and the off-policy configs."""

    aux: tuple[str, ...] = ()
    """Auxiliary losses by name, built on the memory features: 'cue' (CueAuxModule, predicts info['cue']),
    'confidence' (ConfidenceAuxModule) and 'predictive' (PredictiveAuxModule, MERLIN-style: reconstructs the
    observation, previous reward and previous action through a latent whose prior comes from the previous
    step's memory). From Python, pass module objects as aux_modules=[...] instead."""
    aux_predictive_coef: float = 0.1
    """Weight of the 'predictive' auxiliary loss in the total loss (used with aux=('predictive',))."""
    runners: int = 0
    """Env runners collecting the rollouts (tracerl.distributed; off-policy algorithms take it too, asynchronous:
    tracerl.distributed.offpolicy): the n_envs sub-envs are split evenly
    over this many runners, each with its own vector env and acting copy of the policy; every update gathers all
    runners' rollouts, collected with the same weights (0: the agent's own collector in this process). With the same
    seed, the result does not depend on the number of runners."""
    runner_backend: Literal["ray", "local"] = "ray"
    """Where runners run: 'ray' (one Ray actor each, on a local Ray instance or the cluster at ray_address) or
    'local' (in this process, one after the other: the reference the Ray path equals, and a debugging aid)."""
    ray_address: str | None = None
    """With runner_backend='ray': the address of the Ray cluster to join (e.g. 'auto' or 'head-node:6379'; None:
    the Ray instance already initialized in this process, else a new local one)."""
    runner_num_cpus: float = 1.0
    """With runner_backend='ray': CPUs Ray reserves per runner actor (fractions pack several runners per core,
    for envs that wait rather than compute)."""
    runner_max_restarts: int = 3
    """With runner_backend='ray': how often Ray restarts a runner whose process died (its partial rollout is
    dropped and its sub-envs start new episodes) before training stops with tracerl.distributed.RunnerError."""

    _field_ranges = {  # valid values per field, checked with the annotations by tracerl.config_checks
        "runners": Range(0, 1024), "runner_num_cpus": Range(0, 1024, lo_open=True),
        "runner_max_restarts": Range(0, 10_000), "aux_predictive_coef": NON_NEGATIVE,
    }

    def __init__(self, aux: tuple[str, ...] = (), aux_predictive_coef: float = 0.1, runners: int = 0,
                 runner_backend: Literal["ray", "local"] = "ray", ray_address: str | None = None,
                 runner_num_cpus: float = 1.0, runner_max_restarts: int = 3, **moved: Any) -> None:
        if moved:
            unknown = sorted(set(moved) - set(MOVED_FIELDS))
            if unknown:
                raise TypeError(f"MemoryAgentConfig() got unexpected keyword argument(s): {', '.join(unknown)}")
            raise _moved_error("MemoryAgentConfig", sorted(moved))
        self.aux, self.aux_predictive_coef, self.runners = aux, aux_predictive_coef, runners
        self.runner_backend, self.ray_address = runner_backend, ray_address
        self.runner_num_cpus, self.runner_max_restarts = runner_num_cpus, runner_max_restarts
        self.__post_init__()

    def __post_init__(self) -> None:
        validate_fields(self)

    def validate(self, algo: str) -> None:
        """Raise ConfigError naming the first invalid field and its valid range."""
        validate_fields(self)
        unknown = sorted(set(self.aux) - set(AUX_NAMES))
        if unknown:
            raise ConfigError(f"aux: unknown auxiliary module(s) {', '.join(unknown)}; valid: {', '.join(AUX_NAMES)}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["aux"] = list(self.aux)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "MemoryAgentConfig":
        from .config_docs import config_from_json

        return config_from_json(cls, d, tuple_fields=("aux",))


AUX_NAMES = ("cue", "confidence", "predictive")

OPTION_CLASSES: dict[str, type] = {"retention": RetentionConfig, "explore": ExploreConfig, "env_options": EnvConfig,
                                   "agent": MemoryAgentConfig}
"""The agent-option configs by group name (``tracerl train``'s nesting)."""


def make_option(cls: type, kind: str, **kwargs: Any) -> Any:
    """Option config ``cls`` with the defaults of algorithm ``kind`` (``for_kind`` where a default differs)."""
    for_kind = getattr(cls, "for_kind", None)
    return for_kind(kind, **kwargs) if for_kind is not None else cls(**kwargs)


def agent_configs(algo: str) -> list[tuple[str, type, Callable[[], Any]]]:
    """The configs an agent with algorithm ``algo`` is built from, as ``(group name, config class, make default)``
    in flag-priority order: the algorithm's own config, the network (:class:`~tracerl.policies.PolicyConfig`),
    then the option groups (:data:`OPTION_CLASSES`). ``tracerl train``'s flags and the benchmark's run identities
    (:func:`tracerl.bench.agents.tracerl_settings`) are both read from it."""
    from .algos.registry import get_algo
    from .policies.config import PolicyConfig

    spec = get_algo(algo)
    return [("algorithm", spec.config_class, spec.make_config), ("policy", PolicyConfig, PolicyConfig),
            *((name, cls, lambda cls=cls: make_option(cls, spec.kind)) for name, cls in OPTION_CLASSES.items())]


def option_fields(group: str) -> set[str]:
    """The field names of one option group."""
    return {f.name for f in fields(OPTION_CLASSES[group])}


def take_options(hyper: dict[str, Any], groups: tuple[str, ...], algo: str) -> dict[str, Any]:
    """Pop the fields of ``groups`` from the keyword arguments ``hyper`` and build (and validate) those configs with
    ``algo``'s defaults; returns group name -> config."""
    from .algos.registry import get_algo

    kind = get_algo(algo).kind
    out: dict[str, Any] = {}
    for group in groups:
        cls = OPTION_CLASSES[group]
        names = {f.name for f in fields(cls)}
        kwargs = {k: hyper.pop(k) for k in list(hyper) if k in names}
        if "aux" in kwargs:
            kwargs["aux"] = tuple(kwargs["aux"])
        cfg = make_option(cls, kind, **kwargs)
        cfg.validate(algo)
        out[group] = cfg
    return out


def options_to_json(options: dict[str, Any]) -> dict[str, Any]:
    """The option configs as one flat JSON object (a checkpoint's ``meta.extras``)."""
    out: dict[str, Any] = {}
    for cfg in options.values():
        d = cfg.to_json() if hasattr(cfg, "to_json") else asdict(cfg)
        out.update(d)
    return out


def check_options_json(section: Any, where: str, entry: str) -> None:
    """A checkpoint's flat ``meta.extras``: every key is a field of one option config (or an older file's ``her``)
    and its JSON value has that field's type (CheckpointError naming the entry otherwise)."""
    from .io.restore_checks import check_config_types

    check_config_types(_AllOptions, section, where, entry)


def options_from_json(d: dict[str, Any], groups: tuple[str, ...], algo: str) -> dict[str, Any]:
    """The ``TraceRL`` keyword arguments a flat ``meta.extras`` object describes (written by this or an older
    version: before the split it was MemoryAgentConfig's fields, ``her`` included), checked: unknown keys raise
    ConfigError naming them. Fields of other groups than ``groups`` must hold their defaults (an older PPO file's
    ``her: false``)."""
    from .algos.registry import get_algo

    kind = get_algo(algo).kind
    own = set().union(*(option_fields(g) for g in groups)) if groups else set()
    unknown = sorted(set(d) - set().union(*(option_fields(g) for g in OPTION_CLASSES)) - {"her"})
    if unknown:
        raise ConfigError(f"unknown agent option keys: {', '.join(unknown)}")
    kwargs = {k: v for k, v in d.items() if k in own}
    for group in groups:  # types and ranges, as the constructor would check them
        cls = OPTION_CLASSES[group]
        sub = {k: v for k, v in kwargs.items() if k in option_fields(group)}
        if "aux" in sub:
            sub["aux"] = tuple(sub["aux"])
        make_option(cls, kind, **sub)
    if "aux" in kwargs:
        kwargs["aux"] = tuple(kwargs["aux"])
    defaults = options_to_json({g: make_option(c, kind) for g, c in OPTION_CLASSES.items()})
    foreign = sorted(k for k, v in d.items() if k not in own and v != defaults.get(k, False))
    if foreign:
        raise ConfigError(f"agent option(s) {', '.join(foreign)} are not used by algo={algo!r}")
    return kwargs


_AllOptions = type("AgentOptions", tuple(OPTION_CLASSES.values()), {"__annotations__": {"her": bool}})
_AllOptions = dataclass(_AllOptions, init=False)  # the union of the option fields (type checks of meta.extras)

__all__ = ["AUX_NAMES", "EnvConfig", "ExploreConfig", "MOVED_FIELDS", "MemoryAgentConfig", "OPTION_CLASSES",
           "RetentionConfig", "agent_configs", "check_options_json", "make_option", "option_fields", "options_from_json", "options_to_json", "take_options"]
