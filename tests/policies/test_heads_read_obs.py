"""``PolicyConfig.heads_read_obs``: the PPO family's heads read the current observation beside the memory's output
(on by default for every core with memory, off for the stateless ``mlp`` and for the off-policy networks)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tracerl import TraceRL
from tracerl.errors import ConfigError
from tracerl.memory import GRUCore
from tracerl.policies import PolicyConfig, RecurrentActorCritic

OBS = gym.spaces.Box(-1, 1, shape=(3,), dtype=np.float32)
ACT = gym.spaces.Discrete(4)
CUE = {"delay": 3, "difficulty": 1}


def _policy(space: gym.Space = OBS, **kw) -> RecurrentActorCritic:
    torch.manual_seed(0)
    return RecurrentActorCritic(space, ACT, PolicyConfig(hidden_size=8, **kw))


def test_every_core_with_memory_feeds_the_observation_to_the_heads_by_default_and_the_stateless_mlp_does_not():
    gru = _policy()
    assert gru.config.heads_read_obs is True and gru.head_dim == 8 + 3
    assert gru.actor.logits.in_features == 11 and gru.critic.value.in_features == 11
    mlp = _policy(memory="mlp")
    assert mlp.config.heads_read_obs is False and mlp.head_dim == 8
    given = RecurrentActorCritic(OBS, ACT, PolicyConfig(), memory=GRUCore(input_dim=5, hidden_size=6))
    assert given.config.heads_read_obs is True and given.head_dim == 6 + 3  # a core object decides by its class
    assert _policy(heads_read_obs=False).head_dim == 8  # an explicit setting wins
    assert _policy(memory="mlp", heads_read_obs=True).head_dim == 8 + 3


@pytest.mark.parametrize("heads_read_obs", [True, False])
def test_the_heads_see_the_current_observation_only_through_the_new_path(heads_read_obs):
    """With the encoder silenced (weights zero: the memory reads the same input whatever is observed), the action
    distribution and the value still follow the observation when the heads read it, and do not otherwise."""
    pol = _policy(heads_read_obs=heads_read_obs, use_prev_action=False)
    with torch.no_grad():
        for p in pol.encoder.net.parameters():
            p.zero_()
        for head in (pol.actor.logits, pol.critic.value):
            head.weight.normal_()
    state, cont = pol.initial_state(1), torch.zeros(1, 1, dtype=torch.bool)
    d1, v1, _ = pol(torch.full((1, 1, 3), -0.5), state, cont)
    d2, v2, _ = pol(torch.full((1, 1, 3), 0.5), state, cont)
    assert (not torch.allclose(d1.logits, d2.logits)) is heads_read_obs
    assert (not torch.allclose(v1, v2)) is heads_read_obs


def test_stepping_one_observation_at_a_time_gives_the_whole_sequences_heads():
    pol = _policy()
    T, B = 12, 3
    gen = torch.Generator().manual_seed(1)
    obs = torch.rand(T, B, 3, generator=gen) * 2 - 1
    starts = torch.rand(T, B, generator=gen) < 0.25
    starts[0] = True
    actions = torch.randint(0, 4, (T, B), generator=gen)
    prev = torch.cat([torch.zeros(1, B, dtype=torch.int64), actions[:-1]])
    whole = pol.forward_full(obs, pol.initial_state(B), starts, prev)
    state, logits, values = pol.initial_state(B), [], []
    for t in range(T):
        dist, value, state = pol(obs[t : t + 1], state, starts[t : t + 1], prev[t : t + 1])
        logits.append(dist.logits)
        values.append(value)
    torch.testing.assert_close(torch.cat(logits), whole.dist.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat(values), whole.value, rtol=1e-5, atol=1e-5)
    assert whole.features.shape == (T, B, 8)  # the core's output, for inspection and auxiliary losses


def test_an_image_reaches_the_heads_as_its_cnn_features_not_its_pixels():
    space = gym.spaces.Box(0, 255, shape=(16, 16, 3), dtype=np.uint8)
    pol = _policy(space)
    assert pol.encoder.cnns and pol.encoder.mlp_input_dim < pol.encoder.input_dim
    assert pol.head_dim == 8 + pol.encoder.mlp_input_dim
    pixels = torch.randint(0, 256, (2, 1, 16 * 16 * 3)).float() / 255
    dist, value, _ = pol(pixels, pol.initial_state(1), torch.ones(2, 1, dtype=torch.bool), torch.zeros(2, 1).long())
    assert dist.logits.shape == (2, 1, 4) and value.shape == (2, 1)


def test_the_off_policy_networks_refuse_it_and_resolve_the_default_to_off():
    with pytest.raises(ConfigError, match="heads_read_obs"):
        TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, algo="r2d2", heads_read_obs=True, verbose=0)
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, algo="r2d2", verbose=0)
    assert agent.policy_config.heads_read_obs is False


def test_a_checkpoint_written_before_the_heads_read_the_observation_loads_without_it(tmp_path):
    from checkpoint_edit import read_raw, write_rehashed

    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, heads_read_obs=False, seed=0, verbose=0, n_envs=2)
    agent.save(tmp_path / "new.tracerl")
    tensors, meta, kind = read_raw(tmp_path / "new.tracerl")
    del meta["policy"]["heads_read_obs"]
    write_rehashed(tmp_path / "old.tracerl", tensors, meta, kind)
    loaded = TraceRL.load(tmp_path / "old.tracerl")
    assert loaded.policy_config.heads_read_obs is False and loaded.policy.head_dim == agent.policy.head_dim
    default = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, seed=0, verbose=0, n_envs=2)
    default.save(tmp_path / "default.tracerl")
    assert TraceRL.load(tmp_path / "default.tracerl").policy_config.heads_read_obs is True  # saved resolved
