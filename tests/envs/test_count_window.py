"""The RLtools count-the-ones memory task: seed defaults, oracle/constant policies, counts, batching, errors."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import tracerl.envs  # noqa: F401  (registers the ids)
from tracerl.envs import CountWindow, CountWindowVectorEnv, make_vec_env
from tracerl.envs.count_window import MODES
from tracerl.errors import ConfigError

ID = "tracerl/CountWindow-v0"


def _target_from_history(history: list[int], horizon: int, mode: str) -> int:
    """Reference answer from an explicit list of the inputs seen so far."""
    window = history[-horizon:]
    if mode == "count_input":
        return sum(window)
    for lag, x in enumerate(reversed(window)):
        if x == 1:
            return lag
    return horizon


def _oracle_action(history: list[int], horizon: int, mode: str) -> np.ndarray:
    return np.array([np.float32(_target_from_history(history, horizon, mode)) / np.float32(horizon)], dtype=np.float32)


@pytest.mark.parametrize("mode", MODES)
def test_passes_gymnasium_env_checker(mode: str) -> None:
    check_env(CountWindow(horizon=4, episode_length=30, mode=mode), skip_render_check=True)


def test_seed_defaults() -> None:
    env = CountWindow()
    assert (env.horizon, env.p, env.episode_length, env.mode) == (10, 0.2, 2000, "count_input")
    assert CountWindow(horizon=4).p == 0.5 and CountWindow(horizon=3, p=0.7).p == 0.7
    assert env.observation_space == gymnasium.spaces.Box(0.0, 1.0, (1,), np.float32)
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
    made = gymnasium.make(ID, horizon=6, mode="steps_since_input")
    assert isinstance(made.unwrapped, CountWindow) and (made.unwrapped.horizon, made.unwrapped.mode) == (6, "steps_since_input")


def test_input_frequency_follows_p() -> None:
    env = CountWindow(horizon=10, episode_length=2000)
    obs, _ = env.reset(seed=3)
    seen = [obs[0]]
    for _ in range(2000):
        obs, *_ = env.step(np.zeros(1, np.float32))
        seen.append(obs[0])
    assert set(seen) <= {0.0, 1.0}
    assert 0.17 < np.mean(seen) < 0.23  # p = 0.2, 2001 draws: sd ~ 0.009


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("horizon", [1, 3, 10])
def test_oracle_gets_zero_penalty_every_step_and_constant_is_strictly_worse(mode: str, horizon: int) -> None:
    env = CountWindow(horizon=horizon, episode_length=300, mode=mode)
    obs, info = env.reset(seed=horizon)
    history = [int(obs[0])]
    oracle_return, steps = 0.0, 0
    truncated = False
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(_oracle_action(history, horizon, mode))
        assert reward == 0.0 and not terminated
        oracle_return += reward
        history.append(int(obs[0]))
        steps += 1
    assert steps == 300
    for const in (0.0, 0.2, 0.5, 1.0):
        env.reset(seed=horizon)
        const_return, truncated = 0.0, False
        while not truncated:
            _, reward, _, truncated, _ = env.step(np.array([const], np.float32))
            assert reward <= 0.0
            const_return += reward
        assert const_return < oracle_return


@pytest.mark.parametrize("mode", MODES)
def test_reward_is_minus_distance_to_scaled_target(mode: str) -> None:
    env = CountWindow(horizon=5, episode_length=50, mode=mode, p=0.5)
    obs, info = env.reset(seed=0)
    for _ in range(50):
        a = np.float32(0.37)
        expected = -abs(float(a) - info["target"] / 5)
        obs, reward, *_, info = env.step(np.array([a]))
        assert reward == pytest.approx(expected, abs=1e-6)


class _ScriptedCountWindow(CountWindow):
    """CountWindow whose inputs are a fixed, hand-made sequence instead of random draws."""

    def __init__(self, inputs: list[int], **kwargs) -> None:
        super().__init__(episode_length=len(inputs) - 1, **kwargs)
        self._script = np.array(inputs, dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed, options=options)
        self._inputs = self._script.copy()
        return self._obs_info()


def test_info_count_on_a_hand_made_sequence() -> None:
    inputs = [1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0]
    expected_counts = [1, 1, 2, 2, 2, 1, 0, 1, 1, 1, 0, 0]  # ones among the last 3 inputs
    expected_since = [0, 1, 0, 0, 1, 2, 3, 0, 1, 2, 3, 3]  # steps since the last 1, 3 if none in the window
    env = _ScriptedCountWindow(inputs, horizon=3, mode="steps_since_input")
    obs, info = env.reset(seed=0)
    counts, since, seen = [info["count"]], [info["target"]], [int(obs[0])]
    truncated = False
    while not truncated:
        obs, _, _, truncated, info = env.step(np.zeros(1, np.float32))
        counts.append(info["count"])
        since.append(info["target"])
        seen.append(int(obs[0]))
    assert seen == inputs
    assert counts == expected_counts
    assert since == expected_since
    env_count = _ScriptedCountWindow(inputs, horizon=3)
    _, info = env_count.reset()
    assert info["target"] == info["count"] == 1


def _single_envs_step(envs, actions):
    obs, rewards, truncs, finals, counts = [], [], [], {}, []
    for i, (env, action) in enumerate(zip(envs, actions)):
        o, r, te, tr, info = env.step(action)
        assert not te
        if tr:
            finals[i] = (o, info["count"])
            o, info = env.reset()
        obs.append(o)
        rewards.append(r)
        truncs.append(tr)
        counts.append(info["count"])
    return np.stack(obs), np.array(rewards, np.float32), np.array(truncs), finals, np.array(counts)


@pytest.mark.parametrize("mode", MODES)
def test_batched_env_equals_single_envs_with_same_seeds(mode: str) -> None:
    n, length = 4, 7
    vec = CountWindowVectorEnv(n, horizon=3, episode_length=length, mode=mode, p=0.4)
    singles = [CountWindow(horizon=3, episode_length=length, mode=mode, p=0.4) for _ in range(n)]
    obs, infos = vec.reset(seed=20)
    first = [env.reset(seed=20 + i) for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack([o for o, _ in first]))
    np.testing.assert_array_equal(infos["count"], [i["count"] for _, i in first])
    rng = np.random.default_rng(1)
    ended = 0
    for _ in range(3 * length):
        actions = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
        obs, rewards, terminated, truncated, infos = vec.step(actions)
        s_obs, s_rewards, s_truncs, finals, s_counts = _single_envs_step(singles, actions)
        np.testing.assert_array_equal(obs, s_obs)
        np.testing.assert_array_equal(rewards, s_rewards)
        np.testing.assert_array_equal(truncated, s_truncs)
        np.testing.assert_array_equal(infos["count"], s_counts)
        assert not terminated.any() and obs.dtype == np.float32 and rewards.dtype == np.float32
        if finals:
            assert sorted(finals) == np.flatnonzero(infos["_final_obs"]).tolist() == np.flatnonzero(infos["_final_info"]).tolist()
            for i, (final_obs, final_count) in finals.items():
                np.testing.assert_array_equal(infos["final_obs"][i], final_obs)
                assert infos["final_info"]["count"][i] == final_count
            ended += len(finals)
        else:
            assert "final_obs" not in infos and "final_info" not in infos
    assert ended == 3 * n


def test_vector_get_state_set_state_continues_exactly() -> None:
    vec = CountWindowVectorEnv(3, horizon=4, episode_length=5)
    vec.reset(seed=0)
    actions = np.full((3, 1), 0.25, np.float32)
    vec.step(actions)
    arrays, state = vec.get_state()
    expected = [vec.step(actions) for _ in range(8)]
    other = CountWindowVectorEnv(3, horizon=4, episode_length=5)
    other.set_state(arrays, state)
    for exp in expected:
        got = other.step(actions)
        for g, e in zip(got[:4], exp[:4]):
            np.testing.assert_array_equal(g, e)
    with pytest.raises(ValueError, match="horizon"):
        CountWindowVectorEnv(3, horizon=5, episode_length=5).set_state(arrays, state)


def test_make_vec_env_returns_native_batched_env() -> None:
    vec = make_vec_env(ID, n_envs=3, env_kwargs={"horizon": 5, "mode": "steps_since_input"})
    assert isinstance(vec, CountWindowVectorEnv) and (vec.num_envs, vec.horizon, vec.mode) == (3, 5, "steps_since_input")
    vec = make_vec_env(CountWindow(horizon=6, p=0.3, episode_length=40), n_envs=2)
    assert isinstance(vec, CountWindowVectorEnv) and (vec.num_envs, vec.horizon, vec.p, vec.episode_length) == (2, 6, 0.3, 40)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"horizon": 0}, "horizon"),
        ({"horizon": 2.0}, "horizon"),
        ({"horizon": True}, "horizon"),
        ({"p": 1.5}, "p="),
        ({"p": -0.1}, "p="),
        ({"p": "0.2"}, "p="),
        ({"episode_length": 0}, "episode_length"),
        ({"mode": "count"}, "mode"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_invalid_arguments_raise_config_error_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        CountWindow(**kwargs)
    if "render_mode" not in kwargs:
        with pytest.raises(ConfigError, match=field):
            CountWindowVectorEnv(2, **kwargs)


def test_misuse_raises() -> None:
    with pytest.raises(ConfigError, match="num_envs"):
        CountWindowVectorEnv(0)
    env = CountWindow(episode_length=1)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([1.5], np.float32))
    env.step(np.zeros(1, np.float32))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, np.float32))
    vec = CountWindowVectorEnv(2)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros((2, 1), np.float32))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        vec.step(np.zeros(2, np.float32))
