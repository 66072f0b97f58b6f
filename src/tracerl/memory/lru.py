"""Linear Recurrent Unit (LRU, Orvieto et al., ICML 2023), trained with a parallel scan.

"Resurrecting Recurrent Neural Networks for Long Sequences": a diagonal complex linear recurrence with an
exponential parameterization of its eigenvalues and a normalization of its input, inside a residual block
with a nonlinear (GLU) output. Per layer, with ``N`` complex state units and block width ``H``::

    λ   = exp(-exp(ν) + i exp(θ))                      eigenvalues, |λ| = exp(-exp(ν)) < 1     [N]
    γ   = exp(γ_log),  γ_log initialized to log sqrt(1 - |λ|²)   input normalization        [N]
    v_t = LayerNorm(u_t)                                                                   [H]
    x_t = λ ⊙ x_{t-1} + γ ⊙ (B v_t)                     B ∈ ℂ^{N×H}                          [N] complex
    r_t = Re(C x_t) + D ⊙ v_t                           C ∈ ℂ^{H×N}, D ∈ ℝ^H                [H]
    u'_t = u_t + GLU(W GELU(r_t))                       residual block                     [H]

The input is first mapped to ``u_0 = W_in x_t`` ``[H]``; the output is the last block's ``u'_t``. The
"stable init in a ring": ``|λ|`` is drawn uniformly on the ring ``r_min <= |λ| <= r_max`` of the complex
plane (``ν = log(-½ log(U(r_min², r_max²)))``) and its phase uniformly in ``[0, max_phase]``
(``θ = log(U(0, max_phase))``); ``B``, ``C`` are Glorot-like complex Gaussians (``1/sqrt(2H)``, ``1/sqrt(N)``).
Any ``ν`` gives ``|λ| < 1``, so the recurrence is stable however training moves it.

``x_t = a_t x_{t-1} + b_t`` (``a_t = λ``, or 0 at an episode start) runs as a
:func:`~tracerl.memory.scan.linear_scan` in torch's complex dtype when training; step mode is one complex
multiply-add in real arithmetic. State: ``{"x": [B, num_layers, state_size, 2]}``, real and imaginary parts of ``x``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .base import MemoryCore, State, StateSpec, TensorSpec, check_inputs
from .registry import register_memory
from .scan import linear_scan, stack_layers


class _LRUBlock(nn.Module):
    """LayerNorm -> LRU -> GELU -> GLU, with a residual: ``[T, B, H]`` -> ``[T, B, H]``, state ``[B, N, 2]``."""

    def __init__(self, hidden: int, n: int, r_min: float, r_max: float, max_phase: float) -> None:
        super().__init__()
        self.hidden, self.n = hidden, n
        self.norm = nn.LayerNorm(hidden)
        u1, u2 = torch.rand(n), torch.rand(n)
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2)))
        self.theta_log = nn.Parameter(torch.log(max_phase * u2.clamp(min=1e-4)))
        mag = torch.exp(-torch.exp(self.nu_log.detach()))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - mag**2)))
        self.B = nn.Linear(hidden, 2 * n, bias=False)  # rows: [Re B; Im B]
        self.C = nn.Linear(2 * n, hidden, bias=False)  # columns: [Re C, -Im C], so C([Re x, Im x]) = Re(C x)
        nn.init.normal_(self.B.weight, std=1 / math.sqrt(2 * hidden))
        nn.init.normal_(self.C.weight, std=1 / math.sqrt(n))
        self.D = nn.Parameter(torch.randn(hidden))
        self.out = nn.Linear(hidden, 2 * hidden)

    def eigenvalues(self) -> tuple[Tensor, Tensor]:
        """λ = exp(-exp(ν) + i exp(θ)) as (real, imaginary) parts ``[N]``."""
        mag = torch.exp(-torch.exp(self.nu_log))
        phase = torch.exp(self.theta_log)
        return mag * torch.cos(phase), mag * torch.sin(phase)

    def forward(self, u: Tensor, x0: Tensor, episode_start: Tensor) -> tuple[Tensor, Tensor]:
        """``u`` [T, B, H], ``x0`` [B, N, 2] -> ``u'`` [T, B, H] and the final state [B, N, 2]."""
        T, B_, H = u.shape
        n = self.n
        v = F.layer_norm(u, self.norm.normalized_shape, self.norm.weight, self.norm.bias, self.norm.eps)
        gamma = torch.exp(self.gamma_log)
        mag, phase = torch.exp(-torch.exp(self.nu_log)), torch.exp(self.theta_log)  # |λ|, arg λ
        if T == 1:  # acting: one step in real arithmetic on [B, ...] (exports to ONNX); a start zeroes the state
            v = v[0]
            b_re, b_im = (F.linear(v, self.B.weight) * gamma.repeat(2)).split(n, dim=-1)  # γ ⊙ (B v_t)
            l_re, l_im = mag * torch.cos(phase), mag * torch.sin(phase)
            h_re, h_im = torch.where(episode_start[0].view(B_, 1, 1), 0.0, x0).unbind(-1)
            x_re = torch.addcmul(b_re, l_re, h_re) - l_im * h_im
            x_im = torch.addcmul(b_im, l_re, h_im) + l_im * h_re
            x_last = torch.stack([x_re, x_im], dim=-1)  # [B, N, 2]
            r = F.linear(torch.cat([x_re, x_im], dim=-1), self.C.weight)
            r = torch.addcmul(r, self.D, v)  # Re(C x_t) + D ⊙ v_t
            out = F.linear(F.gelu(r), self.out.weight, self.out.bias)
            return u + F.glu(out, dim=-1).unsqueeze(0), x_last
        # training: a complex scan, λ zeroed at episode starts
        # B's rows and C's columns permuted to (unit, re/im) order, so that γ ⊙ (B v_t) is viewed as complex
        # and the states as real pairs without copying [T, B, N] tensors (the parameters keep their layout).
        w_b = self.B.weight.view(2, n, H).transpose(0, 1).reshape(2 * n, H) * gamma.repeat_interleave(2)[:, None]
        b = torch.view_as_complex(F.linear(v, w_b).view(T, B_, n, 2))
        a = torch.polar(mag, phase) * (~episode_start).to(mag.dtype).unsqueeze(-1)
        x = linear_scan(a, b, torch.view_as_complex(x0.contiguous()))
        w_c = self.C.weight.view(H, 2, n).transpose(1, 2).reshape(H, 2 * n)
        r = F.linear(torch.view_as_real(x).view(T, B_, 2 * n), w_c)
        x_last = torch.view_as_real(x[-1])
        r = torch.addcmul(r, self.D, v)  # Re(C x_t) + D ⊙ v_t
        out = F.linear(F.gelu(r), self.out.weight, self.out.bias)
        return u + F.glu(out, dim=-1), x_last


