"""``PolicyConfig.squash``: None (the default) tanh-squashes a Box action into its bounds when every bound is finite
and clips otherwise; an explicit True or False wins; checkpoints written before the default keep what they had."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tracerl import TraceRL
from tracerl.errors import ConfigError
from tracerl.policies import PolicyConfig, RecurrentActorCritic

OBS = gym.spaces.Box(-1, 1, shape=(3,), dtype=np.float32)
BOUNDED = gym.spaces.Box(-2, 2, shape=(2,), dtype=np.float32)
HALF_OPEN = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, np.inf], np.float32))


def _policy(action_space: gym.Space, **kw) -> RecurrentActorCritic:
    torch.manual_seed(0)
    return RecurrentActorCritic(OBS, action_space, PolicyConfig(hidden_size=8, **kw))


def test_a_box_with_finite_bounds_is_squashed_by_default_and_any_other_action_space_is_not():
    assert _policy(BOUNDED).config.squash is True and _policy(BOUNDED).actor.squash is True
    assert _policy(HALF_OPEN).config.squash is False and _policy(HALF_OPEN).actor.squash is False
    assert _policy(gym.spaces.Discrete(3)).config.squash is False
    assert _policy(gym.spaces.MultiBinary(2)).config.squash is False


def test_an_explicit_setting_wins_and_an_impossible_one_still_raises():
    assert _policy(BOUNDED, squash=False).actor.squash is False
    with pytest.raises(ConfigError, match="squash"):
        _policy(HALF_OPEN, squash=True)


def test_the_default_keeps_sampled_actions_off_the_bounds_where_clipping_piles_them_up():
    """A clipped Gaussian (std 1 on bounds at +-2) puts ~5 % of its mass on the bounds themselves; the squashed one
    stays strictly inside them (tanh reaches +-1 in float32 only beyond |u| ~ 9, 9 standard deviations out)."""
    def on_bounds(**kw) -> float:
        pol = _policy(BOUNDED, use_prev_action=False, **kw)
        dist, _, _ = pol(torch.zeros(1, 4096, 3), pol.initial_state(4096), torch.ones(1, 4096, dtype=torch.bool))
        actions = pol.actor.to_env(dist.sample())
        assert np.all(np.abs(actions) <= 2.0)
        return float(np.mean(np.abs(actions) == 2.0))

    assert on_bounds() == 0.0
    assert on_bounds(squash=False) > 0.02


def test_the_agent_trains_and_saves_the_resolved_choice(tmp_path):
    agent = TraceRL(env="Pendulum-v1", memory="gru", seed=0, n_envs=2, n_steps=16, batch_size=32, n_epochs=1)
    assert agent.policy_config.squash is True
    agent.learn(64)
    agent.save(tmp_path / "a")
    loaded = TraceRL.load(tmp_path / "a")
    assert loaded.policy_config.squash is True
    obs = np.zeros(3, dtype=np.float32)
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_a_checkpoint_written_with_clipping_loads_with_clipping(tmp_path):
    agent = TraceRL(env="Pendulum-v1", memory="gru", seed=0, squash=False, n_envs=2, n_steps=16, batch_size=32,
                    n_epochs=1)
    agent.learn(32)
    agent.save(tmp_path / "a")
    loaded = TraceRL.load(tmp_path / "a")
    assert loaded.policy_config.squash is False and loaded.policy.actor.squash is False


# -- the PPO family's learning rate follows the action space too ---------------------------------------------------
def test_the_learning_rate_defaults_to_3e_3_for_discrete_actions_and_1e_3_for_box_actions():
    small = dict(memory="gru", seed=0, n_envs=2, n_steps=16, batch_size=32, n_epochs=1)
    box, discrete = TraceRL(env="Pendulum-v1", **small), TraceRL(env="CartPole-v1", **small)
    assert box.config.learning_rate == 1e-3 and discrete.config.learning_rate == 3e-3
    assert box.ppo.optimizer.param_groups[0]["lr"] == 1e-3
    assert TraceRL(env="Pendulum-v1", learning_rate=5e-4, **small).config.learning_rate == 5e-4  # explicit wins
    assert TraceRL(env="Pendulum-v1", algo="a2c", **{**small, "batch_size": -1}).config.learning_rate == 7e-4


def test_the_resolved_learning_rate_is_saved_and_a_linear_schedule_starts_from_it(tmp_path):
    agent = TraceRL(env="Pendulum-v1", memory="gru", seed=0, n_envs=2, n_steps=16, batch_size=32, n_epochs=1,
                    lr_schedule="linear")
    agent.learn(64)
    assert agent.ppo.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * (1 - 32 / 64))
    agent.save(tmp_path / "a")
    assert TraceRL.load(tmp_path / "a").config.learning_rate == 1e-3
