"""The single delayed-cue env: API conformance, observation layout, rewards, errors."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils import seeding
from gymnasium.utils.env_checker import check_env

from tracerl.envs import CueDelay, MemoryTaskEnv
from tracerl.errors import ConfigError


def _episode(env: CueDelay, actions: list[int] | None = None, seed: int | None = None):
    """Run one episode; returns (observations [delay, 3] seen before each action, rewards, infos, final obs)."""
    obs, info = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], [info]
    for k in range(env.delay):
        action = 0 if actions is None else actions[k]
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        infos.append(info)
        assert truncated is False
        assert terminated is (k == env.delay - 1)
        observations.append(obs)
    return np.stack(observations[:-1]), rewards, infos, observations[-1]


@pytest.mark.parametrize("delay", [1, 8])
@pytest.mark.parametrize("difficulty", [0, 1])
def test_passes_gymnasium_env_checker(delay: int, difficulty: int) -> None:
    check_env(CueDelay(delay=delay, difficulty=difficulty), skip_render_check=True)


def test_spaces_and_alias() -> None:
    env = MemoryTaskEnv(delay=5, difficulty=1)
    assert isinstance(env, CueDelay) and (env.delay, env.difficulty) == (5, 1)
    assert env.observation_space.shape == (3,) and env.observation_space.dtype == np.float32
    assert float(env.observation_space.low.min()) == -1.0 and float(env.observation_space.high.max()) == 1.0
    assert env.action_space.n == 2


def test_episode_is_drawn_with_one_integers_call_from_np_random() -> None:
    env = CueDelay(delay=9, difficulty=1)
    observations, _, _, _ = _episode(env, seed=123)
    rng, _ = seeding.np_random(123)
    expected = 2 * rng.integers(0, 2, size=9) - 1
    np.testing.assert_array_equal(observations[:, 0], expected.astype(np.float32))


def test_same_seed_same_episode_and_cue_is_roughly_uniform() -> None:
    env = CueDelay(delay=4, difficulty=1)
    first = _episode(env, seed=7)[0]
    np.testing.assert_array_equal(first, _episode(env, seed=7)[0])
    cues = [env.reset(seed=s)[1]["cue"] for s in range(400)]
    assert set(cues) == {-1, 1}
    assert 0.4 < np.mean(np.array(cues) == 1) < 0.6


@pytest.mark.parametrize("delay", [1, 2, 6])
def test_flags_mark_first_and_decision_observations(delay: int) -> None:
    env = CueDelay(delay=delay, difficulty=1)
    observations, _, infos, final_obs = _episode(env, seed=3)
    cue_flags, decision_flags = observations[:, 1], observations[:, 2]
    np.testing.assert_array_equal(cue_flags, np.eye(1, delay, 0, dtype=np.float32)[0])
    np.testing.assert_array_equal(decision_flags, np.eye(1, delay, delay - 1, dtype=np.float32)[0])
    assert observations[0, 0] == infos[0]["cue"]
    np.testing.assert_array_equal(final_obs, np.zeros(3, dtype=np.float32))


def test_difficulty_0_shows_zeros_after_the_cue() -> None:
    env = CueDelay(delay=12, difficulty=0)
    for seed in range(20):
        observations, _, infos, _ = _episode(env, seed=seed)
        assert observations[0, 0] in (-1.0, 1.0)
        np.testing.assert_array_equal(observations[1:, 0], np.zeros(11, dtype=np.float32))


def test_difficulty_1_shows_balanced_plus_minus_one_distractors() -> None:
    env = CueDelay(delay=50, difficulty=1)
    distractors = np.concatenate([_episode(env, seed=seed)[0][1:, 0] for seed in range(40)])
    assert set(np.unique(distractors).tolist()) == {-1.0, 1.0}
    assert 0.45 < np.mean(distractors == 1.0) < 0.55


@pytest.mark.parametrize("difficulty", [0, 1])
def test_oracle_always_wins_and_constant_policy_averages_zero(difficulty: int) -> None:
    env = CueDelay(delay=5, difficulty=difficulty)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    oracle_returns = []
    for _ in range(200):
        obs, info = env.reset()
        remembered = obs[0]
        episode_return, terminated = 0.0, False
        while not terminated:
            action = int(remembered > 0) if obs[2] == 1.0 else int(rng.integers(2))
            obs, reward, terminated, _, info = env.step(action)
            episode_return += reward
        assert info["success"] is True
        oracle_returns.append(episode_return)
    assert oracle_returns == [1.0] * 200

    constant_returns = [sum(_episode(env, actions=[1] * 5)[1]) for _ in range(2000)]
    assert set(constant_returns) == {-1.0, 1.0}
    assert abs(np.mean(constant_returns)) < 0.1


def test_reward_only_on_the_last_step_and_info_keys() -> None:
    env = CueDelay(delay=4)
    obs, info = env.reset(seed=5)
    cue = info["cue"]
    wrong = 0 if cue == 1 else 1
    _, rewards, infos, _ = _episode(env, actions=[1 - wrong, 1 - wrong, 1 - wrong, wrong], seed=5)
    assert rewards == [0.0, 0.0, 0.0, -1.0]
    assert all(i["cue"] == cue and isinstance(i["cue"], int) for i in infos)
    assert all("success" not in i for i in infos[:-1]) and infos[-1]["success"] is False


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"delay": 0}, "delay"),
        ({"delay": -3}, "delay"),
        ({"delay": 2.5}, "delay"),
        ({"delay": True}, "delay"),
        ({"difficulty": 2}, "difficulty"),
        ({"difficulty": -1}, "difficulty"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_invalid_arguments_raise_config_error_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field) as excinfo:
        CueDelay(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(excinfo.value)


def test_stepping_a_finished_or_unreset_env_raises_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        CueDelay(delay=2).step(0)
    env = CueDelay(delay=2)
    _episode(env, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset()
    env.step(1)  # a reset makes the env steppable again


def test_invalid_action_raises_value_error() -> None:
    env = CueDelay(delay=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(2)


def test_ansi_render_describes_the_observation() -> None:
    env = CueDelay(delay=3, render_mode="ansi")
    env.reset(seed=0)
    assert env.render().startswith("t=0/3 signal=") and "cue_flag=1" in env.render()
    assert CueDelay(delay=3).render() is None
