"""The batched delayed-cue env: equal to N seeded single envs, SAME_STEP autoreset, gymnasium info layout."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from tracerl.envs import CueDelay, CueDelayVectorEnv
from tracerl.errors import ConfigError

N = 5


def _single_envs_step(envs: list[CueDelay], actions: np.ndarray):
    """SAME_STEP autoreset by hand over single envs: (obs [N,3], rewards, terminated, truncated, final_obs rows)."""
    obs, rewards, terms, truncs, finals = [], [], [], [], {}
    for i, (env, action) in enumerate(zip(envs, actions)):
        o, r, te, tr, _ = env.step(int(action))
        if te or tr:
            finals[i] = o
            o, _ = env.reset()
        obs.append(o)
        rewards.append(r)
        terms.append(te)
        truncs.append(tr)
    return np.stack(obs), np.array(rewards), np.array(terms), np.array(truncs), finals


@pytest.mark.parametrize("delay", [1, 3, 7])
@pytest.mark.parametrize("difficulty", [0, 1])
def test_batched_env_equals_single_envs_with_same_seeds(delay: int, difficulty: int) -> None:
    vec = CueDelayVectorEnv(N, delay=delay, difficulty=difficulty)
    singles = [CueDelay(delay=delay, difficulty=difficulty) for _ in range(N)]
    obs, infos = vec.reset(seed=10)
    single_first = [env.reset(seed=10 + i) for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack([o for o, _ in single_first]))
    np.testing.assert_array_equal(infos["cue"], [i["cue"] for _, i in single_first])

    rng = np.random.default_rng(delay * 10 + difficulty)
    episodes_ended = np.zeros(N, dtype=int)
    for _ in range(3 * delay):
        actions = rng.integers(0, 2, size=N)
        obs, rewards, terminated, truncated, infos = vec.step(actions)
        s_obs, s_rewards, s_terms, s_truncs, finals = _single_envs_step(singles, actions)
        np.testing.assert_array_equal(obs, s_obs)
        np.testing.assert_array_equal(rewards, s_rewards.astype(np.float32))
        np.testing.assert_array_equal(terminated, s_terms)
        np.testing.assert_array_equal(truncated, s_truncs)
        assert (rewards.dtype, terminated.dtype, truncated.dtype, obs.dtype) == (np.float32, np.bool_, np.bool_, np.float32)
        if finals:
            np.testing.assert_array_equal(np.flatnonzero(infos["_final_obs"]), sorted(finals))
            for i, final in finals.items():
                np.testing.assert_array_equal(infos["final_obs"][i], final)
        else:
            assert "final_obs" not in infos and "_final_obs" not in infos
        episodes_ended += terminated
    assert (episodes_ended == 3).all()


@pytest.mark.parametrize("difficulty", [0, 1])
def test_info_layout_matches_gymnasium_same_step_sync_vector_env(difficulty: int) -> None:
    delay = 3
    vec = CueDelayVectorEnv(N, delay=delay, difficulty=difficulty)
    ref = SyncVectorEnv([lambda: CueDelay(delay=delay, difficulty=difficulty)] * N, autoreset_mode=AutoresetMode.SAME_STEP)
    seeds = [4, 100, 7, 0, 55]
    obs, infos = vec.reset(seed=seeds)
    ref_obs, ref_infos = ref.reset(seed=seeds)
    np.testing.assert_array_equal(obs, ref_obs)
    assert set(infos) == set(ref_infos) == {"cue", "_cue"}
    rng = np.random.default_rng(1)
    saw_final = False
    for _ in range(2 * delay + 1):
        actions = rng.integers(0, 2, size=N)
        obs, rewards, terminated, truncated, infos = vec.step(actions)
        ref_obs, ref_rewards, ref_terminated, ref_truncated, ref_infos = ref.step(actions)
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(rewards, ref_rewards)
        np.testing.assert_array_equal(terminated, ref_terminated)
        np.testing.assert_array_equal(truncated, ref_truncated)
        np.testing.assert_array_equal(infos["cue"], ref_infos["cue"])
        np.testing.assert_array_equal(infos["_cue"], ref_infos["_cue"])
        for key in ("_final_obs", "_final_info"):
            assert (key in infos) == (key in ref_infos)
        if "final_obs" in ref_infos:
            saw_final = True
            np.testing.assert_array_equal(infos["_final_obs"], ref_infos["_final_obs"])
            np.testing.assert_array_equal(infos["_final_info"], ref_infos["_final_info"])
            for i in np.flatnonzero(ref_infos["_final_obs"]):
                np.testing.assert_array_equal(infos["final_obs"][i], ref_infos["final_obs"][i])
            assert infos["final_obs"].shape == (N, 3)
            ref_final_info = ref_infos["final_info"]
            assert set(infos["final_info"]) == set(ref_final_info) == {"cue", "_cue", "success", "_success"}
            for key, value in ref_final_info.items():
                np.testing.assert_array_equal(infos["final_info"][key], value)
            np.testing.assert_array_equal(infos["success"], ref_final_info["success"])
            np.testing.assert_array_equal(infos["_success"], ref_final_info["_success"])
        else:
            assert "success" not in infos
    assert saw_final


def test_batched_oracle_always_wins_and_constant_policy_averages_zero() -> None:
    for difficulty in (0, 1):
        vec = CueDelayVectorEnv(8, delay=4, difficulty=difficulty)
        obs, _ = vec.reset(seed=difficulty)
        memory = np.zeros(8, dtype=np.float32)
        final_rewards: list[float] = []
        while len(final_rewards) < 200:
            memory = np.where(obs[:, 1] == 1.0, obs[:, 0], memory)
            obs, rewards, terminated, _, infos = vec.step((memory > 0).astype(np.int64))
            final_rewards.extend(rewards[terminated].tolist())
            assert (rewards[~terminated] == 0).all()
            if terminated.any():
                assert infos["success"][terminated].all()
        assert final_rewards == [1.0] * len(final_rewards)

    vec = CueDelayVectorEnv(50, delay=2, difficulty=1)
    vec.reset(seed=3)
    constant = [vec.step(np.zeros(50, dtype=np.int64))[1] for _ in range(80)]
    final = np.concatenate(constant[1::2])
    assert set(np.unique(final).tolist()) == {-1.0, 1.0}
    assert abs(final.mean()) < 0.1


def test_spaces_metadata_and_seed_list() -> None:
    vec = CueDelayVectorEnv(4, delay=2)
    assert vec.num_envs == 4
    assert vec.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert vec.single_observation_space == spaces.Box(-1.0, 1.0, (3,), np.float32)
    assert vec.observation_space.shape == (4, 3) and vec.observation_space.dtype == np.float32
    assert vec.single_action_space == spaces.Discrete(2)
    assert vec.action_space == spaces.MultiDiscrete([2, 2, 2, 2])
    obs_int, _ = vec.reset(seed=20)
    obs_list, _ = vec.reset(seed=[20, 21, 22, 23])
    np.testing.assert_array_equal(obs_int, obs_list)
    assert vec.observation_space.contains(obs_int)


def test_difficulty_0_batched_shows_zeros_after_cue() -> None:
    vec = CueDelayVectorEnv(6, delay=5, difficulty=0)
    vec.reset(seed=0)
    for _ in range(4):
        obs, *_ = vec.step(np.ones(6, dtype=np.int64))
        np.testing.assert_array_equal(obs[:, 0], np.zeros(6, dtype=np.float32))
        assert (obs[:, 1] == 0).all()


def test_reset_mask_resets_only_selected_envs() -> None:
    vec = CueDelayVectorEnv(3, delay=4, difficulty=1)
    vec.reset(seed=0)
    vec.step(np.zeros(3, dtype=np.int64))
    obs, infos = vec.reset(options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(obs[:, 1], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(infos["_cue"], [False, True, False])


def test_invalid_arguments_and_misuse() -> None:
    with pytest.raises(ConfigError, match="num_envs"):
        CueDelayVectorEnv(0)
    with pytest.raises(ConfigError, match="delay"):
        CueDelayVectorEnv(2, delay=0)
    with pytest.raises(ConfigError, match="difficulty"):
        CueDelayVectorEnv(2, difficulty=3)
    vec = CueDelayVectorEnv(2, delay=2)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros(2, dtype=np.int64))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        vec.step(np.array([0, 2]))
    with pytest.raises(ValueError, match="actions"):
        vec.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="num_envs=2"):
        vec.reset(seed=[1, 2, 3])
