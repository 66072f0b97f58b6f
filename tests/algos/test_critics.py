"""The twin-critic base of SAC and TD3: checkpoint names, frozen target copies, and the critic step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tracerl.algos.critics import TwinCriticAlgorithm
from tracerl.algos.sac import SAC, SACConfig
from tracerl.algos.targets import masked_mean
from tracerl.algos.td3 import TD3, TD3Config
from tracerl.policies import ActionCodec
from tracerl.policies.policy import PolicyConfig

BOX = ActionCodec(gym.spaces.Box(-1.0, 1.0, (2,), np.float32))
SHARED = {"actor_torso", "actor", "critic_torsos", "critics", "target_torsos", "target_critics"}


def _make(cls: type, config_cls: type) -> TwinCriticAlgorithm:
    torch.manual_seed(0)
    return cls(5, BOX, config_cls(head_hidden=(8,)), PolicyConfig(hidden_size=8, encoder_hidden=(8,)))


@pytest.mark.parametrize("cls,config_cls,own", [(SAC, SACConfig, set()),
                                                (TD3, TD3Config, {"target_actor_torso", "target_actor"})])
def test_modules_keep_their_checkpoint_names_and_targets_start_as_frozen_copies(cls, config_cls, own):
    alg = _make(cls, config_cls)
    modules = alg.modules()
    assert set(modules) == SHARED | own
    assert set(alg.torsos()) == {"actor", "critic0", "critic1"} and alg.acting_torso() == "actor"
    for online, target in (("critic_torsos", "target_torsos"), ("critics", "target_critics")):
        src, dst = modules[online].state_dict(), modules[target].state_dict()
        assert src.keys() == dst.keys() and all(torch.equal(src[k], dst[k]) for k in src)
        assert not any(p.requires_grad for p in modules[target].parameters())
    critic_params = [*alg.critic_torsos.parameters(), *alg.critics.parameters()]
    assert [p for g in alg.critic_opt.param_groups for p in g["params"]] == critic_params


def test_critic_step_descends_only_the_critics_and_returns_the_td_of_critic_0():
    alg = _make(SAC, SACConfig)
    torch.manual_seed(1)
    h = torch.randn(3, 4, alg.critic_torsos[0].output_dim)
    q = [c(h, torch.rand(3, 4, 2) * 2 - 1) for c in alg.critics]
    y, mask, w = torch.randn(3, 4), torch.rand(3, 4) > 0.3, torch.rand(1, 4)
    expected = float(sum(masked_mean(w * (qi.detach() - y) ** 2, mask) for qi in q))
    critics_before = [p.detach().clone() for p in alg.critics.parameters()]
    actor_before = [p.detach().clone() for p in alg.actor.parameters()]
    stats, td = alg.critic_step(q, y, mask, w)
    assert set(stats) == {"critic_loss", "q_mean", "critic_grad_norm"}
    assert stats["critic_loss"] == pytest.approx(expected)
    torch.testing.assert_close(td, (q[0].detach() - y).abs() * mask)
    assert not any(torch.equal(a, p) for a, p in zip(critics_before, alg.critics.parameters()))
    assert all(torch.equal(a, p) for a, p in zip(actor_before, alg.actor.parameters()))
