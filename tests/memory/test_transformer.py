"""WindowTransformerCore: episode masking, window bound, trace layout, arguments, and learning."""

from __future__ import annotations


import pytest
import torch

from helpers import cue_delay_success
from tracerl.memory.transformer import WindowTransformerCore, episode_window_mask

D = 4


def _core(**kwargs) -> WindowTransformerCore:
    torch.manual_seed(0)
    return WindowTransformerCore(input_dim=D, **{"hidden_size": 16, **kwargs})


def _noisy_state(core: WindowTransformerCore, batch: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    state = {k: torch.randn(v.shape, generator=g) for k, v in core.initial_state(batch).items()}
    state["valid"] = torch.ones_like(state["valid"])  # every cached slot in use
    return state


def test_attention_never_crosses_an_episode_boundary():
    core = _core(window=6, num_layers=2)
    T, B, start = 12, 2, 5
    x = torch.randn(T, B, D)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[start, 0] = True  # row 0: an episode starts mid-sequence; row 1 carries its memory throughout
    with torch.no_grad():
        _, _, trace = core.forward_with_trace(x, _noisy_state(core, B), starts)
    att = trace["attention"]
    assert att.shape == (T, B, 7)
    for t in range(start, T):
        # Distance k reaches step t - k; steps before `start` belong to the previous episode.
        assert torch.all(att[t, 0, t - start + 1 :] == 0), t
        assert att[t, 0, : t - start + 1].sum() == pytest.approx(1.0, abs=1e-5)
    # Before the boundary, and in the row without one, the earlier steps and the cache are attended.
    assert att[start - 1, 0, 1:].sum() > 0.1
    assert att[T - 1, 1, 1:].sum() > 0.1


def test_a_step_never_attends_further_back_than_the_window():
    window, T = 3, 10
    core = _core(window=window, num_layers=1)
    x = torch.randn(T, 1, D, requires_grad=True)
    starts = torch.zeros(T, 1, dtype=torch.bool)
    starts[0] = True
    y, _, trace = core.forward_with_trace(x, core.initial_state(1), starts)
    assert trace["attention"].shape == (T, 1, window + 1)
    t = T - 1
    (y[t] * torch.randn_like(y[t])).sum().backward()  # (a plain sum of a LayerNorm output is constant)
    grad = x.grad.abs().sum(dim=(1, 2))
    assert torch.all(grad[: t - window] == 0)  # one layer: nothing older than `window` steps reaches step t
    assert torch.all(grad[t - window : t + 1] > 0)  # ...while every step inside the window does


def test_mask_helper_bands_and_separates_episodes():
    starts = torch.zeros(4, 1, dtype=torch.bool)
    starts[2, 0] = True
    allowed = episode_window_mask(starts, torch.tensor([[0.0, 1.0]]), window=2)[0]  # keys: 2 slots + 4 steps
    expected = torch.tensor(
        [
            [0, 1, 1, 0, 0, 0],  # t=0: the invalid slot 0 is masked, slot 1 (t-1) and itself allowed
            [0, 1, 1, 1, 0, 0],  # t=1: slot 0 (distance 3) is outside the window anyway
            [0, 0, 0, 0, 1, 0],  # t=2: a new episode: only itself
            [0, 0, 0, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(allowed, expected)


def test_trace_layout_is_attention_by_distance_averaged_over_heads():
    core = _core(window=5, num_layers=2, num_heads=2)
    T, B = 14, 3
    g = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.rand(T, B, generator=g) < 0.2
    _, _, trace = core.forward_with_trace(x, _noisy_state(core, B), starts)
    assert trace["attention_heads"].shape == (T, B, 2, 6)
    torch.testing.assert_close(trace["attention"], trace["attention_heads"].mean(dim=2))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"window": 0}, "window"),
        ({"hidden_size": 10, "num_heads": 4}, "num_heads"),
        ({"num_layers": 0}, "num_layers"),
        ({"num_heads": 0}, "num_heads"),
        ({"ff_size": 0}, "ff_size"),
        ({"hidden_size": 0}, "hidden_size"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        WindowTransformerCore(input_dim=D, **kwargs)


def test_ppo_learns_cue_delay_8():
    success = cue_delay_success("transformer", 24_576, learning_rate=1e-3, memory_kwargs={"window": 16})
    assert success >= 0.9, success
