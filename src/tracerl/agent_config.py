"""``MemoryAgentConfig``: seed 001's memory-agent options of :class:`~tracerl.TraceRL` beyond PPO and the network.

Every field is a ``TraceRL`` keyword argument and a ``tracerl train`` flag.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .config_checks import NON_NEGATIVE, POSITIVE, Range, validate_fields
from .errors import ConfigError

@dataclass
class MemoryAgentConfig:
    """Retention, exploration, reward scaling and auxiliary-loss options."""

    memory_learn_retention: bool | None = None
    """Strategic memory: learn which entries to keep from their usefulness (False: reservoir sampling;
    None: the memory's own setting)."""
    memory_retention_coef: float | None = None
    """Strategic memory: weight of the usefulness loss (None: the memory's own setting, 0.01)."""
    reward_norm: bool = True
    """Divide the rewards PPO trains on by the running std of the discounted return (Engstrom et al. 2020;
    statistics are saved in checkpoints; logged returns stay raw). On by default: it puts the critic's targets
    near unit scale whatever the env's reward scale, so the value loss keeps its weight in the shared torso.
    On POPGym, whose per-step rewards are ~1/episode length, this took RepeatPrevious from 0.21 to 1.00 at
    200k steps (BENCHMARKS.md, "defaults that generalize")."""
    intrinsic_expl: bool = False
    """Add an intrinsic exploration reward (its source is RND: needs use_rnd=True)."""
    intrinsic_eta: float = 0.01
    """Weight η of the intrinsic advantage: A = A_ext + η A_int."""
    use_rnd: bool = False
    """Train Random Network Distillation and compute its novelty bonus (logged as rnd_net_dist/mean_rnd_bonus)."""
    rnd_emb_dim: int = 32
    """Embedding width of the RND target and predictor networks."""
    rnd_lr: float = 1e-3
    """Learning rate of the RND predictor."""
    her: bool = False
    """Hindsight experience replay for goal-conditioned Dict envs (off-policy algorithms only)."""
    aux: tuple[str, ...] = ()
    """Auxiliary losses by name, built on the memory features: 'cue' (CueAuxModule, predicts info['cue']),
    'confidence' (ConfidenceAuxModule) and 'predictive' (PredictiveAuxModule, MERLIN-style: reconstructs the
    observation, previous reward and previous action through a latent whose prior comes from the previous
    step's memory). From Python, pass module objects as aux_modules=[...] instead."""
    aux_predictive_coef: float = 0.1
    """Weight of the 'predictive' auxiliary loss in the total loss (used with aux=('predictive',))."""
    env_max_restarts: int | None = None
    """Crashing envs (PPO family): run the sub-envs in a ResilientVectorEnv that rebuilds a sub-env that raises
    (or hangs) up to this many times each, dropping its episode from training, then stops with EnvCrashError
    (None: no wrapper, an env exception stops training at once)."""
    env_subprocess: bool = False
    """With env_max_restarts: run every sub-env in its own spawned process (needed for env_step_timeout)."""
    env_step_timeout: float | None = None
    """With env_max_restarts and env_subprocess: seconds a sub-env has to answer a step before it is killed and
    rebuilt (None: the default, 60 s, tracerl.envs.resilient.DEFAULT_STEP_TIMEOUT)."""
    env_vectorization: Literal["auto", "sync", "async"] = "auto"
    """How the sub-envs of an env id or factory run: 'sync' all in this process, 'async' one subprocess each with
    observations in shared memory (gymnasium's AsyncVectorEnv), 'auto' times a few random steps of one env at
    construction and uses subprocesses only when the env is slow enough to gain from them (printed with verbose=1;
    tracerl.envs.vector.choose_vectorization). tracerl's own tasks always run natively batched."""
    runners: int = 0
    """Env runners collecting the rollouts (tracerl.distributed): the n_envs sub-envs are split evenly over this
    many runners, each with its own vector env and acting copy of the policy (0: the agent's own collector in this
    process). PPO family: every update gathers all runners' rollouts, collected with the same weights; with the
    same seed, the result does not depend on the number of runners. Off-policy (R2D2, SAC, TD3, DRQN):
    asynchronous, runners push chunks into a replay in its own actor (tracerl.distributed.offpolicy)."""
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
        "memory_retention_coef": NON_NEGATIVE, "intrinsic_eta": NON_NEGATIVE, "rnd_emb_dim": Range(1, 4096),
        "rnd_lr": POSITIVE, "env_max_restarts": Range(0, 10_000), "env_step_timeout": Range(0, 10**6, lo_open=True),
        "runners": Range(0, 1024), "runner_num_cpus": Range(0, 1024, lo_open=True),
        "runner_max_restarts": Range(0, 10_000), "aux_predictive_coef": NON_NEGATIVE,
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    def validate(self, algo: str) -> None:
        """Raise ConfigError naming the first invalid field and its valid range."""
        validate_fields(self)
        if self.memory_retention_coef is not None and not self.memory_retention_coef >= 0:
            raise ConfigError(f"memory_retention_coef={self.memory_retention_coef!r} is invalid: must be >= 0")
        if not (self.intrinsic_eta >= 0 and math.isfinite(self.intrinsic_eta)):
            raise ConfigError(f"intrinsic_eta={self.intrinsic_eta!r} is invalid: must be >= 0 and finite")
        if self.rnd_emb_dim < 1:
            raise ConfigError(f"rnd_emb_dim={self.rnd_emb_dim!r} is invalid: must be >= 1")
        if not (self.rnd_lr > 0 and math.isfinite(self.rnd_lr)):
            raise ConfigError(f"rnd_lr={self.rnd_lr!r} is invalid: must be > 0 and finite")
        if self.intrinsic_expl and not self.use_rnd:
            raise ConfigError("intrinsic_expl=True needs an intrinsic reward source: set use_rnd=True (RND)")
        from .algos.registry import available_algos, is_off_policy

        if self.her and not is_off_policy(algo):
            raise ConfigError(
                f"her=True is not supported with algo={algo!r}: hindsight relabelling needs replayed sequences; "
                f"use an off-policy algorithm ({', '.join(available_algos('off_policy'))}) with a goal-conditioned "
                "Dict env")
        if self.env_max_restarts is not None and (is_off_policy(algo) or self.env_max_restarts < 0):
            raise ConfigError(f"env_max_restarts={self.env_max_restarts!r} is invalid with algo={algo!r}: must be "
                              f"None, or an int >= 0 with an on-policy algorithm "
                              f"({', '.join(available_algos('on_policy'))})")
        if (self.env_subprocess or self.env_step_timeout is not None) and self.env_max_restarts is None:
            raise ConfigError("env_subprocess / env_step_timeout need env_max_restarts (the resilient env wrapper)")
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

__all__ = ["AUX_NAMES", "MemoryAgentConfig"]
