"""Split time-major batches at episode starts into independent pieces, for fused recurrent kernels.

A batch ``x[T, B, D]`` with resets inside it is a set of *pieces*: maximal runs of one row that
contain no episode start after their first step. Each piece is an independent sequence that starts
either from the incoming state (the first piece of a row, when that row does not start an episode at
``t = 0``) or from the initial state. Running all pieces side by side as one padded batch lets a
fused kernel (``nn.GRU``/``nn.LSTM``) process the whole batch in ``max piece length`` sequential
steps, instead of one kernel call per reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Pieces:
    """Index maps between a ``[T, B]`` batch and ``N`` padded pieces ``[L, N]``.

    Attributes:
        time: ``[T * B]`` time index of every element, in piece order (row-major over ``(b, t)``).
        row: ``[T * B]`` batch row of every element, same order.
        piece: ``[T * B]`` piece index of every element.
        pos: ``[T * B]`` position of every element inside its piece.
        lengths: ``[N]`` length of every piece (int64, on CPU).
        piece_row: ``[N]`` the batch row each piece comes from.
        carries_state: ``[N]`` bool, True for a piece that continues the incoming state.
        last_piece_of_row: ``[B]`` index of the last piece of each row (holds the row's final state).
        max_len: the longest piece.
    """

    time: Tensor
    row: Tensor
    piece: Tensor
    pos: Tensor
    lengths: Tensor
    piece_row: Tensor
    carries_state: Tensor
    last_piece_of_row: Tensor
    max_len: int

    @property
    def num_pieces(self) -> int:
        return int(self.lengths.shape[0])


def split_pieces(episode_start: Tensor) -> Pieces:
    """Compute the piece decomposition of ``episode_start`` ``[T, B]`` (bool)."""
    T, B = episode_start.shape
    starts = episode_start.t().contiguous().clone()  # [B, T], row-major over (b, t)
    carries = ~starts[:, 0]
    starts[:, 0] = True
    flat = starts.reshape(-1)
    piece = torch.cumsum(flat.to(torch.int64), 0) - 1  # [B*T]
    n = int(piece[-1].item()) + 1
    device = episode_start.device
    idx = torch.arange(B * T, device=device)
    row = idx // T
    time = idx % T
    start_index = idx[flat]  # flat index where each piece begins, [N]
    pos = idx - start_index[piece]
    lengths = torch.bincount(piece, minlength=n)
    piece_row = row[flat]
    carries_state = torch.zeros(n, dtype=torch.bool, device=device)
    first_piece_of_row = piece.view(B, T)[:, 0]
    carries_state[first_piece_of_row] = carries
    last_piece_of_row = piece.view(B, T)[:, -1]
    return Pieces(
        time=time,
        row=row,
        piece=piece,
        pos=pos,
        lengths=lengths.cpu(),
        piece_row=piece_row,
        carries_state=carries_state,
        last_piece_of_row=last_piece_of_row,
        max_len=int(lengths.max().item()),
    )


def to_pieces(x: Tensor, p: Pieces) -> Tensor:
    """``x[T, B, ...]`` -> zero-padded ``[max_len, N, ...]``."""
    out = x.new_zeros((p.max_len, p.num_pieces, *x.shape[2:]))
    out[p.pos, p.piece] = x[p.time, p.row]
    return out


def from_pieces(y: Tensor, p: Pieces, T: int, B: int) -> Tensor:
    """Padded ``y[max_len, N, ...]`` -> ``[T, B, ...]`` (inverse of :func:`to_pieces`)."""
    out = y.new_empty((T, B, *y.shape[2:]))
    out[p.time, p.row] = y[p.pos, p.piece]
    return out
