"""FFMCore: the scan equals the paper's sequential complex recurrence, resets, long sequences, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import cue_delay_success, input_gradient_of_last_output, long_sequence
from tracerl.memory.ffm import FFMCore

D, H, M, C = 4, 6, 5, 3


def _core(**kwargs) -> FFMCore:
    torch.manual_seed(0)
    return FFMCore(input_dim=D, **{"hidden_size": H, "memory_size": M, "context_size": C, **kwargs})


def _reference(core: FFMCore, x, s0, starts):
    """S_t = γ S_{t-1} + x̃_t 1ᵀ in complex arithmetic, one step at a time; zeros at episode starts."""
    S = torch.complex(s0[..., 0], s0[..., 1])  # [B, L, m, c]
    ys = []
    for t in range(x.shape[0]):
        S = torch.where(starts[t].view(-1, 1, 1, 1), torch.zeros_like(S), S)
        o, new = x[t], []
        for i, layer in enumerate(core.layers):
            gamma = torch.exp(torch.complex(-layer.alpha.abs().unsqueeze(1).expand(M, C),
                                            layer.omega.unsqueeze(0).expand(M, C)))
            val, in_gate, out_gate, thru = layer.pre(o).split([M, M, H, H], dim=-1)
            S_i = gamma * S[:, i] + (val * torch.sigmoid(in_gate)).unsqueeze(-1).to(torch.complex64)
            z = layer.mix(torch.cat([S_i.real, S_i.imag], dim=-1).flatten(1))
            g = torch.sigmoid(out_gate)
            o = torch.nn.functional.layer_norm(z, (H,)) * g + thru * (1 - g)
            new.append(S_i)
        S = torch.stack(new, dim=1)
        ys.append(o)
    return torch.stack(ys), torch.stack([S.real, S.imag], dim=-1)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_scan_equals_the_sequential_recurrence_with_resets_first_middle_last(num_layers):
    core = _core(num_layers=num_layers)
    T, B = 29, 4
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0, 0], starts[T // 2, 1], starts[T - 1, 2] = True, True, True
    s0 = torch.randn(B, num_layers, M, C, 2, generator=g)
    with torch.no_grad():
        y, s = core(x, {"s": s0}, starts)
        y_ref, s_ref = _reference(core, x, s0, starts)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s["s"], s_ref, atol=1e-5, rtol=1e-5)


def test_initial_decays_forget_between_the_horizons_and_oscillate_at_the_periods():
    core = _core(memory_size=8, context_size=4, min_horizon=16.0, max_period=256.0, forgotten_at=0.01)
    layer = core.layers[0]
    g_re, g_im = layer.decay()
    mag = torch.sqrt(g_re**2 + g_im**2)[:, 0]
    torch.testing.assert_close(mag[0] ** 16, torch.tensor(0.01), rtol=1e-4, atol=0)
    torch.testing.assert_close(mag[-1] ** 256, torch.tensor(0.01), rtol=1e-4, atol=0)
    assert torch.all(mag < 1)
    torch.testing.assert_close(layer.omega[0], torch.tensor(2 * math.pi))  # period 1
    with pytest.raises(ValueError, match="forgotten_at"):
        _core(forgotten_at=1.5)


def test_a_4096_step_sequence_stays_finite_with_finite_gradients():
    y, state, grad = long_sequence(_core(num_layers=2), D)
    assert torch.isfinite(y).all() and torch.isfinite(state["s"]).all() and torch.isfinite(grad).all()
    assert grad[-200].abs().sum() > 0


def test_gradient_flows_back_across_steps_to_earlier_inputs_and_to_the_decays():
    core = _core()
    grad = input_gradient_of_last_output(core, D)
    assert torch.all(grad.abs().sum(dim=(1, 2)) > 0)
    assert core.layers[0].alpha.grad.abs().sum() > 0 and core.layers[0].omega.grad.abs().sum() > 0


@pytest.mark.slow
def test_ppo_learns_cue_delay_8():
    success = cue_delay_success("ffm", 16_384)
    assert success >= 0.9, success
