"""GTrXLCore: gating near the identity at init, the gate's equations, episode masking, memory bound,
arguments, and learning."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import cue_delay_success
from tracerl.memory.gtrxl import GRUGate, GTrXLCore
from tracerl.memory.transformer import distance_index

D = 4


def _core(**kwargs) -> GTrXLCore:
    torch.manual_seed(0)
    return GTrXLCore(input_dim=D, **{"hidden_size": 16, **kwargs})


def _noisy_state(core: GTrXLCore, batch: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    state = {k: torch.randn(v.shape, generator=g) for k, v in core.initial_state(batch).items()}
    state["valid"] = torch.ones_like(state["valid"])
    return state


def _block_deviation(gate_bias: float) -> float:
    """Relative change ||block(E) - E|| / ||E|| of one freshly initialised layer on unit-variance inputs."""
    core = _core(hidden_size=64, memory_len=8, gate_bias=gate_bias)
    g = torch.Generator().manual_seed(1)
    B, T, M = 16, 10, 8
    h, mem = torch.randn(B, T, 64, generator=g), torch.randn(B, M, 64, generator=g)
    allowed = torch.ones(B, T, M + T, dtype=torch.bool).tril(M)  # every step sees the whole memory
    with torch.no_grad():
        out, _ = core.blocks[0](h, mem, allowed, distance_index(T, M, M, h.device))
    return float((out - h).norm() / h.norm())


def test_gating_starts_near_the_identity():
    # Each gate moves the stream by z ⊙ (ĥ - x). At init z = σ(W_z y + U_z x - 2) averages close to
    # σ(-2) ≈ 0.12 and rms(ĥ - x) ≈ 1.3 rms(x) (ĥ = tanh(...) is bounded), so one gate changes the
    # stream by ≈ 0.15 of its norm and a block's two gates by ≈ 0.3 at most; 0.35 leaves margin for
    # the init's randomness. With b_g = 0 (z ≈ 0.5, a plain GRU gate) the same block moves it by > 0.6.
    assert _block_deviation(2.0) < 0.35
    assert _block_deviation(0.0) > 0.6
    gate = GRUGate(64)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(256, 64, generator=g), torch.relu(torch.randn(256, 64, generator=g))
    with torch.no_grad():
        z = gate.update_gate(x, y)
    assert abs(float(z.mean()) - 1 / (1 + math.exp(2.0))) < 0.05


def test_gate_follows_the_gru_equations():
    torch.manual_seed(0)
    gate = GRUGate(8)
    x, y = torch.randn(5, 8), torch.randn(5, 8)
    Wr, Wz, Wg = gate.w_rzg.weight.chunk(3, dim=0)
    Ur, Uz = gate.u_rz.weight.chunk(2, dim=0)
    r = torch.sigmoid(y @ Wr.T + x @ Ur.T)
    z = torch.sigmoid(y @ Wz.T + x @ Uz.T - 2.0)
    h_hat = torch.tanh(y @ Wg.T + (r * x) @ gate.u_g.weight.T)
    torch.testing.assert_close(gate(x, y), (1 - z) * x + z * h_hat)


def test_attention_never_crosses_an_episode_boundary():
    core = _core(memory_len=6, num_layers=2)
    T, B, start = 12, 2, 5
    x = torch.randn(T, B, D)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[start, 0] = True
    with torch.no_grad():
        _, _, trace = core.forward_with_trace(x, _noisy_state(core, B), starts)
    att = trace["attention"]
    assert att.shape == (T, B, 7)
    for t in range(start, T):
        assert torch.all(att[t, 0, t - start + 1 :] == 0), t
        assert float(att[t, 0, : t - start + 1].sum()) == pytest.approx(1.0, abs=1e-5)
    assert att[start - 1, 0, 1:].sum() > 0.1
    assert att[T - 1, 1, 1:].sum() > 0.1


def test_memory_length_bounds_attention():
    memory_len, T = 3, 10
    core = _core(memory_len=memory_len, num_layers=1)
    x = torch.randn(T, 1, D, requires_grad=True)
    starts = torch.zeros(T, 1, dtype=torch.bool)
    starts[0] = True
    y, _, trace = core.forward_with_trace(x, core.initial_state(1), starts)
    assert trace["attention"].shape == (T, 1, memory_len + 1)
    t = T - 1
    (y[t] * torch.randn_like(y[t])).sum().backward()
    grad = x.grad.abs().sum(dim=(1, 2))
    assert torch.all(grad[: t - memory_len] == 0)
    assert torch.all(grad[t - memory_len : t + 1] > 0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"memory_len": 0}, "memory_len"),
        ({"hidden_size": 10, "num_heads": 4}, "num_heads"),
        ({"num_layers": 0}, "num_layers"),
        ({"ff_size": 0}, "ff_size"),
        ({"gate_bias": float("nan")}, "gate_bias"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        GTrXLCore(input_dim=D, **kwargs)


def test_ppo_learns_cue_delay_8():
    success = cue_delay_success("gtrxl", 20_480, learning_rate=1e-3, memory_kwargs={"memory_len": 16})
    assert success >= 0.9, success
