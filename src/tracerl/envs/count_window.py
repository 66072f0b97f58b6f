"""The RLtools memory task ("count the ones in the last ``horizon`` inputs"), single and natively batched.

From the RLtools memory environment (``rl_tools::rl::environments::Memory``; seed document 003): every step the
env emits an input ``x_t`` that is 1 with probability ``p`` (else 0); the policy must output the number of ones among
the last ``horizon`` inputs, scaled by ``1 / horizon`` (the seed reads the count off the actor as ``action * 10``
with ``HORIZON = 10``). Defaults are the seed's ``ENVIRONMENT_PARAMETERS``::

    HORIZON = 10
    INPUT_PROBABILITY = 0.5 if HORIZON <= 4 else 2 / HORIZON      # p = 0.2 for horizon 10
    EPISODE_STEP_LIMIT = 2000
    MODE = COUNT_INPUT

Episode (``episode_length`` actions long; inputs before the episode count as 0)::

    obs_t    = [x_t]                                              # t = 0 .. episode_length
    count_t  = sum(x_{t-horizon+1} .. x_t)                        # info["count"] returned with obs_t
    target_t = count_t                         (mode "count_input", the seed's MODE)
             = steps since the last 1, min(.., horizon)   (mode "steps_since_input"; horizon if no 1 in the window)
    action a_t in Box(-1, 1, (1,), float32) answers obs_t;  reward_t = -|a_t - target_t / horizon|
    truncated after the last action (a time limit, never terminated)

The optimal reward is 0 on every step (``a_t = target_t / horizon``, computed in float32). The whole input sequence
is drawn at reset with one call ``rng.random(episode_length + 1) < p``, so :class:`CountWindowVectorEnv`
reproduces N seeded :class:`CountWindow` envs exactly.

The second mode is not shown in the seed document (which only names ``Mode::COUNT_INPUT``); it is tracerl's
counterpart of the other RLtools memory mode: report how long ago the last 1 was seen, within the same window.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces

from tracerl.envs.batched import BatchedEnv
from tracerl.envs.safe_make import check_episode_cap
from tracerl.errors import ConfigError

MODES = ("count_input", "steps_since_input")
"""Valid ``mode`` values: the seed's COUNT_INPUT, and steps since the last 1 (capped at ``horizon``)."""

DEFAULT_HORIZON = 10
DEFAULT_EPISODE_LENGTH = 2000


def default_probability(horizon: int) -> float:
    """The seed's ``INPUT_PROBABILITY``: 0.5 for ``horizon <= 4``, else ``2 / horizon``."""
    return 0.5 if horizon <= 4 else 2.0 / horizon


def _is_int(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, np.integer))


def validate_config(horizon: Any, p: Any, episode_length: Any, mode: Any) -> tuple[int, float, int, str]:
    """Check the task parameters (``p=None`` means the seed's default); raise :class:`ConfigError` naming the bad one."""
    if not _is_int(horizon) or horizon < 1:
        raise ConfigError(f"CountWindow: horizon={horizon!r} is invalid; it must be an int >= 1.")
    check_episode_cap("CountWindow", "horizon", horizon)
    if p is None:
        p = default_probability(int(horizon))
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not 0.0 <= float(p) <= 1.0:
        raise ConfigError(f"CountWindow: p={p!r} is invalid; it must be a float in [0, 1] (or None for the default).")
    if not _is_int(episode_length) or episode_length < 1:
        raise ConfigError(f"CountWindow: episode_length={episode_length!r} is invalid; it must be an int >= 1.")
    check_episode_cap("CountWindow", "episode_length", episode_length)
    if mode not in MODES:
        raise ConfigError(f"CountWindow: mode={mode!r} is invalid; it must be one of {MODES}.")
    return int(horizon), float(p), int(episode_length), str(mode)


def draw_inputs(rng: np.random.Generator, p: float, episode_length: int) -> np.ndarray:
    """One episode's inputs: uint8 ``[episode_length + 1]`` of 0/1 (one per observation)."""
    return (rng.random(episode_length + 1) < p).astype(np.uint8)


def window_count(inputs: np.ndarray, t: np.ndarray | int, horizon: int) -> np.ndarray:
    """Number of ones among ``inputs[..., t-horizon+1 : t+1]`` (earlier entries count as 0).

    Args:
        inputs: uint8 ``[L]`` or ``[N, L]``; t: int or int array ``[N]`` (indices into the last axis).
    Returns:
        int64 (scalar array or ``[N]``).
    """
    x = np.atleast_2d(inputs)
    t = np.broadcast_to(np.asarray(t, dtype=np.int64), (x.shape[0],))
    idx = t[:, None] - np.arange(horizon)[None, :]  # [N, H] indices of the window, newest first
    ones = (idx >= 0) & (x[np.arange(x.shape[0])[:, None], np.maximum(idx, 0)] == 1)
    out = ones.sum(axis=1).astype(np.int64)
    return out if np.ndim(inputs) == 2 else out[0]


