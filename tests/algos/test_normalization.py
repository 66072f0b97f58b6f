"""Running statistics and return-based reward scaling."""

from __future__ import annotations

import torch

from tracerl.algos.normalization import ReturnNormalizer, RunningMeanStd


def test_running_moments_equal_the_moments_of_all_batches():
    torch.manual_seed(0)
    data = torch.randn(300, 3) * torch.tensor([1.0, 5.0, 0.1]) + 2.0
    rms = RunningMeanStd((3,), epsilon=0.0)
    for chunk in data.split(37):
        rms.update(chunk)
    torch.testing.assert_close(rms.mean.float(), data.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rms.var.float(), data.var(0, unbiased=False), atol=1e-4, rtol=1e-4)


def test_rewards_are_divided_by_the_std_of_the_discounted_return():
    norm = ReturnNormalizer(n_envs=2, gamma=0.9)
    done = torch.zeros(2, dtype=torch.bool)
    returns = []
    ret = torch.zeros(2, dtype=torch.float64)
    for i in range(50):
        r = torch.tensor([1.0, -2.0]) * (i % 3)
        ret = 0.9 * ret + r.double()
        returns.append(ret.clone())
        out = norm(r, done)
    std = (torch.cat(returns).var(unbiased=False) + 1e-8).sqrt()
    torch.testing.assert_close(out, r / std.float(), atol=1e-3, rtol=1e-3)
    norm2 = ReturnNormalizer(n_envs=1, gamma=0.99)
    torch.manual_seed(0)
    outs = torch.stack([norm2(torch.randn(1) * 100.0, torch.tensor([False])) for _ in range(2000)])
    # ... while a large random reward is brought to order one.
    assert 0.05 < float(outs[-500:].std()) < 2.0


def test_returns_restart_at_episode_ends():
    norm = ReturnNormalizer(n_envs=1, gamma=1.0)
    norm(torch.tensor([1.0]), torch.tensor([True]))
    assert float(norm.ret[0]) == 0.0
    norm(torch.tensor([1.0]), torch.tensor([False]))
    norm(torch.tensor([1.0]), torch.tensor([False]))
    assert float(norm.ret[0]) == 2.0


def test_the_cpu_fast_path_equals_the_tensor_path_step_by_step():
    """The collector calls the normalizer once per vector step: on CPU it runs in numpy (about half the
    cost of ~10 tiny tensor ops); the scaled rewards are the tensor path's bit for bit."""
    fast, ref = ReturnNormalizer(n_envs=16, gamma=0.99), ReturnNormalizer(n_envs=16, gamma=0.99)
    gen = torch.Generator().manual_seed(0)
    for _ in range(500):
        reward = torch.randn(16, generator=gen) * 3.0
        done = torch.rand(16, generator=gen) < 0.05
        out = fast(reward, done)
        expected = ref.step_tensors(reward, done)
        assert out.dtype == torch.float32 and out.shape == (16,)
        assert torch.equal(out, expected)  # the same float32 division by the same std
    for name, value in ref.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[name], value, rtol=1e-12, atol=1e-12)
