"""Passive and Active T-Maze (Ni et al., "When do Transformers Shine in RL? Decoupling Memory from Credit
Assignment", NeurIPS 2023; reference code ``twni2016/Memory-RL``, ``envs/tmaze.py``, classes
``TMazeClassicPassive``/``TMazeClassicActive``), as a single env and as a natively batched vector env.

Layout (``o`` = oracle length: 0 passive, 1 active; ``L`` = ``corridor_length``)::

                            G(+1)
    O--S-------------------J
                            G(-1)

    O oracle cell  x = 0           (shows the goal cue the first time the agent observes it)
    S start cell   x = o           (passive: S = O, the cue is on the first observation)
    J junction     x = o + L, y = 0
    G goal cells   x = o + L, y = +-1 (the cue's side is rewarded)

Actions ``Discrete(4)``, the paper's mapping: 0 = right (+x), 1 = up (+y), 2 = left (-x), 3 = down (-y).
A move into a wall (outside the corridor row, left of the oracle, up/down anywhere except at the junction,
left/right from a goal cell, beyond a goal cell) leaves the agent in place; from a goal cell the agent can
step back onto the junction.

Observation ``Box(-1, 1, (2,), float32)`` = the paper's ``ambiguous_position=True`` encoding::

    index 0: junction flag  1.0 at the junction and the goal cells (x = o + L), else 0.0
    index 1: signal         at the oracle cell: the cue (+-1) the first time it is observed, 0.0 afterwards;
                            at the junction/goal cells: the agent's y (0 or +-1); elsewhere 0.0

Episode: a fixed horizon of ``T = L + 2 o + 1`` actions (passive ``L + 1``, active ``L + 3``), exactly the
time an oracle policy needs (active: left, then ``L + 1`` rights, then up/down; passive: ``L`` rights, then
up/down). The episode always ends after ``T`` actions (``terminated=True``, never truncated: the paper treats
the horizon as terminal, ``finite_horizon_terminal``), whatever the agent did; reaching a goal cell early does
not end it. Rewards after the action at step ``t = 1..T``::

    t == T:  goal_reward if the agent's y equals the cue else 0       (info["success"] = y == cue)
    t <  T:  penalty if x < t - o else 0, plus distract_reward if x == 0

so the per-step penalty falls on every step the agent lags behind the oracle schedule. The paper's experiment
configs use ``penalty = -1 / L`` (this is the default here: ``penalty=None``); its class default is 0.

Deviations from the reference code (semantics otherwise identical):
  * the cue is drawn from the env's own ``np.random.Generator`` (``2 * rng.integers(0, 2) - 1``) instead of the
    global ``np.random.choice``, so seeding is reproducible and :class:`TMazeVectorEnv` equals N single envs;
  * gymnasium API (terminated/truncated, ``info["cue"]``, ``info["success"]``); the default penalty is the
    paper's experimental ``-1 / L`` rather than the class default ``0.0``;
  * no matplotlib visualisation; ``render_mode="ansi"`` gives a text picture instead.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces

from tracerl.envs.batched import BatchedEnv
from tracerl.envs.safe_make import check_episode_cap
from tracerl.errors import ConfigError

OBS_DIM = 2
"""Width of one observation: [junction_flag, signal]."""

JUNCTION_FLAG, SIGNAL = 0, 1
"""Column indices of the observation."""

RIGHT, UP, LEFT, DOWN = 0, 1, 2, 3
"""Action ids (the paper's ``action_mapping``: [[1, 0], [0, 1], [-1, 0], [0, -1]])."""

MOVE_X = np.array([1, 0, -1, 0], dtype=np.int64)
MOVE_Y = np.array([0, 1, 0, -1], dtype=np.int64)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _is_real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)