def steps_since_input(inputs: np.ndarray, t: np.ndarray | int, horizon: int) -> np.ndarray:
    """Steps since the last 1 at or before ``t`` (0 if ``inputs[t] == 1``), ``horizon`` if none in the window."""
    x = np.atleast_2d(inputs)
    t = np.broadcast_to(np.asarray(t, dtype=np.int64), (x.shape[0],))
    lags = np.arange(horizon)  # [H]
    idx = t[:, None] - lags[None, :]  # [N, H]
    valid = idx >= 0
    ones = valid & (x[np.arange(x.shape[0])[:, None], np.maximum(idx, 0)] == 1)
    out = np.where(ones.any(axis=1), np.argmax(ones, axis=1), horizon).astype(np.int64)
    return out if np.ndim(inputs) == 2 else out[0]


def targets(inputs: np.ndarray, t: np.ndarray | int, horizon: int, mode: str) -> np.ndarray:
    """The integer answer for the observation at index ``t`` (count or steps since the last 1)."""
    if mode == "count_input":
        return window_count(inputs, t, horizon)
    return steps_since_input(inputs, t, horizon)


def scaled_target(target: np.ndarray | int, horizon: int) -> np.ndarray:
    """``target / horizon`` in float32: the action with zero penalty."""
    return np.asarray(target, dtype=np.float32) / np.float32(horizon)


def observation_space() -> spaces.Box:
    """The single-env observation space ``Box(0, 1, (1,), float32)``: the current input bit."""
    return spaces.Box(low=0.0, high=1.0, shape=(1,), dtype=np.float32)


def action_space() -> spaces.Box:
    """The single-env action space ``Box(-1, 1, (1,), float32)``: the answer scaled by ``1 / horizon``."""
    return spaces.Box(low=-1.0, high=1.0, shape=(1,), dtype=np.float32)


