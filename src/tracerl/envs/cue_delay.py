"""The delayed-cue memory task, as a single env and as a natively batched vector env.

Episode (``delay`` actions long)::

    obs_0 = [cue, 1, delay == 1]          # the cue c in {-1, +1} and the cue flag
    obs_k = [s_k, 0, k == delay - 1]      # 0 < k < delay: s_k = 0 (difficulty 0) or a random +-1 distractor (1)
    action a_k in {0, 1}; reward 0 except after the last action: +1 if (2 * a - 1) == c else -1
    terminated after the last action (never truncated); the terminal observation is [0, 0, 0]

Observation layout, ``Box(-1, 1, shape=(3,), float32)``::

    index 0: signal         (the cue at step 0, then 0.0 or +-1 distractors)
    index 1: cue_flag       (1.0 only on the first observation)
    index 2: decision_flag  (1.0 only on the observation at which the rewarded action is taken)

The whole episode is drawn at reset with one call ``rng.integers(0, 2, size=delay)`` (bit b -> 2b - 1),
so :class:`CueDelayVectorEnv` reproduces N seeded :class:`CueDelay` envs exactly.
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
"""Width of one observation: [signal, cue_flag, decision_flag]."""

SIGNAL, CUE_FLAG, DECISION_FLAG = 0, 1, 2
"""Column indices of the observation."""


def validate_config(delay: Any, difficulty: Any) -> tuple[int, int]:
    """Check the task parameters and return them as ints; raise :class:`ConfigError` naming the bad one."""
    if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or delay < 1:
        raise ConfigError(f"CueDelay: delay={delay!r} is invalid; it must be an int >= 1.")
    check_episode_cap("CueDelay", "delay", delay)
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, np.integer)) or difficulty not in (0, 1):
        raise ConfigError(f"CueDelay: difficulty={difficulty!r} is invalid; it must be 0 (no distractors) or 1 (+-1 distractors).")
    return int(delay), int(difficulty)


def draw_signals(rng: np.random.Generator, delay: int, difficulty: int) -> np.ndarray:
    """Draw one episode's signal column.

    Returns:
        float32 array ``[delay]``: the cue (+-1) at index 0, then zeros (difficulty 0) or +-1 distractors (difficulty 1).
    """
    signals = (2 * rng.integers(0, 2, size=delay) - 1).astype(np.float32)
    if difficulty == 0:
        signals[1:] = 0.0
    return signals


def observation_space() -> spaces.Box:
    """The single-env observation space ``Box(-1, 1, (3,), float32)``."""
    return spaces.Box(low=-1.0, high=1.0, shape=(OBS_DIM,), dtype=np.float32)


class CueDelay(gymnasium.Env, gymnasium.utils.RecordConstructorArgs):
    """Remember a +-1 cue shown on the first observation and report it with the action taken ``delay - 1`` steps later.

    Args:
        delay: number of actions per episode (>= 1); only the last one is rewarded.
        difficulty: 0 shows 0.0 after the cue, 1 shows random +-1 distractors drawn like the cue.
        render_mode: None or ``"ansi"`` (``render()`` returns a one-line text description).

    Observations are float32 ``[3]`` = [signal, cue_flag, decision_flag]; actions are ``Discrete(2)``
    (1 answers cue +1, 0 answers cue -1). ``info["cue"]`` (int) is always present, ``info["success"]`` (bool)
    on the last step.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, delay: int = 16, difficulty: int = 0, render_mode: str | None = None) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, delay=delay, difficulty=difficulty, render_mode=render_mode)
        self.delay, self.difficulty = validate_config(delay, difficulty)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"CueDelay: render_mode={render_mode!r} is invalid; it must be None or one of {self.metadata['render_modes']}.")
        self.render_mode = render_mode
        self.observation_space = observation_space()
        self.action_space = spaces.Discrete(2)
        self._signals: np.ndarray | None = None  # [delay] float32, set at reset
        self._t = 0  # index of the current observation, delay once the episode is over
        self._last_obs = np.zeros(OBS_DIM, dtype=np.float32)

    @property
    def cue(self) -> int:
        """The current episode's cue (-1 or +1); requires a reset."""
        if self._signals is None:
            raise RuntimeError("CueDelay has not been reset yet; call reset() first.")
        return int(self._signals[0])

    def _observe(self) -> np.ndarray:
        """The observation at index ``self._t``: float32 ``[3]`` (zeros once the episode is over)."""
        assert self._signals is not None
        obs = np.zeros(OBS_DIM, dtype=np.float32)
        if self._t < self.delay:
            obs[SIGNAL] = self._signals[self._t]
            obs[CUE_FLAG] = float(self._t == 0)
            obs[DECISION_FLAG] = float(self._t == self.delay - 1)
        self._last_obs = obs
        return obs.copy()

    def batched(self, num_envs: int) -> "CueDelayVectorEnv":
        """``num_envs`` copies of this task as one :class:`CueDelayVectorEnv`."""
        return CueDelayVectorEnv(num_envs, delay=self.delay, difficulty=self.difficulty)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: draw the cue and all distractors from ``self.np_random``.

        Returns:
            obs float32 ``[3]`` (the cue observation) and ``{"cue": int}``.
        """
        super().reset(seed=seed, options=options)
        self._signals = draw_signals(self.np_random, self.delay, self.difficulty)
        self._t = 0
        return self._observe(), {"cue": self.cue}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take one action (0 or 1).

        Returns:
            (obs float32 ``[3]``, reward in {-1, 0, +1}, terminated, truncated=False, info).
        """
        if self._signals is None:
            raise RuntimeError("CueDelay.step() called before reset(); call reset() first.")
        if self._t >= self.delay:
            raise RuntimeError("CueDelay.step() called after the episode ended; call reset() to start a new episode.")
        if not self.action_space.contains(action):
            raise ValueError(f"CueDelay: action={action!r} is invalid; it must be an int in {{0, 1}}.")
        info: dict[str, Any] = {"cue": self.cue}
        reward = 0.0
        terminated = self._t == self.delay - 1
        if terminated:
            success = (2 * int(action) - 1) == self.cue
            reward = 1.0 if success else -1.0
            info["success"] = bool(success)
        self._t += 1
        return self._observe(), reward, terminated, False, info

    def render(self) -> str | None:
        """With ``render_mode="ansi"``, a one-line description of the last observation; otherwise None."""
        if self.render_mode != "ansi":
            return None
        signal, cue_flag, decision_flag = self._last_obs
        return f"t={self._t}/{self.delay} signal={signal:+.0f} cue_flag={cue_flag:.0f} decision_flag={decision_flag:.0f}"