def validate_config(
    corridor_length: Any, active: Any, goal_reward: Any, penalty: Any, distract_reward: Any
) -> tuple[int, bool, float, float, float]:
    """Check the maze parameters; return (corridor_length, active, goal_reward, penalty, distract_reward).

    ``penalty=None`` becomes the paper's ``-1 / corridor_length``. Raises :class:`ConfigError` naming the bad field.
    """
    if not _is_int(corridor_length) or corridor_length < 1:
        raise ConfigError(f"TMaze: corridor_length={corridor_length!r} is invalid; it must be an int >= 1.")
    check_episode_cap("TMaze", "corridor_length", corridor_length)
    if not isinstance(active, (bool, np.bool_)):
        raise ConfigError(f"TMaze: active={active!r} is invalid; it must be a bool (False: passive, True: active).")
    if not _is_real(goal_reward):
        raise ConfigError(f"TMaze: goal_reward={goal_reward!r} is invalid; it must be a finite number.")
    if penalty is None:
        penalty = -1.0 / int(corridor_length)
    if not _is_real(penalty) or penalty > 0:
        raise ConfigError(f"TMaze: penalty={penalty!r} is invalid; it must be None (-1 / corridor_length) or a finite number <= 0.")
    if not _is_real(distract_reward):
        raise ConfigError(f"TMaze: distract_reward={distract_reward!r} is invalid; it must be a finite number.")
    return int(corridor_length), bool(active), float(goal_reward), float(penalty), float(distract_reward)


def observation_space() -> spaces.Box:
    """The single-env observation space ``Box(-1, 1, (2,), float32)``."""
    return spaces.Box(low=-1.0, high=1.0, shape=(OBS_DIM,), dtype=np.float32)


def draw_cue(rng: np.random.Generator) -> int:
    """One episode's goal side (-1 or +1), from one ``rng.integers(0, 2)`` call."""
    return int(2 * rng.integers(0, 2) - 1)


class _Geometry:
    """Derived sizes shared by the single and the batched env."""

    corridor_length: int
    active: bool

    @property
    def oracle_length(self) -> int:
        """Distance from the oracle cell to the start cell: 1 (active) or 0 (passive)."""
        return 1 if self.active else 0

    @property
    def junction_x(self) -> int:
        """x of the T-junction (and of both goal cells): ``oracle_length + corridor_length``."""
        return self.oracle_length + self.corridor_length

    @property
    def episode_length(self) -> int:
        """The fixed horizon ``corridor_length + 2 * oracle_length + 1`` (passive L + 1, active L + 3)."""
        return self.corridor_length + 2 * self.oracle_length + 1