class LRUCore(MemoryCore):
    """Stacked Linear Recurrent Unit blocks. State ``{"x": [B, num_layers, state_size, 2]}``.

    Args:
        input_dim: input features per step.
        hidden_size: block width ``H`` (and output width).
        num_layers: stacked LRU blocks.
        state_size: ``N`` complex state units per block (default: ``hidden_size``).
        r_min, r_max: the ring the initial eigenvalue magnitudes are drawn from (``0 <= r_min < r_max < 1``).
        max_phase: initial eigenvalue phases are drawn from ``[0, max_phase]``.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        state_size: int | None = None,
        r_min: float = 0.9,
        r_max: float = 0.999,
        max_phase: float = 2 * math.pi,
    ) -> None:
        super().__init__()
        state_size = hidden_size if state_size is None else state_size
        for name, value in [("input_dim", input_dim), ("hidden_size", hidden_size), ("num_layers", num_layers),
                            ("state_size", state_size)]:
            if value <= 0:
                raise ValueError(f"LRUCore: {name} must be > 0, got {value}")
        if not 0 <= r_min < r_max < 1:
            raise ValueError(f"LRUCore needs 0 <= r_min < r_max < 1, got r_min={r_min}, r_max={r_max}")
        if not max_phase > 0:
            raise ValueError(f"LRUCore: max_phase must be > 0, got {max_phase}")
        self.input_dim = input_dim
        self.output_dim = hidden_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.state_size = state_size
        self.encoder = nn.Linear(input_dim, hidden_size)
        self.blocks = nn.ModuleList(
            _LRUBlock(hidden_size, state_size, r_min, r_max, max_phase) for _ in range(num_layers)
        )

    def state_spec(self) -> StateSpec:
        return {"x": TensorSpec((self.num_layers, self.state_size, 2))}

    def forward(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State]:
        """``x`` [T, B, input_dim] -> ``y`` [T, B, hidden_size] (the last block's output) and the final state."""
        check_inputs(self, x, state, episode_start)
        u, finals = F.linear(x, self.encoder.weight, self.encoder.bias), []
        for i, block in enumerate(self.blocks):
            u, s = block(u, state["x"][:, i], episode_start)
            finals.append(s)
        return u, {"x": stack_layers(finals)}


register_memory("lru", LRUCore)
