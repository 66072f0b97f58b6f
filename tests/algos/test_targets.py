"""n-step returns and R2D2's value rescaling against hand-computed values; Polyak averaging; masked means."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tracerl.algos.targets import inverse_value_rescale, masked_mean, nstep_targets, polyak_update, value_rescale


def _col(*xs):
    return torch.tensor(xs, dtype=torch.float32).unsqueeze(1)


def _bool(*xs):
    return torch.tensor(xs, dtype=torch.bool).unsqueeze(1)


def test_n_step_return_of_a_terminated_episode_matches_hand_computation():
    # rows: steps 0, 1, 2 and the final row (terminated); gamma 0.5, n = 2
    r = _col(1.0, 2.0, 3.0, 0.0)
    steps, rows = _bool(1, 1, 1, 0), _bool(1, 1, 1, 1)
    v = _col(10.0, 20.0, 30.0, 40.0)
    g, ok, disc = nstep_targets(r, steps, rows, v, _bool(0, 0, 0, 1), 0.5, 2)
    # G0 = 1 + 0.5 * 2 + 0.25 * V2 = 9.5;  G1 = 2 + 0.5 * 3 (then terminal, no bootstrap) = 3.5;  G2 = 3
    assert g[:3, 0].tolist() == [9.5, 3.5, 3.0]
    assert ok[:, 0].tolist() == [True, True, True, False]
    assert disc[:3, 0].tolist() == [0.25, 0.0, 0.0]


def test_n_step_return_of_a_truncated_episode_bootstraps_on_the_final_observation():
    r = _col(1.0, 2.0, 3.0, 0.0)
    g, ok, disc = nstep_targets(r, _bool(1, 1, 1, 0), _bool(1, 1, 1, 1), _col(10.0, 20.0, 30.0, 40.0),
                                _bool(0, 0, 0, 0), 0.5, 2)
    # G1 = 2 + 0.5 * 3 + 0.25 * V3 = 13.5;  G2 = 3 + 0.5 * V3 = 23
    assert g[:3, 0].tolist() == [9.5, 13.5, 23.0]
    assert disc[:3, 0].tolist() == [0.25, 0.25, 0.5]


def test_n_step_return_without_its_bootstrap_row_in_the_window_is_invalid():
    # 4 steps, the window ends before step 1's bootstrap row (n = 3)
    r = _col(1.0, 1.0, 1.0, 1.0)
    g, ok, _ = nstep_targets(r, _bool(1, 1, 1, 1), _bool(1, 1, 1, 1), _col(5.0, 5.0, 5.0, 5.0), _bool(0, 0, 0, 0),
                             0.9, 3)
    assert ok[:, 0].tolist() == [True, False, False, False]
    assert g[0, 0].item() == pytest.approx(1 + 0.9 + 0.81 + 0.729 * 5)


def test_one_step_target_is_the_bellman_backup_and_padding_is_ignored():
    r = _col(1.0, 0.0, 7.0)  # row 2 is padding (not a row of the episode)
    g, ok, _ = nstep_targets(r, _bool(1, 0, 0), _bool(1, 1, 0), _col(0.0, 4.0, 9.0), _bool(0, 1, 0), 0.99, 1)
    assert g[0, 0].item() == pytest.approx(1.0) and ok[:, 0].tolist() == [True, False, False]


def test_n_step_return_stops_before_an_exploratory_step_and_bootstraps_there():
    # Watkins's Q(lambda) cut: step 2's action was not the greedy one, so returns that reach it bootstrap on row 2
    r = _col(1.0, 2.0, 3.0, 4.0, 0.0)
    steps, rows = _bool(1, 1, 1, 1, 0), _bool(1, 1, 1, 1, 1)
    v = _col(10.0, 20.0, 30.0, 40.0, 50.0)
    greedy = _bool(1, 1, 0, 1, 0)
    g, ok, disc = nstep_targets(r, steps, rows, v, _bool(0, 0, 0, 0, 1), 0.5, 4, continue_ok=greedy)
    # G0 = 1 + 0.5 * 2 + 0.25 * V2 = 9.5 (cut before step 2);  G1 = 2 + 0.5 * V2 = 17;  G2 = 3 + 0.5 * 4 = 5
    # (its own action never cuts its return; the episode then terminates);  G3 = 4
    assert g[:4, 0].tolist() == [9.5, 17.0, 5.0, 4.0]
    assert disc[:4, 0].tolist() == [0.25, 0.5, 0.0, 0.0]
    assert ok[:4, 0].all()
    # without the cut the same rows give the plain 4-step returns
    g_plain, _, _ = nstep_targets(r, steps, rows, v, _bool(0, 0, 0, 0, 1), 0.5, 4)
    assert g_plain[0, 0].item() == pytest.approx(1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4)


@pytest.mark.parametrize("x,expected", [(0.0, 0.0), (3.0, 1.0 + 3e-3), (-8.0, -2.0 - 8e-3), (99.0, 9.0 + 0.099)])
def test_value_rescaling_matches_hand_computed_values(x, expected):
    # h(x) = sign(x) (sqrt(|x| + 1) - 1) + 1e-3 x
    assert value_rescale(torch.tensor(x)).item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_inverse_value_rescaling_inverts_it():
    x = torch.linspace(-1000.0, 1000.0, 2001, dtype=torch.float64)
    assert torch.allclose(inverse_value_rescale(value_rescale(x)), x, atol=1e-6)
    assert torch.allclose(inverse_value_rescale(value_rescale(x, 0.0), 0.0), x, atol=1e-9)
    y = torch.tensor([-3.0, 0.5, 12.0], dtype=torch.float64)
    assert torch.allclose(value_rescale(inverse_value_rescale(y)), y, atol=1e-9)
    assert inverse_value_rescale(torch.tensor(1.0 + 3e-3, dtype=torch.float64)).item() == pytest.approx(3.0)
    assert math.isfinite(inverse_value_rescale(torch.tensor(1e4)).item())


def test_polyak_update_moves_targets_by_tau_and_tau_one_copies():
    src, tgt = nn.Linear(2, 2), nn.Linear(2, 2)
    before = tgt.weight.detach().clone()
    polyak_update(tgt, src, 0.25)
    assert torch.allclose(tgt.weight, 0.75 * before + 0.25 * src.weight)
    polyak_update(tgt, src, 1.0)
    assert torch.equal(tgt.weight, src.weight)


def test_masked_mean_ignores_masked_entries_and_survives_an_empty_mask():
    x = torch.tensor([1.0, 100.0, 3.0])
    assert masked_mean(x, torch.tensor([True, False, True])).item() == 2.0
    assert masked_mean(x, torch.zeros(3, dtype=torch.bool)).item() == 0.0
