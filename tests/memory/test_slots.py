"""The slot memory core: additive writes, content reads, validation, and learning CueDelay."""

from __future__ import annotations

import pytest
import torch

from helpers import cue_delay_success
from tracerl.memory.slots import SlotMemoryCore, additive_write, cosine_similarity

T, B, D, H = 9, 3, 4, 8


def _core(**kwargs) -> SlotMemoryCore:
    torch.manual_seed(0)
    return SlotMemoryCore(input_dim=D, hidden_size=H, **kwargs)


def _inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0, 0] = True
    starts[4, 1] = True
    return x, starts


def test_additive_write_adds_exactly_the_outer_product_on_a_hand_made_example():
    memory = torch.tensor([[[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]])  # [1, 2 slots, 3]
    w = torch.tensor([[0.25, 0.75]])
    a = torch.tensor([[1.0, -2.0, 0.5]])
    expected = memory + torch.tensor([[[0.25, -0.5, 0.125], [0.75, -1.5, 0.375]]])
    torch.testing.assert_close(additive_write(memory, w, a), expected, atol=0, rtol=0)
    e = torch.tensor([[1.0, 0.0, 0.5]])  # erase: M ⊙ (1 - w eᵀ) + w aᵀ
    erased = torch.tensor([[[0.75 * 1.0, 0.0, -1.0 * (1 - 0.125)], [0.25 * 0.5, 2.0, 0.0]]])
    torch.testing.assert_close(additive_write(memory, w, a, e), erased + (expected - memory), atol=1e-7, rtol=0)


def test_a_core_step_adds_w_a_transpose_to_the_memory():
    core = _core()
    x, _ = _inputs()
    g = torch.Generator().manual_seed(3)
    state = {k: torch.randn(v.shape, generator=g) for k, v in core.initial_state(B).items()}
    _, s1, trace = core.forward_with_trace(x[:1], state, torch.zeros(1, B, dtype=torch.bool))
    w = trace["write_weights"][0]
    a = torch.tanh(core.write_vector(s1["h"][:, -1]))
    torch.testing.assert_close(s1["memory"] - state["memory"], w.unsqueeze(-1) * a.unsqueeze(-2), atol=1e-6, rtol=0)


def test_an_episode_start_writes_into_an_empty_memory():
    core = _core(erase=True)
    x, starts = _inputs()
    noisy = {k: torch.randn_like(v) + 5 for k, v in core.initial_state(B).items()}
    start = torch.ones(1, B, dtype=torch.bool)
    _, s1, trace = core.forward_with_trace(x[:1], noisy, start)
    a = torch.tanh(core.write_vector(s1["h"][:, -1]))
    w = trace["write_weights"][0]
    torch.testing.assert_close(s1["memory"], w.unsqueeze(-1) * a.unsqueeze(-2), atol=1e-6, rtol=0)


@pytest.mark.parametrize("erase", [False, True])
def test_read_weights_sum_to_one_and_the_read_is_their_average_of_the_slots(erase):
    core = _core(erase=erase, memory_slots=5, memory_width=6)
    x, starts = _inputs()
    y, state, trace = core.forward_with_trace(x, core.initial_state(B), starts)
    assert y.shape == (T, B, H)
    assert trace["read_weights"].shape == (T, B, 5) and trace["write_weights"].shape == (T, B, 5)
    for name in ("read_weights", "write_weights"):
        assert (trace[name] >= 0).all(), name
        torch.testing.assert_close(trace[name].sum(-1), torch.ones(T, B), atol=1e-6, rtol=0)
    expected_read = torch.einsum("bn,bnw->bw", trace["read_weights"][-1], state["memory"])
    torch.testing.assert_close(state["read"], expected_read, atol=1e-6, rtol=0)


def test_forward_equals_forward_with_trace():
    core = _core()
    x, starts = _inputs()
    y1, s1 = core(x, core.initial_state(B), starts)
    y2, s2, _ = core.forward_with_trace(x, core.initial_state(B), starts)
    torch.testing.assert_close(y1, y2, atol=0, rtol=0)
    for k in s1:
        torch.testing.assert_close(s1[k], s2[k], atol=0, rtol=0)


def test_cosine_similarity_has_finite_gradients_at_zero_memory_and_zero_key():
    memory = torch.zeros(2, 4, 3, requires_grad=True)
    key = torch.zeros(2, 3, requires_grad=True)
    sim = cosine_similarity(memory, key)
    sim.sum().backward()
    assert torch.isfinite(memory.grad).all() and torch.isfinite(key.grad).all()
    aligned = cosine_similarity(torch.tensor([[[2.0, 0.0], [0.0, 3.0]]]), torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(aligned, torch.tensor([[1.0, 0.0]]), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "name,value",
    [("memory_slots", 0), ("memory_slots", 2.5), ("memory_width", -1), ("num_layers", 0), ("hidden_size", 0),
     ("input_dim", 0), ("erase", "yes"), ("chrono_tmax", 1.0)],
)
def test_invalid_arguments_raise_value_error_naming_them(name, value):
    kwargs = {"input_dim": D, "hidden_size": H, name: value}
    with pytest.raises(ValueError, match=name):
        SlotMemoryCore(**kwargs)


def test_stacked_controller_layers_carry_their_own_state():
    core = _core(num_layers=2)
    x, starts = _inputs()
    _, state = core(x, core.initial_state(B), starts)
    assert state["h"].shape == (B, 2, H)
    assert not torch.allclose(state["h"][:, 0], state["h"][:, 1])


def test_ppo_with_slot_memory_solves_cue_delay_8():
    success = cue_delay_success("slots", 12_288)
    assert success >= 0.9, success
