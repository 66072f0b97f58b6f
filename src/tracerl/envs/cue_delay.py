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
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from tracerl.errors import ConfigError

OBS_DIM = 3
"""Width of one observation: [signal, cue_flag, decision_flag]."""

SIGNAL, CUE_FLAG, DECISION_FLAG = 0, 1, 2
"""Column indices of the observation."""


def validate_config(delay: Any, difficulty: Any) -> tuple[int, int]:
    """Check the task parameters and return them as ints; raise :class:`ConfigError` naming the bad one."""
    if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or delay < 1:
        raise ConfigError(f"CueDelay: delay={delay!r} is invalid; it must be an int >= 1.")
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


class CueDelay(gymnasium.Env):
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


class CueDelayVectorEnv(gymnasium.vector.VectorEnv):
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

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, delay: int = 16, difficulty: int = 0) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ConfigError(f"CueDelayVectorEnv: num_envs={num_envs!r} is invalid; it must be an int >= 1.")
        self.num_envs = int(num_envs)
        self.delay, self.difficulty = validate_config(delay, difficulty)
        self.autoreset_mode = AutoresetMode.SAME_STEP
        self.metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = None
        self.single_observation_space = observation_space()
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._signals = np.zeros((self.num_envs, self.delay), dtype=np.float32)  # [N, delay]
        self._t = np.zeros(self.num_envs, dtype=np.int64)  # [N] index of each sub-env's current observation
        self._rows = np.arange(self.num_envs)
        self._was_reset = False

    @property
    def np_random(self) -> tuple[np.random.Generator | None, ...]:
        """The per-sub-env generators (None before the first reset)."""
        return tuple(self._rngs)

    def _reset_rows(self, rows: np.ndarray, seeds: Sequence[int | None]) -> None:
        """Start new episodes in ``rows`` (int array), reseeding row r's generator when its seed is not None."""
        for r, seed in zip(rows.tolist(), seeds):
            if seed is not None or self._rngs[r] is None:
                self._rngs[r], _ = seeding.np_random(seed)
            self._signals[r] = draw_signals(self._rngs[r], self.delay, self.difficulty)
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

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env (or those in ``options["reset_mask"]``, a bool array ``[N]``).

        Args:
            seed: None (keep/create generators), an int s (sub-env i gets s + i) or a list of ``N`` seeds.

        Returns:
            obs float32 ``[N, 3]`` and ``{"cue": int64 [N], "_cue": bool [N]}``.
        """
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"If seeds are passed as a list the length must match num_envs={self.num_envs} but got length={len(seeds)}.")
        mask = np.ones(self.num_envs, dtype=np.bool_)
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with a True value, got {mask!r}.")
            if not self._was_reset and not mask.all():
                raise RuntimeError("CueDelayVectorEnv: the first reset must reset every sub-env; call reset() without reset_mask.")
        rows = np.flatnonzero(mask)
        self._reset_rows(rows, [seeds[r] for r in rows.tolist()])
        self._was_reset = True
        return self._observe(), {"cue": np.where(mask, self._cues(), 0), "_cue": mask.copy()}

    def _check_actions(self, actions: Any) -> np.ndarray:
        """Validate a batch of actions and return it as int64 ``[N]``."""
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer) or ((a != 0) & (a != 1)).any():
            raise ValueError(f"CueDelayVectorEnv: actions must be an int array of shape ({self.num_envs},) with values in {{0, 1}}, got {actions!r}.")
        return a.astype(np.int64)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env with ``actions`` (int ``[N]``) and autoreset finished ones in the same step.

        Returns:
            obs float32 ``[N, 3]``, rewards float32 ``[N]``, terminated bool ``[N]``, truncated bool ``[N]``, infos.
        """
        if not self._was_reset:
            raise RuntimeError("CueDelayVectorEnv.step() called before reset(); call reset() first.")
        a = self._check_actions(actions)
        cues = self._cues()
        done = self._t == self.delay - 1
        success = done & ((2 * a - 1) == cues)
        rewards = np.where(done, np.where(success, 1.0, -1.0), 0.0).astype(np.float32)
        self._t += 1
        obs = self._observe()
        infos: dict[str, Any] = {}
        if done.any():
            final_obs = np.zeros_like(obs)
            final_obs[done] = obs[done]
            infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
            infos["final_info"] = {
                "cue": np.where(done, cues, 0),
                "_cue": done.copy(),
                "success": success.copy(),
                "_success": done.copy(),
            }
            infos["_final_info"] = done.copy()
            rows = np.flatnonzero(done)
            self._reset_rows(rows, [None] * rows.size)
            obs[done] = self._observe()[done]
            infos["success"], infos["_success"] = success, done.copy()
        infos["cue"], infos["_cue"] = self._cues(), np.ones(self.num_envs, dtype=np.bool_)
        truncated = np.zeros(self.num_envs, dtype=np.bool_)
        return obs, rewards, done, truncated, infos

    # -- checkpoint support (see tracerl.envs.snapshot) ---------------------------------------------
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything needed to continue exactly: arrays (episode signals, step indices) and JSON (RNG states)."""
        rngs = [None if g is None else g.bit_generator.state for g in self._rngs]
        arrays = {"signals": self._signals.copy(), "t": self._t.copy()}
        return arrays, {"rngs": rngs, "was_reset": self._was_reset, "delay": self.delay,
                        "difficulty": self.difficulty, "num_envs": self.num_envs}

    def set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` captured. Raises ValueError if it came from a differently shaped env."""
        for key in ("delay", "difficulty", "num_envs"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"env state has {key}={state.get(key)!r}, this env has {getattr(self, key)!r}")
        self._signals = np.asarray(arrays["signals"], dtype=np.float32).copy()
        self._t = np.asarray(arrays["t"], dtype=np.int64).copy()
        rngs: list[np.random.Generator | None] = []
        for st in state["rngs"]:
            if st is None:
                rngs.append(None)
            else:
                g, _ = seeding.np_random(0)
                g.bit_generator.state = st
                rngs.append(g)
        self._rngs = rngs
        self._was_reset = bool(state["was_reset"])

    def __repr__(self) -> str:
        return f"CueDelayVectorEnv(num_envs={self.num_envs}, delay={self.delay}, difficulty={self.difficulty})"
