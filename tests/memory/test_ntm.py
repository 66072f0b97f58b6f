"""NTMCore: head/controller variants, trace, argument validation and a PPO learning smoke test."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import cue_delay_success
from tracerl.memory import make_memory
from tracerl.memory.ntm import NTMCore

T, B, D = 12, 3, 4


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.rand(T, B, generator=g) < 0.2
    starts[0] = True
    starts[6, 1] = True
    return x, starts


VARIANTS = [
    dict(num_read_heads=2, num_write_heads=2, memory_slots=8, memory_width=4),
    dict(controller="mlp", memory_slots=6, memory_width=3),
    dict(num_layers=2, shift_range=2, memory_slots=7, memory_width=5, controller_size=6),
]


def test_registered_and_trace_shapes():
    torch.manual_seed(0)
    core = make_memory("ntm", input_dim=D, hidden_size=5, num_read_heads=2, num_write_heads=3,
                       memory_slots=9, memory_width=4)
    assert isinstance(core, NTMCore)
    x, starts = _inputs()
    y, state, trace = core.forward_with_trace(x, core.initial_state(B), starts)
    y2, _ = core(x, core.initial_state(B), starts)
    torch.testing.assert_close(y, y2)
    assert y.shape == (T, B, 5)
    assert trace["read_weights"].shape == (T, B, 2, 9)
    assert trace["write_weights"].shape == (T, B, 3, 9)
    assert state["memory"].shape == (B, 9, 4) and state["reads"].shape == (B, 2, 4)
    for name in ("read_weights", "write_weights"):
        w = trace[name]
        assert (w >= 0).all(), name
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-4, rtol=0)
    # The state's reads are its read weights applied to its memory.
    torch.testing.assert_close(state["reads"], torch.einsum("brn,bnw->brw", state["read_weights"], state["memory"]))


def test_initial_state_is_small_memory_and_heads_on_slot_zero():
    core = NTMCore(D, 8, memory_slots=5, memory_width=3, num_write_heads=2)
    s = core.initial_state(2)
    assert torch.all(s["memory"] == 1e-6)
    expected = torch.zeros(2, 2, 5)
    expected[..., 0] = 1.0
    torch.testing.assert_close(s["write_weights"], expected)
    assert s["read_weights"].shape == (2, 1, 5) and torch.all(s["read_weights"][..., 0] == 1)
    assert set(s) == {"h", "c", "memory", "read_weights", "write_weights", "reads"}
    assert set(NTMCore(D, 8, controller="mlp").initial_state(1)) == {"memory", "read_weights", "write_weights", "reads"}


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_variants_step_equals_sequence_and_gradients_reach_every_parameter(kwargs):
    torch.manual_seed(0)
    core = NTMCore(D, 8, **kwargs)
    x, starts = _inputs(1)
    y_seq, s_seq = core(x, core.initial_state(B), starts)
    state, ys = core.initial_state(B), []
    for t in range(T):
        y, state = core(x[t : t + 1], state, starts[t : t + 1])
        ys.append(y)
    torch.testing.assert_close(torch.cat(ys), y_seq, atol=1e-5, rtol=1e-5)
    for k in s_seq:
        torch.testing.assert_close(state[k], s_seq[k], atol=1e-5, rtol=1e-5)
    (y_seq.pow(2).mean() + s_seq["memory"].pow(2).mean()).backward()
    for name, p in core.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_finite_gradients_from_zero_input_and_zero_keys():
    torch.manual_seed(0)
    core = NTMCore(D, 8, memory_slots=6, memory_width=3)
    with torch.no_grad():
        core.interface.weight.zero_()
        core.interface.bias.zero_()  # zero keys, zero add vectors: memory stays at its initial value
    x = torch.zeros(5, 2, D, requires_grad=True)
    starts = torch.zeros(5, 2, dtype=torch.bool)
    starts[0] = True
    y, _ = core(x, core.initial_state(2), starts)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    for name, p in core.named_parameters():
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(memory_slots=0), "memory_slots"),
        (dict(memory_width=-1), "memory_width"),
        (dict(num_read_heads=0), "num_read_heads"),
        (dict(num_write_heads=0), "num_write_heads"),
        (dict(num_layers=0), "num_layers"),
        (dict(hidden_size=0), "hidden_size"),
        (dict(controller="gru"), "controller"),
        (dict(controller_size=0), "controller_size"),
        (dict(shift_range=3, memory_slots=6), "shift_range"),
        (dict(shift_range=-1), "shift_range"),
        (dict(init_memory=0.0), "init_memory"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        NTMCore(D, **kwargs)


def test_ppo_learns_cue_delay_8():
    success = cue_delay_success("ntm", 30_000, hidden_size=32, batch_size=1024,
                                memory_kwargs={"memory_slots": 16, "memory_width": 8})
    assert success >= 0.9, success


def test_ntm_learns_the_copy_task_at_length_5():
    """Learning smoke (Graves et al. 2014, copy): < 1 % bit error on length-5 sequences after a small budget."""
    from tracerl.supervised.copy_task import train_copy

    result = train_copy("ntm", train_lengths=(1, 5), steps=1000, batch_size=16, lr=1e-2, bits=4, hidden_size=32,
                        memory_kwargs={"memory_slots": 8, "memory_width": 8}, eval_lengths=(5,), progress=False,
                        seed=0)
    assert result.evaluation[0].bit_error_rate < 0.01, result.evaluation[0]


def test_chrono_initialization_of_the_controller_gates():
    core = NTMCore(D, hidden_size=8, chrono_tmax=64.0)
    cell = core.controller.layers[0]
    forget, inp = cell.bias_ih[8:16].detach(), cell.bias_ih[:8].detach()
    assert (forget >= 0).all() and (forget <= math.log(63.0)).all() and forget.std() > 0
    torch.testing.assert_close(inp, -forget)
    plain = NTMCore(D, hidden_size=8).controller.layers[0].bias_ih[8:16]
    assert torch.all(plain == 1.0)
    with pytest.raises(ValueError, match="chrono_tmax"):
        NTMCore(D, chrono_tmax=1.0)
