"""LRUCore: the scan equals the paper's sequential complex recurrence, ring init, resets, long sequences."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from helpers import cue_delay_success, input_gradient_of_last_output, long_sequence
from tracerl.memory.lru import LRUCore

D, H, N = 4, 6, 5


def _core(**kwargs) -> LRUCore:
    torch.manual_seed(0)
    return LRUCore(input_dim=D, **{"hidden_size": H, "state_size": N, **kwargs})


def _reference(core: LRUCore, x, s0, starts):
    """x_t = λ x_{t-1} + γ (B v_t), y = Re(C x_t) + D v_t in complex arithmetic, one step at a time."""
    X = torch.complex(s0[..., 0], s0[..., 1])  # [B, L, N]
    ys = []
    for t in range(x.shape[0]):
        X = torch.where(starts[t].view(-1, 1, 1), torch.zeros_like(X), X)
        u, new = core.encoder(x[t]), []
        for i, blk in enumerate(core.blocks):
            lam = torch.exp(torch.complex(-torch.exp(blk.nu_log), torch.exp(blk.theta_log)))
            Bc = torch.complex(blk.B.weight[:N], blk.B.weight[N:])  # [N, H]
            Cc = torch.complex(blk.C.weight[:, :N], -blk.C.weight[:, N:])  # [H, N]
            v = blk.norm(u)
            Xi = lam * X[:, i] + torch.exp(blk.gamma_log) * (v.to(torch.complex64) @ Bc.T)
            r = (Xi @ Cc.T).real + blk.D * v
            u = u + F.glu(blk.out(F.gelu(r)), dim=-1)
            new.append(Xi)
        X = torch.stack(new, dim=1)
        ys.append(u)
    return torch.stack(ys), torch.stack([X.real, X.imag], dim=-1)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_scan_equals_the_sequential_recurrence_with_resets_first_middle_last(num_layers):
    core = _core(num_layers=num_layers)
    T, B = 31, 4
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0, 0], starts[T // 2, 1], starts[T - 1, 2] = True, True, True
    s0 = torch.randn(B, num_layers, N, 2, generator=g)
    with torch.no_grad():
        y, s = core(x, {"x": s0}, starts)
        y_ref, s_ref = _reference(core, x, s0, starts)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s["x"], s_ref, atol=1e-5, rtol=1e-5)


def test_eigenvalues_start_on_the_ring_with_normalized_inputs():
    core = _core(state_size=256, r_min=0.5, r_max=0.8, max_phase=0.3)
    blk = core.blocks[0]
    re, im = blk.eigenvalues()
    mag, phase = torch.sqrt(re**2 + im**2), torch.atan2(im, re)
    assert mag.min() >= 0.5 - 1e-6 and mag.max() <= 0.8 + 1e-6
    assert mag.min() < 0.55 and mag.max() > 0.75  # spread over the ring, not a point
    assert phase.min() >= 0 and phase.max() <= 0.3 + 1e-6
    torch.testing.assert_close(torch.exp(2 * blk.gamma_log) + mag**2, torch.ones(256), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="r_min"):
        _core(r_min=0.9, r_max=0.5)


def test_a_4096_step_sequence_stays_finite_with_finite_gradients():
    y, state, grad = long_sequence(_core(num_layers=2, r_min=0.99, r_max=0.9999), D)
    assert torch.isfinite(y).all() and torch.isfinite(state["x"]).all() and torch.isfinite(grad).all()
    assert grad[-500].abs().sum() > 0


def test_gradient_flows_back_across_steps_to_earlier_inputs_and_the_eigenvalues():
    core = _core()
    grad = input_gradient_of_last_output(core, D)
    assert torch.all(grad.abs().sum(dim=(1, 2)) > 0)
    blk = core.blocks[0]
    assert blk.nu_log.grad.abs().sum() > 0 and blk.theta_log.grad.abs().sum() > 0


@pytest.mark.slow
def test_ppo_learns_cue_delay_8():
    success = cue_delay_success("lru", 16_384)
    assert success >= 0.9, success
