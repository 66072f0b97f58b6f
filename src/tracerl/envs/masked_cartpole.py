"""A masked-velocity control task: CartPole's dynamics with the velocities hidden, natively batched.

The dynamics are gymnasium's ``CartPole-v1`` (the classic Barto-Sutton-Anderson cart-pole, Euler integration,
``tau = 0.02`` s, force +-10 N, failure when ``|x| > 2.4`` or ``|theta| > 12 degrees``), computed in float64 numpy
for all sub-envs at once (:func:`cartpole_step`). The state is ``[x, x_dot, theta, theta_dot]``; the observation
keeps only the positions::

    obs = [x, theta]   float32, Box(low=[-4.8, -0.419], high=[4.8, 0.419])     (x_dot and theta_dot are hidden)
    action in {0, 1}: push the cart left (0) or right (1)
    reward 1.0 on every step (as CartPole-v1, including the step on which the pole falls)
    terminated when the pole falls or the cart leaves the track; truncated after ``max_steps`` steps

Success (``info["success"]``, on the last step of every episode) is **reaching the cap**: the episode lasted
``max_steps`` steps and the pole did not fall on the last of them. A memoryless policy sees one position and
cannot tell which way the pole is moving; an agent that integrates two observations can (the velocities are
differences of successive positions divided by ``tau``).

The initial state is drawn as gymnasium draws it, ``rng.uniform(-0.05, 0.05, size=4)``, so a reset with seed ``s``
starts from the same state as ``gymnasium.make("CartPole-v1").reset(seed=s)``; :class:`MaskedCartPoleVectorEnv`
seeds sub-env ``i`` with ``s + i`` and equals ``N`` seeded :class:`MaskedCartPole` envs.
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

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_POLE + MASS_CART
HALF_LENGTH = 0.5
POLE_MASS_LENGTH = MASS_POLE * HALF_LENGTH
FORCE_MAG = 10.0
TAU = 0.02
"""CartPole-v1's constants (seconds between state updates: ``TAU``)."""
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
"""The pole falls beyond ``THETA_THRESHOLD`` radians; the cart leaves the track beyond ``X_THRESHOLD``."""
KEEP = (0, 2)
"""State indices in the observation: x and theta."""
DEFAULT_MAX_STEPS = 200


def validate_config(max_steps: Any) -> int:
    """Check ``max_steps`` and return it as an int; raise :class:`ConfigError` naming it."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ConfigError(f"MaskedCartPole: max_steps={max_steps!r} is invalid; it must be an int >= 1.")
    check_episode_cap("MaskedCartPole", "max_steps", max_steps)
    return int(max_steps)


def observation_space() -> spaces.Box:
    """The single-env observation space: CartPole-v1's bounds of x and theta, float32 ``[2]``."""
    high = np.array([X_THRESHOLD * 2, THETA_THRESHOLD * 2], dtype=np.float32)
    return spaces.Box(-high, high, dtype=np.float32)


