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


def test_ucb_bonus_of_an_untried_action_grows_with_the_observations_visits_while_the_count_bonus_does_not():
    counts = HashedActionCounts(obs_dim=2, n_actions=2)
    o = torch.tensor([[0.5, 1.0]])
    ucb, plain = [], []
    for n in (1, 10, 100, 1000):
        counts.counts.zero_()
        counts.add(o.repeat(n, 1), torch.zeros(n, dtype=torch.long))  # only action 0 is ever taken
        ucb.append(float(counts.bonus(o, 0.1, "ucb")[0, 1]))
        plain.append(float(counts.bonus(o, 0.1, "count")[0, 1]))
        assert float(counts.bonus(o, 0.1, "ucb")[0, 0]) == pytest.approx(0.1 * (torch.log1p(torch.tensor(float(n))) / (1 + n)).sqrt().item())
    assert ucb == sorted(ucb) and ucb[-1] > 2 * ucb[0]
    assert plain == [pytest.approx(0.1)] * 4
    with pytest.raises(ConfigError, match="count_bonus_form"):
        counts.bonus(o, 0.1, "other")


def test_split_start_counts_an_episode_start_apart_from_the_same_observation_later():
    counts = HashedActionCounts(obs_dim=2, n_actions=2, split_start=True)
    o = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    start = torch.tensor([True, False])
    for _ in range(5):
        counts.add(o[1:], torch.tensor([0]), start[1:])  # the corridor cell, later in the episode
    b = counts.bonus(o, 1.0, "count", start)
    assert b[0].tolist() == pytest.approx([1.0, 1.0])  # the start cell: nothing tried yet
    assert b[1].tolist() == pytest.approx([1.0 / 6**0.5, 1.0])
    assert counts.counts.shape == (2**17, 2)
    with pytest.raises(ValueError, match="episode_start"):
        counts.codes(o)
    merged = HashedActionCounts(obs_dim=2, n_actions=2)  # without the split the start shares the row
    merged.add(o[1:], torch.tensor([0]))
    assert merged.codes(o)[0] == merged.codes(o)[1]
