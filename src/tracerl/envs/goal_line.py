"""A tiny goal-conditioned memory task for HER: walk to a goal cell on a line, seeing where you are only once.

Cells ``0 .. size-1``; the agent starts on a random cell and must stand on the goal cell (``!= start``) when the
episode ends after ``horizon`` actions (truncated, never terminated, so the goal can be relabelled freely).
Observation ``Dict`` (gymnasium's goal-env layout)::

    observation   Box(-1, 1, (2,))  [position scaled to [-1, 1], 1.0]  on the first step,  [0, 0] afterwards
    achieved_goal Box(0, size-1, (1,))  the current cell
    desired_goal  Box(0, size-1, (1,))  the goal cell

Actions ``Discrete(3)``: 0 left, 1 stay, 2 right (walls clip). Reward (sparse, :meth:`GoalLine.compute_reward`)
``0`` when ``|achieved - desired| < 0.5`` else ``-1``, for the cell reached by the action. ``info["success"]``
on the last step: whether the agent stands on the goal.

The memory aspect: a policy that does not read ``achieved_goal`` (``observe_achieved_goal=False`` in the
off-policy configs) only learns its position on the first step, and has to integrate its own moves (feed the
previous action, ``use_prev_action=True``) to know when it has arrived.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from tracerl.envs.safe_make import check_episode_cap
from tracerl.errors import ConfigError

GOAL_LINE_ID = "tracerl/GoalLine-v0"


class GoalLine(gymnasium.Env):
    """See the module docstring. Args: ``size`` (>= 2 cells), ``horizon`` (>= 1 actions)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, size: int = 5, horizon: int = 8) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
            raise ConfigError(f"GoalLine: size={size!r} is invalid; it must be an int >= 2.")
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ConfigError(f"GoalLine: horizon={horizon!r} is invalid; it must be an int >= 1.")
        check_episode_cap("GoalLine", "size", size)
        check_episode_cap("GoalLine", "horizon", horizon)
        self.size, self.horizon = int(size), int(horizon)
        goal = spaces.Box(0.0, float(size - 1), shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Dict({
            "observation": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
            "achieved_goal": goal,
            "desired_goal": goal,
        })
        self.action_space = spaces.Discrete(3)
        self._x = 0
        self._goal = 0
        self._t = 0

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> np.ndarray:
        """Vectorized: ``0.0`` where ``|achieved - desired| < 0.5`` (summed over goal dims), else ``-1.0``."""
        a = np.asarray(achieved_goal, dtype=np.float64)
        d = np.asarray(desired_goal, dtype=np.float64)
        dist = np.abs(a - d).sum(-1)
        return np.where(dist < 0.5, 0.0, -1.0).astype(np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        first = self._t == 0
        scaled = 2.0 * self._x / (self.size - 1) - 1.0
        return {
            "observation": np.array([scaled if first else 0.0, 1.0 if first else 0.0], dtype=np.float32),
            "achieved_goal": np.array([self._x], dtype=np.float32),
            "desired_goal": np.array([self._goal], dtype=np.float32),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._x = int(self.np_random.integers(0, self.size))
        self._goal = int((self._x + self.np_random.integers(1, self.size)) % self.size)
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any):
        if not self.action_space.contains(action):
            raise ValueError(f"GoalLine: action={action!r} is invalid; it must be 0, 1 or 2.")
        self._x = int(np.clip(self._x + int(action) - 1, 0, self.size - 1))
        self._t += 1
        obs = self._obs()
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}))
        truncated = self._t >= self.horizon
        info: dict[str, Any] = {}
        if truncated:
            info["success"] = bool(self._x == self._goal)
        return obs, reward, False, truncated, info


if GOAL_LINE_ID not in gymnasium.registry:
    gymnasium.register(id=GOAL_LINE_ID, entry_point="tracerl.envs.goal_line:GoalLine")

__all__ = ["GOAL_LINE_ID", "GoalLine"]