def apply_moves(x: np.ndarray, y: np.ndarray, action: np.ndarray, junction_x: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply actions where the target cell is free (corridor row 0..junction_x, or the goal cells)."""
    nx, ny = x + MOVE_X[action], y + MOVE_Y[action]
    free = ((ny == 0) & (nx >= 0) & (nx <= junction_x)) | ((nx == junction_x) & (np.abs(ny) == 1))
    return np.where(free, nx, x), np.where(free, ny, y)


class TMaze(_Geometry, gymnasium.Env, gymnasium.utils.RecordConstructorArgs):
    """The classic T-Maze of Ni et al. (2023): remember the cue seen at the oracle cell until the junction.

    Args:
        corridor_length: L >= 1, the number of right moves from the start cell to the junction.
        active: False for Passive T-Maze (start on the oracle, cue on the first observation), True for Active
            T-Maze (the oracle is one cell left of the start: the agent must step left to see the cue).
        goal_reward: reward for ending the episode on the cue's goal cell (paper: 1.0).
        penalty: per-step reward (<= 0) while the agent lags behind the oracle schedule; None = -1 / L (paper).
        distract_reward: reward for every non-final step spent on the oracle cell (paper: 0.0).
        render_mode: None or ``"ansi"``.

    ``info["cue"]`` (int, +-1) is always present, ``info["success"]`` (bool) on the last step. See the module
    docstring for observations, actions and rewards.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        corridor_length: int = 10,
        active: bool = False,
        goal_reward: float = 1.0,
        penalty: float | None = None,
        distract_reward: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(
            self, corridor_length=corridor_length, active=active, goal_reward=goal_reward, penalty=penalty,
            distract_reward=distract_reward, render_mode=render_mode)
        (self.corridor_length, self.active, self.goal_reward, self.penalty,
         self.distract_reward) = validate_config(corridor_length, active, goal_reward, penalty, distract_reward)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"TMaze: render_mode={render_mode!r} is invalid; it must be None or one of {self.metadata['render_modes']}.")
        self.render_mode = render_mode
        self.observation_space = observation_space()
        self.action_space = spaces.Discrete(4)
        self._cue: int | None = None
        self._x = self._y = self._t = 0
        self._oracle_visited = False

    @property
    def cue(self) -> int:
        """The current episode's goal side (-1 or +1); requires a reset."""
        if self._cue is None:
            raise RuntimeError("TMaze has not been reset yet; call reset() first.")
        return self._cue

    @property
    def position(self) -> tuple[int, int]:
        """The agent's (x, y); the oracle cell is (0, 0)."""
        return self._x, self._y

    def _observe(self) -> np.ndarray:
        """The observation of the current cell (marks the oracle as visited, as the paper's get_obs does)."""
        obs = np.zeros(OBS_DIM, dtype=np.float32)
        if self._x == 0:
            if not self._oracle_visited:
                obs[SIGNAL] = self.cue
                self._oracle_visited = True
        elif self._x >= self.junction_x:
            obs[JUNCTION_FLAG] = 1.0
            obs[SIGNAL] = self._y
        return obs

    def batched(self, num_envs: int) -> "TMazeVectorEnv":
        """``num_envs`` copies of this maze as one :class:`TMazeVectorEnv`."""
        return TMazeVectorEnv(num_envs, corridor_length=self.corridor_length, active=self.active,
                              goal_reward=self.goal_reward, penalty=self.penalty, distract_reward=self.distract_reward)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode at the start cell with a cue drawn from ``self.np_random``.

        Returns:
            obs float32 ``[2]`` and ``{"cue": int}``.
        """
        super().reset(seed=seed, options=options)
        self._cue = draw_cue(self.np_random)
        self._x, self._y, self._t = self.oracle_length, 0, 0
        self._oracle_visited = False
        return self._observe(), {"cue": self._cue}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move (0 right, 1 up, 2 left, 3 down; blocked moves stay in place).

        Returns:
            (obs float32 ``[2]``, reward, terminated, truncated=False, info).
        """
        if self._cue is None:
            raise RuntimeError("TMaze.step() called before reset(); call reset() first.")
        if self._t >= self.episode_length:
            raise RuntimeError("TMaze.step() called after the episode ended; call reset() to start a new episode.")
        if not self.action_space.contains(action):
            raise ValueError(f"TMaze: action={action!r} is invalid; it must be an int in {{0, 1, 2, 3}}.")
        self._t += 1
        nx, ny = apply_moves(np.array([self._x]), np.array([self._y]), np.array([int(action)]), self.junction_x)
        self._x, self._y = int(nx[0]), int(ny[0])
        info: dict[str, Any] = {"cue": self._cue}
        terminated = self._t >= self.episode_length
        if terminated:
            success = self._y == self._cue
            reward = self.goal_reward if success else 0.0
            info["success"] = bool(success)
        else:
            reward = self.penalty if self._x < self._t - self.oracle_length else 0.0
            if self._x == 0:
                reward += self.distract_reward
        return self._observe(), float(reward), terminated, False, info

    def render(self) -> str | None:
        """With ``render_mode="ansi"``, a three-line picture of the maze (A = agent, * = the cue's goal); else None."""
        if self.render_mode != "ansi" or self._cue is None:
            return None
        width = self.junction_x + 1
        rows = {1: [" "] * width, 0: ["-"] * width, -1: [" "] * width}
        rows[1][-1] = rows[-1][-1] = "G"
        rows[self._cue][-1] = "*"
        rows[0][0] = "O"
        rows[self._y][self._x] = "A"
        return "\n".join("".join(rows[r]) for r in (1, 0, -1)) + f"\nt={self._t}/{self.episode_length} cue={self._cue:+d}"


