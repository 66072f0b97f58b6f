"""Hierarchical Chunk Attention Memory (HCAM; Lampinen et al. 2021, "Towards mental time travel: a
hierarchical memory for reinforcement learning agents").

The past of the current episode is cut into chunks of ``C = chunk_len`` consecutive steps. The last
``N = num_chunks`` complete chunks are kept (``memory_len = N * C`` steps); the chunk being filled is
kept apart. Each layer ``l`` stores its own inputs ``m`` (as the windowed transformer does) and, per
step ``t`` with input ``h_t`` and ``u_t = LN(h_t)``::

    summary    s_c = mean_i m_{c,i}                                  (the chunk's mean, as in the paper)
    coarse     z_c = (W_q^c u_t) · (W_k^c LN(s_c)) / sqrt(d)         over the visible chunks c
    top-k      S = the k chunks with the largest z_c;   w_c = exp(z_c) / sum_{c' in S} exp(z_c')   (c in S)
    detailed   a_{c,i} = softmax_i( q_t · k_{c,i} / sqrt(d_h) )      per head, q_t = W_q u_t,
                                                                     k_{c,i} = W_k (LN(m_{c,i}) + P_i)
               r_c = sum_i a_{c,i} W_v (LN(m_{c,i}) + P_i)
    read       r_t = sum_{c in S} w_c r_c
    local      o_t = MHA(u_t, the current chunk's steps so far, itself included; positions P_i)
    block      a_t = h_t + W_o^loc o_t + W_o^mem r_t                 (the read is added to the residual)
               h'_t = a_t + W_2 ReLU(W_1 LN(a_t) + b_1) + b_2
    output     y_t = LN_out(h_t of the last layer)

``P_i`` is the sinusoid of the position ``i`` inside the chunk (oldest first; in the local attention the
step itself is at ``i = C - 1``). As in DeepMind's reference implementation (deepmind-research,
``hierarchical_transformer_memory``, a Haiku module) the coarse attention is single-head, the top-k weights are a softmax over the k selected logits only, the
within-chunk attention is multi-head with position encodings added to the chunk contents, and a chunk's
key is the mean of its stored embeddings. Two differences: the reference stops gradients at the memory
(its agent fills it in earlier unrolls); here gradients reach the stored embeddings of chunks written in
the same call (the choice of the top-k is not differentiable; their weights ``w_c`` are). And the steps
not yet in a complete chunk are read by the local attention over the current chunk (the reference
agent's transformer attends to recent steps through its own TrXL memory).

A chunk is written when its ``C``-th step has been consumed and can be read from the next step on;
an episode start clears the memory and the current chunk, and chunks restart at the episode's first
step. A step never sees another episode's steps.

State (batch-first): per layer ``memory_l`` ``[B, N, C, d]`` (complete chunks, oldest first; a write
drops the oldest) and ``recent_l`` ``[B, C, d]`` (the layer's inputs at the last ``C`` steps, oldest
first); shared ``chunk_valid`` ``[B, N]`` and ``recent_valid`` ``[B, C]`` (float, ``> 0.5`` = in use).
The current chunk is the trailing run of valid ``recent`` slots; a write clears ``recent_valid``.

Cost: a step projects the ``N`` chunk summaries and only the ``k`` selected chunks (``O(N d^2 + k C
d^2)``, plus ``O(N C d)`` to move the memory), where the windowed transformer projects all ``N C``
cached steps. The sequence path (no loop over time) scores every chunk completed before or inside the
call for every step, masks what each step may see (the chunk is complete before the step, in the step's
episode, and among the last ``N`` written), and gathers the selected chunks; it computes exactly what
stepping computes (the top-k is taken over the same scores, so only exact ties could differ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AddressableCore, State, StateSpec, TensorSpec, Trace, check_inputs
from .gtrxl import sinusoid_table
from .registry import register_memory
from .transformer import last_episode_start, validate_attention_args


def _int_arg(owner: str, name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")


def trailing_run(valid: Tensor) -> Tensor:
    """``[B]`` long: how many of the last slots of ``valid`` ``[B, C]`` are ``> 0.5`` without a gap."""
    flags = (valid > 0.5).flip(1).long()
    return flags.cumprod(dim=1).sum(dim=1)


@dataclass
class ChunkPlan:
    """Which chunks each step may read and where they sit, for one call (shared by every layer).

    Candidates are the ``N`` stored chunks followed by the chunks that end at steps ``0 .. T-2`` of the
    call (a chunk ending at the last step is never read inside the call).

    Attributes:
        visible: ``[B, T, N + T - 1]`` bool, step ``t`` may read candidate ``c``.
        slot: ``[B, T, N + T - 1]`` long, the memory slot candidate ``c`` occupies in the state step ``t``
            sees (``0`` = oldest); meaningful where ``visible``.
        local: ``[B, T, C]`` bool, which of the ``C`` steps ending at ``t`` (oldest first) belong to ``t``'s
            current chunk (always the last one, ``t`` itself).
        memory_entries: ``[B, N, C]`` long, for each slot of the next state the rows it takes from
            ``[memory (N*C rows, chunk by chunk); recent (C); the T new steps]``.
        memory_keep: ``[B, N]`` bool, False where a reset emptied the slot; ``memory_valid``: ``[B, N]``
            float, the next state's ``chunk_valid``.
        recent_keep: ``[B, C]`` bool, False for recent steps before the row's last reset in the call.
        recent_valid: ``[B, C]`` float, the next state's ``recent_valid``.
    """

    visible: Tensor
    slot: Tensor
    local: Tensor
    memory_entries: Tensor
    memory_keep: Tensor
    memory_valid: Tensor
    recent_keep: Tensor
    recent_valid: Tensor


def plan_chunks(episode_start: Tensor, chunk_valid: Tensor, recent_valid: Tensor) -> ChunkPlan:
    """The chunk bookkeeping of one call from ``episode_start`` ``[T, B]`` and the incoming validity
    masks ``chunk_valid`` ``[B, N]`` and ``recent_valid`` ``[B, C]`` (see :class:`ChunkPlan`).

    With ``t0`` the row's last episode start at or before ``t`` and ``L`` the current chunk's length when
    the call begins (the trailing valid run of ``recent_valid``, at most ``C - 1``), step ``t`` sits at
    position ``s_t = (t - t0) mod C`` (after a start) or ``(L + t) mod C`` in its chunk, and a chunk ends at
    ``t`` when ``s_t = C - 1``."""
    if episode_start.shape[0] == 1:
        return _plan_step(episode_start[0], chunk_valid, recent_valid)
    return _plan_sequence(episode_start, chunk_valid, recent_valid)


def _plan_sequence(episode_start: Tensor, chunk_valid: Tensor, recent_valid: Tensor) -> ChunkPlan:
    """:func:`plan_chunks` for any ``T`` (whole-tensor ops, no loop over steps)."""
    T, B = episode_start.shape
    N, C = chunk_valid.shape[1], recent_valid.shape[1]
    device = episode_start.device
    t0 = last_episode_start(episode_start, -1).transpose(0, 1)  # [B, T]
    reset = t0 >= 0
    lead = trailing_run(recent_valid).clamp(max=C - 1)  # [B]
    t = torch.arange(T, device=device)
    offset = torch.where(reset, t.unsqueeze(0) - t0, lead.unsqueeze(1) + t.unsqueeze(0))
    s = offset % C  # [B, T] position inside the chunk
    end = s == C - 1
    end_long = end.long()
    before = end_long.cumsum(dim=1) - end_long  # chunks written before step t (exclusive)
    total = end_long.sum(dim=1)  # [B]

    # Stored chunk j sits in slot j - (writes before t); a new chunk ending at e in slot N - before[t] + before[e].
    j = torch.arange(N, device=device)
    slot_in = j.view(1, 1, N) - before.unsqueeze(2)
    vis_in = (slot_in >= 0) & (chunk_valid > 0.5).unsqueeze(1) & ~reset.unsqueeze(2)
    e = t[: T - 1]
    slot_new = N - before.unsqueeze(2) + before[:, None, : T - 1]
    vis_new = (
        end[:, None, : T - 1]
        & (e.view(1, 1, -1) < t.view(1, T, 1))
        & (e.view(1, 1, -1) >= t0.unsqueeze(2))
        & (slot_new >= 0)
    )
    visible = torch.cat([vis_in, vis_new], dim=2)
    slot = torch.cat([slot_in, slot_new], dim=2)
    local = torch.arange(C, device=device).view(1, 1, C) >= (C - 1 - s).unsqueeze(2)

    # Next state: slot i holds write number total + i of [N stored; new chunks in order of their end].
    last_start = t0[:, -1]  # [B], -1: no start in the call
    any_reset = last_start >= 0
    index = total.unsqueeze(1) + j.unsqueeze(0)  # [B, N]
    from_stored = index < N
    ends_in_order = torch.argsort(torch.where(end, t, t + T), dim=1)  # [B, T]: end times first, ascending
    end_time = ends_in_order.gather(1, (index - N).clamp(0, T - 1))
    i = torch.arange(C, device=device)
    memory_entries = torch.where(from_stored.unsqueeze(2), (index * C).unsqueeze(2) + i,
                                 (N * C + 1 + end_time).unsqueeze(2) + i)  # [B, N, C] into [memory; stream]
    memory_keep = torch.where(from_stored, ~any_reset.unsqueeze(1), end_time >= last_start.unsqueeze(1))
    stored_valid = chunk_valid.gather(1, index.clamp(max=N - 1))
    memory_valid = torch.where(from_stored, stored_valid, torch.ones_like(stored_valid))
    memory_valid = torch.where(memory_keep, memory_valid, torch.zeros_like(memory_valid))

    # Recent steps: the last C of [recent; new], index k = T + i (k < C: incoming slot, else step k - C).
    k = T + torch.arange(C, device=device)  # [C]
    recent_keep = ~any_reset.unsqueeze(1) | (k.unsqueeze(0) >= C + last_start.unsqueeze(1))
    chunk_start = torch.where(end[:, -1], torch.full_like(s[:, -1], T), T - 1 - s[:, -1])  # first step still open
    new_valid = ((k - C).unsqueeze(0) >= chunk_start.unsqueeze(1)).to(recent_valid.dtype)
    untouched = (total == 0) & ~any_reset  # no write, no reset: incoming flags shift along unchanged
    incoming = recent_valid.gather(1, k.clamp(max=C - 1).unsqueeze(0).expand(B, C))
    old_valid = torch.where(untouched.unsqueeze(1), incoming, torch.zeros_like(incoming))
    next_recent_valid = torch.where((k >= C).unsqueeze(0), new_valid, old_valid)
    return ChunkPlan(visible, slot, local, memory_entries, memory_keep, memory_valid, recent_keep, next_recent_valid)


def _plan_step(reset: Tensor, chunk_valid: Tensor, recent_valid: Tensor) -> ChunkPlan:
    """:func:`plan_chunks` for one step (``reset`` ``[B]``): the same plan with fewer ops, for acting."""
    B, N = chunk_valid.shape
    C = recent_valid.shape[1]
    device = reset.device
    s = torch.where(reset, torch.zeros_like(reset, dtype=torch.long), trailing_run(recent_valid).clamp(max=C - 1))
    end = s == C - 1  # this step completes its chunk
    j, i = torch.arange(N, device=device), torch.arange(C, device=device)
    visible = ((chunk_valid > 0.5) & ~reset.unsqueeze(1)).unsqueeze(1)  # [B, 1, N]
    slot = j.view(1, 1, N).expand(B, 1, N)
    local = (i.unsqueeze(0) >= (C - 1 - s).unsqueeze(1)).unsqueeze(1)  # [B, 1, C]
    index = end.long().unsqueeze(1) + j  # [B, N]: a write shifts every slot by one
    from_stored = index < N
    memory_entries = torch.where(from_stored.unsqueeze(2), (index * C).unsqueeze(2) + i, N * C + 1 + i)
    memory_keep = from_stored.logical_not() | ~reset.unsqueeze(1)
    memory_valid = torch.where(from_stored, chunk_valid.gather(1, index.clamp(max=N - 1)), torch.ones_like(chunk_valid))
    memory_valid = torch.where(memory_keep, memory_valid, torch.zeros_like(memory_valid))
    recent_keep = ~reset.unsqueeze(1) | (i == C - 1).unsqueeze(0)
    untouched = ~end & ~reset
    shifted = torch.where(untouched.unsqueeze(1), recent_valid[:, 1:], torch.zeros_like(recent_valid[:, 1:]))
    next_recent_valid = torch.cat([shifted, (~end).to(recent_valid.dtype).unsqueeze(1)], dim=1)
    return ChunkPlan(visible, slot, local, memory_entries, memory_keep, memory_valid, recent_keep, next_recent_valid)


def _safe_softmax(scores: Tensor, allowed: Tensor) -> Tensor:
    """Softmax over the last dim restricted to ``allowed``; all-zero (not NaN) where nothing is allowed."""
    top = scores.masked_fill(~allowed, float("-inf")).amax(dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    e = torch.where(allowed, torch.exp(torch.where(allowed, scores - top, torch.zeros_like(scores))),
                    torch.zeros_like(scores))
    total = e.sum(dim=-1, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


def _windows(x: Tensor, C: int, count: int) -> Tensor:
    """``[B, count, C, ...]``: the ``C`` rows of ``x`` ``[B, C + T, ...]`` ending at rows ``C .. C+count-1``."""
    w = x[:, 1 : count + C].unfold(1, C, 1)  # [B, count, ..., C]
    return w.movedim(-1, 2)


class HCAMBlock(nn.Module):
    """One HCAM layer: local attention over the current chunk plus hierarchical attention over the stored
    chunks, both added to the residual, then a pre-LN feed-forward sub-layer (module docstring)."""

    def __init__(self, d: int, num_heads: int, ff_size: int, chunk_len: int, top_k: int) -> None:
        super().__init__()
        self.d, self.num_heads, self.d_head, self.chunk_len, self.top_k = d, num_heads, d // num_heads, chunk_len, top_k
        self.ln = nn.LayerNorm(d)
        self.local_qkv = nn.Linear(d, 3 * d)
        self.local_out = nn.Linear(d, d)
        self.coarse_q = nn.Linear(d, d)  # W_q^c
        self.coarse_k = nn.Linear(d, d)  # W_k^c
        self.chunk_q = nn.Linear(d, d)
        self.chunk_kv = nn.Linear(d, 2 * d)
        self.chunk_out = nn.Linear(d, d)
        self.ln_ff = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff_size), nn.ReLU(), nn.Linear(ff_size, d))
        self.register_buffer("position", sinusoid_table(chunk_len, d), persistent=False)  # P_i

    def forward(self, h: Tensor, recent: Tensor, memory: Tensor, plan: ChunkPlan) -> tuple[Tensor, Trace]:
        """``h`` ``[B, T, d]`` (this layer's inputs), ``recent`` ``[B, C, d]``, ``memory`` ``[B, N, C, d]``.

        Returns the block output ``[B, T, d]`` and, batch-first, ``chunk_weights`` ``[B, T, N]`` (coarse
        weight per memory slot, 0 off the top-k), ``chunk_attention`` ``[B, T, N, C]`` (within-chunk
        attention, mean over heads, 0 off the top-k) and ``local_attention`` ``[B, T, C]``."""
        B, T, d = h.shape
        N, C, H, dh = memory.shape[1], self.chunk_len, self.num_heads, self.d_head
        stream = torch.cat([recent, h], dim=1)  # [B, C + T, d]
        u_stream = self.ln(stream)
        u = u_stream[:, C:]

        # Local attention over the current chunk (the C steps ending at t, masked to the chunk).
        q, k, v = self.local_qkv(u_stream).split(d, dim=-1)
        pos_k, pos_v = F.linear(self.position, self.local_qkv.weight[d:]).split(d, dim=-1)  # W_k P_i, W_v P_i
        k_win = _windows(k, C, T) + pos_k  # [B, T, C, d]
        v_win = _windows(v, C, T) + pos_v
        q = q[:, C:].reshape(B, T, H, dh)
        # (Elementwise products: C is small, and tiny batched matmuls are slower on CPU.)
        scores = (q.unsqueeze(2) * k_win.reshape(B, T, C, H, dh)).sum(-1) / math.sqrt(dh)  # [B, T, C, H]
        local_att = torch.softmax(scores.masked_fill(~plan.local.unsqueeze(3), float("-inf")), dim=2)
        local = (local_att.unsqueeze(-1) * v_win.reshape(B, T, C, H, dh)).sum(2).reshape(B, T, d)

        # Coarse attention over chunk summaries; top-k; weights renormalized over the k.
        summaries = memory.mean(dim=2)
        if T > 1:
            summaries = torch.cat([summaries, _windows(stream, C, T - 1).mean(dim=2)], dim=1)  # [B, N+T-1, d]
        coarse = self.coarse_q(u) @ self.coarse_k(self.ln(summaries)).transpose(1, 2) / math.sqrt(d)
        top_scores, top = coarse.masked_fill(~plan.visible, float("-inf")).topk(self.top_k, dim=-1)  # [B, T, k]
        chosen = plan.visible.gather(2, top)
        weights = _safe_softmax(top_scores, chosen)

        # Detailed attention inside each selected chunk. Entries are numbered over [memory (N*C); stream
        # (C+T)]: a stored chunk c holds entries c*C + i, the chunk ending at step e entries N*C + e + 1 + i.
        K = self.top_k
        i = torch.arange(C, device=h.device)
        is_new = top >= N  # [B, T, k]
        entry = torch.where(is_new.unsqueeze(3), (N * C + 1 - N + top).unsqueeze(3) + i, (top * C).unsqueeze(3) + i)
        pos_k, pos_v = (p.reshape(C, H, dh) for p in F.linear(self.position, self.chunk_kv.weight).split(d, dim=-1))
        qc = self.chunk_q(u).reshape(B, T, H, dh).transpose(1, 2)  # [B, H, T, dh]
        flat_memory = memory.reshape(B, N * C, d)
        if T * K * C <= N * C + T:
            # Few queries (stepping): project only the k chunks read, O(k C d^2) instead of O(N C d^2).
            entries = flat_memory if T == 1 else torch.cat([flat_memory, stream], dim=1)
            rows = torch.arange(B, device=h.device).view(B, 1, 1)
            kv = self.chunk_kv(self.ln(entries[rows, entry.reshape(B, T, K * C)]))  # [B, T, k*C, 2d]
            kc = kv[..., :d].reshape(B, T, K, C, H, dh) + pos_k.view(1, 1, 1, C, H, dh)
            vc = kv[..., d:].reshape(B, T, K, C, H, dh) + pos_v.view(1, 1, 1, C, H, dh)
            inner = (qc.transpose(1, 2).view(B, T, 1, 1, H, dh) * kc).sum(-1) / math.sqrt(dh)  # [B, T, k, C, H]
            inner_att = torch.softmax(inner, dim=3).permute(0, 4, 1, 2, 3)  # [B, H, T, k, C]; all C slots valid
            mixed = weights.view(B, 1, T, K, 1) * inner_att
            read = (mixed.permute(0, 2, 3, 4, 1).unsqueeze(-1) * vc).sum(dim=(2, 3)).transpose(1, 2)  # [B, H, T, dh]
        else:
            # Many queries (training): score every entry once, as a transformer does, and gather the k chunks.
            kv_mem = self.chunk_kv(self.ln(memory))  # [B, N, C, 2d]
            k_mem = (kv_mem[..., :d] + pos_k.view(C, d)).reshape(B, N * C, d)
            v_mem = (kv_mem[..., d:] + pos_v.view(C, d)).reshape(B, N * C, d)
            kv_str = self.chunk_kv(u_stream)  # [B, C+T, 2d]; positions added per chunk below
            keys = torch.cat([k_mem, kv_str[..., :d]], dim=1).reshape(B, -1, H, dh).transpose(1, 2)  # [B, H, L, dh]
            values = torch.cat([v_mem, kv_str[..., d:]], dim=1).reshape(B, -1, H, dh).transpose(1, 2)
            L = keys.shape[2]
            scores_all = qc @ keys.transpose(2, 3) / math.sqrt(dh)  # [B, H, T, L]
            scores_pos = torch.einsum("bhte,che->bhtc", qc, pos_k) / math.sqrt(dh)  # [B, H, T, C]
            index = entry.reshape(B, 1, T, K * C).expand(B, H, T, K * C)
            inner = scores_all.gather(3, index).view(B, H, T, K, C)
            inner = inner + is_new.view(B, 1, T, K, 1) * scores_pos.unsqueeze(3)
            inner_att = torch.softmax(inner, dim=-1)
            mixed = weights.view(B, 1, T, K, 1) * inner_att
            dense = scores_all.new_zeros(B, H, T, L).scatter_add(3, index, mixed.reshape(B, H, T, K * C))
            new_mix = (mixed * is_new.view(B, 1, T, K, 1)).sum(dim=3)  # [B, H, T, C]
            read = dense @ values + torch.einsum("bhtc,che->bhte", new_mix, pos_v)
        read = self.chunk_out(read.transpose(1, 2).reshape(B, T, d))

        a = h + self.local_out(local) + read
        out = a + self.ff(self.ln_ff(a))

        slot = plan.slot.gather(2, top).clamp(0, N - 1)
        chunk_weights = h.new_zeros(B, T, N).scatter_add(2, slot, weights)
        per_slot_att = inner_att.mean(dim=1) * chosen.unsqueeze(3).to(inner_att.dtype)  # [B, T, k, C]
        chunk_attention = h.new_zeros(B, T, N, C).scatter_add(2, slot.unsqueeze(3).expand(B, T, K, C), per_slot_att)
        trace = {"chunk_weights": chunk_weights, "chunk_attention": chunk_attention,
                 "local_attention": local_att.mean(dim=3)}
        return out, trace


class HCAMCore(AddressableCore):
    """Hierarchical Chunk Attention Memory (equations, state and cost in the module docstring).

    Args:
        input_dim: width of the inputs ``x`` (linearly embedded to ``hidden_size``).
        hidden_size: model width ``d``, also the output width.
        num_layers: HCAM layers (each with its own memory of its inputs).
        chunk_len: steps per chunk ``C`` (>= 1).
        num_chunks: complete chunks kept ``N`` (>= 1); the memory spans ``memory_len = N * C`` steps
            plus the current chunk.
        top_k: chunks read in detail per step (1 <= top_k <= num_chunks; None: ``min(4, num_chunks)``).
        num_heads: heads of the within-chunk and local attention (``hidden_size`` must be divisible by it).
        ff_size: feed-forward width (None: ``4 * hidden_size``).

    Trace (last layer, time-major): ``chunk_weights`` ``[T, B, N]`` — the renormalized top-k weight of
    each memory slot (oldest first, as in the state the step reads; 0 for chunks not selected, empty
    slots and other episodes' chunks) — ``chunk_attention`` ``[T, B, N, C]`` — attention inside each
    selected chunk (mean over heads; 0 for chunks not selected) — and ``local_attention`` ``[T, B, C]``
    over the last ``C`` steps (oldest first, the last is the step itself; 0 outside the current chunk).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        chunk_len: int = 8,
        num_chunks: int = 8,
        top_k: int | None = None,
        num_heads: int = 4,
        ff_size: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        validate_attention_args(owner, input_dim, hidden_size, num_layers, num_heads, "chunk_len", chunk_len)
        _int_arg(owner, "num_chunks", num_chunks, 1)
        if top_k is None:
            top_k = min(4, num_chunks)
        _int_arg(owner, "top_k", top_k, 1)
        if top_k > num_chunks:
            raise ValueError(f"{owner}: top_k={top_k} must be <= num_chunks={num_chunks}")
        ff = 4 * hidden_size if ff_size is None else ff_size
        if isinstance(ff, bool) or not isinstance(ff, int) or ff < 1:
            raise ValueError(f"{owner}: ff_size must be an int >= 1 or None, got {ff_size!r}")
        self.input_dim, self.output_dim = input_dim, hidden_size
        self.hidden_size, self.num_layers, self.num_heads = hidden_size, num_layers, num_heads
        self.chunk_len, self.num_chunks, self.top_k = chunk_len, num_chunks, top_k
        self.memory_len = num_chunks * chunk_len
        self.embed = nn.Linear(input_dim, hidden_size)
        self.blocks = nn.ModuleList(HCAMBlock(hidden_size, num_heads, ff, chunk_len, top_k) for _ in range(num_layers))
        self.ln_out = nn.LayerNorm(hidden_size)

    def state_spec(self) -> StateSpec:
        N, C, d = self.num_chunks, self.chunk_len, self.hidden_size
        spec: dict[str, TensorSpec] = {}
        for l in range(self.num_layers):
            spec[f"memory_{l}"] = TensorSpec((N, C, d))
            spec[f"recent_{l}"] = TensorSpec((C, d))
        spec["chunk_valid"] = TensorSpec((N,))
        spec["recent_valid"] = TensorSpec((C,))
        return spec

    def forward_with_trace(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State, Trace]:
        check_inputs(self, x, state, episode_start)
        T = x.shape[0]
        C = self.chunk_len
        plan = plan_chunks(episode_start, state["chunk_valid"], state["recent_valid"])
        h = self.embed(x.transpose(0, 1))  # [B, T, d]
        B = h.shape[0]
        rows = torch.arange(B, device=x.device).view(B, 1, 1)
        N = self.num_chunks
        next_state: State = {}
        trace: Trace = {}
        for l, block in enumerate(self.blocks):
            memory, recent = state[f"memory_{l}"], state[f"recent_{l}"]
            stream = torch.cat([recent, h], dim=1)  # [B, C + T, d]
            entries = torch.cat([memory.reshape(B, N * C, -1), stream], dim=1)  # [B, N*C + C + T, d]
            kept = entries[rows, plan.memory_entries]  # [B, N, C, d]
            next_state[f"memory_{l}"] = torch.where(plan.memory_keep.view(B, -1, 1, 1), kept, torch.zeros_like(kept))
            last = stream[:, T:]
            next_state[f"recent_{l}"] = torch.where(plan.recent_keep.unsqueeze(2), last, torch.zeros_like(last))
            h, trace = block(h, recent, memory, plan)
        next_state["chunk_valid"] = plan.memory_valid
        next_state["recent_valid"] = plan.recent_valid
        y = self.ln_out(h).transpose(0, 1)
        return y, next_state, {name: value.transpose(0, 1) for name, value in trace.items()}


register_memory("hcam", HCAMCore)
