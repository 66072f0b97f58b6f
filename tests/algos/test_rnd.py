"""Random Network Distillation: the bonus falls where the agent has been, and stays up elsewhere."""

from __future__ import annotations

import torch

from tracerl.algos.rnd import RND


def test_the_bonus_falls_on_states_seen_repeatedly_but_not_on_new_ones():
    torch.manual_seed(0)
    rnd = RND(obs_dim=4, n_envs=8, emb_dim=16, lr=1e-3)
    familiar = torch.randn(8, 4)
    novel = torch.randn(8, 4) * 3 + 5
    for _ in range(3):
        rnd.intrinsic_reward(torch.cat([familiar, novel])[torch.randperm(16)[:8]])  # both enter the obs stats
    before_f = float(rnd.error(familiar).mean().detach())
    before_n = float(rnd.error(novel).mean().detach())
    for _ in range(200):
        rnd.intrinsic_reward(familiar)
        rnd.train_predictor(familiar, epochs=1, batch_size=8)
    after_f = float(rnd.error(familiar).mean().detach())
    after_n = float(rnd.error(novel).mean().detach())
    assert after_f < 0.1 * before_f
    assert after_n > 3 * after_f
    assert before_n > 0


def test_the_target_network_never_trains():
    rnd = RND(obs_dim=3, n_envs=2)
    target = [p.clone() for p in rnd.target.parameters()]
    rnd.train_predictor(torch.randn(32, 3), epochs=2, batch_size=8)
    assert all(torch.equal(a, b) for a, b in zip(target, rnd.target.parameters()))


def test_the_intrinsic_reward_is_scaled_by_the_running_std_of_the_intrinsic_return():
    torch.manual_seed(0)
    rnd = RND(obs_dim=3, n_envs=4)
    for _ in range(50):
        scaled, raw = rnd.intrinsic_reward(torch.randn(4, 3))
    torch.testing.assert_close(scaled, raw / rnd.int_rms.std.float())