MemoryTaskEnv = CueDelay
"""Alias used by APIs that speak of a generic memory task: ``MemoryTaskEnv(delay=..., difficulty=...)``."""


class CueDelayVectorEnv(BatchedEnv):
    """``num_envs`` independent :class:`CueDelay` episodes stepped with one vectorized numpy call.

    Autoreset is SAME_STEP: when sub-env i ends, ``obs[i]`` is already the first observation of its next
    episode and the ended episode's last observation/info are in ``infos["final_obs"]`` (float32 ``[N, 3]``,
    zero rows where ``infos["_final_obs"]`` is False) and ``infos["final_info"]`` (a vector-info dict with
    ``"cue"``/``"_cue"``, ``"success"``/``"_success"``), masked by ``infos["_final_info"]``. These keys are
    present only on steps where some sub-env ended. ``infos["cue"]`` (int64 ``[N]``, the current episode's cue)
    is always present with ``infos["_cue"]``; ``infos["success"]``/``"_success"`` repeat the ended episodes'
    outcome at the top level.

    Sub-env i has its own ``np.random.Generator``; ``reset(seed=s)`` seeds it with ``s + i`` (or ``seed[i]``
    for a list), as :class:`gymnasium.vector.SyncVectorEnv` does, so the batch equals N seeded single envs.
    """

    _CONFIG_KEYS = ("delay", "difficulty")
    _STATE_ARRAYS = {"signals": np.float32, "t": np.int64}

    def __init__(self, num_envs: int, delay: int = 16, difficulty: int = 0) -> None:
        self.delay, self.difficulty = validate_config(delay, difficulty)
        self._init_batched(num_envs, observation_space(), spaces.Discrete(2))
        self._signals = np.zeros((self.num_envs, self.delay), dtype=np.float32)  # [N, delay]
        self._t = np.zeros(self.num_envs, dtype=np.int64)  # [N] index of each sub-env's current observation
        self._rows = np.arange(self.num_envs)

    def _reset_rows(self, rows: np.ndarray, seeds: Sequence[int | None]) -> None:
        """Start new episodes in ``rows`` (int array), reseeding row r's generator when its seed is not None."""
        for r, seed in zip(rows.tolist(), seeds):
            self._signals[r] = draw_signals(self._rng(r, seed), self.delay, self.difficulty)
        self._t[rows] = 0

    def _observe(self) -> np.ndarray:
        """Observations at each row's index: float32 ``[N, 3]`` (zero rows where the episode is over)."""
        live = self._t < self.delay
        obs = np.zeros((self.num_envs, OBS_DIM), dtype=np.float32)
        obs[:, SIGNAL] = np.where(live, self._signals[self._rows, np.minimum(self._t, self.delay - 1)], 0.0)
        obs[:, CUE_FLAG] = self._t == 0
        obs[:, DECISION_FLAG] = self._t == self.delay - 1
        return obs

    def _cues(self) -> np.ndarray:
        """Current cue of each row: int64 ``[N]``."""
        return self._signals[:, 0].astype(np.int64)

    def _reset_result(self, mask: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """obs float32 ``[N, 3]`` and ``{"cue": int64 [N], "_cue": bool [N]}`` (cues of the reset rows)."""
        return self._observe(), {"cue": np.where(mask, self._cues(), 0), "_cue": mask.copy()}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env with ``actions`` (int ``[N]``) and autoreset finished ones in the same step.

        Returns:
            obs float32 ``[N, 3]``, rewards float32 ``[N]``, terminated bool ``[N]``, truncated bool ``[N]``, infos.
        """
        self._require_reset()
        a = self._check_actions(actions)
        cues = self._cues()
        done = self._t == self.delay - 1
        success = done & ((2 * a - 1) == cues)
        rewards = np.where(done, np.where(success, 1.0, -1.0), 0.0).astype(np.float32)
        self._t += 1
        obs = self._observe()
        infos = self._autoreset(obs, done, {"cue": cues, "success": success}, lambda _: self._observe())
        if done.any():
            infos["success"], infos["_success"] = success, done.copy()
        infos["cue"], infos["_cue"] = self._cues(), np.ones(self.num_envs, dtype=np.bool_)
        truncated = np.zeros(self.num_envs, dtype=np.bool_)
        return obs, rewards, done, truncated, infos

    def __repr__(self) -> str:
        return f"CueDelayVectorEnv(num_envs={self.num_envs}, delay={self.delay}, difficulty={self.difficulty})"
