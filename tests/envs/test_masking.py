"""Masked-velocity envs: MaskObservation, the NoVel ids, and their equivalence with the unmasked envs."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.classic_control import CartPoleEnv, PendulumEnv
from gymnasium.utils.env_checker import check_env

from tracerl.envs import REGISTERED_ENV_IDS, MaskObservation, make_vec_env
from tracerl.envs.registration import _box2d_available
from tracerl.errors import ConfigError, UnsupportedSpaceError

CASES = [
    ("tracerl/PendulumNoVel-v0", "Pendulum-v1", [0, 1]),
    ("tracerl/CartPoleNoVel-v0", "CartPole-v1", [0, 2]),
]
if _box2d_available():  # LunarLander needs Box2D, an optional dependency; its id exists only with it
    CASES.append(("tracerl/LunarLanderNoVel-v0", "LunarLander-v3", [0, 1, 4, 6, 7]))


@pytest.mark.parametrize(("env_id", "base_id", "keep"), CASES)
def test_no_vel_env_passes_checker_and_matches_underlying_spec(env_id: str, base_id: str, keep: list[int]) -> None:
    env = gymnasium.make(env_id)
    base = gymnasium.make(base_id)
    assert env.spec.max_episode_steps == base.spec.max_episode_steps
    np.testing.assert_array_equal(env.observation_space.low, base.observation_space.low[keep])
    np.testing.assert_array_equal(env.observation_space.high, base.observation_space.high[keep])
    assert env.observation_space.dtype == base.observation_space.dtype
    assert env.action_space == base.action_space
    wrapped = gymnasium.make(env_id)
    while not isinstance(wrapped, MaskObservation):  # the registered MaskObservation, below make()'s wrappers
        wrapped = wrapped.env
    assert list(wrapped.keep) == keep
    check_env(wrapped, skip_render_check=True)


@pytest.mark.parametrize(("env_id", "base_id", "keep"), CASES)
def test_no_vel_observations_are_the_kept_entries_under_the_same_seed(env_id: str, base_id: str, keep: list[int]) -> None:
    masked, full = gymnasium.make(env_id), gymnasium.make(base_id)
    m_obs, _ = masked.reset(seed=7)
    f_obs, _ = full.reset(seed=7)
    np.testing.assert_array_equal(m_obs, f_obs[keep])
    full.action_space.seed(3)
    steps, episodes = 0, 0
    while episodes < 2:
        action = full.action_space.sample()
        m_obs, m_r, m_te, m_tr, _ = masked.step(action)
        f_obs, f_r, f_te, f_tr, _ = full.step(action)
        np.testing.assert_array_equal(m_obs, f_obs[keep])
        assert (m_r, m_te, m_tr) == (f_r, f_te, f_tr)
        steps += 1
        if f_te or f_tr:
            episodes += 1
            m_obs, _ = masked.reset()
            f_obs, _ = full.reset()
            np.testing.assert_array_equal(m_obs, f_obs[keep])
    assert steps > 2


def test_pendulum_episode_is_truncated_at_the_underlying_limit() -> None:
    env = gymnasium.make("tracerl/PendulumNoVel-v0")
    env.reset(seed=0)
    for t in range(1, 201):
        _, _, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        assert not terminated and truncated == (t == 200)


def test_registered_ids_and_vectorization() -> None:
    assert {"tracerl/PendulumNoVel-v0", "tracerl/CartPoleNoVel-v0"} <= set(REGISTERED_ENV_IDS)
    assert ("tracerl/LunarLanderNoVel-v0" in REGISTERED_ENV_IDS) == _box2d_available()
    assert ("tracerl/LunarLanderNoVel-v0" in gymnasium.registry) == _box2d_available()
    vec = make_vec_env("tracerl/CartPoleNoVel-v0", n_envs=3)
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (3, 2)


def test_mask_observation_keeps_order_and_bounds() -> None:
    env = MaskObservation(CartPoleEnv(), [2, 0])
    base = CartPoleEnv()
    np.testing.assert_array_equal(env.observation_space.high, base.observation_space.high[[2, 0]])
    obs, _ = env.reset(seed=1)
    b_obs, _ = base.reset(seed=1)
    np.testing.assert_array_equal(obs, b_obs[[2, 0]])


@pytest.mark.parametrize(("keep", "named"), [([0, 3], "[3]"), ([-1, 1], "[-1]"), ([0, 1.5], "[1.5]"), ([], "empty"), ([1, 1], "[1]"), (None, "keep")])
def test_invalid_keep_raises_config_error_naming_the_indices(keep, named: str) -> None:
    with pytest.raises(ConfigError, match="keep") as excinfo:
        MaskObservation(PendulumEnv(), keep)
    assert named in str(excinfo.value)


def test_non_box_space_raises_unsupported_space_error() -> None:
    from tracerl.envs import CueDelay

    class DiscreteObs(CueDelay):
        def __init__(self) -> None:
            super().__init__()
            self.observation_space = gymnasium.spaces.Discrete(3)

    with pytest.raises(UnsupportedSpaceError, match="Discrete"):
        MaskObservation(DiscreteObs(), [0])
