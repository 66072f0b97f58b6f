"""The masked-velocity CartPole: gymnasium's CartPole-v1 dynamics, velocities hidden, success = reaching the cap."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from tracerl.envs import REGISTERED_ENV_IDS, MaskedCartPole, MaskedCartPoleVectorEnv, make_vec_env
from tracerl.envs.masked_cartpole import cartpole_step
from tracerl.errors import ConfigError

ID = "tracerl/MaskedCartPole-v0"


def _gym_cartpole() -> gymnasium.Env:
    return gymnasium.make("CartPole-v1").unwrapped


def test_one_step_equals_gymnasium_cartpole_for_the_same_state_and_action() -> None:
    gym_env = _gym_cartpole()
    gym_env.reset(seed=0)
    rng = np.random.default_rng(3)
    states = rng.uniform(-0.2, 0.2, size=(64, 4)) * np.array([10.0, 5.0, 1.0, 10.0])
    actions = rng.integers(0, 2, size=64)
    new, fallen = cartpole_step(states, actions)
    for i in range(64):
        gym_env.state = states[i].copy()
        gym_env.steps_beyond_terminated = None
        obs, reward, terminated, _, _ = gym_env.step(int(actions[i]))
        np.testing.assert_allclose(new[i], gym_env.state, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(new[i].astype(np.float32), obs)
        assert bool(fallen[i]) == terminated
    assert fallen.any() and not fallen.all()  # both outcomes were compared


def test_episodes_follow_gymnasium_cartpole_from_the_same_seed_with_velocities_hidden() -> None:
    gym_env = _gym_cartpole()
    env = MaskedCartPole(max_steps=500)
    rng = np.random.default_rng(0)
    for seed in range(5):
        gym_obs, _ = gym_env.reset(seed=seed)
        obs, _ = env.reset(seed=seed)
        assert obs.shape == (2,) and obs.dtype == np.float32
        np.testing.assert_array_equal(obs, gym_obs[[0, 2]])
        terminated = False
        steps = 0
        while not terminated:
            action = int(rng.integers(0, 2))
            gym_obs, gym_r, gym_term, _, _ = gym_env.step(action)
            obs, r, terminated, truncated, info = env.step(action)
            steps += 1
            np.testing.assert_allclose(obs, gym_obs[[0, 2]], rtol=1e-6, atol=1e-7)
            assert (r, terminated, truncated) == (gym_r, gym_term, False)
        assert info == {"success": False} and steps > 1


def test_observation_hides_both_velocities() -> None:
    env = MaskedCartPole()
    env.reset(seed=1)
    env.state = np.array([0.1, 1.5, -0.02, -0.7])
    obs, *_ = env.step(1)
    np.testing.assert_array_equal(obs, env.state[[0, 2]].astype(np.float32))
    assert env.observation_space.shape == (2,)
    # two states that differ only in their velocities look the same
    a, b = MaskedCartPoleVectorEnv(2), MaskedCartPoleVectorEnv(2)
    a.reset(seed=0)
    b.reset(seed=0)
    b._state[:, [1, 3]] += 0.5
    np.testing.assert_array_equal(a._observe(), b._observe())


def test_reaching_the_cap_is_success_and_truncates() -> None:
    env = MaskedCartPole(max_steps=3)
    env.reset(seed=0)
    out = [env.step(i % 2) for i in range(3)]
    assert [o[3] for o in out] == [False, False, True] and not any(o[2] for o in out)
    assert "success" not in out[0][4] and out[2][4] == {"success": True}
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(0)


def test_batched_env_equals_seeded_single_envs() -> None:
    n = 4
    vec = MaskedCartPoleVectorEnv(n, max_steps=30)
    singles = [MaskedCartPole(max_steps=30) for _ in range(n)]
    obs, _ = vec.reset(seed=7)
    np.testing.assert_array_equal(obs, np.stack([s.reset(seed=7 + i)[0] for i, s in enumerate(singles)]))
    rng = np.random.default_rng(1)
    ended = {"term": 0, "trunc": 0}
    for _ in range(200):
        actions = rng.integers(0, 2, size=n)
        obs, rewards, term, trunc, infos = vec.step(actions)
        expected = []
        for i, (env, a) in enumerate(zip(singles, actions)):
            o, r, te, tr, info = env.step(int(a))
            assert (te, tr, r) == (term[i], trunc[i], rewards[i])
            if te or tr:
                np.testing.assert_array_equal(infos["final_obs"][i], o)
                assert infos["final_info"]["success"][i] == info["success"] and infos["final_info"]["_success"][i]
                o, _ = env.reset()
            expected.append(o)
        np.testing.assert_array_equal(obs, np.stack(expected))
        ended["term"] += int(term.sum())
        ended["trunc"] += int((trunc & ~term).sum())
    assert ended["term"] > 0 and ended["trunc"] > 0  # both kinds of episode end were compared


def test_reset_with_a_seed_is_deterministic_and_state_resumes_exactly() -> None:
    a, b = MaskedCartPoleVectorEnv(3), MaskedCartPoleVectorEnv(3)
    np.testing.assert_array_equal(a.reset(seed=5)[0], b.reset(seed=5)[0])
    assert not np.array_equal(a.reset(seed=5)[0], b.reset(seed=6)[0])
    rng = np.random.default_rng(0)
    for _ in range(40):
        a.step(rng.integers(0, 2, size=3))
    arrays, state = a.get_state()
    c = MaskedCartPoleVectorEnv(3)
    c.set_state(arrays, state)
    for _ in range(60):
        act = rng.integers(0, 2, size=3)
        np.testing.assert_array_equal(a.step(act)[0], c.step(act)[0])


def test_registered_id_builds_single_and_batched_envs() -> None:
    assert ID in REGISTERED_ENV_IDS
    env = gymnasium.make(ID, max_steps=50)
    assert isinstance(env.unwrapped, MaskedCartPole) and env.unwrapped.max_steps == 50
    vec = make_vec_env(ID, n_envs=4, env_kwargs={"max_steps": 50})
    assert isinstance(vec, MaskedCartPoleVectorEnv) and (vec.num_envs, vec.max_steps) == (4, 50)


@pytest.mark.faults("MaskedCartPole built with a bad max_steps | ConfigError naming max_steps | nothing")
@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "200"])
def test_bad_max_steps_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="max_steps"):
        MaskedCartPole(max_steps=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_steps"):
        MaskedCartPoleVectorEnv(2, max_steps=bad)  # type: ignore[arg-type]


def test_bad_actions_are_rejected() -> None:
    vec = MaskedCartPoleVectorEnv(2)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="values in"):
        vec.step(np.array([0, 2]))
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.array([0]))
