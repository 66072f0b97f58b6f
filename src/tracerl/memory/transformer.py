"""A causal transformer over a sliding window of past steps, masked by episode.

Each layer is a pre-LayerNorm block (Xiong et al. 2020) with a learned relative-position bias
(Shaw et al. 2018 / Raffel et al. 2020 style, one scalar per head and distance)::

    a  = h + W_o MHA(LN(h), LN([m; h]))            # m: the layer's cached inputs of the last `window` steps
    h' = a + W_2 ReLU(W_1 LN(a) + b_1) + b_2
    y  = LN_out(h_L)

    MHA, per head:  s_ij = q_i · k_j / sqrt(d_head) + β_head[i - j],   w_i = softmax_j(s_ij + mask_ij)

A step ``i`` attends to key step ``j`` only when ``0 <= i - j <= window`` (itself and at most
``window`` earlier steps), ``j`` lies in the same episode (at or after the row's most recent episode
start), and ``j`` is a valid cached slot. Positions enter only through the distance ``i - j``, so a
step computes exactly the same thing whether it is run alone or inside a longer call. Each layer
looks back at most ``window`` steps; stacked layers attend to earlier layers' outputs, which looked
back themselves, so the receptive field of ``num_layers`` layers is ``num_layers * window`` steps
(all of them inside the current episode).

State (batch-first): ``memory_l`` ``[B, window, d]`` for each layer ``l`` — the inputs of layer ``l``
at the last ``window`` steps, oldest first — and ``valid`` ``[B, window]`` float, ``> 0.5`` marking
the slots that hold a step of the current episode. The sequence path runs one attention call per
layer over ``[memory; T new steps]`` keys with a banded causal + episode mask (no loop over time).

The helpers :func:`episode_window_mask`, :func:`roll_memory` and :func:`attention_by_distance` are
shared with :mod:`tracerl.memory.gtrxl`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import AddressableCore, State, StateSpec, TensorSpec, Trace, check_inputs
from .registry import register_memory


def last_episode_start(episode_start: Tensor, none_value: int) -> Tensor:
    """``[T, B]`` long: index of the most recent episode start at or before ``t`` (``none_value`` if none)."""
    T = episode_start.shape[0]
    t = torch.arange(T, device=episode_start.device).unsqueeze(1)
    marked = torch.where(episode_start, t, torch.full_like(t, none_value))
    return torch.cummax(marked, dim=0).values


def episode_window_mask(episode_start: Tensor, valid: Tensor, window: int) -> Tensor:
    """Which keys each query may attend to.

    Keys are ``[memory (M slots, oldest first); the T new steps]``; key ``j`` sits at time
    ``tau_j = j - M`` relative to the first new step. Query ``t`` may attend to key ``j`` iff
    ``0 <= t - tau_j <= window``, ``tau_j`` is at or after the row's most recent episode start at or
    before ``t``, and (for memory slots) ``valid > 0.5``.

    Args:
        episode_start: ``[T, B]`` bool.
        valid: ``[B, M]`` float validity of the memory slots.
        window: the furthest distance attended.

    Returns:
        ``[B, T, M + T]`` bool, True where attention is allowed (always True on the diagonal ``tau = t``).
    """
    T, B = episode_start.shape
    M = valid.shape[1]
    device = episode_start.device
    start = last_episode_start(episode_start, -(M + 1)).transpose(0, 1).unsqueeze(2)  # [B, T, 1]
    t = torch.arange(T, device=device).view(1, T, 1)
    tau = (torch.arange(M + T, device=device) - M).view(1, 1, M + T)
    allowed = (tau <= t) & (t - tau <= window) & (tau >= start)
    key_valid = torch.cat([valid > 0.5, torch.ones(B, T, dtype=torch.bool, device=device)], dim=1)
    return allowed & key_valid.unsqueeze(1)


def roll_memory(memory: Tensor, new: Tensor, valid: Tensor, episode_start: Tensor) -> tuple[Tensor, Tensor]:
    """The memory after the new steps: the last ``M`` of ``[memory; new]``, emptied before the last reset.

    Args:
        memory: ``[B, M, d]`` cached entries, oldest first; ``new``: ``[B, T, d]``.
        valid: ``[B, M]`` float validity; ``episode_start``: ``[T, B]`` bool.

    Returns:
        ``([B, M, d], [B, M])``: slots older than each row's most recent episode start are zeroed and
        marked invalid (exactly what stepping with :meth:`MemoryCore.reset_where` leaves there).
    """
    B, M, _ = memory.shape
    T = new.shape[1]
    full = torch.cat([memory, new], dim=1)[:, -M:]
    full_valid = torch.cat([valid, torch.ones(B, T, dtype=valid.dtype, device=valid.device)], dim=1)[:, -M:]
    start = last_episode_start(episode_start, -(M + 1))[-1].unsqueeze(1)  # [B, 1]
    tau = (torch.arange(M + T, device=memory.device) - M)[-M:].unsqueeze(0)  # [1, M]
    keep = tau >= start
    return (
        torch.where(keep.unsqueeze(2), full, torch.zeros_like(full)),
        torch.where(keep, full_valid, torch.zeros_like(full_valid)),
    )


def distance_index(T: int, M: int, window: int, device: torch.device) -> Tensor:
    """``[T, M + T]`` long: distance ``t - tau_j`` of key ``j`` from query ``t``, clamped to ``[0, window]``
    (out-of-band keys are masked anyway)."""
    t = torch.arange(T, device=device).unsqueeze(1)
    tau = (torch.arange(M + T, device=device) - M).unsqueeze(0)
    return (t - tau).clamp(0, window)


def attention_by_distance(weights: Tensor, M: int, window: int) -> Tensor:
    """Re-index attention weights ``[B, H, T, M + T]`` by distance: ``[T, B, H, window + 1]``, where entry
    ``k`` is the weight on the step ``k`` steps back (``k = 0``: the step itself). Requires ``M >= window``."""
    B, H, T, _ = weights.shape
    t = torch.arange(T, device=weights.device).unsqueeze(1)
    k = torch.arange(window + 1, device=weights.device).unsqueeze(0)
    index = (t + M - k).view(1, 1, T, window + 1).expand(B, H, T, window + 1)
    return weights.gather(3, index).permute(2, 0, 1, 3)


def masked_softmax(scores: Tensor, allowed: Tensor) -> Tensor:
    """Softmax over the last dim of ``scores`` ``[B, H, T, L]`` where ``allowed`` ``[B, T, L]``; others get 0."""
    return torch.softmax(scores.masked_fill(~allowed.unsqueeze(1), float("-inf")), dim=-1)


def validate_attention_args(
    owner: str, input_dim: int, hidden_size: int, num_layers: int, num_heads: int, window_name: str, window: int
) -> None:
    """Raise ValueError naming the first invalid argument of an attention core."""
    for name, value in (("input_dim", input_dim), ("hidden_size", hidden_size), ("num_layers", num_layers),
                        ("num_heads", num_heads), (window_name, window)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: {name} must be an int >= 1, got {value!r}")
    if hidden_size % num_heads != 0:
        raise ValueError(
            f"{owner}: hidden_size={hidden_size} must be divisible by num_heads={num_heads}"
        )


class _WindowBlock(nn.Module):
    """One pre-LN transformer block with a learned per-head relative-position bias."""

    def __init__(self, d: int, num_heads: int, ff_size: int, window: int) -> None:
        super().__init__()
        self.num_heads, self.d_head, self.window = num_heads, d // num_heads, window
        self.ln_attn = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.rel_bias = nn.Parameter(torch.zeros(num_heads, window + 1))  # β_head[distance]
        self.ln_ff = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff_size), nn.ReLU(), nn.Linear(ff_size, d))

    def forward(self, h: Tensor, memory: Tensor, allowed: Tensor, dist: Tensor) -> tuple[Tensor, Tensor]:
        """``h`` ``[B, T, d]`` (this layer's inputs), ``memory`` ``[B, M, d]``, ``allowed`` ``[B, T, M+T]``,
        ``dist`` ``[T, M+T]``. Returns the block output ``[B, T, d]`` and attention ``[B, H, T, M+T]``."""
        B, T, d = h.shape
        H, dh = self.num_heads, self.d_head
        keys_in = self.ln_attn(torch.cat([memory, h], dim=1))  # [B, L, d]
        L = keys_in.shape[1]
        q, k, v = self.qkv(keys_in).split(d, dim=-1)
        q = q[:, L - T :].reshape(B, T, H, dh).transpose(1, 2)  # [B, H, T, dh]
        k = k.reshape(B, L, H, dh).transpose(1, 2)  # [B, H, L, dh]
        v = v.reshape(B, L, H, dh).transpose(1, 2)
        scores = q @ k.transpose(2, 3) / math.sqrt(dh) + self.rel_bias[:, dist].unsqueeze(0)
        weights = masked_softmax(scores, allowed)
        attended = (weights @ v).transpose(1, 2).reshape(B, T, d)
        a = h + self.out(attended)
        return a + self.ff(self.ln_ff(a)), weights


class SlidingAttentionCore(AddressableCore):
    """Shared sequence path of :class:`WindowTransformerCore` and :class:`~tracerl.memory.gtrxl.GTrXLCore`:
    embed, then per layer roll the layer's cached inputs and attend over ``[memory; T]`` with the banded,
    episode-masked mask; the trace is the last layer's attention by distance.

    Subclasses set ``span`` (how many earlier steps a step sees), ``embed``, ``blocks`` (each called as
    ``block(h, memory, allowed, dist) -> (h, weights)``) and may override :meth:`_output`.
    """

    span: int
    hidden_size: int
    num_layers: int
    embed: nn.Module
    blocks: nn.ModuleList

    def state_spec(self) -> StateSpec:
        spec = {f"memory_{l}": TensorSpec((self.span, self.hidden_size)) for l in range(self.num_layers)}
        spec["valid"] = TensorSpec((self.span,))
        return spec

    def _output(self, h: Tensor) -> Tensor:
        """The last layer's ``h`` ``[B, T, d]`` -> output ``[B, T, d]``."""
        return h

    def forward_with_trace(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State, Trace]:
        check_inputs(self, x, state, episode_start)
        T = x.shape[0]
        valid = state["valid"]
        allowed = episode_window_mask(episode_start, valid, self.span)
        dist = distance_index(T, self.span, self.span, x.device)
        h = self.embed(x.transpose(0, 1))  # [B, T, d]
        next_state: State = {}
        weights = h.new_zeros(0)
        for l, block in enumerate(self.blocks):
            memory = state[f"memory_{l}"]
            next_state[f"memory_{l}"], next_valid = roll_memory(memory, h, valid, episode_start)
            h, weights = block(h, memory, allowed, dist)
        next_state["valid"] = next_valid
        heads = attention_by_distance(weights, self.span, self.span)
        trace = {"attention": heads.mean(dim=2), "attention_heads": heads}
        return self._output(h).transpose(0, 1), next_state, trace


class WindowTransformerCore(SlidingAttentionCore):
    """Causal multi-head self-attention over the last ``window`` steps of the current episode.

    Args:
        input_dim: width of the inputs ``x``.
        hidden_size: model width ``d_model``, also the output width.
        num_layers: transformer blocks.
        window: how many earlier steps a step may attend to (>= 1); with the step itself that makes
            ``window + 1`` keys at most.
        num_heads: attention heads (``hidden_size`` must be divisible by it).
        ff_size: feed-forward width (None: ``4 * hidden_size``).

    State: ``memory_l`` ``[B, window, hidden_size]`` per layer (the layer's inputs at the last
    ``window`` steps, oldest first) and ``valid`` ``[B, window]`` (float, ``> 0.5`` = slot in use).

    Trace: ``attention`` ``[T, B, window + 1]`` — last layer's attention averaged over heads — and
    ``attention_heads`` ``[T, B, num_heads, window + 1]``; index ``k`` is the weight on the step
    ``k`` steps back (``k = 0``: the current step). Weights on steps of another episode are exactly 0.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        window: int = 32,
        num_heads: int = 4,
        ff_size: int | None = None,
    ) -> None:
        super().__init__()
        validate_attention_args(type(self).__name__, input_dim, hidden_size, num_layers, num_heads, "window", window)
        ff = 4 * hidden_size if ff_size is None else ff_size
        if isinstance(ff, bool) or not isinstance(ff, int) or ff < 1:
            raise ValueError(f"{type(self).__name__}: ff_size must be an int >= 1 or None, got {ff_size!r}")
        self.input_dim, self.output_dim = input_dim, hidden_size
        self.hidden_size, self.num_layers, self.window, self.num_heads = hidden_size, num_layers, window, num_heads
        self.span = window
        self.embed = nn.Linear(input_dim, hidden_size)
        self.blocks = nn.ModuleList(_WindowBlock(hidden_size, num_heads, ff, window) for _ in range(num_layers))
        self.ln_out = nn.LayerNorm(hidden_size)

    def _output(self, h: Tensor) -> Tensor:
        return self.ln_out(h)


register_memory("transformer", WindowTransformerCore)
