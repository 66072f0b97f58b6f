"""Gated Transformer-XL (GTrXL; Parisotto et al. 2020, "Stabilizing Transformers for Reinforcement Learning").

Per layer ``l``, with ``E`` the layer's inputs at the current steps and ``M`` its cached inputs of the
previous ``memory_len`` steps (identity-map reordering: LayerNorm only on sub-layer inputs, ReLU on
sub-layer outputs, GRU-type gates in place of the residual connections)::

    Ȳ  = RelMHA(LN([M; E]))              Y  = g_MHA(E, ReLU(Ȳ))
    Ē  = W_2 ReLU(W_1 LN(Y) + b_1) + b_2  E' = g_MLP(Y, ReLU(Ē))

    g(x, y):  r = σ(W_r y + U_r x)
              z = σ(W_z y + U_z x - b_g)          b_g initialised to 2: z ≈ σ(-2) ≈ 0.12, g ≈ x
              ĥ = tanh(W_g y + U_g (r ⊙ x))
              g = (1 - z) ⊙ x + z ⊙ ĥ

Relative positions as in Transformer-XL (Dai et al. 2019), with ``R_k`` the sinusoid of distance
``k = i - j`` and learned ``u, v`` per head::

    A_ij = (q_i + u) · k_j + (q_i + v) · W_R R_{i-j},   scaled by 1 / sqrt(d_head)

Only distances enter, so stepping equals one call on the whole sequence. A step attends to itself
and at most ``memory_len`` earlier steps of its own episode (the memory of another episode is masked
out, see :func:`tracerl.memory.transformer.episode_window_mask`). The output is ``E`` of the last layer.

State (batch-first): ``memory_l`` ``[B, memory_len, d]`` per layer (the layer's inputs at the last
``memory_len`` steps, oldest first; no stop-gradient, so gradients can reach a stored state) and
``valid`` ``[B, memory_len]`` float (``> 0.5`` = slot holds a step of the current episode).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .registry import register_memory
from .transformer import SlidingAttentionCore, masked_softmax, validate_attention_args


class GRUGate(nn.Module):
    """The GRU-type gating layer ``g(x, y)`` of GTrXL (equations in the module docstring).

    ``x`` is the stream (residual) input, ``y`` the sub-layer output; ``gate_bias`` is ``b_g``.
    """

    def __init__(self, d: int, gate_bias: float = 2.0) -> None:
        super().__init__()
        self.w_rzg = nn.Linear(d, 3 * d, bias=False)  # W_r, W_z, W_g
        self.u_rz = nn.Linear(d, 2 * d, bias=False)  # U_r, U_z
        self.u_g = nn.Linear(d, d, bias=False)  # U_g
        self.gate_bias = nn.Parameter(torch.full((d,), float(gate_bias)))  # b_g

    def update_gate(self, x: Tensor, y: Tensor) -> Tensor:
        """``z = σ(W_z y + U_z x - b_g)``, the fraction of the new value let in."""
        d = x.shape[-1]
        return torch.sigmoid(self.w_rzg(y)[..., d : 2 * d] + self.u_rz(x)[..., d:] - self.gate_bias)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        wr, wz, wg = self.w_rzg(y).chunk(3, dim=-1)
        ur, uz = self.u_rz(x).chunk(2, dim=-1)
        r = torch.sigmoid(wr + ur)
        z = torch.sigmoid(wz + uz - self.gate_bias)
        h_hat = torch.tanh(wg + self.u_g(r * x))
        return (1 - z) * x + z * h_hat


def sinusoid_table(length: int, d: int) -> Tensor:
    """``[length, d]``: Transformer-XL's ``R_k = [sin(k ω), cos(k ω)]``, ``ω_i = 10000^(-2i/d)``."""
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    angles = torch.arange(length, dtype=torch.float32).unsqueeze(1) * inv_freq.unsqueeze(0)
    table = torch.cat([angles.sin(), angles.cos()], dim=1)
    return table[:, :d]


