"""minGRU: a GRU whose gates read only the input, trained with a parallel scan (Feng et al. 2024).

"Were RNNs All We Needed?" removes the hidden state from the GRU's gates and candidate, which makes the
recurrence linear in ``h`` and so computable for all steps at once. Per layer, for input ``x_t``::

    z_t  = σ(W_z x_t + b_z)                      update gate        [H]
    h̃_t  = W_h x_t + b_h                         candidate state    [H]
    h_t  = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t       a_t = 1 - z_t,  b_t = z_t ⊙ h̃_t

Layers are stacked (layer ``l > 0`` reads layer ``l - 1``'s ``h``); the output is the last layer's ``h_t``.
Sequence mode runs :func:`~tracerl.memory.scan.linear_scan` (an associative scan with a hand-written
backward) with ``a_t = 0`` at episode starts; step mode (``T == 1``) zeroes the carried-in state of rows that
start an episode and is one multiply-add. ``1 - z_t`` is computed as
``σ(-(W_z x_t + b_z))`` so a nearly closed gate keeps its precision; the decays lie in (0, 1), so the
scan is stable in float32 (the paper's log-space form needs positive states; this one does not).

``chrono_tmax`` (default 256) initializes ``b_z = -log U(1, T_max - 1)`` (chrono initialization, Tallec &
Ollivier 2018, with the sign of a write gate) so units start out keeping their state for up to ``T_max``
steps; None gives zero biases.

State: ``{"h": [B, num_layers, hidden_size]}`` (zeros at an episode start).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .base import MemoryCore, State, StateSpec, TensorSpec, check_inputs
from .registry import register_memory
from .rnn import chrono_bias
from .scan import linear_scan, reset_decay, stack_layers


class MinGRUCore(MemoryCore):
    """Stacked minGRU layers on a parallel scan. State ``{"h": [B, num_layers, hidden_size]}``."""

    def __init__(
        self, input_dim: int, hidden_size: int = 64, num_layers: int = 1, chrono_tmax: float | None = 256.0
    ) -> None:
        super().__init__()
        if input_dim <= 0 or hidden_size <= 0 or num_layers <= 0:
            raise ValueError(
                f"MinGRUCore needs input_dim, hidden_size and num_layers > 0; got input_dim={input_dim}, "
                f"hidden_size={hidden_size}, num_layers={num_layers}"
            )
        if chrono_tmax is not None and not chrono_tmax > 2:
            raise ValueError(f"chrono_tmax must be > 2 or None, got {chrono_tmax}")
        self.input_dim = input_dim
        self.output_dim = hidden_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.chrono_tmax = chrono_tmax
        # One linear map per layer gives [gate pre-activation k_t | candidate h̃_t].
        self.layers = nn.ModuleList(
            nn.Linear(input_dim if i == 0 else hidden_size, 2 * hidden_size) for i in range(num_layers)
        )
        for lin in self.layers:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
            if chrono_tmax is not None:
                with torch.no_grad():
                    lin.bias[:hidden_size] = -chrono_bias(hidden_size, chrono_tmax)

    def state_spec(self) -> StateSpec:
        return {"h": TensorSpec((self.num_layers, self.hidden_size))}

    def forward(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State]:
        """``x`` [T, B, input_dim] -> ``y`` [T, B, hidden_size] (the last layer's ``h_t``) and the final state."""
        check_inputs(self, x, state, episode_start)
        h0 = state["h"]
        T = x.shape[0]
        if T == 1:  # acting: a start zeroes the carried-in state (of every layer) instead of the decay
            h0 = torch.where(episode_start[0].view(-1, 1, 1), 0.0, h0)
        finals = []
        out = x
        for i, lin in enumerate(self.layers):
            k, cand = F.linear(out, lin.weight, lin.bias).chunk(2, dim=-1)  # [T, B, H] each
            keep = torch.sigmoid(-k)  # a_t = 1 - z_t
            if T > 1:
                keep = reset_decay(keep, episode_start)  # 0 at episode starts
            write = torch.sigmoid(k) * cand  # b_t = z_t ⊙ h̃_t
            out = linear_scan(keep, write, h0[:, i])  # h_t = a_t ⊙ h_{t-1} + b_t from h_{-1} = h0
            finals.append(out[-1])
        return out, {"h": stack_layers(finals)}


register_memory("mingru", MinGRUCore)
