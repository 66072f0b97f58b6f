"""Partially observable versions of standard control tasks: hide the velocity entries of the observation.

:class:`MaskObservation` keeps chosen indices of a 1-D ``Box`` observation. The registered ids build the
underlying env from its gymnasium spec's entry point (not through ``gymnasium.make``, so there is a single
TimeLimit, with the underlying id's ``max_episode_steps``) and mask it:

=============================  ================  ==========================================  ================
id                             underlying env    kept indices                                max_episode_steps
=============================  ================  ==========================================  ================
``tracerl/PendulumNoVel-v0``     Pendulum-v1       0 cos θ, 1 sin θ  (drops 2 θ-dot)           200
``tracerl/CartPoleNoVel-v0``     CartPole-v1       0 x, 2 θ  (drops 1 x-dot, 3 θ-dot)          500
``tracerl/LunarLanderNoVel-v0``  LunarLander-v3    0 x, 1 y, 4 angle, 6 leg1, 7 leg2           1000
                                                   (drops 2 vx, 3 vy, 5 angular velocity)
=============================  ================  ==========================================  ================

LunarLander needs Box2D; its id is registered only when ``Box2D`` imports.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator

from tracerl.errors import ConfigError, UnsupportedSpaceError

PENDULUM_KEEP = (0, 1)
CARTPOLE_KEEP = (0, 2)
LUNAR_LANDER_KEEP = (0, 1, 4, 6, 7)

NO_VEL_BASES: dict[str, tuple[str, tuple[int, ...]]] = {
    "tracerl/PendulumNoVel-v0": ("Pendulum-v1", PENDULUM_KEEP),
    "tracerl/CartPoleNoVel-v0": ("CartPole-v1", CARTPOLE_KEEP),
    "tracerl/LunarLanderNoVel-v0": ("LunarLander-v3", LUNAR_LANDER_KEEP),
}
"""tracerl id -> (underlying gymnasium id, kept observation indices)."""


class MaskObservation(gymnasium.ObservationWrapper, gymnasium.utils.RecordConstructorArgs):
    """Keep only the entries ``keep`` (in that order) of a 1-D ``Box`` observation.

    Args:
        env: an env with a 1-D ``gymnasium.spaces.Box`` observation space (else :class:`UnsupportedSpaceError`).
        keep: non-empty sequence of distinct ints in ``[0, obs_dim)`` (else :class:`ConfigError` naming them).

    The observation space is a ``Box`` with the kept entries' bounds and the original dtype.
    """

    def __init__(self, env: gymnasium.Env, keep: Sequence[int]) -> None:
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise UnsupportedSpaceError(
                f"MaskObservation: observation_space={space!r} is not supported; it needs a 1-D gymnasium.spaces.Box."
            )
        dim = space.shape[0]
        try:
            keep_list = list(keep)
        except TypeError as exc:
            raise ConfigError(f"MaskObservation: keep={keep!r} is invalid; it must be a sequence of ints in [0, {dim}).") from exc
        bad = [k for k in keep_list if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < dim]
        if bad:
            raise ConfigError(f"MaskObservation: keep={keep!r} has invalid indices {bad!r}; each must be an int in [0, {dim}).")
        if not keep_list:
            raise ConfigError(f"MaskObservation: keep={keep!r} is empty; keep at least one index in [0, {dim}).")
        dups = sorted({int(k) for k in keep_list if keep_list.count(k) > 1})
        if dups:
            raise ConfigError(f"MaskObservation: keep={keep!r} repeats indices {dups!r}; each index may appear once.")
        gymnasium.utils.RecordConstructorArgs.__init__(self, keep=tuple(int(k) for k in keep_list))
        gymnasium.ObservationWrapper.__init__(self, env)
        self.keep = np.asarray(keep_list, dtype=np.int64)
        self.observation_space = spaces.Box(low=space.low[self.keep], high=space.high[self.keep], dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The kept entries of ``observation``."""
        return np.asarray(observation)[self.keep]


def make_no_vel(base_id: str, keep: Sequence[int], **kwargs: Any) -> MaskObservation:
    """Build ``base_id``'s env class from its spec (spec kwargs overridden by ``kwargs``) and mask it to ``keep``."""
    spec = gymnasium.spec(base_id)
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    return MaskObservation(creator(**{**spec.kwargs, **kwargs}), keep)


def pendulum_no_vel(**kwargs: Any) -> MaskObservation:
    """Pendulum-v1 observing [cos θ, sin θ] (θ-dot hidden)."""
    return make_no_vel("Pendulum-v1", PENDULUM_KEEP, **kwargs)


def cartpole_no_vel(**kwargs: Any) -> MaskObservation:
    """CartPole-v1 observing [x, θ] (both velocities hidden)."""
    return make_no_vel("CartPole-v1", CARTPOLE_KEEP, **kwargs)


def lunar_lander_no_vel(**kwargs: Any) -> MaskObservation:
    """LunarLander-v3 observing [x, y, angle, leg1 contact, leg2 contact] (vx, vy, angular velocity hidden)."""
    return make_no_vel("LunarLander-v3", LUNAR_LANDER_KEEP, **kwargs)

