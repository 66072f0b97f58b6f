"""The rewriting-memory task: rewards, oracle and memoryless policies, seeding, the batched env, registration."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from tracerl.envs import REGISTERED_ENV_IDS, RewriteMaze, RewriteMazeVectorEnv, make_vec_env
from tracerl.envs.rewrite_maze import CUE_FLAG, JUNCTION_FLAG, SIGNAL
from tracerl.errors import ConfigError

ENV_ID = "tracerl/RewriteMaze-v0"
N = 5


def _oracle(obs: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched oracle on obs [N, 3]: keep the latest cue, answer it at every junction. (actions, new memory)."""
    memory = np.where(obs[:, CUE_FLAG] == 1.0, obs[:, SIGNAL], memory)
    return (memory > 0).astype(np.int64), memory


def _first_cue_only(obs: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A memory that is never rewritten: it keeps the episode's first cue (the first observation of an episode is
    marked by ``memory == 0``)."""
    memory = np.where((obs[:, CUE_FLAG] == 1.0) & (memory == 0), obs[:, SIGNAL], memory)
    return (memory > 0).astype(np.int64), memory


def _accuracy(vec: RewriteMazeVectorEnv, policy, episodes: int, seed: int) -> tuple[float, float, list[float]]:
    """(mean junction accuracy from info, mean success, returns) of ``policy`` over ``episodes`` episodes."""
    obs, _ = vec.reset(seed=seed)
    memory = np.zeros(vec.num_envs)
    accuracies: list[float] = []
    successes: list[bool] = []
    returns: list[float] = []
    ret = np.zeros(vec.num_envs)
    while len(accuracies) < episodes:
        actions, memory = policy(obs, memory)
        obs, rewards, terminated, truncated, infos = vec.step(actions)
        assert not truncated.any()
        ret += rewards
        if terminated.any():
            accuracies.extend(infos["junction_accuracy"][terminated].tolist())
            successes.extend(infos["success"][terminated].tolist())
            returns.extend(ret[terminated].tolist())
            ret[terminated], memory[terminated] = 0.0, 0.0
    return float(np.mean(accuracies)), float(np.mean(successes)), returns


# -- single env ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_corridors", "corridor_length", "difficulty"), [(1, 1, 0), (3, 4, 0), (2, 5, 1)])
def test_check_env(n_corridors: int, corridor_length: int, difficulty: int) -> None:
    env = RewriteMaze(n_corridors=n_corridors, corridor_length=corridor_length, difficulty=difficulty)
    check_env(env, skip_render_check=True)
    assert env.observation_space == spaces.Box(-1.0, 1.0, (3,), np.float32)
    assert env.action_space == spaces.Discrete(2)


def test_trajectory_cues_junctions_rewards_and_infos() -> None:
    env = RewriteMaze(n_corridors=3, corridor_length=3, difficulty=0)
    obs, info = env.reset(seed=3)
    cues = [int(env._signals[k * 3]) for k in range(3)]
    assert cues == [1, -1, 1]  # this seed's cues change, so the memory must be rewritten
    assert info == {"cue": cues[0], "cue_step": 0, "decision": False}
    np.testing.assert_array_equal(obs, [cues[0], 1.0, 0.0])
    answers = [cues[0], -cues[1], cues[2]]  # right, wrong, right
    rewards, infos = [], []
    for k in range(3):
        for i in range(3):
            action = int(answers[k] > 0) if i == 2 else 0
            obs, r, terminated, truncated, info = env.step(action)
            rewards.append(r)
            infos.append(info)
            assert not truncated and terminated == (k == 2 and i == 2)
            if not terminated:
                t = 3 * k + i + 1
                expected = [cues[t // 3] if t % 3 == 0 else 0.0, float(t % 3 == 0), float(t % 3 == 2)]
                np.testing.assert_array_equal(obs, expected)
                assert info["cue"] == cues[t // 3] and info["cue_step"] == t - t % 3 and info["decision"] == (t % 3 == 2)
    assert rewards == [0, 0, 1, 0, 0, -1, 0, 0, 1]
    np.testing.assert_array_equal(obs, [0.0, 0.0, 0.0])
    assert infos[-1]["success"] is False and infos[-1]["junction_accuracy"] == pytest.approx(2 / 3)
    assert all("success" not in i for i in infos[:-1])
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_distractors_fill_the_corridors_and_never_raise_the_cue_flag() -> None:
    env = RewriteMaze(n_corridors=4, corridor_length=6, difficulty=1)
    obs, _ = env.reset(seed=0)
    seen = [obs]
    for _ in range(env.episode_length - 1):
        seen.append(env.step(0)[0])
    seen = np.stack(seen)
    np.testing.assert_array_equal(seen[:, CUE_FLAG], np.arange(24) % 6 == 0)
    np.testing.assert_array_equal(seen[:, JUNCTION_FLAG], np.arange(24) % 6 == 5)
    assert set(np.unique(seen[:, SIGNAL])) == {-1.0, 1.0}  # distractors are +-1 like the cues


def test_oracle_scores_one_and_the_optimal_return() -> None:
    vec = RewriteMazeVectorEnv(16, n_corridors=5, corridor_length=7, difficulty=1)
    accuracy, success, returns = _accuracy(vec, _oracle, 200, seed=1)
    assert accuracy == 1.0 and success == 1.0
    assert returns[:200] == [vec.optimal_return] * 200 and vec.optimal_return == 5.0


@pytest.mark.parametrize("difficulty", [0, 1])
def test_memoryless_policies_score_at_chance(difficulty: int) -> None:
    """A policy that sees only the current observation is right at a junction with probability 1/2: over 4,000
    junctions its accuracy is within 0.5 +- 0.04 (five standard deviations), and its return averages 0."""
    rng = np.random.default_rng(3)
    vec = RewriteMazeVectorEnv(40, n_corridors=4, corridor_length=5, difficulty=difficulty)

    def reactive(obs: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (obs[:, SIGNAL] > 0).astype(np.int64), memory  # answers what it sees at the junction

    def coin(obs: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return rng.integers(0, 2, size=len(obs)), memory

    for policy in (reactive, coin):
        accuracy, success, returns = _accuracy(vec, policy, 1000, seed=11)
        assert abs(accuracy - 0.5) < 0.04, (policy.__name__, accuracy)
        assert abs(np.mean(returns)) < 0.32  # 4 * (2 * 0.04)
        assert success < 0.1  # every junction right: 1/16 by chance


def test_a_memory_that_is_never_rewritten_scores_below_the_oracle() -> None:
    """Keeping the first cue: right at the first junction, at chance at the other three: (1 + 3/2) / 4 = 0.625."""
    vec = RewriteMazeVectorEnv(40, n_corridors=4, corridor_length=3, difficulty=0)
    accuracy, _, _ = _accuracy(vec, _first_cue_only, 1000, seed=5)
    assert abs(accuracy - 0.625) < 0.04


def test_reset_with_a_seed_repeats_the_episode_and_seeds_differ() -> None:
    def episode(seed: int) -> np.ndarray:
        env = RewriteMaze(n_corridors=3, corridor_length=4, difficulty=1)
        first, _ = env.reset(seed=seed)
        return np.stack([first] + [env.step(1)[0] for _ in range(env.episode_length)])

    np.testing.assert_array_equal(episode(7), episode(7))
    assert not np.array_equal(episode(7), episode(8))
    env = RewriteMaze(n_corridors=2, corridor_length=2)
    env.reset(seed=0)
    assert env.render() is None
    ansi = RewriteMaze(n_corridors=2, corridor_length=2, render_mode="ansi")
    ansi.reset(seed=0)
    assert "corridor=1/2" in ansi.render()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_corridors": 0}, "n_corridors"),
        ({"n_corridors": 2.0}, "n_corridors"),
        ({"corridor_length": 0}, "corridor_length"),
        ({"corridor_length": True}, "corridor_length"),
        ({"n_corridors": 1000, "corridor_length": 1000}, "n_corridors \\* corridor_length"),
        ({"difficulty": 2}, "difficulty"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RewriteMaze(**kwargs)


def test_misuse_of_single_env() -> None:
    env = RewriteMaze()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        _ = env.cue
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(2)


# -- batched env ------------------------------------------------------------------------------------


def _single_envs_step(envs: list[RewriteMaze], actions: np.ndarray):
    """SAME_STEP autoreset by hand over single envs."""
    out, finals = [], {}
    for i, (env, action) in enumerate(zip(envs, actions)):
        o, r, te, tr, info = env.step(int(action))
        if te or tr:
            finals[i] = (o, info)
            o, info = env.reset()
        out.append((o, r, te, tr, info))
    return out, finals


@pytest.mark.parametrize(("n_corridors", "corridor_length", "difficulty"), [(1, 1, 0), (3, 2, 1), (2, 5, 0)])
def test_batched_env_equals_single_envs_with_same_seeds(n_corridors: int, corridor_length: int, difficulty: int) -> None:
    kw = {"n_corridors": n_corridors, "corridor_length": corridor_length, "difficulty": difficulty}
    vec = RewriteMazeVectorEnv(N, **kw)
    singles = [RewriteMaze(**kw) for _ in range(N)]
    obs, infos = vec.reset(seed=10)
    first = [env.reset(seed=10 + i) for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack([o for o, _ in first]))
    for key in ("cue", "cue_step", "decision"):
        np.testing.assert_array_equal(infos[key], [i[key] for _, i in first])
    rng = np.random.default_rng(n_corridors + 10 * corridor_length)
    ended = np.zeros(N, dtype=int)
    for _ in range(3 * vec.episode_length):
        actions = rng.integers(0, 2, size=N)
        obs, rewards, terminated, truncated, infos = vec.step(actions)
        single, finals = _single_envs_step(singles, actions)
        np.testing.assert_array_equal(obs, np.stack([s[0] for s in single]))
        np.testing.assert_array_equal(rewards, np.array([s[1] for s in single], dtype=np.float32))
        np.testing.assert_array_equal(terminated, [s[2] for s in single])
        assert not truncated.any() and rewards.dtype == np.float32 and obs.dtype == np.float32
        for key in ("cue", "cue_step", "decision"):
            np.testing.assert_array_equal(infos[key], [s[4][key] for s in single])
        if finals:
            np.testing.assert_array_equal(np.flatnonzero(infos["_final_obs"]), sorted(finals))
            for i, (final_obs, final_info) in finals.items():
                np.testing.assert_array_equal(infos["final_obs"][i], final_obs)
                for key, value in final_info.items():
                    assert infos["final_info"][key][i] == pytest.approx(value), key
        else:
            assert "final_obs" not in infos and "success" not in infos
        ended += terminated
    assert (ended == 3).all()


def test_info_layout_matches_gymnasium_same_step_sync_vector_env() -> None:
    kw = {"n_corridors": 2, "corridor_length": 3, "difficulty": 1}
    vec = RewriteMazeVectorEnv(N, **kw)
    ref = SyncVectorEnv([lambda: RewriteMaze(**kw)] * N, autoreset_mode=AutoresetMode.SAME_STEP)
    obs, infos = vec.reset(seed=[4, 100, 7, 0, 55])
    ref_obs, ref_infos = ref.reset(seed=[4, 100, 7, 0, 55])
    np.testing.assert_array_equal(obs, ref_obs)
    assert set(infos) == set(ref_infos)
    rng = np.random.default_rng(1)
    saw_final = False
    for _ in range(2 * vec.episode_length + 1):
        actions = rng.integers(0, 2, size=N)
        obs, rewards, terminated, truncated, infos = vec.step(actions)
        r_obs, r_rewards, r_terminated, _, r_infos = ref.step(actions)
        np.testing.assert_array_equal(obs, r_obs)
        np.testing.assert_allclose(rewards, r_rewards)
        np.testing.assert_array_equal(terminated, r_terminated)
        for key in ("cue", "cue_step", "decision"):
            np.testing.assert_array_equal(infos[key], r_infos[key])
        if "final_obs" in r_infos:
            saw_final = True
            assert set(infos["final_info"]) == set(r_infos["final_info"])
            for key, value in r_infos["final_info"].items():
                np.testing.assert_allclose(infos["final_info"][key], value)
    assert saw_final


def test_get_state_set_state_continues_identically() -> None:
    kw = {"n_corridors": 3, "corridor_length": 2, "difficulty": 1}
    vec = RewriteMazeVectorEnv(4, **kw)
    vec.reset(seed=0)
    rng = np.random.default_rng(2)
    for _ in range(5):
        vec.step(rng.integers(0, 2, size=4))
    arrays, state = vec.get_state()
    restored = RewriteMazeVectorEnv(4, **kw)
    restored.set_state({k: v.copy() for k, v in arrays.items()}, dict(state))
    for a in rng.integers(0, 2, size=(20, 4)):  # spans autoresets, so the generators' states matter
        out_a, out_b = vec.step(a), restored.step(a)
        for x, y in zip(out_a[:4], out_b[:4]):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(out_a[4]["cue"], out_b[4]["cue"])
    with pytest.raises(ValueError, match="n_corridors"):
        RewriteMazeVectorEnv(4, n_corridors=2, corridor_length=2, difficulty=1).set_state(arrays, state)


def test_batched_misuse_and_invalid_arguments() -> None:
    vec = RewriteMazeVectorEnv(3, n_corridors=2, corridor_length=2)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros(3, dtype=np.int64))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        vec.step(np.array([0, 1, 2]))
    with pytest.raises(ConfigError, match="corridor_length"):
        RewriteMazeVectorEnv(3, corridor_length=0)
    with pytest.raises(ConfigError, match="num_envs"):
        RewriteMazeVectorEnv(0)


# -- registration and make_vec_env ----------------------------------------------------------------


def test_registration_and_make_vec_env() -> None:
    assert ENV_ID in REGISTERED_ENV_IDS
    env = gymnasium.make(ENV_ID, n_corridors=3, corridor_length=5, difficulty=1)
    assert isinstance(env.unwrapped, RewriteMaze)
    assert (env.unwrapped.n_corridors, env.unwrapped.corridor_length, env.unwrapped.difficulty) == (3, 5, 1)
    vec = gymnasium.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", n_corridors=2)
    assert isinstance(vec, RewriteMazeVectorEnv) and (vec.num_envs, vec.n_corridors) == (3, 2)
    vec = make_vec_env(ENV_ID, n_envs=2, env_kwargs={"corridor_length": 4})
    assert isinstance(vec, RewriteMazeVectorEnv) and (vec.num_envs, vec.corridor_length) == (2, 4)
    vec = make_vec_env(RewriteMaze(n_corridors=6, corridor_length=2, difficulty=1), n_envs=4)
    assert isinstance(vec, RewriteMazeVectorEnv)
    assert (vec.num_envs, vec.n_corridors, vec.corridor_length, vec.difficulty) == (4, 6, 2, 1)
    with pytest.raises(ConfigError, match="n_corridors"):
        make_vec_env(ENV_ID, n_envs=2, env_kwargs={"n_corridors": 0})
