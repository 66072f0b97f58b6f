"""Explicit slot memory: a GRU controller that writes to and reads from ``N`` memory slots.

This is the "explicit memory" agent of the memory-augmented-RL notes (seed 000: a GRUCell controller,
a memory matrix ``M ∈ R^{N×W}``, softmax read/write heads, additive writes), made batched, resettable
per episode and carried as state. Per step ``t`` (row-wise, ``[B, ...]``)::

    h_t   = GRU([x_t, r_{t-1}], h_{t-1})                        controller (num_layers stacked GRUCells)
    w_t   = softmax_n(W_w h_t + b_w)                            write weighting over slots        [N]
    a_t   = tanh(W_a h_t + b_a)                                 write vector                      [W]
    e_t   = σ(W_e h_t + b_e)  (only with erase=True)            erase vector                      [W]
    M_t   = M_{t-1} ⊙ (1 - w_t e_tᵀ) + w_t a_tᵀ                  erase=False: M_t = M_{t-1} + w_t a_tᵀ
    k_t   = W_k h_t + b_k;   β_t = 1 + softplus(W_β h_t + b_β)   read key [W] and key strength
    c_tn  = (M_t[n] · k_t) / (sqrt(|M_t[n]|² + ε) sqrt(|k_t|² + ε))     cosine similarity, finite at zero
    ρ_t   = softmax_n(β_t c_t);   r_t = ρ_tᵀ M_t                read weighting [N], read vector [W]
    y_t   = W_y [h_t, r_t] + b_y                                output [hidden_size]

Reading is content-based (NTM-style cosine attention with a key strength). The write key is a vector of
per-slot logits, i.e. location-based addressing as in seed 000: a content-based write on the all-zero
initial memory would give every slot the same weight and the same vector, and the slots would never
become distinguishable. Without the erase gate (the default) a write adds exactly ``w_t a_tᵀ``; with
``erase=True`` each slot first forgets the fraction ``w_tn e_t`` of its content (NTM erase, Graves et al.
2014), which keeps the memory bounded over long episodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AddressableCore, State, StateSpec, TensorSpec, Trace, check_inputs
from .registry import register_memory

_EPS = 1e-6


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def cosine_similarity(memory: Tensor, key: Tensor, eps: float = _EPS) -> Tensor:
    """Cosine similarity of every slot with the key: ``memory`` [B, N, W], ``key`` [B, W] -> [B, N].

    Norms are ``sqrt(|v|² + eps)``, so the value and its gradient are finite for zero memory or a zero key.
    """
    dot = torch.einsum("bnw,bw->bn", memory, key)
    m_norm = torch.sqrt(memory.pow(2).sum(-1) + eps)
    k_norm = torch.sqrt(key.pow(2).sum(-1, keepdim=True) + eps)
    return dot / (m_norm * k_norm)


def additive_write(memory: Tensor, weights: Tensor, vector: Tensor, erase: Tensor | None = None) -> Tensor:
    """``M' = M ⊙ (1 - w eᵀ) + w aᵀ`` (``erase`` None: ``M' = M + w aᵀ``).

    Shapes: ``memory`` [B, N, W], ``weights`` [B, N], ``vector`` and ``erase`` [B, W] -> [B, N, W].
    """
    if erase is not None:
        memory = memory * (1.0 - weights.unsqueeze(-1) * erase.unsqueeze(-2))
    return memory + weights.unsqueeze(-1) * vector.unsqueeze(-2)


class SlotMemoryCore(AddressableCore):
    """GRU controller with ``memory_slots`` slots of width ``memory_width`` (equations in the module docstring).

    Args:
        input_dim: width of ``x``.
        hidden_size: output width, also the controller's GRU width.
        num_layers: stacked GRUCells in the controller (>= 1).
        memory_slots: number of slots ``N`` (>= 1).
        memory_width: width ``W`` of a slot (>= 1).
        erase: add the NTM erase gate to the write (default False: purely additive writes).
        chrono_tmax: chrono initialization of the controller's update-gate biases (as :class:`GRUCore`),
            > 2, or None for zero biases.

    State: ``{"h": [B, num_layers, hidden_size], "memory": [B, N, W], "read": [B, W]}`` (previous read
    vector), all zero at an episode start. Trace: ``read_weights`` and ``write_weights``, ``[T, B, N]``.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        memory_slots: int = 8,
        memory_width: int = 16,
        erase: bool = False,
        chrono_tmax: float | None = 256.0,
    ) -> None:
        super().__init__()
        self.input_dim = _check_positive_int("input_dim", input_dim)
        self.output_dim = self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        self.memory_slots = _check_positive_int("memory_slots", memory_slots)
        self.memory_width = _check_positive_int("memory_width", memory_width)
        if not isinstance(erase, bool):
            raise ValueError(f"erase must be a bool, got {erase!r}")
        if chrono_tmax is not None and not (isinstance(chrono_tmax, (int, float)) and chrono_tmax > 2):
            raise ValueError(f"chrono_tmax must be > 2 or None, got {chrono_tmax!r}")
        self.erase = erase
        self.chrono_tmax = chrono_tmax
        H, N, W = hidden_size, memory_slots, memory_width
        self.controller = nn.ModuleList(
            [nn.GRUCell(input_dim + W if i == 0 else H, H) for i in range(num_layers)]
        )
        self.write_logits = nn.Linear(H, N)
        self.write_vector = nn.Linear(H, W)
        self.erase_gate = nn.Linear(H, W) if erase else None
        self.read_key = nn.Linear(H, W)
        self.read_strength = nn.Linear(H, 1)
        self.out = nn.Linear(H + W, H)
        self._init_controller()

    def _init_controller(self) -> None:
        for cell in self.controller:
            nn.init.orthogonal_(cell.weight_hh)
            nn.init.xavier_uniform_(cell.weight_ih)
            nn.init.zeros_(cell.bias_hh)
            nn.init.zeros_(cell.bias_ih)
            if self.chrono_tmax is not None:
                H = self.hidden_size
                with torch.no_grad():  # gate order r, z, n; a positive z bias keeps the state
                    cell.bias_ih[H : 2 * H] = torch.log(torch.empty(H).uniform_(1.0, self.chrono_tmax - 1.0))

    def state_spec(self) -> StateSpec:
        return {
            "h": TensorSpec((self.num_layers, self.hidden_size)),
            "memory": TensorSpec((self.memory_slots, self.memory_width)),
            "read": TensorSpec((self.memory_width,)),
        }

    def forward_with_trace(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State, Trace]:
        """Run ``x`` [T, B, input_dim] step by step; return ``y`` [T, B, hidden_size], the next state and
        the trace ``{"read_weights": [T, B, N], "write_weights": [T, B, N]}``."""
        check_inputs(self, x, state, episode_start)
        ys, reads, writes = [], [], []
        for t in range(x.shape[0]):
            state = self.reset_where(state, episode_start[t])
            y_t, state, rho, w = self._step(x[t], state)
            ys.append(y_t)
            reads.append(rho)
            writes.append(w)
        trace = {"read_weights": torch.stack(reads), "write_weights": torch.stack(writes)}
        return torch.stack(ys), state, trace

    def _step(self, x: Tensor, state: State) -> tuple[Tensor, State, Tensor, Tensor]:
        """One step for ``x`` [B, input_dim]: returns ``y`` [B, H], the state, read and write weights [B, N]."""
        inp = torch.cat([x, state["read"]], dim=-1)
        hs = []
        for i, cell in enumerate(self.controller):
            inp = cell(inp, state["h"][:, i])
            hs.append(inp)
        h = inp
        w = torch.softmax(self.write_logits(h), dim=-1)
        a = torch.tanh(self.write_vector(h))
        e = torch.sigmoid(self.erase_gate(h)) if self.erase_gate is not None else None
        memory = additive_write(state["memory"], w, a, e)
        key = self.read_key(h)
        beta = 1.0 + F.softplus(self.read_strength(h))
        rho = torch.softmax(beta * cosine_similarity(memory, key), dim=-1)
        read = torch.einsum("bn,bnw->bw", rho, memory)
        y = self.out(torch.cat([h, read], dim=-1))
        return y, {"h": torch.stack(hs, dim=1), "memory": memory, "read": read}, rho, w


register_memory("slots", SlotMemoryCore)
