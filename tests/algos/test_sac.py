"""Recurrent SAC: the squashed Gaussian's log-density, the adaptive temperature, and learning the counting task
(which needs memory) in CI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from tracerl import TraceRL
from tracerl.envs import make_vec_env
from tracerl.policies import SquashedGaussianActor

CW = {"horizon": 3, "episode_length": 40}


def test_squashed_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(5, 2, (8,))
    h = torch.randn(7, 5)
    torch.manual_seed(1)
    a, logp = actor(h)
    mu, log_std = actor.net(h).chunk(2, -1)
    dist = TransformedDistribution(Normal(mu, log_std.clamp(-5, 2).exp()), [TanhTransform()])
    expected = dist.log_prob(a.clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    torch.testing.assert_close(logp, expected, rtol=1e-3, atol=1e-3)
    assert (a.abs() < 1).all()
    det, _ = actor(h, deterministic=True)
    torch.testing.assert_close(det, torch.tanh(mu))


def counting_accuracy(agent, horizon: int, n_envs: int = 16, steps: int = 60, seed: int = 4242) -> float:
    """Fraction of held-out steps where ``round(horizon * action)`` equals the count of ones in the window."""
    vec = make_vec_env("tracerl/CountWindow-v0", n_envs=n_envs, env_kwargs={**CW, "horizon": horizon})
    obs, info = vec.reset(seed=seed)
    state, starts, ok = None, np.ones(n_envs, bool), []
    for t in range(steps):
        count = np.asarray(info["count"])
        a, state = agent.predict(obs, state, starts, deterministic=True)
        ok.append(np.rint(np.asarray(a)[:, 0] * horizon) == count)
        obs, _, term, trunc, info = vec.step(a)
        starts = term | trunc
    return float(np.mean(ok))


def _sac(**kw):
    base = dict(env="tracerl/CountWindow-v0", env_kwargs=CW, algo="sac", seed=0, verbose=0, n_envs=8, hidden_size=32,
                seq_len=10, batch_size=16, learning_starts=500, gamma=0.0, buffer_size=20_000, learning_rate=3e-3)
    base.update(kw)
    return TraceRL(**base)


def test_sac_adapts_its_temperature_towards_the_target_entropy():
    agent = _sac()
    agent.learn(1200)
    assert agent.algorithm.alpha < 0.95  # started at 1.0; the policy's entropy is above -1 at first
    fixed = _sac(learn_ent_coef=False, ent_coef_init=0.3)
    fixed.learn(1200)
    assert float(fixed.algorithm.alpha) == pytest.approx(0.3)


def test_sac_gru_learns_the_counting_task():
    """With p = 0.5 inputs a memoryless policy sees only the newest input: at best about 50 % correct counts."""
    agent = _sac()
    agent.learn(10_000)
    assert counting_accuracy(agent, 3) >= 0.9


def test_discrete_sac_gru_learns_cue_delay_with_distractors():
    """Discrete SAC (expectations over the categorical policy); a memoryless agent is at 50 % here."""
    from tracerl.evaluation import evaluate

    kw = {"delay": 6, "difficulty": 1}
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=kw, algo="sac", seed=0, verbose=0, n_envs=8, hidden_size=32,
                    seq_len=8, batch_size=32, learning_starts=500, buffer_size=20_000, gamma=0.99)
    assert agent.algorithm.discrete
    agent.learn(3000)
    assert evaluate(agent, "tracerl/CueDelay-v0", 200, env_kwargs=kw, seed=99).success_rate >= 0.9


def test_soft_bellman_targets_match_a_hand_computation():
    from tracerl.algos.offpolicy import batch_state, unroll

    agent = _sac(learning_starts=40, buffer_size=2000, seq_len=4, burn_in=2, state_stride=2, batch_size=8, gamma=0.9,
                 env_kwargs={"horizon": 3, "episode_length": 6})
    agent.learn(200)  # episodes of 6 steps, all truncated: their final observations are bootstrapped
    alg = agent.algorithm
    batch = agent.replay.sample(8)
    b = batch.burn_in
    a_next = torch.rand(batch.T - b, batch.N, 1) * 2 - 1
    logp = torch.randn(batch.T - b, batch.N)
    y, ok = alg.soft_targets(batch, a_next, logp)
    with torch.no_grad():
        q = [tc(unroll(tt, batch, batch_state(batch, f"critic{i}"), grad=False), a_next)
             for i, (tt, tc) in enumerate(zip(alg.target_torsos, alg.target_critics))]
    steps, rows, r = batch.has_action[b:], batch.valid[b:], batch.reward[b:]
    checked = 0
    for i in range(batch.N):
        for t in range(y.shape[0] - 1):
            if steps[t, i] and rows[t + 1, i]:
                soft_v = min(float(q[0][t + 1, i]), float(q[1][t + 1, i])) - float(alg.alpha) * float(logp[t + 1, i])
                assert float(y[t, i]) == pytest.approx(float(r[t, i]) + 0.9 * soft_v, rel=1e-5, abs=1e-6)
                assert ok[t, i]
                checked += 1
    assert checked > 20
    assert batch.terminal.sum() == 0  # CountWindow only truncates: every final row was bootstrapped above