def cartpole_step(state: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One Euler step of CartPole-v1 for a batch.

    Args:
        state: float64 ``[N, 4]`` = ``[x, x_dot, theta, theta_dot]``.
        actions: int ``[N]`` in {0, 1} (1 pushes right).

    Returns:
        the next state float64 ``[N, 4]`` and ``fallen`` bool ``[N]`` (outside the x or theta threshold).
    """
    x, x_dot, theta, theta_dot = state[:, 0], state[:, 1], state[:, 2], state[:, 3]
    force = np.where(actions == 1, FORCE_MAG, -FORCE_MAG)
    costheta, sintheta = np.cos(theta), np.sin(theta)
    temp = (force + POLE_MASS_LENGTH * np.square(theta_dot) * sintheta) / TOTAL_MASS
    thetaacc = (GRAVITY * sintheta - costheta * temp) / (
        HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * np.square(costheta) / TOTAL_MASS))
    xacc = temp - POLE_MASS_LENGTH * thetaacc * costheta / TOTAL_MASS
    new = np.stack([x + TAU * x_dot, x_dot + TAU * xacc, theta + TAU * theta_dot, theta_dot + TAU * thetaacc], axis=1)
    fallen = (new[:, 0] < -X_THRESHOLD) | (new[:, 0] > X_THRESHOLD) | (new[:, 2] < -THETA_THRESHOLD) | (
        new[:, 2] > THETA_THRESHOLD)
    return new, fallen


def draw_initial_state(rng: np.random.Generator) -> np.ndarray:
    """CartPole-v1's initial state: float64 ``[4]`` uniform in [-0.05, 0.05)."""
    return rng.uniform(low=-0.05, high=0.05, size=(4,))


class MaskedCartPole(gymnasium.Env, gymnasium.utils.RecordConstructorArgs):
    """CartPole-v1 observing ``[x, theta]`` only, with an episode cap and ``info["success"]`` (the cap reached).

    Args:
        max_steps: the episode is truncated after this many steps (>= 1); reaching it is success.

    Actions are ``Discrete(2)``; see the module docstring for dynamics, reward and success.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, max_steps=max_steps)
        self.max_steps = validate_config(max_steps)
        self.observation_space = observation_space()
        self.action_space = spaces.Discrete(2)
        self.state: np.ndarray | None = None  # float64 [4], set at reset
        self._t = 0  # steps taken in this episode
        self._done = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode from CartPole-v1's initial-state distribution. Returns obs float32 ``[2]`` and ``{}``."""
        super().reset(seed=seed, options=options)
        self.state = draw_initial_state(self.np_random)
        self._t, self._done = 0, False
        return self.state[list(KEEP)].astype(np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Push left (0) or right (1). Returns (obs float32 ``[2]``, 1.0, terminated, truncated, info)."""
        if self.state is None:
            raise RuntimeError("MaskedCartPole.step() called before reset(); call reset() first.")
        if self._done:
            raise RuntimeError("MaskedCartPole.step() called after the episode ended; call reset() first.")
        if not self.action_space.contains(action):
            raise ValueError(f"MaskedCartPole: action={action!r} is invalid; it must be an int in {{0, 1}}.")
        new, fallen = cartpole_step(self.state[None], np.array([int(action)]))
        self.state = new[0]
        self._t += 1
        terminated = bool(fallen[0])
        truncated = self._t >= self.max_steps
        info: dict[str, Any] = {}
        if terminated or truncated:
            self._done = True
            info["success"] = bool(truncated and not terminated)
        return self.state[list(KEEP)].astype(np.float32), 1.0, terminated, truncated, info

    def batched(self, num_envs: int) -> "MaskedCartPoleVectorEnv":
        """``num_envs`` copies of this task as one :class:`MaskedCartPoleVectorEnv`."""
        return MaskedCartPoleVectorEnv(num_envs, max_steps=self.max_steps)


class MaskedCartPoleVectorEnv(BatchedEnv):
    """``num_envs`` independent :class:`MaskedCartPole` episodes stepped with one vectorized numpy call.

    SAME_STEP autoreset: an ended sub-env's ``obs[i]`` is already its next episode's first observation; the last
    observation is in ``infos["final_obs"]`` and ``infos["final_info"]`` holds ``"success"``/``"_success"``
    (also repeated at the top level), present only on steps where some sub-env ended.
    """

    _CONFIG_KEYS = ("max_steps",)
    _STATE_ARRAYS = {"state": np.float64, "t": np.int64}

    def __init__(self, num_envs: int, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        self.max_steps = validate_config(max_steps)
        self._init_batched(num_envs, observation_space(), spaces.Discrete(2))
        self._state = np.zeros((self.num_envs, 4), dtype=np.float64)  # [N, 4]
        self._t = np.zeros(self.num_envs, dtype=np.int64)  # [N] steps taken in each episode

    def _reset_rows(self, rows: np.ndarray, seeds: Sequence[int | None]) -> None:
        for r, seed in zip(rows.tolist(), seeds):
            self._state[r] = draw_initial_state(self._rng(r, seed))
        self._t[rows] = 0

    def _observe(self) -> np.ndarray:
        """float32 ``[N, 2]``: x and theta of every sub-env."""
        return self._state[:, list(KEEP)].astype(np.float32)

    def _reset_result(self, mask: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        return self._observe(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env with ``actions`` (int ``[N]`` in {0, 1}) and autoreset the ended ones.

        Returns:
            obs float32 ``[N, 2]``, rewards float32 ``[N]`` (ones), terminated bool ``[N]``, truncated bool ``[N]``,
            infos.
        """
        self._require_reset()
        a = self._check_actions(actions)
        self._state, terminated = cartpole_step(self._state, a)
        self._t += 1
        truncated = self._t >= self.max_steps
        done = terminated | truncated
        success = truncated & ~terminated
        obs = self._observe()
        infos = self._autoreset(obs, done, {"success": success}, lambda _: self._observe())
        if done.any():
            infos["success"], infos["_success"] = success, done.copy()
        rewards = np.ones(self.num_envs, dtype=np.float32)
        return obs, rewards, terminated, truncated, infos

    def __repr__(self) -> str:
        return f"MaskedCartPoleVectorEnv(num_envs={self.num_envs}, max_steps={self.max_steps})"
