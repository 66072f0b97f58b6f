import pytest
import torch

from tracerl.algos.gae import compute_gae


def _reference(rewards, values, dones, last_value, gamma, lam):
    """Hand-written per-element recursion (slow, obvious)."""
    T, B = len(rewards), len(rewards[0])
    adv = [[0.0] * B for _ in range(T)]
    for b in range(B):
        a = 0.0
        for t in reversed(range(T)):
            nv = last_value[b] if t == T - 1 else values[t + 1][b]
            nd = 0.0 if dones[t][b] else 1.0
            delta = rewards[t][b] + gamma * nv * nd - values[t][b]
            a = delta + gamma * lam * nd * a
            adv[t][b] = a
    return adv


def test_gae_matches_hand_computed_values():
    # One env, three steps, episode ends at t=1: A_2 bootstraps from last_value, A_1 does not.
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[0.5], [1.0], [1.5]])
    d = torch.tensor([[False], [True], [False]])
    last = torch.tensor([2.0])
    adv, ret = compute_gae(r, v, d, last, gamma=0.9, lam=0.8)
    a2 = 3.0 + 0.9 * 2.0 - 1.5  # 3.3
    a1 = 2.0 - 1.0  # 1.0, no bootstrap past the end of the episode
    a0 = (1.0 + 0.9 * 1.0 - 0.5) + 0.9 * 0.8 * a1  # 1.4 + 0.72
    torch.testing.assert_close(adv, torch.tensor([[a0], [a1], [a2]]))
    torch.testing.assert_close(ret, adv + v)


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (0.5, 0.0)])
def test_gae_matches_the_reference_recursion(gamma, lam):
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(17, 4, generator=g), torch.randn(17, 4, generator=g)
    d = torch.rand(17, 4, generator=g) < 0.2
    last = torch.randn(4, generator=g)
    adv, _ = compute_gae(r, v, d, last, gamma, lam)
    ref = torch.tensor(_reference(r.tolist(), v.tolist(), d.tolist(), last.tolist(), gamma, lam))
    torch.testing.assert_close(adv, ref)


def test_lambda_one_with_zero_values_gives_discounted_returns():
    r = torch.tensor([[1.0], [1.0], [1.0]])
    zeros = torch.zeros(3, 1)
    d = torch.tensor([[False], [False], [True]])
    adv, ret = compute_gae(r, zeros, d, torch.zeros(1), gamma=0.5, lam=1.0)
    torch.testing.assert_close(ret, torch.tensor([[1.75], [1.5], [1.0]]))
