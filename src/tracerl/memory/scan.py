"""Scans of diagonal linear recurrences with episode resets inside the operator, with a hand-written backward.

The parallel-scan cores (:mod:`~tracerl.memory.mingru`, :mod:`~tracerl.memory.ffm`, :mod:`~tracerl.memory.lru`,
:mod:`~tracerl.memory.gla`) all carry a state that follows an elementwise affine recurrence::

    h_t = a_t ⊙ h_{t-1} + b_t            a_t: the decay (|a_t| <= 1), b_t: what step t writes

An element ``(a, b)`` is the affine map ``h -> a ⊙ h + b``; composing "first (a1, b1), then (a2, b2)" gives
``(a2 ⊙ a1, a2 ⊙ b1 + b2)``, which is associative, so the steps can be grouped freely. Four groupings, all
giving the same states up to float rounding (``method=``):

- ``"blelloch"`` (Blelloch 1990, the work-efficient scan; the default, ``"auto"``): pairs of steps are composed,
  then pairs of pairs, on strided views of copies of ``a`` and ``b`` in place, and a down-sweep fills in the
  rest: ``3 log2 T`` in-place ops and ``O(T)`` work, no temporary. It runs as a TorchScript function
  (:func:`_kernels`), as does its backward.
- ``"hillis-steele"`` (Hillis & Steele 1986): at level ``d = 1, 2, 4, ...`` every step ``t >= d`` composes with
  step ``t - d``; depth ``ceil(log2 T)``, about ``4 log2 T`` whole-tensor passes.
- ``"chunked"``: chunks of ``C ~ sqrt(T)`` steps run side by side (``C`` steps from a zero state, keeping each
  chunk's running decay product), then the ``T / C`` chunk ends are chained and each chunk's carried-in state is
  added back in one whole-tensor op: ``~2 sqrt(T)`` small ops and about three whole-tensor passes.
- ``"loop"``: ``T`` multiply-adds, the reference.

On CPU at the sizes of RL (``[64, 4, 64]`` per minibatch) the cost is the number of torch ops and the
interpreter's overhead per op, not the arithmetic (an elementwise op on 16k numbers takes ~2 us), so the
Blelloch scan wins at every size measured (forward+backward, CPU time, one thread, under load: minGRU's
``[64, 4, 64]`` 0.70x Hillis-Steele's, FFM's complex ``[64, 4, 32, 4]`` 0.48x, GLA's ``[64, 4, 4, 16, 16]``
0.88x the chunked scan's; BENCHMARKS.md, issue 18 third pass).

Gradients do not go through torch's autograd of those ops (whose slice and concatenation backward passes
allocate and zero-fill a whole tensor per op: ``aten::fill_`` was 34 % of GLA's training time):
:class:`_LinearScan` has its own backward, which is the same scan run backwards in time on the output
gradients ``gy``::

    g_t = gy_t + conj(a_{t+1}) ⊙ g_{t+1}      (g_{T-1} = gy_{T-1})
    dL/db_t = g_t,   dL/da_t = g_t ⊙ conj(h_{t-1}),   dL/dh_{-1} = conj(a_0) ⊙ g_0

(``conj`` only matters for complex recurrences; for complex tensors torch's gradient convention is the
conjugate Wirtinger derivative, for which these are the formulas.)

Resets are part of the operator: ``episode_start[t]`` sets ``a_t = 0`` (:func:`reset_decay`), so the state
entering step ``t``, and with it every earlier input and the carried-in state, is multiplied by exactly zero,
and so are their gradients (the backward multiplies ``g_t`` by the same ``a_t = 0``). Since every core's
initial state is zero, ``h_t = 0 ⊙ h_{t-1} + b_t`` is exactly "reset to the initial state, then consume ``x_t``".

Numerics: the decays are bounded (``|a| <= 1``), so running products only shrink (towards 0, never
overflowing) and the states stay mixtures of the inputs: float32 on CPU is enough (no ``1 / a`` or
``cumsum(log a)`` terms that blow up over long sequences). Complex recurrences (FFM, LRU) take real pairs
``(re, im)`` and run the scan in torch's complex dtype; a single step (``T == 1``, acting) is plain real ops,
so the step mode exports to ONNX and TorchScript.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

METHODS = ("auto", "chunked", "loop", "hillis-steele", "blelloch")
"""How :func:`linear_scan` groups the steps (all give the same states up to float rounding)."""

def _loop(a: Tensor, b: Tensor, h0: Tensor | None, reverse: bool) -> Tensor:
    """``T`` sequential multiply-adds into one preallocated output (the reference)."""
    T = b.shape[0]
    out = torch.empty(b.shape, dtype=b.dtype, device=b.device)
    first, steps, prev = (T - 1, range(T - 2, -1, -1), 1) if reverse else (0, range(1, T), -1)
    if h0 is None:
        out[first].copy_(b[first])
    else:
        torch.addcmul(b[first], a[first], h0, out=out[first])
    for t in steps:
        torch.addcmul(b[t], a[t], out[t + prev], out=out[t])
    return out


def _hillis_steele(a: Tensor, b: Tensor, h0: Tensor | None, reverse: bool) -> Tensor:
    """``ceil(log2 T)`` levels of whole-tensor compositions, in place on copies of ``a`` and ``b``."""
    T = b.shape[0]
    b = b.clone(memory_format=torch.contiguous_format)
    a = a.clone(memory_format=torch.contiguous_format)
    if h0 is not None:
        b[-1 if reverse else 0].addcmul_(a[-1 if reverse else 0], h0)
    tmp_b, tmp_a = torch.empty_like(b), torch.empty_like(a)  # reused by every level
    d = 1
    while d < T:
        # Every t >= d composes its prefix of length d with the one ending at t - d (with the old a);
        # backwards in time, every t < T - d with the one starting at t + d.
        new, old = (slice(None, T - d), slice(d, None)) if reverse else (slice(d, None), slice(None, T - d))
        b[new] += torch.mul(a[new], b[old], out=tmp_b[: T - d])
        if 2 * d < T:  # the last level's decays are never read again
            a[new] = torch.mul(a[new], a[old], out=tmp_a[: T - d])
        d *= 2
    return b


def _blelloch_in_place(a: Tensor, b: Tensor, reverse: bool) -> None:
    """The work-efficient scan (Blelloch 1990) in place on ``a`` and ``b`` (``a`` may broadcast over ``b``).

    Up-sweep: the steps are paired ``(2k, 2k + 1)`` and each pair composed into its later step (backwards in
    time: into its earlier one, pairs counted from the end), then the composed steps, a strided view, are paired
    again, and so on; down-sweep, level by level back: every step that absorbed nothing composes with its now
    final predecessor (backwards: successor). ``3 log2 T`` in-place ops on halving views, no temporary tensor:
    the fewest ops and bytes of the groupings. Written for TorchScript (:func:`_kernels`), which runs its
    slicing at a fraction of Python's cost."""
    As: List[Tensor] = [a]
    Bs: List[Tensor] = [b]
    while True:
        A, B = As[-1], Bs[-1]
        L = B.shape[0]
        if L < 2:
            break
        # the pairs cover [lo, hi); each is absorbed into its later (reverse: earlier) step
        lo, hi = (L % 2, L) if reverse else (0, L - L % 2)
        keep, other = (lo, lo + 1) if reverse else (1, 0)
        B[keep:hi:2].addcmul_(A[keep:hi:2], B[other:hi:2])
        if L < 4:  # a single pair is final; its composed decay is never read
            break
        A[keep:hi:2].mul_(A[other:hi:2])
        As.append(A[keep:hi:2])
        Bs.append(B[keep:hi:2])
    for k in range(len(Bs) - 1, -1, -1):
        A, B = As[k], Bs[k]
        L = B.shape[0]
        if L > 2:
            if reverse:
                start = (L - 3) % 2
                B[start : L - 2 : 2].addcmul_(A[start : L - 2 : 2], B[start + 1 : L - 1 : 2])
            else:
                B[2::2].addcmul_(A[2::2], B[1 : L - 1 : 2])