class TMazeVectorEnv(_Geometry, BatchedEnv):
    """``num_envs`` independent :class:`TMaze` episodes stepped with one vectorized numpy call.

    Autoreset is SAME_STEP: when sub-env i ends, ``obs[i]`` is already the first observation of its next episode
    and the ended episode's last observation/info are in ``infos["final_obs"]`` (float32 ``[N, 2]``, zero rows
    where ``infos["_final_obs"]`` is False) and ``infos["final_info"]`` (``"cue"``/``"_cue"``,
    ``"success"``/``"_success"``), masked by ``infos["_final_info"]``; these keys appear only on steps where
    some sub-env ended. ``infos["cue"]``/``"_cue"`` (current episodes' cues) are always present;
    ``infos["success"]``/``"_success"`` repeat the ended episodes' outcome at the top level.

    Sub-env i has its own ``np.random.Generator``; ``reset(seed=s)`` seeds it with ``s + i`` (or ``seed[i]`` for a
    list), so the batch equals N seeded single envs. ``get_state``/``set_state`` support exact resume.
    """

    _CONFIG_KEYS = ("corridor_length", "active", "goal_reward", "penalty", "distract_reward")
    _STATE_ARRAYS = {"cue": np.int64, "x": np.int64, "y": np.int64, "t": np.int64, "visited": np.bool_}

    def __init__(
        self,
        num_envs: int,
        corridor_length: int = 10,
        active: bool = False,
        goal_reward: float = 1.0,
        penalty: float | None = None,
        distract_reward: float = 0.0,
    ) -> None:
        (self.corridor_length, self.active, self.goal_reward, self.penalty,
         self.distract_reward) = validate_config(corridor_length, active, goal_reward, penalty, distract_reward)
        self._init_batched(num_envs, observation_space(), spaces.Discrete(4))
        n = self.num_envs
        self._cue = np.zeros(n, dtype=np.int64)  # [N] goal side, +-1 after reset
        self._x = np.zeros(n, dtype=np.int64)  # [N]
        self._y = np.zeros(n, dtype=np.int64)  # [N]
        self._t = np.zeros(n, dtype=np.int64)  # [N] actions taken in the current episode
        self._visited = np.zeros(n, dtype=np.bool_)  # [N] oracle already observed

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        """Observations float32 ``[N, 2]`` of the bool-masked ``rows`` (zeros elsewhere); marks their oracle visits."""
        obs = np.zeros((self.num_envs, OBS_DIM), dtype=np.float32)
        at_junction = rows & (self._x >= self.junction_x)
        shows_cue = rows & (self._x == 0) & ~self._visited
        obs[:, JUNCTION_FLAG] = at_junction
        obs[:, SIGNAL] = np.where(at_junction, self._y, np.where(shows_cue, self._cue, 0))
        self._visited |= shows_cue
        return obs

    def _reset_rows(self, rows: np.ndarray, seeds: Sequence[int | None]) -> None:
        """Start new episodes in ``rows`` (int array), reseeding row r's generator when its seed is not None."""
        for r, seed in zip(rows.tolist(), seeds):
            self._cue[r] = draw_cue(self._rng(r, seed))
        self._x[rows], self._y[rows], self._t[rows] = self.oracle_length, 0, 0
        self._visited[rows] = False

    def _reset_result(self, mask: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """obs float32 ``[N, 2]`` (zero rows for sub-envs not reset) and ``{"cue": int64 [N], "_cue": bool [N]}``."""
        return self._observe(mask), {"cue": np.where(mask, self._cue, 0), "_cue": mask.copy()}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env with ``actions`` (int ``[N]``) and autoreset finished ones in the same step.

        Returns:
            obs float32 ``[N, 2]``, rewards float32 ``[N]``, terminated bool ``[N]``, truncated bool ``[N]``, infos.
        """
        self._require_reset()
        a = self._check_actions(actions)
        self._t += 1
        self._x, self._y = apply_moves(self._x, self._y, a, self.junction_x)
        done = self._t >= self.episode_length
        cues = self._cue.copy()
        success = done & (self._y == cues)
        lag = np.where(self._x < self._t - self.oracle_length, self.penalty, 0.0) + np.where(self._x == 0, self.distract_reward, 0.0)
        rewards = np.where(done, np.where(success, self.goal_reward, 0.0), lag).astype(np.float32)
        obs = self._observe(np.ones(self.num_envs, dtype=np.bool_))
        infos = self._autoreset(obs, done, {"cue": cues, "success": success}, self._observe)
        if done.any():
            infos["success"], infos["_success"] = success, done.copy()
        infos["cue"], infos["_cue"] = self._cue.copy(), np.ones(self.num_envs, dtype=np.bool_)
        truncated = np.zeros(self.num_envs, dtype=np.bool_)
        return obs, rewards, done, truncated, infos

    def __repr__(self) -> str:
        return f"TMazeVectorEnv(num_envs={self.num_envs}, corridor_length={self.corridor_length}, active={self.active})"
