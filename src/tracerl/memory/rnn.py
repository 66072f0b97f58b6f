"""GRU and LSTM cores on torch's fused recurrent kernels.

Equations (per layer, Cho et al. 2014 / Hochreiter & Schmidhuber 1997, as in ``torch.nn.GRU`` and
``torch.nn.LSTM``)::

    GRU:  r = σ(W_ir x + W_hr h + b_r);  z = σ(W_iz x + W_hz h + b_z)
          n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn));  h' = (1 - z) ⊙ n + z ⊙ h
    LSTM: i, f, g, o = σ, σ, tanh, σ of (W x + U h + b);  c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c')

Sequences with episode starts inside them are split into pieces (see :mod:`tracerl.memory.packing`)
that run side by side in one packed kernel call, so a batch costs ``longest piece`` sequential steps. The GRU
runs sequences longer than one step through :func:`tracerl.memory.gru_kernel.gru_sequence` instead (resets
a hand-written backward; the same numbers up to float rounding).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .base import MemoryCore, State, StateSpec, TensorSpec, check_inputs
from .gru_kernel import gru_sequence
from .packing import from_pieces, split_pieces, to_pieces
from .registry import register_memory


def chrono_bias(size: int, tmax: float) -> Tensor:
    """Chrono initialization (Tallec & Ollivier 2018): gate biases log(U(1, T_max - 1)) ``[size]``, so units
    start out remembering over time scales spread up to T_max steps instead of forgetting within a few."""
    return torch.log(torch.empty(size).uniform_(1.0, tmax - 1.0))


class _FusedRNNCore(MemoryCore):
    """Shared logic of :class:`GRUCore` and :class:`LSTMCore`. State entries are ``[B, layers, H]``."""

    _state_names: tuple[str, ...]

    def __init__(
        self, rnn: nn.RNNBase, input_dim: int, hidden_size: int, num_layers: int, chrono_tmax: float | None
    ) -> None:
        super().__init__()
        if chrono_tmax is not None and not chrono_tmax > 2:
            raise ValueError(f"chrono_tmax must be > 2 or None, got {chrono_tmax}")
        if input_dim <= 0:
            raise ValueError(f"input_dim must be > 0, got {input_dim}")
        if hidden_size <= 0:
            raise ValueError(f"hidden_size must be > 0, got {hidden_size}")
        if num_layers <= 0:
            raise ValueError(f"num_layers must be > 0, got {num_layers}")
        self.input_dim = input_dim
        self.output_dim = hidden_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.rnn = rnn
        for name, param in self.rnn.named_parameters():
            if "weight_hh" in name:
                nn.init.orthogonal_(param)
            elif "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "bias" in name:
                nn.init.zeros_(param)
        self.chrono_tmax = chrono_tmax

    def _chrono_bias(self) -> Tensor:
        assert self.chrono_tmax is not None
        return chrono_bias(self.hidden_size, self.chrono_tmax)

    def state_spec(self) -> StateSpec:
        shape = (self.num_layers, self.hidden_size)
        return {name: TensorSpec(shape) for name in self._state_names}

    # torch's kernels want [layers, B, H]; the contract stores batch-first [B, layers, H].
    def _to_kernel(self, state: State) -> Tensor | tuple[Tensor, Tensor]:
        hs = tuple(state[n].transpose(0, 1).contiguous() for n in self._state_names)
        return hs[0] if len(hs) == 1 else hs  # type: ignore[return-value]

    def _from_kernel(self, hx: Tensor | tuple[Tensor, ...]) -> State:
        hs = (hx,) if isinstance(hx, Tensor) else hx
        return {n: h.transpose(0, 1) for n, h in zip(self._state_names, hs)}

    def forward(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State]:
        check_inputs(self, x, state, episode_start)
        T, B, _ = x.shape
        state = self.reset_where(state, episode_start[0])
        if T == 1 or not bool(episode_start[1:].any()):
            y, hx = self.rnn(x, self._to_kernel(state))
            return y, self._from_kernel(hx)
        # Resets inside the sequence: run every episode piece as its own sequence, in one call.
        p = split_pieces(episode_start)
        init = self.initial_state(p.num_pieces, x.device)
        carried = p.carries_state.view(-1, 1, 1)
        piece_state = {
            n: torch.where(carried, state[n][p.piece_row], init[n]) for n in self._state_names
        }
        xp = to_pieces(x, p)
        packed = pack_padded_sequence(xp, p.lengths, enforce_sorted=False)
        yp_packed, hx = self.rnn(packed, self._to_kernel(piece_state))
        assert isinstance(yp_packed, PackedSequence)
        yp, _ = pad_packed_sequence(yp_packed, total_length=p.max_len)
        y = from_pieces(yp, p, T, B)
        final = {n: v[p.last_piece_of_row] for n, v in self._from_kernel(hx).items()}
        return y, final


class GRUCore(_FusedRNNCore):
    """Gated recurrent unit memory. State: ``{"h": [B, num_layers, hidden_size]}``.

    ``chrono_tmax`` (default 256) sets the update-gate biases by chrono initialization so the memory
    starts out holding information for up to that many steps; None gives torch's usual zero biases.
    On CueDelay difficulty 1, delay 64, it cut PPO's steps-to-solve from "not within 400k" (2 of 3
    seeds) to 41k-102k (see BENCHMARKS.md).
    """

    _state_names = ("h",)

    def __init__(
        self, input_dim: int, hidden_size: int = 64, num_layers: int = 1, chrono_tmax: float | None = 256.0
    ) -> None:
        super().__init__(nn.GRU(input_dim, hidden_size, num_layers), input_dim, hidden_size, num_layers, chrono_tmax)
        if chrono_tmax is not None:
            # h' = (1 - z) n + z h: a positive update-gate bias keeps the state.
            for name, param in self.rnn.named_parameters():
                if "bias_ih" in name:
                    with torch.no_grad():
                        param[hidden_size : 2 * hidden_size] = self._chrono_bias()

    def forward(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State]:
        """Steps (``T == 1``) run torch's kernel; sequences run :func:`gru_sequence`, on the episode pieces
        side by side when episodes start inside the sequence (``longest piece`` sequential steps)."""
        if x.shape[0] == 1:
            return super().forward(x, state, episode_start)
        check_inputs(self, x, state, episode_start)
        T, B, _ = x.shape
        h = self.reset_where(state, episode_start[0])["h"]  # [B, layers, H]
        if not bool(episode_start[1:].any()):
            y, final = gru_sequence(self.rnn, x, h.transpose(0, 1))
            return y, {"h": final.transpose(0, 1)}
        p = split_pieces(episode_start)
        carried = p.carries_state.view(-1, 1, 1)
        piece_h = torch.where(carried, h[p.piece_row], torch.zeros((), dtype=h.dtype, device=h.device))
        yp, final = gru_sequence(self.rnn, to_pieces(x, p), piece_h.transpose(0, 1), lengths=p.lengths)
        return from_pieces(yp, p, T, B), {"h": final.transpose(0, 1)[p.last_piece_of_row]}


class LSTMCore(_FusedRNNCore):
    """Long short-term memory. State: ``{"h": [B, layers, H], "c": [B, layers, H]}``.

    ``chrono_tmax`` (default 256) sets forget-gate biases to log(U(1, T_max - 1)) and input-gate biases
    to their negatives (chrono initialization); None gives the classic forget-gate bias of 1.
    """

    _state_names = ("h", "c")

    def __init__(
        self, input_dim: int, hidden_size: int = 64, num_layers: int = 1, chrono_tmax: float | None = 256.0
    ) -> None:
        super().__init__(nn.LSTM(input_dim, hidden_size, num_layers), input_dim, hidden_size, num_layers, chrono_tmax)
        H = hidden_size
        for name, param in self.rnn.named_parameters():
            if "bias_ih" in name:
                with torch.no_grad():
                    if chrono_tmax is None:
                        param[H : 2 * H].fill_(1.0)  # forget bias 1 (Jozefowicz et al. 2015)
                    else:
                        b_f = self._chrono_bias()
                        param[H : 2 * H] = b_f  # forget gate
                        param[:H] = -b_f  # input gate


register_memory("gru", GRUCore)
register_memory("lstm", LSTMCore)
