"""Parallel (associative) scans of diagonal linear recurrences with episode resets inside the operator.

The parallel-scan cores (:mod:`~tracerl.memory.mingru`, :mod:`~tracerl.memory.ffm`, :mod:`~tracerl.memory.lru`,
:mod:`~tracerl.memory.gla`) all carry a state that follows an elementwise affine recurrence::

    h_t = a_t ⊙ h_{t-1} + b_t            a_t: the decay (|a_t| <= 1), b_t: what step t writes

An element ``(a, b)`` is the affine map ``h -> a ⊙ h + b``; composing "first (a1, b1), then (a2, b2)" gives
``(a2 ⊙ a1, a2 ⊙ b1 + b2)``, which is associative, so all prefixes can be computed in ``ceil(log2 T)``
levels (Hillis & Steele 1986: at level ``d = 1, 2, 4, ...`` every step ``t >= d`` composes with step ``t - d``).
Each level is a handful of whole-tensor torch ops; there is no loop over the ``T`` steps.

Resets are part of the operator: ``episode_start[t]`` sets ``a_t = 0``, so the composed decay of every
prefix that reaches back across ``t`` is exactly zero and nothing from before ``t`` (neither the carried-in
state nor earlier inputs, nor their gradients) reaches step ``t`` or later. Since every core's initial state
is zero, ``h_t = 0 ⊙ h_{t-1} + b_t`` is exactly "reset to the initial state, then consume ``x_t``".

The scan returns ``A_t = a_t ⊙ ... ⊙ a_0`` (the decay from the carried-in state) and ``B_t`` (the state
from a zero start), so ``h_t = A_t ⊙ h_{-1} + B_t``. Numerics: the decays are bounded (``|a| <= 1``), so the
composed decays only shrink (towards 0, never overflowing) and ``B_t`` stays a convex-like mixture of the
inputs: float32 on CPU is enough (no ``1 / a`` or ``cumsum(log a)`` terms that blow up over long sequences).
Complex recurrences (FFM, LRU) are written as real pairs ``(re, im)`` so every op is a real torch op.
"""

from __future__ import annotations

from torch import Tensor
import torch


def linear_scan(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """All prefixes of ``h_t = a_t ⊙ h_{t-1} + b_t`` over dim 0, from ``h_{-1} = 0``.

    Args:
        a: ``[T, ...]`` decays (broadcastable against ``b``; a reset step has ``a_t = 0``).
        b: ``[T, ...]`` inputs.

    Returns:
        ``A`` (shape of ``a``): ``A_t = a_t ⊙ ... ⊙ a_0``; ``B`` (shape of ``b``): ``h_t`` from ``h_{-1} = 0``.
        The state from a carried-in ``h`` is ``A_t ⊙ h + B_t``. Depth ``ceil(log2 T)`` levels.
    """
    T = b.shape[0]
    d = 1
    while d < T:
        # Every t >= d composes its prefix of length d with the one ending at t - d (uses the old a).
        b = torch.cat([b[:d], a[d:] * b[:-d] + b[d:]])
        a = torch.cat([a[:d], a[d:] * a[:-d]])
        d *= 2
    return a, b


def complex_linear_scan(
    a_re: Tensor, a_im: Tensor, b_re: Tensor, b_im: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`linear_scan` for complex ``a`` and ``b`` given as real and imaginary parts.

    Returns ``(A_re, A_im, B_re, B_im)``; ``h_t = A_t h_{-1} + B_t`` (complex products).
    """
    T = b_re.shape[0]
    d = 1
    while d < T:
        ar, ai = a_re[d:], a_im[d:]
        pr, pi = b_re[:-d], b_im[:-d]
        b_re = torch.cat([b_re[:d], ar * pr - ai * pi + b_re[d:]])
        b_im = torch.cat([b_im[:d], ar * pi + ai * pr + b_im[d:]])
        qr, qi = a_re[:-d], a_im[:-d]
        a_re, a_im = torch.cat([a_re[:d], ar * qr - ai * qi]), torch.cat([a_im[:d], ar * qi + ai * qr])
        d *= 2
    return a_re, a_im, b_re, b_im


def reset_decay(a: Tensor, episode_start: Tensor) -> Tensor:
    """``a`` ``[T, B, ...]`` with every step where ``episode_start`` (``[T, B]`` bool) is True set to 0."""
    mask = episode_start.view(*episode_start.shape, *([1] * (a.dim() - 2)))
    return torch.where(mask, torch.zeros_like(a), a)
