"""A GRU layer over a whole training sequence with a hand-written backward and episode resets inside the loop.

Why: on CPU, ``torch.nn.GRU``'s backward is autograd over a dozen small ops per time step, and a minibatch with
episode starts inside it is first split into pieces and packed. PPO's update is a few hundred such steps per
rollout at batch sizes of 4-16 rows, so the cost is per-op overhead, not arithmetic. Here one
:class:`torch.autograd.Function` runs the forward loop (recording nothing) and the backward loop by the chain
rule below, both compiled by TorchScript so the per-op Python overhead goes; the matmuls that do not depend on
the recurrence (input projection, weight gradients) run once over all ``T x B`` rows.

Equations (``torch.nn.GRU``'s, gates ordered r, z, n; ``k_t = 1 - episode_start_t`` zeroes the state)::

    h̃_{t-1} = k_t h_{t-1};   gi_t = W_i x_t + b_i;   gh_t = W_h h̃_{t-1} + b_h
    r = σ(gi_r + gh_r);  z = σ(gi_z + gh_z);  n = tanh(gi_n + r ⊙ gh_n);  h_t = (1 - z) ⊙ n + z ⊙ h̃_{t-1}

Backward, with ``δ_t = ∂L/∂h_t`` (the output's gradient plus what flows back from ``t + 1``)::

    δn = δ (1 - z) (1 - n²);   δr = δn ⊙ gh_n ⊙ r (1 - r);   δz = δ ⊙ (h̃ - n) ⊙ z (1 - z)
    ∂gi = [δr, δz, δn];   ∂gh = [δr, δz, δn ⊙ r];   δ_{t-1} += k_t (δ ⊙ z + ∂gh W_h)

The results equal ``torch.nn.GRU``'s up to float rounding (tested, values and gradients, with resets).
TorchScript is deprecated in torch 2.x but still ships; if it is missing, the same loops run as Python.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import Tensor


def _forward_loop(gi: Tensor, h0: Tensor, keep: Tensor, w_hh_t: Tensor, b_hh: Tensor
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The recurrence over ``T`` steps. ``gi`` [T, B, 3H] input projections, ``h0`` [B, H], ``keep`` [T, B, 1]
    (0 where an episode starts). Returns ``y`` [T, B, H], the reset inputs ``h̃`` [T, B, H], gates ``rz``
    [T, B, 2H], ``n`` [T, B, H] and ``gh_n`` [T, B, H] for the backward."""
    H = h0.shape[1]
    h = h0
    ys: list[Tensor] = []
    h_ins: list[Tensor] = []
    rzs: list[Tensor] = []
    ns: list[Tensor] = []
    ghns: list[Tensor] = []
    for t in range(gi.shape[0]):
        h = h * keep[t]
        gh = torch.addmm(b_hh, h, w_hh_t)
        g = gi[t]
        rz = torch.sigmoid(g[:, : 2 * H] + gh[:, : 2 * H])
        ghn = gh[:, 2 * H:]
        n = torch.tanh(torch.addcmul(g[:, 2 * H:], rz[:, :H], ghn))
        h_ins.append(h)
        h = torch.lerp(n, h, rz[:, H:])  # (1 - z) n + z h
        ys.append(h)
        rzs.append(rz)
        ns.append(n)
        ghns.append(ghn)
    return torch.stack(ys), torch.stack(h_ins), torch.stack(rzs), torch.stack(ns), torch.stack(ghns)


