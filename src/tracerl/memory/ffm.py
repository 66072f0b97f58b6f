"""Fast and Forgetful Memory (FFM, Morad et al., NeurIPS 2023), trained with a parallel scan.

"Reinforcement Learning with Fast and Forgetful Memory": a memory designed for RL whose state is a decaying,
oscillating sum of gated inputs, so it trains in parallel over the sequence (the paper reports two orders of
magnitude faster training than RNNs) and steps in O(1). Per layer, for input ``o_t``, with ``m`` memory
channels and ``c`` context (frequency) channels::

    x̃_t = ℓ1(o_t) ⊙ σ(ℓ2(o_t))                              gated input          [m]
    γ    = exp(-|α| + iω)                                   decay α [m], ω [c]   [m, c] complex, |γ| <= 1
    S_t  = γ ⊙ S_{t-1} + x̃_t 1_cᵀ                           state                [m, c] complex
    z_t  = ℓ3([Re S_t, Im S_t])                              mixed                [H]
    g_t  = σ(ℓ4(o_t))
    y_t  = LayerNorm(z_t) ⊙ g_t + ℓ5(o_t) ⊙ (1 - g_t)        output               [H]

(``ℓ1, ℓ2, ℓ4, ℓ5`` are one linear map here, like the reference implementation's ``pre``.) ``|α|`` sets how
fast channel ``m`` forgets, ``ω`` how fast context ``c`` oscillates, so ``S`` encodes both what was seen and
how long ago. Initialization follows the reference: ``ω_c = 2π / P_c`` with periods ``P`` evenly spaced in
``[min_period, max_period]``, and decays with ``|γ_m|^h = forgotten_at`` for horizons ``h`` evenly spaced
in decay rate between ``min_horizon`` and ``max_period`` steps.

The recurrence ``S_t = a_t S_{t-1} + b_t`` (``a_t = γ``, or 0 at an episode start) runs as a
:func:`~tracerl.memory.scan.linear_scan` in torch's complex dtype when training (the reference implementation's
closed form divides by ``γ^t`` and needs a bounded sequence length; the scan does not, since ``|γ| <= 1``);
a single step (acting) is real arithmetic on the real and imaginary parts.
Layers are stacked (layer ``l > 0`` reads layer ``l - 1``'s ``y``).

State: ``{"s": [B, num_layers, memory_size, context_size, 2]}``, real and imaginary parts of ``S``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .base import MemoryCore, State, StateSpec, TensorSpec, check_inputs
from .registry import register_memory
from .scan import linear_scan, stack_layers


class _FFMLayer(nn.Module):
    """One FFM cell: ``[T, B, in_dim]`` -> ``[T, B, H]`` with state ``[B, m, c, 2]``."""

    def __init__(
        self, in_dim: int, hidden: int, m: int, c: int, min_period: float, max_period: float, min_horizon: float,
        forgotten_at: float,
    ) -> None:
        super().__init__()
        self.m, self.c, self.hidden = m, c, hidden
        self.pre = nn.Linear(in_dim, 2 * m + 2 * hidden)  # [ℓ1 | ℓ2 | ℓ4 | ℓ5]
        self.mix = nn.Linear(2 * m * c, hidden)  # ℓ3
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        rate_fast, rate_slow = -math.log(forgotten_at) / min_horizon, -math.log(forgotten_at) / max_period
        self.alpha = nn.Parameter(torch.linspace(rate_fast, rate_slow, m))
        self.omega = nn.Parameter(2 * math.pi / torch.linspace(min_period, max_period, c))

    def decay(self) -> tuple[Tensor, Tensor]:
        """γ = exp(-|α| + iω) as (real, imaginary) parts, each ``[m, c]``."""
        mag = torch.exp(-self.alpha.abs()).unsqueeze(1)
        return mag * torch.cos(self.omega), mag * torch.sin(self.omega)

    def mix_weight(self) -> Tensor:
        """ℓ3's weight ``[H, 2 m c]`` with its columns in the order of ``view_as_real(S).reshape(...)``, i.e. per
        memory and context channel its real then imaginary part (the reference implementation's order). The
        parameter keeps the ``[Re S | Im S]`` per memory channel layout, so checkpoints and the equations stay as
        they were; permuting the 16k weights costs less than transposing the ``[T, B, m, c, 2]`` state."""
        m, c, H = self.m, self.c, self.hidden
        return self.mix.weight.view(H, m, 2, c).transpose(2, 3).reshape(H, 2 * m * c)

    def forward(self, o: Tensor, s0: Tensor, episode_start: Tensor) -> tuple[Tensor, Tensor]:
        """``o`` [T, B, in_dim], ``s0`` [B, m, c, 2] -> ``y`` [T, B, H] and the final state [B, m, c, 2]."""
        T, B, _ = o.shape
        m, c, H = self.m, self.c, self.hidden
        if T == 1:  # acting: one step in real arithmetic on [B, ...] (exports to ONNX); a start zeroes the state
            o = o[0]
        val, in_gate, out_gate, thru = F.linear(o, self.pre.weight, self.pre.bias).split([m, m, H, H], dim=-1)
        x_in = val * torch.sigmoid(in_gate)  # x̃_t [T, B, m], written to every context channel
        mag = torch.exp(-self.alpha.abs()).unsqueeze(1)  # |γ| [m, 1]
        if T == 1:
            g_re, g_im = mag * torch.cos(self.omega), mag * torch.sin(self.omega)  # [m, c]
            h_re, h_im = torch.where(episode_start[0].view(B, 1, 1, 1), 0.0, s0).unbind(-1)
            s_re = torch.addcmul(x_in.unsqueeze(-1), g_re, h_re) - g_im * h_im
            s_im = torch.addcmul(g_re * h_im, g_im, h_re)
            s = torch.stack([s_re, s_im], dim=-1)  # [B, m, c, 2]
            z = F.linear(torch.cat([s_re, s_im], dim=-1).view(B, 2 * m * c), self.mix.weight, self.mix.bias)
        else:  # training: a complex scan, γ zeroed at episode starts (one broadcast product)
            gamma = torch.polar(mag.expand(m, c), self.omega.expand(m, c))
            a = gamma * (~episode_start).to(mag.dtype).view(T, B, 1, 1)
            b = x_in.unsqueeze(-1).to(gamma.dtype).expand(T, B, m, c)
            h = linear_scan(a, b, torch.view_as_complex(s0.contiguous()))
            feats = torch.view_as_real(h).view(T, B, 2 * m * c)  # no copy: (m, c, re/im) order
            s = torch.view_as_real(h[-1])
            z = F.linear(feats, self.mix_weight(), self.mix.bias)
        g = torch.sigmoid(out_gate)
        z = F.layer_norm(z, self.norm.normalized_shape, None, None, self.norm.eps)
        y = torch.addcmul(thru, z - thru, g)  # LayerNorm(z) ⊙ g + thru ⊙ (1 - g)
        return (y.unsqueeze(0) if T == 1 else y), s


class FFMCore(MemoryCore):
    """Stacked Fast and Forgetful Memory cells. State ``{"s": [B, num_layers, memory_size, context_size, 2]}``.

    Args:
        input_dim: input features per step.
        hidden_size: output width ``H`` of every layer.
        num_layers: stacked cells.
        memory_size: ``m``, the decay channels.
        context_size: ``c``, the oscillation channels (the state holds ``m * c`` complex numbers).
        min_period, max_period: range of the initial oscillation periods (steps); ``max_period`` also is the
            slowest initial forgetting horizon.
        min_horizon: the fastest initial forgetting horizon (steps).
        forgotten_at: the fraction of an input left at its channel's horizon.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        memory_size: int = 32,
        context_size: int = 4,
        min_period: float = 1.0,
        max_period: float = 1024.0,
        min_horizon: float = 64.0,
        forgotten_at: float = 0.01,
    ) -> None:
        super().__init__()
        for name, value in [("input_dim", input_dim), ("hidden_size", hidden_size), ("num_layers", num_layers),
                            ("memory_size", memory_size), ("context_size", context_size)]:
            if value <= 0:
                raise ValueError(f"FFMCore: {name} must be > 0, got {value}")
        if not 0 < min_period <= max_period or not 0 < min_horizon <= max_period:
            raise ValueError(
                f"FFMCore needs 0 < min_period <= max_period and 0 < min_horizon <= max_period; got "
                f"min_period={min_period}, max_period={max_period}, min_horizon={min_horizon}"
            )
        if not 0 < forgotten_at < 1:
            raise ValueError(f"FFMCore: forgotten_at must be in (0, 1), got {forgotten_at}")
        self.input_dim = input_dim
        self.output_dim = hidden_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.memory_size = memory_size
        self.context_size = context_size
        self.layers = nn.ModuleList(
            _FFMLayer(input_dim if i == 0 else hidden_size, hidden_size, memory_size, context_size, min_period,
                      max_period, min_horizon, forgotten_at)
            for i in range(num_layers)
        )

    def state_spec(self) -> StateSpec:
        return {"s": TensorSpec((self.num_layers, self.memory_size, self.context_size, 2))}

    def forward(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State]:
        """``x`` [T, B, input_dim] -> ``y`` [T, B, hidden_size] (the last layer's output) and the final state."""
        check_inputs(self, x, state, episode_start)
        out, finals = x, []
        for i, layer in enumerate(self.layers):
            out, s = layer(out, state["s"][:, i], episode_start)
            finals.append(s)
        return out, {"s": stack_layers(finals)}


register_memory("ffm", FFMCore)
