"""DNCCore: trace and state invariants, variants, argument validation and a PPO learning smoke test."""

from __future__ import annotations

import pytest
import torch

from helpers import cue_delay_success
from tracerl.memory import make_memory
from tracerl.memory.dnc import DNCCore

T, B, D = 12, 3, 4


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.rand(T, B, generator=g) < 0.2
    starts[0] = True
    starts[6, 1] = True
    return x, starts


def test_registered_trace_shapes_and_state_invariants():
    torch.manual_seed(0)
    core = make_memory("dnc", input_dim=D, hidden_size=5, num_read_heads=3, memory_slots=6, memory_width=4)
    assert isinstance(core, DNCCore)
    x, starts = _inputs()
    y, state, trace = core.forward_with_trace(x, core.initial_state(B), starts)
    y2, _ = core(x, core.initial_state(B), starts)
    torch.testing.assert_close(y, y2)
    assert y.shape == (T, B, 5)
    assert trace["read_weights"].shape == (T, B, 3, 6)
    assert trace["write_weights"].shape == (T, B, 1, 6)
    assert trace["usage"].shape == (T, B, 6)
    assert trace["read_modes"].shape == (T, B, 3, 3)
    torch.testing.assert_close(trace["read_modes"].sum(-1), torch.ones(T, B, 3))
    eps = 1e-5
    assert ((trace["usage"] >= -eps) & (trace["usage"] <= 1 + eps)).all()
    assert (trace["write_weights"] >= 0).all() and (trace["write_weights"].sum(-1) <= 1 + eps).all()
    assert (trace["read_weights"] >= -eps).all() and (trace["read_weights"].sum(-1) <= 1 + eps).all()
    link = state["link"]
    assert link.shape == (B, 6, 6)
    assert torch.all(torch.diagonal(link, dim1=-2, dim2=-1) == 0)
    assert ((link >= -eps) & (link <= 1 + eps)).all() and link.abs().sum() > 0
    assert (state["precedence"].sum(-1) <= 1 + eps).all()
    torch.testing.assert_close(state["reads"], torch.einsum("brn,bnw->brw", state["read_weights"], state["memory"]))


def test_initial_state_is_zero_and_follows_the_spec():
    core = DNCCore(D, 8, memory_slots=5, memory_width=3, num_read_heads=2, num_layers=2)
    s = core.initial_state(2)
    shapes = {k: tuple(v.shape) for k, v in s.items()}
    assert shapes == {
        "h": (2, 2, 8), "c": (2, 2, 8), "memory": (2, 5, 3), "usage": (2, 5), "link": (2, 5, 5),
        "precedence": (2, 5), "read_weights": (2, 2, 5), "write_weights": (2, 5), "reads": (2, 2, 3),
    }
    assert all(torch.all(v == 0) for v in s.values())


@pytest.mark.parametrize("kwargs", [dict(num_read_heads=1), dict(num_layers=2, controller_size=6, memory_slots=5)])
def test_variants_step_equals_sequence_and_gradients_reach_every_parameter(kwargs):
    torch.manual_seed(0)
    core = DNCCore(D, 8, memory_width=4, **kwargs)
    x, starts = _inputs(1)
    y_seq, s_seq = core(x, core.initial_state(B), starts)
    state, ys = core.initial_state(B), []
    for t in range(T):
        y, state = core(x[t : t + 1], state, starts[t : t + 1])
        ys.append(y)
    torch.testing.assert_close(torch.cat(ys), y_seq, atol=1e-5, rtol=1e-5)
    for k in s_seq:
        torch.testing.assert_close(state[k], s_seq[k], atol=1e-5, rtol=1e-5)
    y_seq.pow(2).mean().backward()
    for name, p in core.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_finite_gradients_at_zero_memory_and_zero_keys():
    torch.manual_seed(0)
    core = DNCCore(D, 8, memory_slots=6, memory_width=3)
    with torch.no_grad():
        core.interface.weight.zero_()
        core.interface.bias.zero_()  # zero keys and zero write vectors: memory stays zero
    x = torch.zeros(5, 2, D, requires_grad=True)
    starts = torch.zeros(5, 2, dtype=torch.bool)
    starts[0] = True
    y, state = core(x, core.initial_state(2), starts)
    assert torch.all(state["memory"] == 0)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    for name, p in core.named_parameters():
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(memory_slots=0), "memory_slots"),
        (dict(memory_width=0), "memory_width"),
        (dict(num_read_heads=0), "num_read_heads"),
        (dict(num_layers=0), "num_layers"),
        (dict(hidden_size=-2), "hidden_size"),
        (dict(controller_size=0), "controller_size"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DNCCore(D, **kwargs)


def test_ppo_learns_cue_delay_8():
    success = cue_delay_success("dnc", 22_000, hidden_size=32, batch_size=1024,
                                memory_kwargs={"memory_slots": 16, "memory_width": 8})
    assert success >= 0.9, success
