"""SimHash visit counts of (observation, action) pairs and the UCB bonus they give."""

from __future__ import annotations

import pytest
import torch

from tracerl.algos.counts import HashedActionCounts
from tracerl.errors import ConfigError


def test_identical_observations_share_a_code_and_opposite_directions_do_not():
    counts = HashedActionCounts(obs_dim=3, n_actions=2, bits=16)
    o = torch.tensor([[0.3, -1.0, 2.0], [0.3, -1.0, 2.0], [-0.3, 1.0, -2.0]])
    codes = counts.codes(o)
    assert codes[0] == codes[1]
    assert codes[0] != codes[2]  # every projection changes sign
    assert int(codes.max()) < 2**16 and int(codes.min()) >= 0


def test_bonus_falls_as_one_over_sqrt_of_the_visits_of_that_pair_only():
    counts = HashedActionCounts(obs_dim=2, n_actions=3)
    seen, other = torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 0.5]])
    for _ in range(3):
        counts.add(seen.repeat(2, 1), torch.tensor([2, 2]))  # two visits per call, accumulated
    b = counts.bonus(seen, 0.5)[0]
    assert b.tolist() == pytest.approx([0.5, 0.5, 0.5 / 7**0.5])
    assert counts.bonus(other, 0.5)[0].tolist() == pytest.approx([0.5, 0.5, 0.5])


def test_code_length_outside_its_range_is_a_config_error():
    with pytest.raises(ConfigError, match="count_hash_bits"):
        HashedActionCounts(obs_dim=2, n_actions=2, bits=30)
