"""Differentiable memory addressing shared by the NTM and DNC cores.

Pure functions on batched tensors; ``B`` is the batch, ``H`` a number of heads, ``N`` memory slots and
``W`` the memory width. Weightings are ``[B, H, N]`` (one distribution over slots per head).

Neural Turing Machine (Graves et al. 2014)::

    content      w^c_i = softmax_i(β K(k, M_i)),  K(u, v) = u·v / (|u| |v|)
    interpolate  w^g = g w^c + (1 - g) w_{t-1}
    shift        w̃_i = Σ_j w^g_j s_{(i - j) mod N}     (s over offsets -S..+S)
    sharpen      w_i = w̃_i^γ / Σ_j w̃_j^γ,  γ >= 1
    write        M_t = M_{t-1} ⊙ Π_h (1 - w_h e_h^T) + Σ_h w_h a_h^T
    read         r = Σ_i w_i M_t(i)

Differentiable Neural Computer (Graves et al. 2016)::

    retention    ψ = Π_i (1 - f_i w^r_{t-1,i})
    usage        u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} ⊙ w^w_{t-1}) ⊙ ψ
    allocation   a[φ_j] = (1 - u[φ_j]) Π_{i<j} u[φ_i],  φ = slots sorted by ascending usage
    write weight w^w = g^w (g^a a + (1 - g^a) c^w)
    precedence   p_t = (1 - Σ_i w^w_i) p_{t-1} + w^w
    link         L_t[i,j] = (1 - w^w_i - w^w_j) L_{t-1}[i,j] + w^w_i p_{t-1}[j],  L_t[i,i] = 0
    directions   f = L_t w^r_{t-1},  b = L_t^T w^r_{t-1}
    read weight  w^r = π_1 b + π_2 c + π_3 f

Every function is finite, with finite gradients, at zero memory and zero keys (norms and
normalizers carry an epsilon).
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-6


def _safe_norm(x: Tensor, eps: float = EPS) -> Tensor:
    """``sqrt(Σ x² + eps)`` over the last dimension (keeps it); differentiable at ``x = 0``."""
    return torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps)


def cosine_similarity(keys: Tensor, memory: Tensor, eps: float = EPS) -> Tensor:
    """K(k, M_i) = k·M_i / (|k| |M_i|) with epsilon-stabilised norms ``|x| = sqrt(Σ x² + eps)``.

    keys [B, H, W], memory [B, N, W] -> [B, H, N].
    """
    unit_keys = keys / _safe_norm(keys, eps)
    unit_memory = memory / _safe_norm(memory, eps)
    return torch.bmm(unit_keys, unit_memory.transpose(1, 2))


def content_weighting(keys: Tensor, strengths: Tensor, memory: Tensor, eps: float = EPS) -> Tensor:
    """w^c_i = softmax_i(β K(k, M_i)).

    keys [B, H, W], strengths β [B, H] (> 0), memory [B, N, W] -> weightings [B, H, N].
    """
    return torch.softmax(strengths.unsqueeze(-1) * cosine_similarity(keys, memory, eps), dim=-1)


def interpolate(content: Tensor, previous: Tensor, gate: Tensor) -> Tensor:
    """w^g = g w^c + (1 - g) w_{t-1}.

    content [B, H, N], previous [B, H, N], gate g [B, H] in [0, 1] -> [B, H, N].
    """
    g = gate.unsqueeze(-1)
    return g * content + (1.0 - g) * previous


def circular_shift(weights: Tensor, shift: Tensor) -> Tensor:
    """Circular convolution w̃_i = Σ_{o=-S..S} w_{(i - o) mod N} s_o (offset ``+1`` moves mass to slot i+1).

    weights [B, H, N], shift distribution s [B, H, 2S+1] over offsets -S..+S -> [B, H, N].
    """
    width = shift.shape[-1]
    if width % 2 != 1:
        raise ValueError(f"shift must have an odd size 2S+1 over offsets -S..+S, got {width}")
    if width > weights.shape[-1]:
        raise ValueError(f"shift has {width} offsets, more than the {weights.shape[-1]} slots")
    half = width // 2
    if half == 0:
        return weights * shift
    # Circular padding; window n of the padded vector holds w_{n-S} .. w_{n+S}, i.e. offsets +S .. -S.
    padded = torch.cat([weights[..., -half:], weights, weights[..., :half]], dim=-1)
    windows = padded.unfold(-1, width, 1)  # [B, H, N, 2S+1]
    return torch.matmul(windows, shift.flip(-1).unsqueeze(-1)).squeeze(-1)


def sharpen(weights: Tensor, gamma: Tensor, eps: float = EPS) -> Tensor:
    """w_i = w̃_i^γ / Σ_j w̃_j^γ.

    weights w̃ [B, H, N] (>= 0; values below ``eps`` are clamped to ``eps`` so that ``log w̃`` in the
    gradient w.r.t. γ stays finite), gamma γ [B, H] (>= 1) -> [B, H, N].
    """
    powered = weights.clamp_min(eps).pow(gamma.unsqueeze(-1))
    return powered / (powered.sum(-1, keepdim=True) + eps)


def ntm_address(
    keys: Tensor,
    strengths: Tensor,
    gates: Tensor,
    shifts: Tensor,
    gammas: Tensor,
    previous: Tensor,
    memory: Tensor,
) -> Tensor:
    """The NTM pipeline: content -> interpolate -> shift -> sharpen.

    keys [B, H, W], strengths/gates/gammas [B, H], shifts [B, H, 2S+1], previous [B, H, N],
    memory [B, N, W] -> weightings [B, H, N].
    """
    w = content_weighting(keys, strengths, memory)
    w = interpolate(w, previous, gates)
    w = circular_shift(w, shifts)
    return sharpen(w, gammas)


def erase_and_add(memory: Tensor, weights: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """M_t = M_{t-1} ⊙ Π_h (1 - w_h e_h^T) + Σ_h w_h a_h^T (erasures multiply, additions add).

    memory [B, N, W], weights [B, H, N], erase e [B, H, W] in [0, 1], add a [B, H, W] -> [B, N, W].
    """
    keep = torch.prod(1.0 - weights.unsqueeze(-1) * erase.unsqueeze(-2), dim=1)
    return memory * keep + torch.einsum("bhn,bhw->bnw", weights, add)


def read(memory: Tensor, weights: Tensor) -> Tensor:
    """r_h = Σ_i w_{h,i} M(i).

    memory [B, N, W], weights [B, H, N] -> reads [B, H, W].
    """
    return torch.einsum("bhn,bnw->bhw", weights, memory)


def retention(free_gates: Tensor, prev_read_weights: Tensor) -> Tensor:
    """ψ = Π_r (1 - f_r w^r_{t-1,r}).

    free_gates f [B, R] in [0, 1], prev_read_weights [B, R, N] -> [B, N].
    """
    return torch.prod(1.0 - free_gates.unsqueeze(-1) * prev_read_weights, dim=1)


def update_usage(usage: Tensor, prev_write_weights: Tensor, free_gates: Tensor, prev_read_weights: Tensor) -> Tensor:
    """u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} ⊙ w^w_{t-1}) ⊙ ψ.

    usage [B, N], prev_write_weights [B, N], free_gates [B, R], prev_read_weights [B, R, N] -> [B, N].
    """
    written = usage + prev_write_weights - usage * prev_write_weights
    return written * retention(free_gates, prev_read_weights)


def allocation_weighting(usage: Tensor, eps: float = EPS) -> Tensor:
    """a[φ_j] = (1 - u[φ_j]) Π_{i<j} u[φ_i], φ sorting the usage ascending.

    Usage is first clamped to [0, 1] (where it always lies when it comes from :func:`update_usage`; the
    clamp keeps the allocation a sub-distribution for any input) and mapped to ``eps + (1 - eps) u``
    so that the products never vanish exactly. Sorting
    is piecewise constant: the gradient flows through the sorted values, not the permutation.

    usage [B, N] -> allocation [B, N].
    """
    usage = eps + (1.0 - eps) * usage.clamp(0.0, 1.0)
    sorted_usage, order = torch.sort(usage, dim=-1)
    ones = torch.ones_like(sorted_usage[..., :1])
    exclusive_prod = torch.cumprod(torch.cat([ones, sorted_usage[..., :-1]], dim=-1), dim=-1)
    sorted_alloc = (1.0 - sorted_usage) * exclusive_prod
    return torch.zeros_like(sorted_alloc).scatter(-1, order, sorted_alloc)


def write_weighting(allocation: Tensor, content: Tensor, write_gate: Tensor, allocation_gate: Tensor) -> Tensor:
    """w^w = g^w (g^a a + (1 - g^a) c^w).

    allocation [B, N], content c^w [B, N], write_gate g^w [B], allocation_gate g^a [B] -> [B, N].
    """
    ga = allocation_gate.unsqueeze(-1)
    return write_gate.unsqueeze(-1) * (ga * allocation + (1.0 - ga) * content)


def update_precedence(precedence: Tensor, write_weights: Tensor) -> Tensor:
    """p_t = (1 - Σ_i w^w_i) p_{t-1} + w^w.

    precedence [B, N], write_weights [B, N] -> [B, N].
    """
    return (1.0 - write_weights.sum(-1, keepdim=True)) * precedence + write_weights


def update_link(link: Tensor, prev_precedence: Tensor, write_weights: Tensor) -> Tensor:
    """L_t[i,j] = (1 - w_i - w_j) L_{t-1}[i,j] + w_i p_{t-1}[j], with L_t[i,i] = 0.

    L[i, j] close to 1 means slot i was written right after slot j.
    link [B, N, N], prev_precedence p_{t-1} [B, N], write_weights [B, N] -> [B, N, N].
    """
    w_i = write_weights.unsqueeze(-1)
    w_j = write_weights.unsqueeze(-2)
    new = (1.0 - w_i - w_j) * link + w_i * prev_precedence.unsqueeze(-2)
    eye = torch.eye(link.shape[-1], dtype=torch.bool, device=link.device)
    return new.masked_fill(eye, 0.0)


def directional_weightings(link: Tensor, prev_read_weights: Tensor) -> tuple[Tensor, Tensor]:
    """Forward f = L w^r_{t-1} and backward b = L^T w^r_{t-1}, per read head.

    link [B, N, N], prev_read_weights [B, R, N] -> (forward [B, R, N], backward [B, R, N]).
    """
    forward = torch.einsum("bij,brj->bri", link, prev_read_weights)
    backward = torch.einsum("bji,brj->bri", link, prev_read_weights)
    return forward, backward


def dnc_read_weighting(backward: Tensor, content: Tensor, forward: Tensor, modes: Tensor) -> Tensor:
    """w^r = π_1 b + π_2 c + π_3 f.

    backward/content/forward [B, R, N], modes π [B, R, 3] (a distribution: backward, content,
    forward) -> [B, R, N].
    """
    return modes[..., 0:1] * backward + modes[..., 1:2] * content + modes[..., 2:3] * forward
