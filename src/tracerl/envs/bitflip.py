"""The bit-flipping task of the HER paper (Andrychowicz et al. 2017, section 3.1): a goal env where hindsight helps.

State ``s`` and goal ``g`` are ``n_bits`` random bits (``g != s``). Action ``i`` flips bit ``i``. The reward is
``-1`` until the state equals the goal, ``0`` on the step that reaches it, and that step ends the episode
(terminated); otherwise the episode is truncated after ``horizon`` actions (default ``n_bits``, the paper's
episode length). A random policy almost never meets the goal for ``n_bits >= 10`` (``P <= horizon / 2^n_bits``
per episode), so DQN without HER never sees a reward; with HER every episode is a success for some goal.

Observation ``Dict`` (gymnasium's goal-env layout)::

    observation   MultiBinary(n_bits)  the state
    achieved_goal MultiBinary(n_bits)  the state
    desired_goal  MultiBinary(n_bits)  the goal

``compute_reward`` and ``compute_terminated`` (the goal-env API) are vectorized over leading dims, so HER can
recompute both for a relabelled goal. ``info["success"]`` on an episode's last step: whether it reached the goal.
The oracle (flip any bit where state and goal differ) succeeds in every episode.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from tracerl.errors import ConfigError

BIT_FLIP_ID = "tracerl/BitFlip-v0"


class BitFlip(gymnasium.Env, gymnasium.utils.RecordConstructorArgs):
    """See the module docstring. Args: ``n_bits`` (>= 1), ``horizon`` (actions per episode, None: ``n_bits``)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, n_bits: int = 10, horizon: int | None = None) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, n_bits=n_bits, horizon=horizon)
        if isinstance(n_bits, bool) or not isinstance(n_bits, (int, np.integer)) or n_bits < 1:
            raise ConfigError(f"BitFlip: n_bits={n_bits!r} is invalid; it must be an int >= 1.")
        if horizon is None:
            horizon = int(n_bits)
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ConfigError(f"BitFlip: horizon={horizon!r} is invalid; it must be None or an int >= 1.")
        self.n_bits, self.horizon = int(n_bits), int(horizon)
        bits = spaces.MultiBinary(self.n_bits)
        self.observation_space = spaces.Dict({"observation": bits, "achieved_goal": bits, "desired_goal": bits})
        self.action_space = spaces.Discrete(self.n_bits)
        self._state = np.zeros(self.n_bits, np.int8)
        self._goal = np.ones(self.n_bits, np.int8)
        self._t = 0

    @staticmethod
    def compute_terminated(achieved_goal: Any, desired_goal: Any, info: Any) -> np.ndarray:
        """Vectorized: True where every bit of the achieved goal equals the desired goal's."""
        a, d = np.asarray(achieved_goal), np.asarray(desired_goal)
        return np.all(np.rint(a) == np.rint(d), axis=-1)

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> np.ndarray:
        """Vectorized: ``0.0`` where the goal is reached, else ``-1.0``."""
        return np.where(self.compute_terminated(achieved_goal, desired_goal, info), 0.0, -1.0).astype(np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"observation": self._state.copy(), "achieved_goal": self._state.copy(),
                "desired_goal": self._goal.copy()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._state = self.np_random.integers(0, 2, self.n_bits).astype(np.int8)
        self._goal = self.np_random.integers(0, 2, self.n_bits).astype(np.int8)
        if np.array_equal(self._state, self._goal):  # the goal is never the start
            self._goal[int(self.np_random.integers(0, self.n_bits))] ^= 1
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any):
        if not self.action_space.contains(action):
            raise ValueError(f"BitFlip: action={action!r} is invalid; it must be an int in [0, {self.n_bits}).")
        self._state[int(action)] ^= 1
        self._t += 1
        obs = self._obs()
        terminated = bool(self.compute_terminated(obs["achieved_goal"], obs["desired_goal"], {}))
        reward = 0.0 if terminated else -1.0
        truncated = not terminated and self._t >= self.horizon
        info: dict[str, Any] = {}
        if terminated or truncated:
            info["success"] = terminated
        return obs, reward, terminated, truncated, info

    def oracle_action(self) -> int:
        """An action that brings the state one bit closer to the goal (the first differing bit)."""
        return int(np.flatnonzero(self._state != self._goal)[0])


__all__ = ["BIT_FLIP_ID", "BitFlip"]
