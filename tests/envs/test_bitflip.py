"""BitFlip (the HER paper's bit flipping): the oracle always succeeds, random play almost never does, rewards and
termination follow compute_reward / compute_terminated, and the registered id builds a SAME_STEP vector env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import tracerl.envs  # noqa: F401 (registers the ids)
from tracerl.envs import REGISTERED_ENV_IDS, make_vec_env
from tracerl.envs.bitflip import BIT_FLIP_ID, BitFlip
from tracerl.errors import ConfigError


def _success_rate(env: BitFlip, policy, episodes: int, seed: int = 0) -> float:
    wins = 0
    env.reset(seed=seed)
    for _ in range(episodes):
        obs, _ = env.reset()
        while True:
            obs, r, term, trunc, info = env.step(policy(env, obs))
            assert env.observation_space.contains(obs)
            if term or trunc:
                wins += bool(info["success"])
                break
    return wins / episodes


def test_the_oracle_reaches_every_goal():
    env = BitFlip(12)
    assert _success_rate(env, lambda e, o: e.oracle_action(), 200) == 1.0


def test_random_play_almost_never_reaches_the_goal():
    env = BitFlip(10)
    rng = np.random.default_rng(0)
    assert _success_rate(env, lambda e, o: int(rng.integers(10)), 500) <= 0.03


def test_rewards_and_termination_follow_the_goal_functions():
    env = BitFlip(3, horizon=20)
    obs, _ = env.reset(seed=1)
    assert not np.array_equal(obs["achieved_goal"], obs["desired_goal"])
    rng = np.random.default_rng(1)
    ended = 0
    for _ in range(300):
        obs, r, term, trunc, info = env.step(int(rng.integers(3)))
        reached = bool(env.compute_terminated(obs["achieved_goal"], obs["desired_goal"], {}))
        assert term == reached and r == float(env.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}))
        assert r == (0.0 if reached else -1.0)
        assert np.array_equal(obs["observation"], obs["achieved_goal"])
        if term or trunc:
            assert info["success"] == term
            ended += 1
            obs, _ = env.reset()
    assert ended > 20


def test_goal_functions_are_vectorized():
    env = BitFlip(3)
    a = np.array([[0, 1, 1], [1, 1, 1], [0, 0, 0]])
    d = np.array([[0, 1, 1], [1, 0, 1], [0, 0, 0]])
    assert env.compute_terminated(a, d, None).tolist() == [True, False, True]
    assert env.compute_reward(a[None], d[None], None).tolist() == [[0.0, -1.0, 0.0]]


def test_episodes_end_after_n_bits_actions_by_default_and_are_seeded():
    env = BitFlip(5)
    env.reset(seed=0)
    for t in range(1, 6):
        _, _, term, trunc, _ = env.step(0)  # flipping one bit back and forth
        if term:
            break
        assert trunc == (t == 5)
    a, b = BitFlip(6), BitFlip(6)
    oa, ob = a.reset(seed=7)[0], b.reset(seed=7)[0]
    assert all(np.array_equal(oa[k], ob[k]) for k in oa)


def test_registered_id_makes_a_same_step_vector_env():
    assert BIT_FLIP_ID in REGISTERED_ENV_IDS
    assert isinstance(gym.make(BIT_FLIP_ID, n_bits=7).unwrapped, BitFlip)
    vec = make_vec_env(BIT_FLIP_ID, n_envs=3, env_kwargs={"n_bits": 4})
    obs, _ = vec.reset(seed=0)
    assert obs["desired_goal"].shape == (3, 4)


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ConfigError, match="n_bits=0"):
        BitFlip(0)
    with pytest.raises(ConfigError, match="horizon=-1"):
        BitFlip(4, horizon=-1)
    env = BitFlip(4)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action=4"):
        env.step(4)