def _blelloch_forward(a: Tensor, b: Tensor, h0: Optional[Tensor], reverse: bool) -> Tensor:
    """:func:`_blelloch_in_place` on copies of ``a`` and ``b``, the carried-in state folded into the first step."""
    b = b.clone(memory_format=torch.contiguous_format)
    a = a.clone(memory_format=torch.contiguous_format)
    if h0 is not None:
        first = b.shape[0] - 1 if reverse else 0
        b[first].addcmul_(a[first], h0)
    _blelloch_in_place(a, b, reverse)
    return b


def _blelloch_backward(a: Tensor, h0: Tensor, h: Tensor, gy: Tensor, need_a: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """The backward of the module docstring: ``g`` (the gradient of every ``b_t``), the gradient of ``a`` before
    reduction to ``a``'s shape (``g`` itself when ``need_a`` is False) and the gradient of ``h0`` (unreduced)."""
    a_next = torch.empty_like(a, memory_format=torch.contiguous_format)  # conj(a_{t+1}); the last one is unused
    a_next[:-1].copy_(a[1:].conj())
    a_next[-1].zero_()
    g = gy.clone(memory_format=torch.contiguous_format)
    _blelloch_in_place(a_next, g, True)
    grad_a = g
    if need_a:
        grad_a = torch.empty_like(g)
        torch.mul(g[1:], h[:-1].conj(), out=grad_a[1:])
        torch.mul(g[0], h0.conj(), out=grad_a[0])
    return g, grad_a, a[0].conj() * g[0]


_compiled: Dict[str, Any] = {}


def _kernels() -> Tuple[Any, Any]:
    """:func:`_blelloch_forward` and :func:`_blelloch_backward` compiled by TorchScript once per process (the
    plain functions when that fails): the scan's cost on CPU is mostly the interpreter's per-op overhead
    (the arithmetic of a ``[64, 4, 64]`` scan is ~2 us per op), which TorchScript roughly halves."""
    if not _compiled:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                _compiled["forward"] = torch.jit.script(_blelloch_forward)
                _compiled["backward"] = torch.jit.script(_blelloch_backward)
        except Exception:  # noqa: BLE001 - TorchScript gone or unable: the same code in Python
            _compiled["forward"], _compiled["backward"] = _blelloch_forward, _blelloch_backward
    return _compiled["forward"], _compiled["backward"]


def _chunked(a: Tensor, b: Tensor, h0: Tensor | None, reverse: bool, chunk: int | None = None) -> Tensor:
    """Chunks of ``C`` steps scanned side by side, then the ``T / C`` chunk ends chained (``~2 sqrt(T)`` ops)."""
    T = b.shape[0]
    C = chunk or max(1, math.isqrt(T))
    n = -(-T // C)
    if n * C != T:  # pad with identity steps (a = 1, b = 0) at the end (either direction), dropped at the end
        pad = n * C - T
        a = torch.cat([a, a.new_ones((pad, *a.shape[1:]))])
        b = torch.cat([b, b.new_zeros((pad, *b.shape[1:]))])
    shape, a_shape = b.shape[1:], a.shape[1:]
    a_c = a.reshape(n, C, *a_shape)
    b_c = b.reshape(n, C, *shape)
    # Within each chunk, from a zero state: H[k, j] = the state at step j of chunk k, P[k, j] = the product of
    # the decays from the chunk's first step to j (backwards: from its last step down to j).
    H = torch.empty((n, C, *shape), dtype=b.dtype, device=b.device)
    P = torch.empty((n, C, *a_shape), dtype=a.dtype, device=a.device)
    first, steps, prev = (C - 1, range(C - 2, -1, -1), 1) if reverse else (0, range(1, C), -1)
    H[:, first].copy_(b_c[:, first])
    P[:, first].copy_(a_c[:, first])
    for j in steps:
        torch.addcmul(b_c[:, j], a_c[:, j], H[:, j + prev], out=H[:, j])
        torch.mul(a_c[:, j], P[:, j + prev], out=P[:, j])
    # The state entering chunk k (carry[k]), chained over the chunks' ends; then h = H + P ⊙ carry.
    carry = torch.empty((n, 1, *shape), dtype=b.dtype, device=b.device)
    first, steps, prev = (n - 1, range(n - 2, -1, -1), 1) if reverse else (0, range(1, n), -1)
    end = 0 if reverse else C - 1
    if h0 is None:
        carry[first].zero_()
    else:
        carry[first, 0].copy_(h0)
    for k in steps:
        torch.addcmul(H[k + prev, end], P[k + prev, end], carry[k + prev, 0], out=carry[k, 0])
    return H.addcmul_(P, carry).reshape(n * C, *shape)[:T]  # in place


def _scan(a: Tensor, b: Tensor, h0: Tensor | None, method: str, reverse: bool = False) -> Tensor:
    """``h_t = a_t ⊙ h_{t-1} + b_t`` from ``h_{-1} = h0``, or with ``reverse`` ``h_t = a_t ⊙ h_{t+1} + b_t`` from
    ``h_T = h0`` (``None``: zeros), by ``method``; no autograd."""
    if method == "auto":
        method = "blelloch"
    if method == "chunked":
        return _chunked(a, b, h0, reverse)
    if method == "loop":
        return _loop(a, b, h0, reverse)
    if method == "hillis-steele":
        return _hillis_steele(a, b, h0, reverse)
    if method == "blelloch":
        return _kernels()[0](a, b, h0, reverse)
    raise ValueError(f"linear_scan: method must be one of {METHODS}, got {method!r}")


class _LinearScan(torch.autograd.Function):
    """``h = scan(a, b, h0)`` with the backward of the module docstring (itself a scan, backwards in time)."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor, method: str) -> Tensor:  # type: ignore[override]
        h = _scan(a, b, h0, method)
        ctx.save_for_backward(a, h0, h)
        ctx.method = method
        ctx.b_shape = b.shape
        return h

    @staticmethod
    def backward(ctx, gy: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        a, h0, h = ctx.saved_tensors
        grad_a = grad_b = grad_h0 = None
        if ctx.method in ("auto", "blelloch"):
            g, ga, gh0 = _kernels()[1](a, h0, h, gy, ctx.needs_input_grad[0])
            if ctx.needs_input_grad[0]:
                grad_a = ga.sum_to_size(a.shape)
            if ctx.needs_input_grad[1]:
                grad_b = g.sum_to_size(ctx.b_shape)
            if ctx.needs_input_grad[2]:
                grad_h0 = gh0.sum_to_size(h0.shape)
            return grad_a, grad_b, grad_h0, None
        a_c = a.conj()
        # g_t = gy_t + conj(a_{t+1}) ⊙ g_{t+1}: a reverse scan whose decay at t is conj(a_{t+1}) (the last unused).
        a_next = torch.empty(a.shape, dtype=a.dtype, device=a.device)
        a_next[:-1].copy_(a_c[1:])
        a_next[-1].zero_()
        g = _scan(a_next, gy, None, ctx.method, reverse=True)
        if ctx.needs_input_grad[0]:
            h_c = h.conj()
            grad_a = torch.empty(g.shape, dtype=g.dtype, device=g.device)
            torch.mul(g[1:], h_c[:-1], out=grad_a[1:])
            torch.mul(g[0], h0.conj(), out=grad_a[0])
            grad_a = grad_a.sum_to_size(a.shape)
        if ctx.needs_input_grad[1]:
            grad_b = g.sum_to_size(ctx.b_shape)
        if ctx.needs_input_grad[2]:
            grad_h0 = (a_c[0] * g[0]).sum_to_size(h0.shape)
        return grad_a, grad_b, grad_h0, None


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None, method: str = "auto") -> Tensor:
    """All states of ``h_t = a_t ⊙ h_{t-1} + b_t`` over dim 0.

    Args:
        a: ``[T, ...]`` decays, broadcastable against ``b`` (a reset step has ``a_t = 0``: :func:`reset_decay`).
        b: ``[T, ...]`` inputs.
        h0: the state before step 0, ``b.shape[1:]`` (None: zeros).
        method: ``"blelloch"`` (``"auto"``, the default), ``"hillis-steele"``, ``"chunked"`` or ``"loop"`` (see the
            module docstring); the same states up to float rounding.

    Returns:
        ``h`` ``[T, ...]`` (the shape of ``b``); differentiable in ``a``, ``b`` and ``h0``. One step (``T == 1``)
        is plain torch ops.
    """
    if b.shape[0] == 1:
        return b if h0 is None else torch.addcmul(b, a, h0)
    if h0 is None:
        h0 = b.new_zeros(b.shape[1:])
    return _LinearScan.apply(a, b, h0, method)


def complex_linear_scan(
    a_re: Tensor, a_im: Tensor, b_re: Tensor, b_im: Tensor | None = None, h0_re: Tensor | None = None,
    h0_im: Tensor | None = None, method: str = "auto",
) -> tuple[Tensor, Tensor]:
    """:func:`linear_scan` for complex ``a``, ``b`` and ``h0`` given as real and imaginary parts.

    ``b_im`` None means a real input; ``h0_re`` None means a zero start (then ``h0_im`` is ignored).
    Returns ``(h_re, h_im)``, each the shape of ``b_re``. One step (``T == 1``) is real torch ops only.
    """
    if b_re.shape[0] == 1:
        if h0_re is None:
            return b_re, (torch.zeros_like(b_re) if b_im is None else b_im)
        h_re = a_re * h0_re - a_im * h0_im + b_re
        h_im = a_re * h0_im + a_im * h0_re
        return h_re, (h_im if b_im is None else h_im + b_im)
    a = torch.complex(a_re, a_im)
    b = b_re.to(a.dtype) if b_im is None else torch.complex(b_re, b_im)
    h0 = None if h0_re is None else torch.complex(h0_re, h0_im)
    h = linear_scan(a, b, h0, method)
    return h.real, h.imag


def reset_decay(a: Tensor, episode_start: Tensor) -> Tensor:
    """``a`` ``[T, B, ...]`` with every step where ``episode_start`` (``[T, B]`` bool) is True set to 0."""
    mask = episode_start.view(*episode_start.shape, *([1] * (a.dim() - 2)))
    return a.masked_fill(mask, 0.0)


def stack_layers(finals: list[Tensor]) -> Tensor:
    """The layers' final states ``[B, ...]`` stacked as ``[B, num_layers, ...]`` (one layer: a view, no copy)."""
    return finals[0].unsqueeze(1) if len(finals) == 1 else torch.stack(finals, dim=1)
