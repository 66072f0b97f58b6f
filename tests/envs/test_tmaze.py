"""Passive/Active T-Maze (Ni et al., 2023): single env, batched env, registration and make_vec_env."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from tracerl.envs import REGISTERED_ENV_IDS, TMaze, TMazeVectorEnv, make_vec_env
from tracerl.envs.tmaze import DOWN, LEFT, RIGHT, UP, apply_moves
from tracerl.errors import ConfigError

PASSIVE_ID, ACTIVE_ID = "tracerl/TMazePassive-v0", "tracerl/TMazeActive-v0"
N = 5


def _oracle_actions(obs: np.ndarray, t: np.ndarray, memory: np.ndarray, corridor_length: int, active: bool):
    """Batched oracle: (actions [N], updated memory [N]) given the current obs [N, 2] and step index t [N]."""
    memory = np.where((obs[:, 0] == 0) & (obs[:, 1] != 0), obs[:, 1], memory)
    horizon = corridor_length + (3 if active else 1)
    actions = np.full(t.shape, RIGHT, dtype=np.int64)
    if active:
        actions[t == 0] = LEFT
    actions[t == horizon - 1] = np.where(memory[t == horizon - 1] > 0, UP, DOWN)
    return actions, memory


# -- single env ------------------------------------------------------------------------------------


@pytest.mark.parametrize("active", [False, True])
@pytest.mark.parametrize("corridor_length", [1, 6])
def test_check_env(active: bool, corridor_length: int) -> None:
    env = TMaze(corridor_length=corridor_length, active=active)
    check_env(env, skip_render_check=True)
    assert env.observation_space == spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert env.action_space == spaces.Discrete(4)


@pytest.mark.parametrize(("active", "horizon"), [(False, 9), (True, 11)])
def test_episode_length_is_the_papers_horizon_whatever_the_agent_does(active: bool, horizon: int) -> None:
    env = TMaze(corridor_length=8, active=active)
    assert env.episode_length == horizon
    rng = np.random.default_rng(0)
    for ep in range(20):
        env.reset(seed=ep)
        policy = [lambda: RIGHT, lambda: UP, lambda: int(rng.integers(4))][ep % 3]
        for t in range(1, horizon + 1):
            _, _, terminated, truncated, info = env.step(policy())
            assert not truncated
            assert terminated == (t == horizon)
            assert ("success" in info) == (t == horizon)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(RIGHT)


def test_passive_trajectory_observations_and_rewards() -> None:
    env = TMaze(corridor_length=3, active=False, penalty=-0.25)
    obs, info = env.reset(seed=1)
    cue = info["cue"]
    assert cue in (-1, 1) and env.position == (0, 0)
    np.testing.assert_array_equal(obs, [0.0, cue])  # cue on the first observation
    obs, r, *_ = env.step(LEFT)  # wall: stays on the oracle, cue no longer shown, lags behind: penalty
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    assert env.position == (0, 0) and r == -0.25
    obs, r, *_ = env.step(UP)  # wall
    assert env.position == (0, 0) and r == -0.25
    obs, r, *_ = env.step(RIGHT)  # x = 1 < t = 3: still lagging
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    assert env.position == (1, 0) and r == -0.25
    obs, r, terminated, _, info = env.step(RIGHT)  # horizon L + 1 = 4 reached mid-corridor: failure, no penalty
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    assert terminated and r == 0.0 and info["success"] is False and info["cue"] == cue
    assert env.position == (2, 0)


def test_active_trajectory_cue_only_after_stepping_left() -> None:
    env = TMaze(corridor_length=2, active=True)
    obs, info = env.reset(seed=3)
    cue = info["cue"]
    assert env.position == (1, 0)
    np.testing.assert_array_equal(obs, [0.0, 0.0])  # the start cell shows nothing
    obs, r, *_ = env.step(LEFT)
    np.testing.assert_array_equal(obs, [0.0, cue])
    assert r == 0.0
    obs, r, *_ = env.step(LEFT)  # wall; the oracle shows the cue only once
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    assert r == pytest.approx(-0.5)  # paper penalty -1/L: x=0 < t - o = 1
    env.reset(seed=3)
    rewards = []
    for action in (LEFT, RIGHT, RIGHT, RIGHT):
        obs, r, *_ = env.step(action)
        rewards.append(r)
    np.testing.assert_array_equal(obs, [1.0, 0.0])
    obs, r, terminated, _, info = env.step(UP if cue == 1 else DOWN)
    np.testing.assert_array_equal(obs, [1.0, cue])
    assert terminated and r == 1.0 and info["success"] is True
    assert rewards == [0.0] * 4  # the oracle schedule is never penalized


@pytest.mark.parametrize(
    ("start", "action", "expected"),
    [
        ((0, 0), LEFT, (0, 0)),  # left of the oracle: wall
        ((0, 0), UP, (0, 0)),
        ((2, 0), DOWN, (2, 0)),  # up/down in the corridor: wall
        ((2, 0), RIGHT, (3, 0)),
        ((4, 0), RIGHT, (4, 0)),  # right of the junction: wall
        ((4, 0), UP, (4, 1)),
        ((4, 0), DOWN, (4, -1)),
        ((4, 1), UP, (4, 1)),  # beyond a goal cell: wall
        ((4, 1), LEFT, (4, 1)),
        ((4, 1), RIGHT, (4, 1)),
        ((4, 1), DOWN, (4, 0)),  # back onto the junction
        ((4, -1), UP, (4, 0)),
    ],
)
def test_transition_table(start: tuple[int, int], action: int, expected: tuple[int, int]) -> None:
    x, y = apply_moves(np.array([start[0]]), np.array([start[1]]), np.array([action]), junction_x=4)
    assert (int(x[0]), int(y[0])) == expected


def test_goal_cell_does_not_end_the_episode_and_only_the_final_cell_counts() -> None:
    env = TMaze(corridor_length=1, active=True, penalty=0.0)  # horizon 4: left, right, right, up/down
    _, info = env.reset(seed=0)
    cue = info["cue"]
    toward, away = (UP, DOWN) if cue == 1 else (DOWN, UP)
    env.step(RIGHT)
    env.step(RIGHT)
    assert env.position == (2, 0)
    obs, r, terminated, *_ = env.step(toward)  # on the right goal cell, but not at the horizon
    np.testing.assert_array_equal(obs, [1.0, cue])
    assert not terminated and r == 0.0 and env.position == (2, cue)
    obs, r, terminated, _, info = env.step(away)  # back to the junction on the last step
    assert terminated and r == 0.0 and info["success"] is False and env.position == (2, 0)


@pytest.mark.parametrize("active", [False, True])
@pytest.mark.parametrize("corridor_length", [1, 5, 20])
def test_oracle_policy_always_succeeds(active: bool, corridor_length: int) -> None:
    env = TMaze(corridor_length=corridor_length, active=active)
    successes, returns = [], []
    for ep in range(200):
        obs, _ = env.reset(seed=1000 + ep)
        memory, t, total, terminated = np.zeros(1), 0, 0.0, False
        while not terminated:
            actions, memory = _oracle_actions(obs[None], np.array([t]), memory, corridor_length, active)
            obs, r, terminated, _, info = env.step(int(actions[0]))
            total += r
            t += 1
        assert t == env.episode_length
        successes.append(info["success"])
        returns.append(total)
    assert np.mean(successes) == 1.0
    assert returns == [1.0] * 200


@pytest.mark.parametrize("active", [False, True])
def test_blind_turn_succeeds_half_the_time_and_always_up_never(active: bool) -> None:
    length = 4
    env = TMaze(corridor_length=length, active=active)
    blind, always_up = [], []
    for ep in range(1000):
        env.reset(seed=ep)
        for _ in range(env.episode_length - 1):
            env.step(RIGHT)
        blind.append(env.step(UP)[4]["success"])
        env.reset(seed=ep)
        for _ in range(env.episode_length):
            *_, info = env.step(UP)
        always_up.append(info["success"])
    assert 0.45 < np.mean(blind) < 0.55
    assert np.mean(always_up) == 0.0  # up is a wall away from the junction: never reaches a goal cell


def test_seeding_reproducible_and_reward_parameters() -> None:
    cues_a = [TMaze(active=True).reset(seed=s)[1]["cue"] for s in range(40)]
    cues_b = [TMaze(active=True).reset(seed=s)[1]["cue"] for s in range(40)]
    assert cues_a == cues_b and set(cues_a) == {-1, 1}
    env = TMaze(corridor_length=2, active=True, penalty=-0.3, distract_reward=0.5, goal_reward=3.0)
    _, info = env.reset(seed=5)
    assert env.step(LEFT)[1] == pytest.approx(0.5)  # on the oracle, on schedule: distract only
    assert env.step(LEFT)[1] == pytest.approx(0.2)  # on the oracle, lagging: distract + penalty
    assert env.step(RIGHT)[1] == pytest.approx(-0.3)  # x = 1 < t - o = 2
    _, info = env.reset(seed=5)
    rewards = [env.step(a)[1] for a in (LEFT, RIGHT, RIGHT, RIGHT, UP if info["cue"] == 1 else DOWN)]
    assert rewards == pytest.approx([0.5, 0.0, 0.0, 0.0, 3.0])
    assert TMaze(corridor_length=4).penalty == -0.25


def test_render_ansi() -> None:
    env = TMaze(corridor_length=3, active=True, render_mode="ansi")
    _, info = env.reset(seed=0)
    text = env.render()
    lines = text.splitlines()
    assert lines[1] == "OA---"  # oracle, agent on the start cell, corridor up to the junction
    assert ("*" in lines[0]) == (info["cue"] == 1)
    assert TMaze().render() is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"corridor_length": 0}, "corridor_length"),
        ({"corridor_length": 2.5}, "corridor_length"),
        ({"corridor_length": True}, "corridor_length"),
        ({"active": 1}, "active"),
        ({"goal_reward": float("nan")}, "goal_reward"),
        ({"penalty": 0.1}, "penalty"),
        ({"penalty": "x"}, "penalty"),
        ({"distract_reward": float("inf")}, "distract_reward"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TMaze(**kwargs)


def test_misuse_of_single_env() -> None:
    env = TMaze(corridor_length=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(RIGHT)
    with pytest.raises(RuntimeError, match="reset"):
        _ = env.cue
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(4)


# -- batched env ------------------------------------------------------------------------------------


def _single_envs_step(envs: list[TMaze], actions: np.ndarray):
    """SAME_STEP autoreset by hand over single envs."""
    obs, rewards, terms, truncs, finals, successes = [], [], [], [], {}, {}
    for i, (env, action) in enumerate(zip(envs, actions)):
        o, r, te, tr, info = env.step(int(action))
        if te or tr:
            finals[i] = o
            successes[i] = info["success"]
            o, _ = env.reset()
        obs.append(o)
        rewards.append(r)
        terms.append(te)
        truncs.append(tr)
    return np.stack(obs), np.array(rewards), np.array(terms), np.array(truncs), finals, successes


@pytest.mark.parametrize("active", [False, True])
@pytest.mark.parametrize("corridor_length", [1, 3, 6])
def test_batched_env_equals_single_envs_with_same_seeds(active: bool, corridor_length: int) -> None:
    vec = TMazeVectorEnv(N, corridor_length=corridor_length, active=active)
    singles = [TMaze(corridor_length=corridor_length, active=active) for _ in range(N)]
    obs, infos = vec.reset(seed=10)
    first = [env.reset(seed=10 + i) for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack([o for o, _ in first]))
    np.testing.assert_array_equal(infos["cue"], [i["cue"] for _, i in first])
    rng = np.random.default_rng(corridor_length + 100 * active)
    horizon = vec.episode_length
    ended = np.zeros(N, dtype=int)
    for step in range(4 * horizon):
        # mostly right so that junction/goal cells are reached, plus random moves
        actions = np.where(rng.random(N) < 0.6, RIGHT, rng.integers(0, 4, size=N)).astype(np.int64)
        obs, rewards, terminated, truncated, infos = vec.step(actions)
        s_obs, s_rewards, s_terms, s_truncs, finals, successes = _single_envs_step(singles, actions)
        np.testing.assert_array_equal(obs, s_obs)
        np.testing.assert_array_equal(rewards, s_rewards.astype(np.float32))
        np.testing.assert_array_equal(terminated, s_terms)
        np.testing.assert_array_equal(truncated, s_truncs)
        np.testing.assert_array_equal(infos["cue"], [env.cue for env in singles])
        assert (rewards.dtype, terminated.dtype, truncated.dtype, obs.dtype) == (np.float32, np.bool_, np.bool_, np.float32)
        if finals:
            np.testing.assert_array_equal(np.flatnonzero(infos["_final_obs"]), sorted(finals))
            np.testing.assert_array_equal(infos["_final_info"], infos["_final_obs"])
            for i, final in finals.items():
                np.testing.assert_array_equal(infos["final_obs"][i], final)
                assert infos["final_info"]["success"][i] == successes[i] == infos["success"][i]
        else:
            assert "final_obs" not in infos and "success" not in infos
        ended += terminated
    assert (ended == 4).all()  # fixed horizon: every sub-env ends together, 4 times


def test_info_layout_matches_gymnasium_same_step_sync_vector_env() -> None:
    vec = TMazeVectorEnv(N, corridor_length=2, active=True)
    ref = SyncVectorEnv([lambda: TMaze(corridor_length=2, active=True)] * N, autoreset_mode=AutoresetMode.SAME_STEP)
    seeds = [4, 100, 7, 0, 55]
    obs, infos = vec.reset(seed=seeds)
    ref_obs, ref_infos = ref.reset(seed=seeds)
    np.testing.assert_array_equal(obs, ref_obs)
    assert set(infos) == set(ref_infos) == {"cue", "_cue"}
    rng = np.random.default_rng(1)
    saw_final = False
    for _ in range(2 * vec.episode_length + 1):
        actions = rng.integers(0, 4, size=N)
        obs, rewards, terminated, truncated, infos = vec.step(actions)
        r_obs, r_rewards, r_terminated, r_truncated, r_infos = ref.step(actions)
        np.testing.assert_array_equal(obs, r_obs)
        np.testing.assert_allclose(rewards, r_rewards, rtol=1e-6)
        np.testing.assert_array_equal(terminated, r_terminated)
        np.testing.assert_array_equal(truncated, r_truncated)
        np.testing.assert_array_equal(infos["cue"], r_infos["cue"])
        for key in ("_final_obs", "_final_info"):
            assert (key in infos) == (key in r_infos)
        if "final_obs" in r_infos:
            saw_final = True
            np.testing.assert_array_equal(infos["_final_obs"], r_infos["_final_obs"])
            for i in np.flatnonzero(r_infos["_final_obs"]):
                np.testing.assert_array_equal(infos["final_obs"][i], r_infos["final_obs"][i])
            assert set(infos["final_info"]) == set(r_infos["final_info"]) == {"cue", "_cue", "success", "_success"}
            for key, value in r_infos["final_info"].items():
                np.testing.assert_array_equal(infos["final_info"][key], value)
    assert saw_final


@pytest.mark.parametrize("active", [False, True])
@pytest.mark.parametrize("corridor_length", [2, 10, 50])
def test_batched_oracle_scores_one_and_blind_policy_about_half(active: bool, corridor_length: int) -> None:
    vec = TMazeVectorEnv(20, corridor_length=corridor_length, active=active)
    obs, _ = vec.reset(seed=corridor_length)
    t, memory = np.zeros(20, dtype=np.int64), np.zeros(20)
    successes: list[bool] = []
    while len(successes) < 200:
        actions, memory = _oracle_actions(obs, t, memory, corridor_length, active)
        obs, rewards, terminated, _, infos = vec.step(actions)
        t += 1
        if terminated.any():
            successes.extend(infos["success"][terminated].tolist())
            assert (rewards[terminated] == 1.0).all()
            t[terminated], memory[terminated] = 0, 0.0
        else:
            assert (rewards == 0.0).all()
    assert np.mean(successes) == 1.0

    blind = TMazeVectorEnv(400, corridor_length=corridor_length, active=active)
    blind.reset(seed=7)
    outcomes = []
    for _ in range(4):
        for _ in range(blind.episode_length - 1):
            blind.step(np.full(400, RIGHT))
        outcomes.extend(blind.step(np.full(400, UP))[4]["success"].tolist())
    assert len(outcomes) == 1600 and 0.44 < np.mean(outcomes) < 0.56


def test_get_state_set_state_continues_identically() -> None:
    vec = TMazeVectorEnv(4, corridor_length=3, active=True)
    vec.reset(seed=0)
    rng = np.random.default_rng(2)
    for _ in range(7):
        vec.step(rng.integers(0, 4, size=4))
    arrays, state = vec.get_state()
    restored = TMazeVectorEnv(4, corridor_length=3, active=True)
    restored.set_state({k: v.copy() for k, v in arrays.items()}, dict(state))
    actions = rng.integers(0, 4, size=(25, 4))
    for a in actions:  # spans several autoresets, so the generators' states matter
        out_a, out_b = vec.step(a), restored.step(a)
        for x, y in zip(out_a[:4], out_b[:4]):
            np.testing.assert_array_equal(x, y)
        assert set(out_a[4]) == set(out_b[4])
        np.testing.assert_array_equal(out_a[4]["cue"], out_b[4]["cue"])
    with pytest.raises(ValueError, match="active"):
        TMazeVectorEnv(4, corridor_length=3, active=False).set_state(arrays, state)
    with pytest.raises(ValueError, match="num_envs"):
        TMazeVectorEnv(2, corridor_length=3, active=True).set_state(arrays, state)


def test_state_captures_oracle_visit() -> None:
    vec = TMazeVectorEnv(1, corridor_length=2, active=True)
    vec.reset(seed=0)
    vec.step(np.array([LEFT]))  # cue shown, oracle now visited
    arrays, state = vec.get_state()
    assert arrays["visited"].tolist() == [True]
    restored = TMazeVectorEnv(1, corridor_length=2, active=True)
    restored.set_state(arrays, state)
    obs = restored.step(np.array([LEFT]))[0]
    np.testing.assert_array_equal(obs, [[0.0, 0.0]])


def test_spaces_reset_mask_and_misuse() -> None:
    vec = TMazeVectorEnv(4, corridor_length=2)
    assert vec.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert vec.single_observation_space == spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert vec.single_action_space == spaces.Discrete(4)
    assert vec.action_space == spaces.MultiDiscrete([4, 4, 4, 4])
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros(4, dtype=np.int64))
    obs_int, _ = vec.reset(seed=20)
    obs_list, _ = vec.reset(seed=[20, 21, 22, 23])
    np.testing.assert_array_equal(obs_int, obs_list)
    assert vec.observation_space.contains(obs_int)
    vec.step(np.full(4, RIGHT))
    obs, infos = vec.reset(options={"reset_mask": np.array([False, True, False, False])})
    np.testing.assert_array_equal(infos["_cue"], [False, True, False, False])
    np.testing.assert_array_equal(vec._x, [1, 0, 1, 1])
    assert obs[1, 1] == infos["cue"][1] != 0
    with pytest.raises(ValueError, match="actions"):
        vec.step(np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="num_envs=4"):
        vec.reset(seed=[1, 2])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_envs": 0}, "num_envs"),
        ({"num_envs": 2, "corridor_length": -1}, "corridor_length"),
        ({"num_envs": 2, "active": "yes"}, "active"),
        ({"num_envs": 2, "penalty": 1.0}, "penalty"),
    ],
)
def test_batched_invalid_arguments_raise_config_error(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TMazeVectorEnv(**kwargs)


# -- registration and make_vec_env ----------------------------------------------------------------


@pytest.mark.parametrize(("env_id", "active"), [(PASSIVE_ID, False), (ACTIVE_ID, True)])
def test_registration_and_make_vec_env(env_id: str, active: bool) -> None:
    assert env_id in REGISTERED_ENV_IDS
    env = gymnasium.make(env_id, corridor_length=7)
    assert isinstance(env.unwrapped, TMaze)
    assert (env.unwrapped.corridor_length, env.unwrapped.active) == (7, active)
    vec = gymnasium.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", corridor_length=4)
    assert isinstance(vec, TMazeVectorEnv) and (vec.num_envs, vec.corridor_length, vec.active) == (3, 4, active)
    vec = make_vec_env(env_id, n_envs=2, env_kwargs={"corridor_length": 5, "penalty": -0.5})
    assert isinstance(vec, TMazeVectorEnv)
    assert (vec.num_envs, vec.corridor_length, vec.active, vec.penalty) == (2, 5, active, -0.5)
    vec = make_vec_env(TMaze(corridor_length=6, active=active, goal_reward=2.0, distract_reward=0.1), n_envs=3)
    assert isinstance(vec, TMazeVectorEnv)
    assert (vec.num_envs, vec.corridor_length, vec.active, vec.goal_reward, vec.distract_reward) == (3, 6, active, 2.0, 0.1)
    with pytest.raises(ConfigError, match="corridor_length"):
        make_vec_env(env_id, n_envs=2, env_kwargs={"corridor_length": 0})