class CountWindow(gymnasium.Env, gymnasium.utils.RecordConstructorArgs):
    """Output the number of ones among the last ``horizon`` 0/1 inputs, scaled by ``1 / horizon``.

    Args:
        horizon: window length (>= 1); the seed uses 10.
        p: probability that an input is 1; None gives the seed's ``0.5 if horizon <= 4 else 2 / horizon``.
        episode_length: actions per episode (>= 1); the seed's EPISODE_STEP_LIMIT is 2000.
        mode: ``"count_input"`` (the seed's COUNT_INPUT) or ``"steps_since_input"``.

    Observations are float32 ``[1]`` (the current input); actions float32 ``[1]`` in [-1, 1]; reward
    ``-|a - target / horizon|``. ``info["count"]`` (ones in the window ending at the returned observation) and
    ``info["target"]`` (the integer answer for the next action) are always present.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        horizon: int = DEFAULT_HORIZON,
        p: float | None = None,
        episode_length: int = DEFAULT_EPISODE_LENGTH,
        mode: str = "count_input",
        render_mode: str | None = None,
    ) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, horizon=horizon, p=p, episode_length=episode_length,
                                                       mode=mode, render_mode=render_mode)
        self.horizon, self.p, self.episode_length, self.mode = validate_config(horizon, p, episode_length, mode)
        if render_mode is not None:
            raise ConfigError(f"CountWindow: render_mode={render_mode!r} is invalid; CountWindow does not render, use None.")
        self.render_mode = None
        self.observation_space = observation_space()
        self.action_space = action_space()
        self._inputs: np.ndarray | None = None  # [episode_length + 1] uint8, set at reset
        self._t = 0  # index of the current observation

    def _obs_info(self) -> tuple[np.ndarray, dict[str, Any]]:
        assert self._inputs is not None
        obs = np.array([self._inputs[self._t]], dtype=np.float32)
        info = {
            "count": int(window_count(self._inputs, self._t, self.horizon)),
            "target": int(targets(self._inputs, self._t, self.horizon, self.mode)),
        }
        return obs, info

    def batched(self, num_envs: int) -> "CountWindowVectorEnv":
        """``num_envs`` copies of this task as one :class:`CountWindowVectorEnv`."""
        return CountWindowVectorEnv(num_envs, horizon=self.horizon, p=self.p, episode_length=self.episode_length,
                                    mode=self.mode)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: draw every input from ``self.np_random``. Returns obs float32 ``[1]`` and the info."""
        super().reset(seed=seed, options=options)
        self._inputs = draw_inputs(self.np_random, self.p, self.episode_length)
        self._t = 0
        return self._obs_info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Answer the current observation. Returns (obs ``[1]``, reward <= 0, terminated=False, truncated, info)."""
        if self._inputs is None:
            raise RuntimeError("CountWindow.step() called before reset(); call reset() first.")
        if self._t >= self.episode_length:
            raise RuntimeError("CountWindow.step() called after the episode ended; call reset() to start a new episode.")
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (1,) or not np.isfinite(a).all() or abs(float(a[0])) > 1.0:
            raise ValueError(f"CountWindow: action={action!r} is invalid; it must be a float array of shape (1,) in [-1, 1].")
        target = scaled_target(targets(self._inputs, self._t, self.horizon, self.mode), self.horizon)
        reward = -float(np.abs(a[0] - target))
        self._t += 1
        obs, info = self._obs_info()
        return obs, reward, False, self._t == self.episode_length, info

    def render(self) -> None:
        """CountWindow has no render mode."""
        return None


class CountWindowVectorEnv(BatchedEnv):
    """``num_envs`` independent :class:`CountWindow` episodes stepped with one vectorized numpy call.

    Autoreset is SAME_STEP (as :class:`tracerl.envs.cue_delay.CueDelayVectorEnv`): when sub-env i is truncated,
    ``obs[i]`` is already its next episode's first observation; the ended episode's last observation/info are in
    ``infos["final_obs"]`` / ``infos["final_info"]`` (``"count"``/``"_count"``, ``"target"``/``"_target"``), masked by
    ``infos["_final_obs"]`` / ``infos["_final_info"]``, present only on steps where some sub-env ended.
    ``infos["count"]`` and ``infos["target"]`` (int64 ``[N]``, with ``"_count"``/``"_target"``) are always present.

    Sub-env i has its own generator; ``reset(seed=s)`` seeds it with ``s + i`` (or ``seed[i]`` for a list).
    """

    _CONFIG_KEYS = ("horizon", "p", "episode_length", "mode")
    _STATE_ARRAYS = {"inputs": np.uint8, "t": np.int64}

    def __init__(
        self,
        num_envs: int,
        horizon: int = DEFAULT_HORIZON,
        p: float | None = None,
        episode_length: int = DEFAULT_EPISODE_LENGTH,
        mode: str = "count_input",
    ) -> None:
        self.horizon, self.p, self.episode_length, self.mode = validate_config(horizon, p, episode_length, mode)
        self._init_batched(num_envs, observation_space(), action_space())
        self._inputs = np.zeros((self.num_envs, self.episode_length + 1), dtype=np.uint8)  # [N, L + 1]
        self._t = np.zeros(self.num_envs, dtype=np.int64)  # [N]
        self._rows = np.arange(self.num_envs)

    def _reset_rows(self, rows: np.ndarray, seeds: Sequence[int | None]) -> None:
        for r, seed in zip(rows.tolist(), seeds):
            self._inputs[r] = draw_inputs(self._rng(r, seed), self.p, self.episode_length)
        self._t[rows] = 0

    def _observe(self) -> np.ndarray:
        """float32 ``[N, 1]``: each row's current input."""
        return self._inputs[self._rows, self._t].astype(np.float32)[:, None]

    def _counts_targets(self) -> tuple[np.ndarray, np.ndarray]:
        return window_count(self._inputs, self._t, self.horizon), targets(self._inputs, self._t, self.horizon, self.mode)

    def _reset_result(self, mask: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """obs float32 ``[N, 1]`` and ``{"count", "_count", "target", "_target"}`` (int64/bool ``[N]``)."""
        counts, tgts = self._counts_targets()
        infos = {"count": np.where(mask, counts, 0), "_count": mask.copy(), "target": np.where(mask, tgts, 0),
                 "_target": mask.copy()}
        return self._observe(), infos

    def _check_actions(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions, dtype=np.float32)
        if a.shape != (self.num_envs, 1) or not np.isfinite(a).all() or (np.abs(a) > 1.0).any():
            raise ValueError(f"CountWindowVectorEnv: actions must be a float array of shape ({self.num_envs}, 1) in [-1, 1], got {actions!r}.")
        return a[:, 0]

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env with ``actions`` (float ``[N, 1]``) and autoreset truncated ones in the same step.

        Returns:
            obs float32 ``[N, 1]``, rewards float32 ``[N]``, terminated bool ``[N]`` (all False), truncated bool ``[N]``, infos.
        """
        self._require_reset()
        a = self._check_actions(actions)
        target = scaled_target(targets(self._inputs, self._t, self.horizon, self.mode), self.horizon)
        rewards = (-np.abs(a - target)).astype(np.float32)
        self._t += 1
        done = self._t == self.episode_length
        obs = self._observe()
        counts, tgts = self._counts_targets()
        infos = self._autoreset(obs, done, {"count": counts, "target": tgts}, lambda _: self._observe())
        if done.any():
            counts, tgts = self._counts_targets()
        ones = np.ones(self.num_envs, dtype=np.bool_)
        infos["count"], infos["_count"], infos["target"], infos["_target"] = counts, ones, tgts, ones.copy()
        terminated = np.zeros(self.num_envs, dtype=np.bool_)
        return obs, rewards, terminated, done, infos

    def __repr__(self) -> str:
        return (f"CountWindowVectorEnv(num_envs={self.num_envs}, horizon={self.horizon}, p={self.p}, "
                f"episode_length={self.episode_length}, mode={self.mode!r})")
