"""MinGRUCore: the scan equals the paper's sequential recurrence, resets, long sequences, gradients, learning."""

from __future__ import annotations

import pytest
import torch

from helpers import cue_delay_success, input_gradient_of_last_output, long_sequence
from tracerl.memory.mingru import MinGRUCore

D, H = 4, 6


def _core(**kwargs) -> MinGRUCore:
    torch.manual_seed(0)
    return MinGRUCore(input_dim=D, **{"hidden_size": H, **kwargs})


def _reference(core: MinGRUCore, x, h0, starts):
    """h_t = (1 - z_t) h_{t-1} + z_t h̃_t, one step at a time, reset to zeros at episode starts."""
    h = h0.clone()
    ys = []
    for t in range(x.shape[0]):
        h = torch.where(starts[t].view(-1, 1, 1), torch.zeros_like(h), h)
        inp, new = x[t], []
        for i, lin in enumerate(core.layers):
            k, cand = lin(inp).chunk(2, dim=-1)
            z = torch.sigmoid(k)
            inp = (1 - z) * h[:, i] + z * cand
            new.append(inp)
        h = torch.stack(new, dim=1)
        ys.append(inp)
    return torch.stack(ys), h


@pytest.mark.parametrize("num_layers", [1, 3])
def test_scan_equals_the_sequential_recurrence_with_resets_first_middle_last(num_layers):
    core = _core(num_layers=num_layers)
    T, B = 37, 4
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0, 0], starts[T // 2, 1], starts[T - 1, 2] = True, True, True
    h0 = torch.randn(B, num_layers, H, generator=g)
    with torch.no_grad():
        y, s = core(x, {"h": h0}, starts)
        y_ref, h_ref = _reference(core, x, h0, starts)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s["h"], h_ref, atol=1e-5, rtol=1e-5)


def test_a_4096_step_sequence_stays_finite_with_finite_gradients():
    y, state, grad = long_sequence(_core(num_layers=2), D)
    assert torch.isfinite(y).all() and torch.isfinite(state["h"]).all() and torch.isfinite(grad).all()
    assert grad[0].abs().sum() > 0  # chrono-initialized: the first step still reaches the last one


def test_gradient_flows_back_across_steps_to_earlier_inputs():
    core = _core()
    grad = input_gradient_of_last_output(core, D)
    assert torch.all(grad.abs().sum(dim=(1, 2)) > 0)


def test_chrono_initialization_starts_with_slow_decays_and_none_with_zero_biases():
    H_ = 32
    keep = torch.sigmoid(-_core(hidden_size=H_, chrono_tmax=256.0).layers[0].bias[:H_])
    assert keep.min() > 0.5 and keep.max() > 0.99
    assert torch.all(_core(hidden_size=H_, chrono_tmax=None).layers[0].bias == 0)
    with pytest.raises(ValueError, match="chrono_tmax"):
        _core(chrono_tmax=1.0)


def test_ppo_learns_cue_delay_8():
    success = cue_delay_success("mingru", 16_384)
    assert success >= 0.9, success
