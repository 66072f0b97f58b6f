"""The GRU's sequence kernel (hand-written backward, resets in the loop) against torch's GRU run per episode piece."""

from __future__ import annotations

import pytest
import torch

from tracerl.memory.gru_kernel import gru_sequence
from tracerl.memory.rnn import GRUCore, _FusedRNNCore


def _both(core, x, state, starts):
    """(kernel path, torch's packed path) outputs, final states and gradients of the same loss."""
    results = []
    for forward in (core.forward, lambda *a: _FusedRNNCore.forward(core, *a)):
        core.zero_grad()
        xi = x.clone().requires_grad_(True)
        hi = state["h"].clone().requires_grad_(True)
        y, final = forward(xi, {"h": hi}, starts)
        weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
        ((y * weights).sum() + (final["h"] ** 2).sum()).backward()
        grads = [xi.grad, hi.grad] + [p.grad.clone() for p in core.parameters()]
        results.append((y.detach(), final["h"].detach(), grads))
    return results


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layers", [1, 2])
def test_values_and_gradients_equal_torch_gru_per_episode_piece_with_random_starts(dtype, layers):
    torch.manual_seed(layers)
    core = GRUCore(5, hidden_size=7, num_layers=layers).to(dtype)
    T, B = 13, 6
    x = torch.randn(T, B, 5, dtype=dtype)
    state = {"h": torch.randn(B, layers, 7, dtype=dtype)}
    starts = torch.rand(T, B) < 0.2
    starts[0, 0] = True
    starts[4, 1] = starts[5, 1] = True  # a one-step episode
    (y, h, g), (y_ref, h_ref, g_ref) = _both(core, x, state, starts)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(y, y_ref, atol=tol, rtol=tol)
    torch.testing.assert_close(h, h_ref, atol=tol, rtol=tol)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, atol=10 * tol, rtol=10 * tol)


def test_a_reset_cuts_the_gradient_to_everything_before_it():
    core = GRUCore(3, hidden_size=4)
    x = torch.randn(6, 1, 3, requires_grad=True)
    starts = torch.zeros(6, 1, dtype=torch.bool)
    starts[3, 0] = True
    y, _ = core(x, core.initial_state(1), starts)
    y[3:].sum().backward()
    assert x.grad is not None
    assert torch.count_nonzero(x.grad[:3]) == 0 and torch.count_nonzero(x.grad[3:]) > 0


def test_gradient_checks_against_finite_differences():
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 4, num_layers=2).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    starts = torch.tensor([[False, False], [False, True], [False, False], [True, False], [False, False]])

    def fn(x, h0, *params):
        return gru_sequence(gru, x, h0, starts)

    assert torch.autograd.gradcheck(fn, (x, h0) + tuple(gru.parameters()))


def test_a_gru_it_cannot_run_is_refused():
    with pytest.raises(ValueError, match="time-major"):
        gru_sequence(torch.nn.GRU(2, 3, batch_first=True), torch.zeros(2, 1, 2), torch.zeros(1, 1, 3),
                     torch.zeros(2, 1, dtype=torch.bool))
