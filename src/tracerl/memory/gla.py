"""Gated linear attention (GLA, Yang et al., ICML 2024), trained with a parallel scan.

"Gated Linear Attention Transformers with Hardware-Efficient Training": linear attention whose matrix-valued
state decays through a data-dependent gate on the key dimension, i.e. an RNN with a ``d_k × d_v`` state per
head that steps in O(1) and trains in parallel (the same family as GaLiTe, Pramanik et al. 2023). Per layer
and head, for input ``x_t``::

    q_t = W_q x_t,  k_t = W_k x_t / sqrt(d_k),  v_t = W_v x_t                       [d_k], [d_k], [d_v]
    α_t = σ(W_α x_t + b_α)^(1/τ)                 decay per key dimension, in (0, 1)  [d_k]
    S_t = (α_t 1ᵀ) ⊙ S_{t-1} + k_t v_tᵀ          state                               [d_k, d_v]
    o_t = q_tᵀ S_t                               read                                [d_v]
    y_t = W_o (LayerNorm(o_t) ⊙ swish(W_r x_t))  heads concatenated                  [H]

``τ`` (``gate_temperature``, the paper's 16) keeps decays near 1. Unlike the paper (a low-rank ``W_α`` and
zero bias), ``b_α`` starts at ``logit(exp(-τ / h))`` for horizons ``h`` spread geometrically over
``[1, max_horizon]`` per key dimension, so ``α^h = 1/e`` and the heads start out with short and long memories
(the same idea as the chrono initialization of the GRU core). Layers are stacked; layer ``l > 0`` adds its
output to its input (a residual).

The recurrence runs as :func:`~tracerl.memory.scan.linear_scan` over ``[T, B, heads, d_k, d_v]`` with the
decay ``[T, B, heads, d_k, 1]`` broadcast over ``d_v`` and set to 0 at episode starts; step mode is one
multiply-add of the state. State: ``{"S": [B, num_layers, num_heads, d_k, d_v]}``, ``d_k = d_v =
hidden_size / num_heads``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .base import MemoryCore, State, StateSpec, TensorSpec, check_inputs
from .registry import register_memory
from .scan import linear_scan, stack_layers


class _GLALayer(nn.Module):
    """One gated linear-attention layer: ``[T, B, in_dim]`` -> ``[T, B, H]``, state ``[B, heads, d, d]``."""

    def __init__(self, in_dim: int, hidden: int, heads: int, tau: float, max_horizon: float) -> None:
        super().__init__()
        self.heads, self.d, self.tau = heads, hidden // heads, tau
        self.qkvr = nn.Linear(in_dim, 4 * hidden, bias=False)  # [q | k | v | r]
        self.gate = nn.Linear(in_dim, hidden)  # α pre-activation, per head and key dimension
        self.out = nn.Linear(hidden, hidden)
        nn.init.xavier_uniform_(self.qkvr.weight)
        nn.init.xavier_uniform_(self.gate.weight, gain=0.1)
        horizons = torch.logspace(0.0, math.log10(max_horizon), self.d).repeat(heads)
        with torch.no_grad():
            # logit(p) with log p = -τ/h, written so that short horizons (p ~ e^-16) keep their precision
            self.gate.bias.copy_(-tau / horizons - torch.log(-torch.expm1(-tau / horizons)))

    def forward(self, x: Tensor, s0: Tensor, episode_start: Tensor) -> tuple[Tensor, Tensor]:
        T, B, _ = x.shape
        h, d = self.heads, self.d
        shape = (B, h, d) if T == 1 else (T, B, h, d)  # acting: one step on [B, ...]
        if T == 1:
            x = x[0]
        q, k, v, r = (z.reshape(shape) for z in F.linear(x, self.qkvr.weight).chunk(4, dim=-1))
        k = k / math.sqrt(d)
        decay = torch.exp(F.logsigmoid(F.linear(x, self.gate.weight, self.gate.bias)) / self.tau)
        decay = decay.reshape(*shape, 1)  # α_t
        kv = k.unsqueeze(-1) * v.unsqueeze(-2)  # b_t = k_t v_tᵀ
        if T == 1:  # a start zeroes the carried-in state
            S = torch.addcmul(kv, decay, torch.where(episode_start[0].view(B, 1, 1, 1), 0.0, s0))
            S_last = S
        else:
            S = linear_scan(decay.masked_fill(episode_start.view(T, B, 1, 1, 1), 0.0), kv, s0)  # from S_{-1} = s0
            S_last = S[-1]
        o = (q.unsqueeze(-1) * S).sum(-2)  # q_tᵀ S_t (a batched 1 x d matmul is ~3x slower on CPU)
        o = F.layer_norm(o, (d,)) * F.silu(r)
        y = F.linear(o.flatten(-2), self.out.weight, self.out.bias)
        return (y.unsqueeze(0) if T == 1 else y), S_last


class GLACore(MemoryCore):
    """Stacked gated linear-attention layers. State ``{"S": [B, num_layers, num_heads, d, d]}``, ``d = H / heads``.

    Args:
        input_dim: input features per step.
        hidden_size: width ``H`` of every layer (and the output); divisible by ``num_heads``.
        num_layers: stacked layers (residual from the second on).
        num_heads: heads per layer.
        gate_temperature: ``τ`` in ``α = σ(·)^(1/τ)``.
        max_horizon: the longest initial memory horizon (steps).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        num_heads: int = 4,
        gate_temperature: float = 16.0,
        max_horizon: float = 256.0,
    ) -> None:
        super().__init__()
        for name, value in [("input_dim", input_dim), ("hidden_size", hidden_size), ("num_layers", num_layers),
                            ("num_heads", num_heads)]:
            if value <= 0:
                raise ValueError(f"GLACore: {name} must be > 0, got {value}")
        if hidden_size % num_heads:
            raise ValueError(f"GLACore: hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
        if not gate_temperature > 0 or not max_horizon >= 1:
            raise ValueError(
                f"GLACore needs gate_temperature > 0 and max_horizon >= 1, got {gate_temperature}, {max_horizon}"
            )
        self.input_dim = input_dim
        self.output_dim = hidden_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.layers = nn.ModuleList(
            _GLALayer(input_dim if i == 0 else hidden_size, hidden_size, num_heads, gate_temperature, max_horizon)
            for i in range(num_layers)
        )

    def state_spec(self) -> StateSpec:
        return {"S": TensorSpec((self.num_layers, self.num_heads, self.head_dim, self.head_dim))}

    def forward(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State]:
        """``x`` [T, B, input_dim] -> ``y`` [T, B, hidden_size] (the last layer's output) and the final state."""
        check_inputs(self, x, state, episode_start)
        out, finals = x, []
        for i, layer in enumerate(self.layers):
            y, s = layer(out, state["S"][:, i], episode_start)
            out = y if i == 0 else out + y
            finals.append(s)
        return out, {"S": stack_layers(finals)}


register_memory("gla", GLACore)