class GTrXLBlock(nn.Module):
    """One GTrXL layer: relative multi-head attention over ``[memory; inputs]`` and a feed-forward
    sub-layer, each behind LayerNorm on its input and a GRU gate on its (ReLU'd) output."""

    def __init__(self, d: int, num_heads: int, ff_size: int, memory_len: int, gate_bias: float) -> None:
        super().__init__()
        self.num_heads, self.d_head, self.memory_len = num_heads, d // num_heads, memory_len
        self.ln_attn = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.w_r = nn.Linear(d, d, bias=False)  # W_R
        self.u = nn.Parameter(torch.zeros(num_heads, self.d_head))
        self.v = nn.Parameter(torch.zeros(num_heads, self.d_head))
        self.out = nn.Linear(d, d)
        self.gate_attn = GRUGate(d, gate_bias)
        self.ln_ff = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff_size), nn.ReLU(), nn.Linear(ff_size, d))
        self.gate_ff = GRUGate(d, gate_bias)
        self.register_buffer("rel_table", sinusoid_table(memory_len + 1, d), persistent=False)

    def forward(self, h: Tensor, memory: Tensor, allowed: Tensor, dist: Tensor) -> tuple[Tensor, Tensor]:
        """``h`` ``[B, T, d]`` (this layer's inputs E), ``memory`` ``[B, M, d]``, ``allowed`` ``[B, T, M+T]``,
        ``dist`` ``[T, M+T]``. Returns ``E'`` ``[B, T, d]`` and the attention ``[B, H, T, M+T]``."""
        B, T, d = h.shape
        H, dh = self.num_heads, self.d_head
        keys_in = self.ln_attn(torch.cat([memory, h], dim=1))
        L = keys_in.shape[1]
        q, k, v = self.qkv(keys_in).split(d, dim=-1)
        q = q[:, L - T :].reshape(B, T, H, dh).transpose(1, 2)  # [B, H, T, dh]
        k = k.reshape(B, L, H, dh).transpose(1, 2)  # [B, H, L, dh]
        v = v.reshape(B, L, H, dh).transpose(1, 2)
        r = self.w_r(self.rel_table).view(-1, H, dh).permute(1, 2, 0)  # [H, dh, memory_len + 1]
        content = (q + self.u.view(1, H, 1, dh)) @ k.transpose(2, 3)  # [B, H, T, L]
        position = (q + self.v.view(1, H, 1, dh)) @ r.unsqueeze(0)  # [B, H, T, memory_len + 1]
        position = position.gather(3, dist.view(1, 1, T, L).expand(B, H, T, L))
        weights = masked_softmax((content + position) / math.sqrt(dh), allowed)
        attended = self.out((weights @ v).transpose(1, 2).reshape(B, T, d))
        y = self.gate_attn(h, torch.relu(attended))
        e = self.ff(self.ln_ff(y))
        return self.gate_ff(y, torch.relu(e)), weights


class GTrXLCore(SlidingAttentionCore):
    """Gated Transformer-XL memory (see the module docstring for the equations).

    Args:
        input_dim: width of the inputs ``x`` (linearly embedded to ``hidden_size``).
        hidden_size: model width ``d_model``, also the output width.
        num_layers: GTrXL layers.
        memory_len: earlier steps cached per layer and attended to (>= 1).
        num_heads: attention heads (``hidden_size`` must be divisible by it).
        ff_size: feed-forward width (None: ``4 * hidden_size``).
        gate_bias: initial ``b_g`` of every gate (2 in the paper: blocks start near the identity).

    State: ``memory_l`` ``[B, memory_len, hidden_size]`` per layer, ``valid`` ``[B, memory_len]``.

    Trace: ``attention`` ``[T, B, memory_len + 1]`` — last layer's attention averaged over heads —
    and ``attention_heads`` ``[T, B, num_heads, memory_len + 1]``; index ``k`` is the weight on the
    step ``k`` steps back (``k = 0``: the current step). Weights on another episode's steps are exactly 0.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        memory_len: int = 32,
        num_heads: int = 4,
        ff_size: int | None = None,
        gate_bias: float = 2.0,
    ) -> None:
        super().__init__()
        validate_attention_args(
            type(self).__name__, input_dim, hidden_size, num_layers, num_heads, "memory_len", memory_len
        )
        ff = 4 * hidden_size if ff_size is None else ff_size
        if isinstance(ff, bool) or not isinstance(ff, int) or ff < 1:
            raise ValueError(f"{type(self).__name__}: ff_size must be an int >= 1 or None, got {ff_size!r}")
        if not math.isfinite(gate_bias):
            raise ValueError(f"{type(self).__name__}: gate_bias must be finite, got {gate_bias!r}")
        self.input_dim, self.output_dim = input_dim, hidden_size
        self.hidden_size, self.num_layers, self.memory_len = hidden_size, num_layers, memory_len
        self.span = memory_len
        self.num_heads = num_heads
        self.embed = nn.Linear(input_dim, hidden_size)
        self.blocks = nn.ModuleList(
            GTrXLBlock(hidden_size, num_heads, ff, memory_len, gate_bias) for _ in range(num_layers)
        )


register_memory("gtrxl", GTrXLCore)
