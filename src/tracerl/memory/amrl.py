"""AMRL: an LSTM whose output is partly aggregated over the whole episode (Beck et al., ICLR 2020).

"AMRL: Aggregated Memory for Reinforcement Learning": a standard memory (an LSTM) summarises short-term
context, and an order-invariant aggregator over all its past outputs carries long-term information with
a gradient that does not decay over time and that averages out noise. Per step ``t`` of an episode::

    h_t        = LSTM(x_t, (h_{t-1}, c_{t-1}))                          [H]  (H = hidden_size)
    [u_t, s_t] = h_t                  u_t: first H - A units (passed on), s_t: last A = max(1, H // 2)
    g_t        = AGG(s_1, ..., s_t)   AGG ∈ {max, mean, sum}, elementwise over the episode so far
    ĝ_t        = s_t + stop_gradient(g_t - s_t)      straight-through (ST), or ĝ_t = g_t without ST
    y_t        = W_y [u_t, ĝ_t] + b_y                                   [H]

With ST the forward value is the aggregate, while the backward pass treats the aggregator as the
identity: ``∂ĝ_t/∂s_t = I`` and ``∂ĝ_t/∂s_τ = 0`` for ``τ < t`` (the paper's "ST" models, e.g.
AMRL-Max). Without ST the true gradient flows (for max: only to the step that holds the maximum).

The aggregation is a cumulative op over time within episodes (``cummax``/``cumsum`` over the episode
pieces of :mod:`tracerl.memory.packing`), carried across calls in the state as the running aggregate
``agg`` and the number of steps it covers ``count``, so stepping equals one call on the sequence.
``sum`` is unbounded (up to the episode length times the LSTM's output range, [-1, 1]).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import MemoryCore, State, StateSpec, TensorSpec, check_inputs
from .packing import from_pieces, split_pieces, to_pieces
from .registry import register_memory
from .rnn import LSTMCore

AGGREGATORS = ("max", "mean", "sum")


def aggregate(
    s: Tensor,
    episode_start: Tensor,
    agg: Tensor,
    count: Tensor,
    mode: str = "max",
    straight_through: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Running order-invariant aggregate of ``s`` over each episode, continued from ``(agg, count)``.

    Args:
        s: ``[T, B, A]`` values to aggregate.
        episode_start: ``[T, B]`` bool; a start discards the running aggregate before consuming ``s[t, b]``.
        agg: ``[B, A]`` aggregate of the steps already seen in each row's current episode.
        count: ``[B, 1]`` number of steps ``agg`` covers (values <= 0 mean "nothing seen yet").
        mode: ``"max"``, ``"mean"`` or ``"sum"``.
        straight_through: output ``s + stop_gradient(AGG - s)`` instead of ``AGG``.

    Returns:
        ``out`` [T, B, A] (aggregate up to and including each step, ST-wrapped if asked), the final
        aggregate [B, A] (true gradient, for the state) and the final count [B, 1].
    """
    if mode not in AGGREGATORS:
        raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {mode!r}")
    T, B, _ = s.shape
    n_in = count.squeeze(-1).clamp(min=0.0)
    pieces = None
    if T == 1 or not bool(episode_start[1:].any()):
        sp, carries, agg_prev, n_prev = s, ~episode_start[0], agg, n_in  # one piece per row
    else:
        pieces = split_pieces(episode_start)
        sp = to_pieces(s, pieces)
        carries, agg_prev, n_prev = pieces.carries_state, agg[pieces.piece_row], n_in[pieces.piece_row]
    n_prev = torch.where(carries, n_prev, torch.zeros_like(n_prev))  # [N]
    steps = torch.arange(1, sp.shape[0] + 1, device=s.device, dtype=s.dtype).unsqueeze(1)
    n = n_prev.unsqueeze(0) + steps  # [L, N]: steps covered after each step of a piece
    seen = (n_prev > 0).unsqueeze(-1)
    if mode == "max":
        prefix = torch.where(seen, agg_prev, torch.full_like(agg_prev, float("-inf")))
        g = torch.cummax(torch.cat([prefix.unsqueeze(0), sp]), dim=0).values[1:]
    else:
        carried = agg_prev * n_prev.unsqueeze(-1) if mode == "mean" else agg_prev
        prefix = torch.where(seen, carried, torch.zeros_like(carried))
        g = torch.cumsum(torch.cat([prefix.unsqueeze(0), sp]), dim=0)[1:]
        if mode == "mean":
            g = g / n.unsqueeze(-1)
    out = sp + (g - sp).detach() if straight_through else g
    if pieces is not None:
        out, g, n = from_pieces(out, pieces, T, B), from_pieces(g, pieces, T, B), from_pieces(n, pieces, T, B)
    return out, g[-1], n[-1].unsqueeze(-1)


class AMRLCore(MemoryCore):
    """LSTM + order-invariant aggregator with straight-through gradient (equations in the module docstring).

    Args:
        input_dim: width of ``x``.
        hidden_size: LSTM width and output width ``H``; the last ``max(1, H // 2)`` LSTM units are aggregated.
        num_layers: stacked LSTM layers (>= 1).
        aggregator: ``"max"`` (default), ``"mean"`` or ``"sum"``.
        straight_through: use the ST gradient for the aggregator (default True, as in the paper).
        chrono_tmax: chrono initialization of the LSTM gates (see :class:`~tracerl.memory.rnn.LSTMCore`).

    State: ``{"h", "c": [B, num_layers, H], "agg": [B, A], "count": [B, 1]}``; zeros at an episode start
    (``count`` 0 means the running aggregate is empty).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        aggregator: str = "max",
        straight_through: bool = True,
        chrono_tmax: float | None = 256.0,
    ) -> None:
        super().__init__()
        for name, value in (("input_dim", input_dim), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {aggregator!r}")
        if not isinstance(straight_through, bool):
            raise ValueError(f"straight_through must be a bool, got {straight_through!r}")
        self.input_dim = input_dim
        self.output_dim = self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.aggregator = aggregator
        self.straight_through = straight_through
        self.agg_size = max(1, hidden_size // 2)
        self.lstm = LSTMCore(input_dim, hidden_size, num_layers, chrono_tmax=chrono_tmax)
        self.out = nn.Linear(hidden_size, hidden_size)

    def state_spec(self) -> StateSpec:
        return {
            "h": TensorSpec((self.num_layers, self.hidden_size)),
            "c": TensorSpec((self.num_layers, self.hidden_size)),
            "agg": TensorSpec((self.agg_size,)),
            "count": TensorSpec((1,)),
        }

    def forward(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State]:
        """``x`` [T, B, input_dim] -> ``y`` [T, B, hidden_size] and the next state."""
        check_inputs(self, x, state, episode_start)
        h, lstm_state = self.lstm(x, {"h": state["h"], "c": state["c"]}, episode_start)
        split = self.hidden_size - self.agg_size
        g, agg, count = aggregate(
            h[..., split:], episode_start, state["agg"], state["count"], self.aggregator, self.straight_through
        )
        y = self.out(torch.cat([h[..., :split], g], dim=-1))
        return y, {**lstm_state, "agg": agg, "count": count}


register_memory("amrl", AMRLCore)
