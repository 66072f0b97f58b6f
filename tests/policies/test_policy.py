"""The recurrent actor-critic: previous action/reward inputs and memory projection."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from tracerl.memory import GRUCore
from tracerl.policies import PolicyConfig, RecurrentActorCritic

OBS = gym.spaces.Box(-1, 1, shape=(3,), dtype=np.float32)
ACT = gym.spaces.Discrete(4)


def _policy(**kw) -> RecurrentActorCritic:
    torch.manual_seed(0)
    return RecurrentActorCritic(OBS, ACT, PolicyConfig(hidden_size=8, **kw))


def test_previous_action_and_reward_reach_the_memory():
    pol = _policy(use_prev_action=True, use_prev_reward=True)
    obs = torch.zeros(1, 2, 3)
    state = pol.initial_state(2)
    cont = torch.zeros(1, 2, dtype=torch.bool)
    h1, _ = pol.features(obs, state, cont, torch.tensor([[0, 3]]), torch.tensor([[0.0, 0.0]]))
    h2, _ = pol.features(obs, state, cont, torch.tensor([[3, 3]]), torch.tensor([[0.0, 1.0]]))
    assert not torch.allclose(h1[0, 0], h2[0, 0])  # the action changed
    assert not torch.allclose(h1[0, 1], h2[0, 1])  # the reward changed


def test_previous_action_and_reward_are_zeroed_at_episode_start():
    pol = _policy(use_prev_action=True, use_prev_reward=True)
    obs = torch.zeros(1, 1, 3)
    start = torch.ones(1, 1, dtype=torch.bool)
    noisy_state = {k: torch.randn_like(v) for k, v in pol.initial_state(1).items()}
    h1, _ = pol.features(obs, noisy_state, start, torch.tensor([[2]]), torch.tensor([[5.0]]))
    h2, _ = pol.features(obs, pol.initial_state(1), start, torch.tensor([[0]]), torch.tensor([[0.0]]))
    torch.testing.assert_close(h1, h2, rtol=0, atol=0)


def test_every_core_with_memory_reads_the_previous_action_by_default_and_the_stateless_mlp_does_not():
    assert _policy().config.use_prev_action is True and _policy().prev_action_dim == 4  # GRU: one-hot of Discrete(4)
    mlp = _policy(memory="mlp")
    assert mlp.config.use_prev_action is False and mlp.prev_action_dim == 0  # no one-step memory through the action
    given = RecurrentActorCritic(OBS, ACT, PolicyConfig(), memory=GRUCore(input_dim=5, hidden_size=6))
    assert given.config.use_prev_action is True  # a core object decides by its class
    assert _policy(use_prev_action=False).prev_action_dim == 0  # an explicit setting wins


def test_the_default_previous_action_changes_what_the_memory_sees():
    pol = _policy()
    obs, state, cont = torch.zeros(1, 1, 3), pol.initial_state(1), torch.zeros(1, 1, dtype=torch.bool)
    h1, _ = pol.features(obs, state, cont, torch.tensor([[0]]), torch.tensor([[0.0]]))
    h2, _ = pol.features(obs, state, cont, torch.tensor([[3]]), torch.tensor([[0.0]]))
    assert not torch.allclose(h1, h2)


def test_a_memory_object_of_another_width_gets_a_projection():
    core = GRUCore(input_dim=5, hidden_size=6)
    pol = RecurrentActorCritic(OBS, ACT, PolicyConfig(use_prev_action=False), memory=core)
    assert isinstance(pol.project, torch.nn.Linear) and pol.project.out_features == 5
    dist, value, state = pol(torch.zeros(4, 2, 3), pol.initial_state(2), torch.zeros(4, 2, dtype=torch.bool))
    assert value.shape == (4, 2) and dist.sample().shape == (4, 2) and state["h"].shape == (2, 1, 6)