def _backward_loop(dy: Tensor, keep: Tensor, w_hh: Tensor, h_in: Tensor, rz_all: Tensor, n_all: Tensor,
                   ghn_all: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The chain rule of :func:`_forward_loop`, last step first. Returns ``∂gi`` [T, B, 3H], ``∂gh`` [T, B, 3H]
    and the gradient of ``h0`` [B, H]."""
    T = n_all.shape[0]
    H = n_all.shape[2]
    dgis: list[Tensor] = []
    dghs: list[Tensor] = []
    dh = torch.zeros_like(h_in[0])
    for i in range(T):
        t = T - 1 - i
        dh = dh + dy[t]
        rz = rz_all[t]
        z = rz[:, H:]
        n = n_all[t]
        dn = dh * (1.0 - z) * (1.0 - n * n)
        drz = torch.cat([dn * ghn_all[t], dh * (h_in[t] - n)], 1) * (rz * (1.0 - rz))
        dgh = torch.cat([drz, dn * rz[:, :H]], 1)
        dgis.append(torch.cat([drz, dn], 1))
        dghs.append(dgh)
        dh = torch.addmm(dh * z, dgh, w_hh) * keep[t]
    dgis.reverse()
    dghs.reverse()
    return torch.stack(dgis), torch.stack(dghs), dh


_compiled: dict[str, Callable[..., Any]] = {}


def _loops() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two loops compiled by TorchScript once per process (the plain functions when that fails)."""
    if not _compiled:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                _compiled["forward"] = torch.jit.script(_forward_loop)
                _compiled["backward"] = torch.jit.script(_backward_loop)
        except Exception:  # noqa: BLE001 - TorchScript gone or unable: the same math in Python
            _compiled["forward"], _compiled["backward"] = _forward_loop, _backward_loop
    return _compiled["forward"], _compiled["backward"]


class _GRUSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, h0: Tensor, keep: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
                b_hh: Tensor) -> Tensor:
        T, B, _ = x.shape
        H = h0.shape[1]
        forward_loop, _ = _loops()
        gi = torch.addmm(b_ih, x.reshape(T * B, -1), w_ih.t()).view(T, B, 3 * H)
        y, h_in, rz, n, ghn = forward_loop(gi, h0, keep, w_hh.t(), b_hh)
        ctx.save_for_backward(x, keep, w_ih, w_hh, h_in, rz, n, ghn)
        return y

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        x, keep, w_ih, w_hh, h_in, rz, n, ghn = ctx.saved_tensors
        T, B, H = n.shape
        _, backward_loop = _loops()
        dgi, dgh, dh0 = backward_loop(dy.contiguous(), keep, w_hh, h_in, rz, n, ghn)
        dgi2, dgh2 = dgi.reshape(T * B, 3 * H), dgh.reshape(T * B, 3 * H)
        dx = (dgi2 @ w_ih).view(T, B, -1) if ctx.needs_input_grad[0] else None
        return (dx, dh0, None, dgi2.t() @ x.reshape(T * B, -1), dgh2.t() @ h_in.reshape(T * B, H),
                dgi2.sum(0), dgh2.sum(0))


def gru_sequence(gru: torch.nn.GRU, x: Tensor, h0: Tensor, episode_start: Tensor | None = None,
                 lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Run ``gru`` (a ``torch.nn.GRU``, time-major, with biases) over ``x`` [T, B, I] from ``h0`` [layers, B, H].

    ``episode_start`` [T, B] (optional) zeroes every layer's state before the steps where it is True.
    ``lengths`` [B] (optional, int64) marks rows that are padded after their first ``lengths[b]`` steps: the
    final state of row ``b`` is then the one after step ``lengths[b] - 1`` (outputs past it are not meaningful).
    Returns the last layer's outputs [T, B, H] and the final state [layers, B, H], as ``gru`` would."""
    if gru.batch_first or gru.bidirectional or not gru.bias or (gru.dropout and gru.training):
        raise ValueError("gru_sequence runs time-major, unidirectional GRUs with biases and no dropout")
    T, B = x.shape[:2]
    keep = (x.new_ones(T, B, 1) if episode_start is None
            else (~episode_start).to(x.dtype).unsqueeze(-1))  # [T, B, 1]
    last = None if lengths is None else (lengths.to(x.device) - 1, torch.arange(B, device=x.device))
    finals = []
    out = x
    for layer in range(gru.num_layers):
        params = [getattr(gru, f"{kind}_l{layer}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        out = _GRUSequence.apply(out, h0[layer], keep, *params)
        finals.append(out[-1] if last is None else out[last])
    return out, torch.stack(finals)


__all__ = ["gru_sequence"]
