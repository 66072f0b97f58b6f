"""Recurrent TD3: exploration noise, delayed actor updates, and learning the counting task in CI."""

from __future__ import annotations

import numpy as np
import torch

from tracerl import TraceRL

from test_sac import CW, counting_accuracy


def _td3(**kw):
    base = dict(env="tracerl/CountWindow-v0", env_kwargs=CW, algo="td3", seed=0, verbose=0, n_envs=8, hidden_size=32,
                seq_len=10, batch_size=16, learning_starts=500, gamma=0.0, buffer_size=20_000, learning_rate=3e-3)
    base.update(kw)
    return TraceRL(**base)


def test_td3_explores_with_clipped_noise_and_acts_deterministically_when_asked():
    agent = _td3()
    alg = agent.algorithm
    h = {"actor": torch.randn(64, alg.actor_torso.output_dim)}
    mean = alg.act(h, explore=False)
    noisy = alg.act(h, explore=True)
    assert torch.equal(mean, alg.actor(h["actor"]))
    assert not torch.equal(mean, noisy) and noisy.abs().max() <= 1.0
    assert (noisy - mean).std() < 3 * agent.config.exploration_noise


def test_td3_updates_the_actor_and_targets_every_policy_delay_critic_steps():
    agent = _td3(policy_delay=3, learning_starts=16, buffer_size=2000)
    alg = agent.algorithm
    actor_before = [p.detach().clone() for p in alg.actor.parameters()]
    target_before = [p.detach().clone() for p in alg.target_critics.parameters()]
    agent.learn(16 + 8 * 2)  # two critic steps: no actor step yet
    assert alg.n_updates == 2
    assert all(torch.equal(a, p) for a, p in zip(actor_before, alg.actor.parameters()))
    assert all(torch.equal(a, p) for a, p in zip(target_before, alg.target_critics.parameters()))
    agent.learn(8, reset_num_timesteps=False)  # the third: actor step and Polyak update
    assert not all(torch.equal(a, p) for a, p in zip(actor_before, alg.actor.parameters()))
    assert not all(torch.equal(a, p) for a, p in zip(target_before, alg.target_critics.parameters()))


def test_td3_gru_learns_the_counting_task():
    agent = _td3()
    agent.learn(12_000)
    assert counting_accuracy(agent, 3) >= 0.85
    assert np.isfinite(agent.last_stats["critic_loss"])
