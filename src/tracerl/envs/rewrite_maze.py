"""The rewriting-memory task: one long episode of several corridors, each with its own cue and junction, so
what the memory holds must be rewritten at every cue (in the spirit of the Endless T-Maze). As a single env and
as a natively batched vector env.

Episode (``n_corridors`` corridors of ``corridor_length`` = L observations each, ``n_corridors * L`` actions)::

    corridor k covers episode steps k L .. k L + L - 1
    obs_{kL}         = [c_k, 1, L == 1]      # the corridor's cue c_k in {-1, +1}, drawn independently per corridor
    obs_{kL + i}     = [s, 0, i == L - 1]    # 0 < i < L: s = 0 (difficulty 0) or a random +-1 distractor (1)
    the observation with junction_flag 1 (i = L - 1) is corridor k's junction

Observation layout, ``Box(-1, 1, (3,), float32)`` (the layout of :mod:`tracerl.envs.cue_delay`)::

    index 0: signal         (the cue on a corridor's first observation, then 0.0 or +-1 distractors)
    index 1: cue_flag       (1.0 on the first observation of every corridor)
    index 2: junction_flag  (1.0 on the last observation of every corridor: the decision)

Actions ``Discrete(2)``: at a junction 1 turns toward cue +1 and 0 toward cue -1; elsewhere the action is ignored
(the agent walks the corridor whatever it does, as in the Passive T-Maze: the task measures memory, not the
exploration of a corridor). Rewards::

    the action taken on corridor k's junction: +1 if (2 a - 1) == c_k else -1     (every other action: 0)

The episode ends after the last junction (terminated, never truncated). The optimal return is ``n_corridors``
(every junction right); any policy that does not remember the current corridor's cue scores 0 in expectation
(each junction right with probability 1/2). Only the latest cue matters: a memory that keeps an older cue (e.g. the
first one) is right at a later junction only when the two cues happen to agree, i.e. half the time, so the task
rewards dropping what stopped mattering. ``info["success"]`` (bool, on the last step) is True when every junction
was right; ``info["junction_accuracy"]`` (float, on the last step) is the fraction of junctions that were right,
``(return / n_corridors + 1) / 2``.

Every step's info also describes the observation just returned, for :mod:`tracerl.inspection`: ``"cue"`` (the
current corridor's cue), ``"cue_step"`` (the episode step whose observation showed it, ``k L``) and ``"decision"``
(whether this observation is a junction).

The whole episode is drawn at reset with one call ``rng.integers(0, 2, size=n_corridors * L)`` (bit b -> 2b - 1),
so :class:`RewriteMazeVectorEnv` reproduces N seeded :class:`RewriteMaze` envs exactly.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces

from tracerl.envs.batched import BatchedEnv
from tracerl.envs.safe_make import check_episode_cap
from tracerl.errors import ConfigError

OBS_DIM = 3
"""Width of one observation: [signal, cue_flag, junction_flag]."""

SIGNAL, CUE_FLAG, JUNCTION_FLAG = 0, 1, 2
"""Column indices of the observation."""


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def validate_config(n_corridors: Any, corridor_length: Any, difficulty: Any) -> tuple[int, int, int]:
    """Check the task parameters and return them as ints; raise :class:`ConfigError` naming the bad one."""
    if not _is_int(n_corridors) or n_corridors < 1:
        raise ConfigError(f"RewriteMaze: n_corridors={n_corridors!r} is invalid; it must be an int >= 1.")
    if not _is_int(corridor_length) or corridor_length < 1:
        raise ConfigError(f"RewriteMaze: corridor_length={corridor_length!r} is invalid; it must be an int >= 1.")
    check_episode_cap("RewriteMaze", "n_corridors * corridor_length", int(n_corridors) * int(corridor_length))
    if not _is_int(difficulty) or difficulty not in (0, 1):
        raise ConfigError(f"RewriteMaze: difficulty={difficulty!r} is invalid; it must be 0 (no distractors) or 1 "
                          "(+-1 distractors).")
    return int(n_corridors), int(corridor_length), int(difficulty)


def draw_signals(rng: np.random.Generator, n_corridors: int, corridor_length: int, difficulty: int) -> np.ndarray:
    """Draw one episode's signal column.

    Returns:
        float32 array ``[n_corridors * corridor_length]``: the cues (+-1) at the multiples of ``corridor_length``,
        zeros (difficulty 0) or +-1 distractors (difficulty 1) elsewhere.
    """
    length = n_corridors * corridor_length
    signals = (2 * rng.integers(0, 2, size=length) - 1).astype(np.float32)
    if difficulty == 0:
        signals[np.arange(length) % corridor_length != 0] = 0.0
    return signals


def observation_space() -> spaces.Box:
    """The single-env observation space ``Box(-1, 1, (3,), float32)``."""
    return spaces.Box(low=-1.0, high=1.0, shape=(OBS_DIM,), dtype=np.float32)


class _Layout:
    """Episode geometry shared by the single and the batched env."""

    n_corridors: int
    corridor_length: int

    @property
    def episode_length(self) -> int:
        """Actions per episode: ``n_corridors * corridor_length``."""
        return self.n_corridors * self.corridor_length

    @property
    def optimal_return(self) -> float:
        """The return of a policy that is right at every junction: ``n_corridors``."""
        return float(self.n_corridors)


class RewriteMaze(_Layout, gymnasium.Env, gymnasium.utils.RecordConstructorArgs):
    """Several corridors in one episode; each starts with a cue that decides its own junction (see the module).

    Args:
        n_corridors: corridors (cues and junctions) per episode; ``n_corridors - 1`` is the number of rewrites.
        corridor_length: observations per corridor, from its cue to its junction (the distance to remember over).
        difficulty: 0 shows 0.0 between a cue and its junction, 1 shows random +-1 distractors drawn like the cues.
        render_mode: None or ``"ansi"`` (``render()`` returns a one-line text description).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, n_corridors: int = 4, corridor_length: int = 8, difficulty: int = 0,
                 render_mode: str | None = None) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, n_corridors=n_corridors, corridor_length=corridor_length,
                                                       difficulty=difficulty, render_mode=render_mode)
        self.n_corridors, self.corridor_length, self.difficulty = validate_config(n_corridors, corridor_length, difficulty)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"RewriteMaze: render_mode={render_mode!r} is invalid; it must be None or one of "
                              f"{self.metadata['render_modes']}.")
        self.render_mode = render_mode
        self.observation_space = observation_space()
        self.action_space = spaces.Discrete(2)
        self._signals: np.ndarray | None = None  # [episode_length] float32, set at reset
        self._t = 0  # index of the current observation, episode_length once the episode is over
        self._correct = 0  # junctions answered right so far

    def _require_reset(self) -> np.ndarray:
        if self._signals is None:
            raise RuntimeError("RewriteMaze has not been reset yet; call reset() first.")
        return self._signals

    @property
    def cue(self) -> int:
        """The current corridor's cue (-1 or +1; the last corridor's once the episode is over); requires a reset."""
        signals = self._require_reset()
        return int(signals[self.cue_step])

    @property
    def cue_step(self) -> int:
        """Episode step of the current corridor's cue observation."""
        t = min(self._t, self.episode_length - 1)
        return t - t % self.corridor_length

    def _info(self) -> dict[str, Any]:
        """What describes the current observation: its corridor's cue, that cue's step, whether it is a junction."""
        decision = self._t < self.episode_length and self._t % self.corridor_length == self.corridor_length - 1
        return {"cue": self.cue, "cue_step": self.cue_step, "decision": bool(decision)}

    def _observe(self) -> np.ndarray:
        """The observation at index ``self._t``: float32 ``[3]`` (zeros once the episode is over)."""
        signals = self._require_reset()
        obs = np.zeros(OBS_DIM, dtype=np.float32)
        if self._t < self.episode_length:
            i = self._t % self.corridor_length
            obs[SIGNAL] = signals[self._t]
            obs[CUE_FLAG] = float(i == 0)
            obs[JUNCTION_FLAG] = float(i == self.corridor_length - 1)
        return obs

    def batched(self, num_envs: int) -> "RewriteMazeVectorEnv":
        """``num_envs`` copies of this task as one :class:`RewriteMazeVectorEnv`."""
        return RewriteMazeVectorEnv(num_envs, n_corridors=self.n_corridors, corridor_length=self.corridor_length,
                                    difficulty=self.difficulty)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: draw every cue and distractor from ``self.np_random``.

        Returns:
            obs float32 ``[3]`` (the first cue) and ``{"cue": int, "cue_step": 0, "decision": bool}``.
        """
        super().reset(seed=seed, options=options)
        self._signals = draw_signals(self.np_random, self.n_corridors, self.corridor_length, self.difficulty)
        self._t = 0
        self._correct = 0
        return self._observe(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take one action (0 or 1; only those taken at a junction count).

        Returns:
            (obs float32 ``[3]``, reward in {-1, 0, +1}, terminated, truncated=False, info).
        """
        signals = self._require_reset()
        if self._t >= self.episode_length:
            raise RuntimeError("RewriteMaze.step() called after the episode ended; call reset() to start a new episode.")
        if not self.action_space.contains(action):
            raise ValueError(f"RewriteMaze: action={action!r} is invalid; it must be an int in {{0, 1}}.")
        reward = 0.0
        if self._t % self.corridor_length == self.corridor_length - 1:
            right = (2 * int(action) - 1) == int(signals[self.cue_step])
            reward = 1.0 if right else -1.0
            self._correct += int(right)
        self._t += 1
        terminated = self._t == self.episode_length
        info = self._info()
        if terminated:
            info["success"] = self._correct == self.n_corridors
            info["junction_accuracy"] = self._correct / self.n_corridors
        return self._observe(), reward, terminated, False, info

    def render(self) -> str | None:
        """With ``render_mode="ansi"``, a one-line description of the current observation; otherwise None."""
        if self.render_mode != "ansi" or self._signals is None:
            return None
        signal, cue_flag, junction_flag = self._observe()
        k = min(self._t, self.episode_length - 1) // self.corridor_length
        return (f"t={self._t}/{self.episode_length} corridor={k + 1}/{self.n_corridors} signal={signal:+.0f} "
                f"cue_flag={cue_flag:.0f} junction_flag={junction_flag:.0f} right_so_far={self._correct}")


