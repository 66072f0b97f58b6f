import torch

from tracerl.memory.packing import from_pieces, split_pieces, to_pieces


def test_pieces_of_a_known_pattern():
    # rows: b0 starts at t=0 and t=2; b1 carries state in and resets at t=3.
    starts = torch.tensor([[True, False], [False, False], [True, False], [False, True]])
    p = split_pieces(starts)
    assert p.lengths.tolist() == [2, 2, 3, 1]
    assert p.piece_row.tolist() == [0, 0, 1, 1]
    assert p.carries_state.tolist() == [False, False, True, False]
    assert p.last_piece_of_row.tolist() == [1, 3]
    assert p.max_len == 3


def test_to_and_from_pieces_round_trip():
    g = torch.Generator().manual_seed(0)
    starts = torch.rand(9, 4, generator=g) < 0.3
    x = torch.randn(9, 4, 2, generator=g)
    p = split_pieces(starts)
    xp = to_pieces(x, p)
    assert xp.shape == (p.max_len, p.num_pieces, 2)
    torch.testing.assert_close(from_pieces(xp, p, 9, 4), x, rtol=0, atol=0)
