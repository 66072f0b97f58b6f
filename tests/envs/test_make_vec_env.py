"""make_vec_env, get_autoreset_mode and the gymnasium registration of tracerl's ids."""

from __future__ import annotations

import importlib
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.classic_control import CartPoleEnv
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import tracerl.envs
from tracerl.envs import REGISTERED_ENV_IDS, CueDelay, CueDelayVectorEnv, get_autoreset_mode, make_vec_env
from tracerl.errors import ConfigError

CUE_ID = "tracerl/CueDelay-v0"


def test_registered_ids_are_makeable() -> None:
    assert CUE_ID in REGISTERED_ENV_IDS and len(set(REGISTERED_ENV_IDS)) == len(REGISTERED_ENV_IDS)
    env = gymnasium.make(CUE_ID, delay=4, difficulty=1)
    assert isinstance(env.unwrapped, CueDelay) and (env.unwrapped.delay, env.unwrapped.difficulty) == (4, 1)
    vec = gymnasium.make_vec(CUE_ID, num_envs=8, vectorization_mode="vector_entry_point", delay=4)
    assert isinstance(vec, CueDelayVectorEnv) and vec.num_envs == 8 and vec.delay == 4


def test_registration_is_idempotent() -> None:
    spec_before = gymnasium.spec(CUE_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(importlib.import_module("tracerl.envs.registration"))
        importlib.reload(tracerl.envs)
    assert gymnasium.spec(CUE_ID) == spec_before


def test_from_id_returns_native_batched_env() -> None:
    vec = make_vec_env(CUE_ID, n_envs=3, env_kwargs={"delay": 5, "difficulty": 1})
    assert isinstance(vec, CueDelayVectorEnv)
    assert (vec.num_envs, vec.delay, vec.difficulty) == (3, 5, 1)
    assert get_autoreset_mode(vec) is AutoresetMode.SAME_STEP


def test_from_cue_delay_instance_keeps_its_parameters() -> None:
    vec = make_vec_env(CueDelay(delay=6, difficulty=1), n_envs=4)
    assert isinstance(vec, CueDelayVectorEnv)
    assert (vec.num_envs, vec.delay, vec.difficulty) == (4, 6, 1)


def _run_until_an_episode_ends(vec, max_steps: int = 200):
    """Step with action 1 until some sub-env ends; returns (obs, terminated | truncated, infos)."""
    for _ in range(max_steps):
        obs, _, terminated, truncated, infos = vec.step(np.ones(vec.num_envs, dtype=np.int64))
        done = terminated | truncated
        if done.any():
            return obs, done, infos
    raise AssertionError(f"no episode ended within {max_steps} steps")


def test_from_other_id_is_same_step_with_final_obs() -> None:
    vec = make_vec_env("CartPole-v1", n_envs=3)
    assert isinstance(vec, SyncVectorEnv)
    assert get_autoreset_mode(vec) is AutoresetMode.SAME_STEP
    vec.reset(seed=0)
    obs, done, infos = _run_until_an_episode_ends(vec)
    np.testing.assert_array_equal(infos["_final_obs"], done)
    for i in np.flatnonzero(done):
        final = infos["final_obs"][i]
        assert final.shape == (4,)
        assert np.abs(obs[i]).max() <= 0.05  # already the next episode's initial state
        assert not np.array_equal(final, obs[i])
    vec.close()


def test_async_vectorization() -> None:
    vec = make_vec_env("CartPole-v1", n_envs=2, vectorization="async")
    try:
        assert isinstance(vec, AsyncVectorEnv)
        assert get_autoreset_mode(vec) is AutoresetMode.SAME_STEP
        vec.reset(seed=0)
        _, done, infos = _run_until_an_episode_ends(vec)
        np.testing.assert_array_equal(infos["_final_obs"], done)
    finally:
        vec.close()


def test_from_callable() -> None:
    vec = make_vec_env(lambda: CueDelay(delay=2), n_envs=3)
    assert isinstance(vec, SyncVectorEnv) and vec.num_envs == 3
    assert get_autoreset_mode(vec) is AutoresetMode.SAME_STEP
    vec.reset(seed=1)
    vec.step(np.zeros(3, dtype=np.int64))
    _, _, terminated, _, infos = vec.step(np.zeros(3, dtype=np.int64))
    assert terminated.all() and infos["_final_obs"].all()


def test_from_generic_instance_uses_it_and_copies_from_spec() -> None:
    env = gymnasium.make("CartPole-v1")
    vec = make_vec_env(env, n_envs=3)
    assert vec.num_envs == 3 and vec.envs[0].env is env  # wrapped by CheckedEnv (output checks)
    assert all(e.spec.id == "CartPole-v1" for e in vec.envs[1:])
    assert make_vec_env(CartPoleEnv(), n_envs=1).num_envs == 1
    with pytest.raises(ConfigError, match="spec"):
        make_vec_env(CartPoleEnv(), n_envs=2)


def test_existing_vector_env_is_checked_for_same_step() -> None:
    native = CueDelayVectorEnv(2, delay=3)
    assert make_vec_env(native) is native
    next_step = SyncVectorEnv([lambda: CueDelay(delay=2)] * 2)
    with pytest.raises(ConfigError, match="SAME_STEP"):
        make_vec_env(next_step)
    assert get_autoreset_mode(next_step) is AutoresetMode.NEXT_STEP
    assert get_autoreset_mode(RecordEpisodeStatistics(native)) is AutoresetMode.SAME_STEP


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"env": CUE_ID, "n_envs": 0}, "n_envs"),
        ({"env": CUE_ID, "n_envs": -2}, "n_envs"),
        ({"env": CUE_ID, "vectorization": "threads"}, "vectorization"),
        ({"env": CueDelay(), "env_kwargs": {"delay": 3}}, "env_kwargs"),
        ({"env": 42}, "env"),
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        make_vec_env(**kwargs)


def test_seed_makes_action_sampling_reproducible_without_resetting() -> None:
    a = make_vec_env(CUE_ID, n_envs=4, seed=9)
    b = make_vec_env(CUE_ID, n_envs=4, seed=9)
    samples_a = [a.action_space.sample() for _ in range(5)]
    samples_b = [b.action_space.sample() for _ in range(5)]
    np.testing.assert_array_equal(samples_a, samples_b)
    with pytest.raises(RuntimeError, match="reset"):
        a.step(np.zeros(4, dtype=np.int64))
