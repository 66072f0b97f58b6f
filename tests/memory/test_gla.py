"""GLACore: the scan equals the paper's sequential matrix-state recurrence, decays, resets, long sequences."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from helpers import cue_delay_success, input_gradient_of_last_output, long_sequence
from tracerl.memory.gla import GLACore

D, H, HEADS = 4, 6, 2
d = H // HEADS


def _core(**kwargs) -> GLACore:
    torch.manual_seed(0)
    return GLACore(input_dim=D, **{"hidden_size": H, "num_heads": HEADS, **kwargs})


def _reference(core: GLACore, x, s0, starts):
    """S_t = diag(α_t) S_{t-1} + k_t v_tᵀ, o_t = q_tᵀ S_t per head, one step at a time."""
    S = s0.clone()  # [B, L, heads, d, d]
    ys = []
    for t in range(x.shape[0]):
        S = torch.where(starts[t].view(-1, 1, 1, 1, 1), torch.zeros_like(S), S)
        inp, new = x[t], []
        for i, layer in enumerate(core.layers):
            q, k, v, r = (z.reshape(-1, HEADS, d) for z in layer.qkvr(inp).chunk(4, dim=-1))
            alpha = torch.sigmoid(layer.gate(inp)).pow(1 / layer.tau).reshape(-1, HEADS, d)
            S_i = alpha.unsqueeze(-1) * S[:, i] + torch.einsum("bhk,bhv->bhkv", k / math.sqrt(d), v)
            o = torch.einsum("bhk,bhkv->bhv", q, S_i)
            y = layer.out((F.layer_norm(o, (d,)) * F.silu(r)).reshape(-1, H))
            inp = y if i == 0 else inp + y
            new.append(S_i)
        S = torch.stack(new, dim=1)
        ys.append(inp)
    return torch.stack(ys), S


@pytest.mark.parametrize("num_layers", [1, 2])
def test_scan_equals_the_sequential_recurrence_with_resets_first_middle_last(num_layers):
    core = _core(num_layers=num_layers)
    T, B = 27, 4
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0, 0], starts[T // 2, 1], starts[T - 1, 2] = True, True, True
    s0 = torch.randn(B, num_layers, HEADS, d, d, generator=g)
    with torch.no_grad():
        y, s = core(x, {"S": s0}, starts)
        y_ref, s_ref = _reference(core, x, s0, starts)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s["S"], s_ref, atol=1e-5, rtol=1e-5)


def test_initial_decays_span_one_step_to_the_longest_horizon():
    core = _core(hidden_size=32, num_heads=2, max_horizon=128.0)
    layer = core.layers[0]
    alpha = torch.sigmoid(layer.gate.bias).pow(1 / layer.tau)  # at x = 0
    horizons = -1 / torch.log(alpha)  # α^h = 1/e
    torch.testing.assert_close(horizons.min(), torch.tensor(1.0), rtol=1e-3, atol=0)
    torch.testing.assert_close(horizons.max(), torch.tensor(128.0), rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match="num_heads"):
        _core(hidden_size=6, num_heads=4)


def test_a_4096_step_sequence_stays_finite_with_finite_gradients():
    y, state, grad = long_sequence(_core(num_layers=2, max_horizon=4096.0), D)
    assert torch.isfinite(y).all() and torch.isfinite(state["S"]).all() and torch.isfinite(grad).all()
    assert grad[-500].abs().sum() > 0


def test_gradient_flows_back_across_steps_to_earlier_inputs():
    core = _core()
    grad = input_gradient_of_last_output(core, D)
    assert torch.all(grad.abs().sum(dim=(1, 2)) > 0)


@pytest.mark.slow
def test_ppo_learns_cue_delay_8():
    success = cue_delay_success("gla", 16_384)
    assert success >= 0.9, success
