"""The hindsight replay on its own: packing into one tensor for checkpoints, and refusing a malformed one."""

from __future__ import annotations

import pytest
import torch

from tracerl.memory.hindsight import HindsightReplay


def _replay(capacity: int = 8) -> HindsightReplay:
    g = torch.Generator().manual_seed(0)
    replay = HindsightReplay(capacity)
    K, P, D, A = 2, 5, 3, 2
    past = torch.tensor([[True] * 4 + [False], [True, True, False, False, False]])
    replay.add(torch.randn(K, P, D, generator=g), torch.arange(P).float().expand(K, P), past,
               torch.randn(K, D, generator=g), torch.tensor([4.0, 2.0]), torch.eye(A), torch.tensor([1.0, -1.0]))
    return replay


def test_a_packed_replay_unpacks_to_the_same_items():
    replay = _replay()
    assert len(replay) == 2
    again = HindsightReplay(8)
    again.unpack(replay.pack())
    assert len(again) == 2
    for x, y in zip(replay.items, again.items):
        assert all(torch.equal(a, b) for a, b in zip(x, y))
    assert [it[0].shape[0] for it in again.items] == [4, 2]  # only the real earlier steps are kept


@pytest.mark.parametrize("cut, match", [(1, "malformed"), (-1, "stray")])
def test_a_malformed_pack_is_refused_and_the_items_are_kept(cut, match):
    packed = _replay().pack()
    broken = packed[:-1] if cut > 0 else torch.cat([packed, torch.zeros(1)])
    target = _replay()
    with pytest.raises(ValueError, match=match):
        target.unpack(broken)
    assert len(target) == 2


def test_more_items_than_the_capacity_are_refused():
    with pytest.raises(ValueError, match="capacity"):
        HindsightReplay(1).unpack(_replay().pack())
