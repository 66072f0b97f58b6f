"""Neural Turing Machine core (Graves, Wayne & Danihelka 2014).

A controller (LSTM or feed-forward) reads ``x_t ⊕ r_{t-1}`` and emits, per head, the parameters of
:func:`tracerl.memory.addressing.ntm_address`::

    key k (raw), strength β = softplus, gate g = σ, shift s = softmax over -S..+S, sharpening γ = 1 + softplus
    write heads also: erase e = σ, add a = tanh

Per step, write heads address ``M_{t-1}`` and write together (erasures multiply, additions add);
read heads then address and read ``M_t``; the output is ``y_t = Linear(h_t ⊕ r_t)``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import addressing as addr
from .base import AddressableCore, State, StateSpec, TensorSpec, Trace, check_inputs
from .registry import register_memory
from .rnn import chrono_bias


def check_positive(name: str, value: int) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is an integer >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def reset_rows(state: State, init: State, reset: Tensor) -> State:
    """Rows where ``reset`` ([B] bool) is True replaced by ``init`` (the precomputed initial state)."""
    return {k: torch.where(reset.view(-1, *([1] * (v.dim() - 1))), init[k], v) for k, v in state.items()}


class Controller(nn.Module):
    """``num_layers`` stacked LSTM cells (state ``h``, ``c``: ``[B, num_layers, size]``) or ``num_layers``
    feed-forward ``tanh(Linear)`` layers (no state)."""

    def __init__(
        self, kind: str, input_size: int, size: int, num_layers: int, chrono_tmax: float | None = None
    ) -> None:
        super().__init__()
        if kind not in ("lstm", "mlp"):
            raise ValueError(f"controller must be 'lstm' or 'mlp', got {kind!r}")
        if chrono_tmax is not None and not chrono_tmax > 2:
            raise ValueError(f"chrono_tmax must be > 2 or None, got {chrono_tmax!r}")
        self.kind = kind
        self.size = size
        self.num_layers = num_layers
        sizes = [input_size] + [size] * num_layers
        if kind == "lstm":
            self.layers = nn.ModuleList(nn.LSTMCell(i, size) for i in sizes[:-1])
            for cell in self.layers:
                with torch.no_grad():
                    cell.bias_ih.zero_()
                    cell.bias_hh.zero_()
                    if chrono_tmax is None:
                        cell.bias_ih[size : 2 * size].fill_(1.0)  # forget-gate bias 1
                    else:  # chrono initialization, as in tracerl.memory.rnn.LSTMCore
                        b_f = chrono_bias(size, chrono_tmax)
                        cell.bias_ih[size : 2 * size] = b_f
                        cell.bias_ih[:size] = -b_f
        else:
            self.layers = nn.ModuleList(nn.Linear(i, size) for i in sizes[:-1])

    def state_spec(self) -> dict[str, TensorSpec]:
        if self.kind == "mlp":
            return {}
        return {"h": TensorSpec((self.num_layers, self.size)), "c": TensorSpec((self.num_layers, self.size))}

    def forward(self, inp: Tensor, state: State) -> tuple[Tensor, State]:
        """inp [B, input_size], state with ``h``/``c`` [B, num_layers, size] (LSTM) -> (output [B, size], new
        controller state entries)."""
        if self.kind == "mlp":
            for layer in self.layers:
                inp = torch.tanh(layer(inp))
            return inp, {}
        if self.num_layers == 1:
            h, c = self.layers[0](inp, (state["h"][:, 0], state["c"][:, 0]))
            return h, {"h": h.unsqueeze(1), "c": c.unsqueeze(1)}
        hs, cs = [], []
        for i, cell in enumerate(self.layers):
            inp, ci = cell(inp, (state["h"][:, i], state["c"][:, i]))
            hs.append(inp)
            cs.append(ci)
        return inp, {"h": torch.stack(hs, 1), "c": torch.stack(cs, 1)}


class NTMCore(AddressableCore):
    """Neural Turing Machine memory core.

    Args:
        input_dim: size D of the inputs ``x [T, B, D]``.
        hidden_size: output width H of ``y [T, B, H]``.
        num_layers: depth of the controller (stacked LSTM cells or feed-forward layers).
        num_read_heads: R read heads.
        num_write_heads: W_h write heads.
        memory_slots: N rows of the memory.
        memory_width: M columns of the memory.
        controller: ``"lstm"`` or ``"mlp"`` (feed-forward).
        controller_size: controller width (default: ``hidden_size``).
        shift_range: S; shifts are a distribution over offsets ``-S..+S`` (``2S + 1 <= N``).
        init_memory: value of every memory cell at an episode start (small and non-zero; every slot
            equal, so content addressing starts uniform).
        chrono_tmax: chrono-initialize the LSTM controller's gates up to this time scale (as
            :class:`~tracerl.memory.rnn.LSTMCore` does); None (default) keeps the forget-gate bias of 1. With
            256, PPO solves CueDelay delay 64 (see BENCHMARKS.md); on short tasks and the copy task it learns slower.

    State (batch-first): ``h``, ``c`` ``[B, num_layers, controller_size]`` (LSTM controller only),
    ``memory [B, N, M]``, ``read_weights [B, R, N]``, ``write_weights [B, W_h, N]``, ``reads [B, R, M]``.
    Every head starts focused on slot 0, the reads at zero.
    Trace: ``read_weights [T, B, R, N]``, ``write_weights [T, B, W_h, N]``.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        *,
        num_read_heads: int = 1,
        num_write_heads: int = 1,
        memory_slots: int = 32,
        memory_width: int = 16,
        controller: Literal["lstm", "mlp"] = "lstm",
        controller_size: int | None = None,
        shift_range: int = 1,
        init_memory: float = 1e-6,
        chrono_tmax: float | None = None,
    ) -> None:
        super().__init__()
        for name, value in [
            ("input_dim", input_dim),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
            ("num_read_heads", num_read_heads),
            ("num_write_heads", num_write_heads),
            ("memory_slots", memory_slots),
            ("memory_width", memory_width),
        ]:
            check_positive(name, value)
        if controller_size is not None:
            check_positive("controller_size", controller_size)
        if not isinstance(shift_range, int) or shift_range < 0 or 2 * shift_range + 1 > memory_slots:
            raise ValueError(f"shift_range must be an integer in [0, (memory_slots - 1) / 2], got {shift_range!r}")
        if not init_memory > 0:
            raise ValueError(f"init_memory must be > 0, got {init_memory!r}")
        self.input_dim = input_dim
        self.output_dim = hidden_size
        self.num_read_heads = num_read_heads
        self.num_write_heads = num_write_heads
        self.memory_slots = memory_slots
        self.memory_width = memory_width
        self.shift_range = shift_range
        self.init_memory = float(init_memory)
        size = controller_size or hidden_size
        R, Wh, M, S = num_read_heads, num_write_heads, memory_width, 2 * shift_range + 1
        self.controller = Controller(controller, input_dim + R * M, size, num_layers, chrono_tmax)
        # Per head (write heads first, then read heads): key M, β, g, s (2S+1), γ; then per write head
        # erase M and add M.
        self._head_width = M + 3 + S
        self._n_address = (Wh + R) * self._head_width
        self.interface = nn.Linear(size, self._n_address + Wh * 2 * M)
        self.output = nn.Linear(size + R * M, hidden_size)

    def state_spec(self) -> StateSpec:
        N, M = self.memory_slots, self.memory_width
        return {
            **self.controller.state_spec(),
            "memory": TensorSpec((N, M)),
            "read_weights": TensorSpec((self.num_read_heads, N)),
            "write_weights": TensorSpec((self.num_write_heads, N)),
            "reads": TensorSpec((self.num_read_heads, M)),
        }

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        state = super().initial_state(batch_size, device)
        state["memory"].fill_(self.init_memory)
        state["read_weights"][..., 0] = 1.0
        state["write_weights"][..., 0] = 1.0
        return state

    def forward_with_trace(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State, Trace]:
        check_inputs(self, x, state, episode_start)
        T, B, _ = x.shape
        R, Wh, M = self.num_read_heads, self.num_write_heads, self.memory_width
        init = self.initial_state(B, x.device)
        any_start = episode_start.any(dim=1).tolist()
        s = {k: state[k] for k in self.state_spec()}
        ctrls, reads_seq, read_trace, write_trace = [], [], [], []
        for t in range(T):
            if any_start[t]:
                s = reset_rows(s, init, episode_start[t])
            ctrl, ctrl_state = self.controller(torch.cat([x[t], s["reads"].flatten(1)], -1), s)
            raw = self.interface(ctrl)
            heads = raw[:, : self._n_address].view(B, Wh + R, self._head_width)
            key = heads[..., :M]
            beta = F.softplus(heads[..., M])
            gate = torch.sigmoid(heads[..., M + 1])
            shift = torch.softmax(heads[..., M + 2 : -1], dim=-1)
            gamma = 1.0 + F.softplus(heads[..., -1])
            erase_add = raw[:, self._n_address :].view(B, Wh, 2 * M)
            w_write = addr.ntm_address(
                key[:, :Wh], beta[:, :Wh], gate[:, :Wh], shift[:, :Wh], gamma[:, :Wh], s["write_weights"], s["memory"]
            )
            memory = addr.erase_and_add(
                s["memory"], w_write, torch.sigmoid(erase_add[..., :M]), torch.tanh(erase_add[..., M:])
            )
            w_read = addr.ntm_address(
                key[:, Wh:], beta[:, Wh:], gate[:, Wh:], shift[:, Wh:], gamma[:, Wh:], s["read_weights"], memory
            )
            reads = addr.read(memory, w_read)
            s = {**ctrl_state, "memory": memory, "read_weights": w_read, "write_weights": w_write, "reads": reads}
            ctrls.append(ctrl)
            reads_seq.append(reads)
            read_trace.append(w_read)
            write_trace.append(w_write)
        y = self.output(torch.cat([torch.stack(ctrls), torch.stack(reads_seq).flatten(2)], -1))
        trace = {"read_weights": torch.stack(read_trace), "write_weights": torch.stack(write_trace)}
        return y, s, trace


register_memory("ntm", NTMCore)
