"""Differentiable Neural Computer core (Graves et al. 2016, "Hybrid computing using a neural network
with dynamic external memory").

An LSTM controller reads ``x_t ⊕ r_{t-1}`` (all R read vectors) and emits the interface vector::

    read keys k^r_i (raw), read strengths β^r_i = 1 + softplus, write key k^w (raw), β^w = 1 + softplus,
    erase e = σ, write vector v (raw), free gates f_i = σ, allocation gate g^a = σ, write gate g^w = σ,
    read modes π_i = softmax over (backward, content, forward)

Per step (functions of :mod:`tracerl.memory.addressing`)::

    u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} ⊙ w^w_{t-1}) ⊙ Π_i (1 - f_i w^r_{t-1,i})
    w^w_t = g^w (g^a a(u_t) + (1 - g^a) C(M_{t-1}, k^w, β^w))
    M_t = M_{t-1} ⊙ (1 - w^w_t e^T) + w^w_t v^T
    L_t = (1 - w^w_i - w^w_j) L_{t-1} + w^w_i p_{t-1,j} (zero diagonal);  p_t = (1 - Σ w^w_t) p_{t-1} + w^w_t
    w^r_{t,i} = π_i[0] L_t^T w^r_{t-1,i} + π_i[1] C(M_t, k^r_i, β^r_i) + π_i[2] L_t w^r_{t-1,i}
    r_{t,i} = M_t^T w^r_{t,i};  y_t = Linear(h_t ⊕ r_t)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import addressing as addr
from .ntm import Controller, check_positive, reset_rows
from .base import AddressableCore, State, StateSpec, TensorSpec, Trace, check_inputs
from .registry import register_memory


class DNCCore(AddressableCore):
    """Differentiable Neural Computer memory core (one write head, several read heads).

    Args:
        input_dim: size D of the inputs ``x [T, B, D]``.
        hidden_size: output width H of ``y [T, B, H]``.
        num_layers: number of stacked LSTM cells in the controller.
        num_read_heads: R read heads.
        memory_slots: N rows of the memory.
        memory_width: W columns of the memory.
        controller_size: controller width (default: ``hidden_size``).
        chrono_tmax: chrono-initialize the LSTM controller's gates up to this time scale (256 lets PPO
            solve CueDelay delay 64, see BENCHMARKS.md); None (default) keeps the forget-gate bias of 1.

    State (batch-first), all zero at an episode start: ``h``, ``c`` ``[B, num_layers, controller_size]``,
    ``memory [B, N, W]``, ``usage [B, N]``, ``link [B, N, N]``, ``precedence [B, N]``,
    ``read_weights [B, R, N]``, ``write_weights [B, N]``, ``reads [B, R, W]``.
    Trace: ``read_weights [T, B, R, N]``, ``write_weights [T, B, 1, N]`` (one write head, same layout as
    the NTM's), ``usage [T, B, N]``, ``read_modes [T, B, R, 3]`` (backward, content, forward).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        *,
        num_read_heads: int = 2,
        memory_slots: int = 16,
        memory_width: int = 16,
        controller_size: int | None = None,
        chrono_tmax: float | None = None,
    ) -> None:
        super().__init__()
        for name, value in [
            ("input_dim", input_dim),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
            ("num_read_heads", num_read_heads),
            ("memory_slots", memory_slots),
            ("memory_width", memory_width),
        ]:
            check_positive(name, value)
        if controller_size is not None:
            check_positive("controller_size", controller_size)
        self.input_dim = input_dim
        self.output_dim = hidden_size
        self.num_read_heads = num_read_heads
        self.memory_slots = memory_slots
        self.memory_width = memory_width
        size = controller_size or hidden_size
        R, W = num_read_heads, memory_width
        self.controller = Controller("lstm", input_dim + R * W, size, num_layers, chrono_tmax)
        # Interface layout: read keys R*W, read strengths R, free gates R, read modes R*3,
        # write key W, erase W, write vector W, write strength, allocation gate, write gate.
        self._sizes = [R * W, R, R, R * 3, W, W, W, 1, 1, 1]
        self.interface = nn.Linear(size, sum(self._sizes))
        self.output = nn.Linear(size + R * W, hidden_size)

    def state_spec(self) -> StateSpec:
        N, W, R = self.memory_slots, self.memory_width, self.num_read_heads
        return {
            **self.controller.state_spec(),
            "memory": TensorSpec((N, W)),
            "usage": TensorSpec((N,)),
            "link": TensorSpec((N, N)),
            "precedence": TensorSpec((N,)),
            "read_weights": TensorSpec((R, N)),
            "write_weights": TensorSpec((N,)),
            "reads": TensorSpec((R, W)),
        }

    def forward_with_trace(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State, Trace]:
        check_inputs(self, x, state, episode_start)
        T, B, _ = x.shape
        R, W = self.num_read_heads, self.memory_width
        init = self.initial_state(B, x.device)
        any_start = episode_start.any(dim=1).tolist()
        s = {k: state[k] for k in self.state_spec()}
        ctrls: list[Tensor] = []
        reads_seq: list[Tensor] = []
        trace_lists: dict[str, list[Tensor]] = {"read_weights": [], "write_weights": [], "usage": [], "read_modes": []}
        for t in range(T):
            if any_start[t]:
                s = reset_rows(s, init, episode_start[t])
            ctrl, ctrl_state = self.controller(torch.cat([x[t], s["reads"].flatten(1)], -1), s)
            rk, rb, free, modes, wk, erase, wv, wb, ga, gw = torch.split(self.interface(ctrl), self._sizes, dim=-1)
            rk = rk.view(B, R, W)
            rb = 1.0 + F.softplus(rb)
            free = torch.sigmoid(free)
            modes = torch.softmax(modes.view(B, R, 3), dim=-1)
            wb = 1.0 + F.softplus(wb)
            gates = torch.sigmoid(torch.cat([ga, gw], -1))

            usage = addr.update_usage(s["usage"], s["write_weights"], free, s["read_weights"])
            write_content = addr.content_weighting(wk.unsqueeze(1), wb, s["memory"]).squeeze(1)
            w_write = addr.write_weighting(addr.allocation_weighting(usage), write_content, gates[:, 1], gates[:, 0])
            memory = addr.erase_and_add(
                s["memory"], w_write.unsqueeze(1), torch.sigmoid(erase).unsqueeze(1), wv.unsqueeze(1)
            )
            link = addr.update_link(s["link"], s["precedence"], w_write)
            precedence = addr.update_precedence(s["precedence"], w_write)
            fwd, bwd = addr.directional_weightings(link, s["read_weights"])
            read_content = addr.content_weighting(rk, rb, memory)
            w_read = addr.dnc_read_weighting(bwd, read_content, fwd, modes)
            reads = addr.read(memory, w_read)
            s = {
                **ctrl_state,
                "memory": memory,
                "usage": usage,
                "link": link,
                "precedence": precedence,
                "read_weights": w_read,
                "write_weights": w_write,
                "reads": reads,
            }
            ctrls.append(ctrl)
            reads_seq.append(reads)
            for name, value in (("read_weights", w_read), ("write_weights", w_write.unsqueeze(1)),
                                ("usage", usage), ("read_modes", modes)):
                trace_lists[name].append(value)
        y = self.output(torch.cat([torch.stack(ctrls), torch.stack(reads_seq).flatten(2)], -1))
        return y, s, {name: torch.stack(values) for name, values in trace_lists.items()}


register_memory("dnc", DNCCore)
