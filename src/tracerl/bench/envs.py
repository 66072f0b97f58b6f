"""Benchmark environments: an env id with keyword arguments, validated by name, built for either library.

tracerl agents build their own batched VectorEnv from the id (:func:`tracerl.envs.make_vec_env`);
the stable-baselines3 baselines get SB3's ``make_vec_env`` of single envs from ``gymnasium.make``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

CUE_ENV_ID = "tracerl/CueDelay-v0"
"""The registered id of tracerl's delayed-cue memory task."""

SB3_N_ENVS = 8
"""Parallel envs of the stable-baselines3 agents (SB3's ``make_vec_env`` of 8 single envs)."""


@dataclass(frozen=True)
class EnvSpec:
    """One benchmark environment.

    Attributes:
        id: a Gymnasium id (tracerl's, e.g. ``tracerl/CueDelay-v0``, or any registered one).
        kwargs: keyword arguments for ``gymnasium.make`` / tracerl's ``make_vec_env``.
        budget: env-step budget for runs on this env (None: the suite's budget).
    """

    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None

    @property
    def label(self) -> str:
        """A short readable name, e.g. ``CueDelay(delay=16,difficulty=1)``."""
        short = self.id.split("/")[-1].rsplit("-v", 1)[0]
        args = ",".join(f"{k}={v}" for k, v in sorted(self.kwargs.items()))
        return f"{short}({args})" if args else short

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (the budget is part of the run, not of the env, and is left out)."""
        return {"id": self.id, "kwargs": dict(sorted(self.kwargs.items()))}

    def key(self) -> str:
        """Canonical JSON of :meth:`to_json` (stable across processes and sessions)."""
        return json.dumps(self.to_json(), sort_keys=True)


def valid_env_ids() -> list[str]:
    """tracerl's own registered ids (any other registered Gymnasium id is accepted too)."""
    from ..envs import REGISTERED_ENV_IDS

    return list(REGISTERED_ENV_IDS)


def check_env_id(env_id: str, where: str = "env") -> None:
    """Raise :class:`ConfigError` naming ``env_id`` and the valid ids when Gymnasium does not know it."""
    import gymnasium

    import tracerl.envs  # noqa: F401  (registers tracerl's ids)

    if env_id not in gymnasium.registry:
        raise ConfigError(f"{where}: unknown env {env_id!r}; valid: {', '.join(valid_env_ids())} "
                          "(or any registered Gymnasium id)")


def make_sb3_env(env: EnvSpec, seed: int, n_envs: int = SB3_N_ENVS) -> Any:
    """SB3's ``make_vec_env`` (a Monitor-wrapped DummyVecEnv) of ``n_envs`` copies of ``env``."""
    import gymnasium
    from stable_baselines3.common.env_util import make_vec_env

    import tracerl.envs  # noqa: F401

    kwargs = dict(env.kwargs)
    return make_vec_env(lambda: gymnasium.make(env.id, disable_env_checker=True, **kwargs), n_envs=n_envs, seed=seed)


def cue_delay(delay: int, difficulty: int = 1, budget: int | None = None) -> EnvSpec:
    """The delayed-cue task ``CueDelay(delay, difficulty)`` as an :class:`EnvSpec`."""
    return EnvSpec(CUE_ENV_ID, {"delay": int(delay), "difficulty": int(difficulty)}, budget)