class RewriteMazeVectorEnv(_Layout, BatchedEnv):
    """``num_envs`` independent :class:`RewriteMaze` episodes stepped with one vectorized numpy call.

    Autoreset is SAME_STEP: when sub-env i ends, ``obs[i]`` is already the first observation of its next episode and
    the ended episode's last observation/info are in ``infos["final_obs"]`` (float32 ``[N, 3]``) and
    ``infos["final_info"]`` (the single env's last info: ``"cue"``, ``"cue_step"``, ``"decision"``, ``"success"``,
    ``"junction_accuracy"``, each with its ``"_"`` mask), masked
    by ``infos["_final_info"]``; these keys appear only on steps where some sub-env ended, and ``infos["success"]``
    / ``infos["junction_accuracy"]`` (with masks) then repeat the ended episodes' outcomes at the top level.
    ``infos["cue"]``, ``infos["cue_step"]`` (int64 ``[N]``) and ``infos["decision"]`` (bool ``[N]``) describe the
    observations just returned (see the module) and are always present with all-True masks.

    Sub-env i has its own ``np.random.Generator``; ``reset(seed=s)`` seeds it with ``s + i`` (or ``seed[i]`` for a
    list), so the batch equals N seeded single envs. ``get_state``/``set_state`` support exact resume.
    """

    _CONFIG_KEYS = ("n_corridors", "corridor_length", "difficulty")
    _STATE_ARRAYS = {"signals": np.float32, "t": np.int64, "correct": np.int64}

    def __init__(self, num_envs: int, n_corridors: int = 4, corridor_length: int = 8, difficulty: int = 0) -> None:
        self.n_corridors, self.corridor_length, self.difficulty = validate_config(n_corridors, corridor_length, difficulty)
        self._init_batched(num_envs, observation_space(), spaces.Discrete(2))
        n = self.num_envs
        self._signals = np.zeros((n, self.episode_length), dtype=np.float32)  # [N, episode_length]
        self._t = np.zeros(n, dtype=np.int64)  # [N] index of each sub-env's current observation
        self._correct = np.zeros(n, dtype=np.int64)  # [N] junctions answered right so far
        self._rows = np.arange(n)

    def _reset_rows(self, rows: np.ndarray, seeds: Sequence[int | None]) -> None:
        """Start new episodes in ``rows`` (int array), reseeding row r's generator when its seed is not None."""
        for r, seed in zip(rows.tolist(), seeds):
            self._signals[r] = draw_signals(self._rng(r, seed), self.n_corridors, self.corridor_length, self.difficulty)
        self._t[rows] = 0
        self._correct[rows] = 0

    def _cue_steps(self) -> np.ndarray:
        """Episode step of each row's current corridor cue: int64 ``[N]``."""
        t = np.minimum(self._t, self.episode_length - 1)
        return t - t % self.corridor_length

    def _observe(self) -> np.ndarray:
        """Observations at each row's index: float32 ``[N, 3]`` (zero rows where the episode is over)."""
        live = self._t < self.episode_length
        i = self._t % self.corridor_length
        obs = np.zeros((self.num_envs, OBS_DIM), dtype=np.float32)
        obs[:, SIGNAL] = np.where(live, self._signals[self._rows, np.minimum(self._t, self.episode_length - 1)], 0.0)
        obs[:, CUE_FLAG] = live & (i == 0)
        obs[:, JUNCTION_FLAG] = live & (i == self.corridor_length - 1)
        return obs

    def _step_info(self, mask: np.ndarray) -> dict[str, np.ndarray]:
        """``cue``/``cue_step``/``decision`` of the current observations, zero outside the bool ``mask`` rows."""
        steps = self._cue_steps()
        cues = self._signals[self._rows, steps].astype(np.int64)
        decision = (self._t < self.episode_length) & (self._t % self.corridor_length == self.corridor_length - 1)
        return {"cue": np.where(mask, cues, 0), "_cue": mask.copy(),
                "cue_step": np.where(mask, steps, 0), "_cue_step": mask.copy(),
                "decision": decision & mask, "_decision": mask.copy()}

    def _reset_result(self, mask: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """obs float32 ``[N, 3]`` and the step infos of the reset rows (zero elsewhere)."""
        return self._observe(), self._step_info(mask)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env with ``actions`` (int ``[N]``) and autoreset finished ones in the same step.

        Returns:
            obs float32 ``[N, 3]``, rewards float32 ``[N]``, terminated bool ``[N]``, truncated bool ``[N]``, infos.
        """
        self._require_reset()
        a = self._check_actions(actions)
        at_junction = self._t % self.corridor_length == self.corridor_length - 1
        right = at_junction & ((2 * a - 1) == self._signals[self._rows, self._cue_steps()].astype(np.int64))
        rewards = np.where(at_junction, np.where(right, 1.0, -1.0), 0.0).astype(np.float32)
        self._correct += right
        self._t += 1
        done = self._t == self.episode_length
        success = done & (self._correct == self.n_corridors)
        accuracy = np.where(done, self._correct / self.n_corridors, 0.0)
        ended = {k: v for k, v in self._step_info(np.ones(self.num_envs, dtype=np.bool_)).items() if k[0] != "_"}
        obs = self._observe()
        infos = self._autoreset(obs, done, {**ended, "success": success, "junction_accuracy": accuracy},
                                lambda _: self._observe())
        if done.any():
            infos["success"], infos["_success"] = success, done.copy()
            infos["junction_accuracy"], infos["_junction_accuracy"] = accuracy, done.copy()
        infos.update(self._step_info(np.ones(self.num_envs, dtype=np.bool_)))
        truncated = np.zeros(self.num_envs, dtype=np.bool_)
        return obs, rewards, done, truncated, infos

    def __repr__(self) -> str:
        return (f"RewriteMazeVectorEnv(num_envs={self.num_envs}, n_corridors={self.n_corridors}, "
                f"corridor_length={self.corridor_length}, difficulty={self.difficulty})")
