"""tracerl.bench.stats equals rliable called directly, and has known answers."""

from __future__ import annotations

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics

from tracerl.bench.stats import (interval_estimates, performance_profiles, probability_of_improvement,
                                 score_matrices)


@pytest.fixture
def scores() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {"a": rng.uniform(size=(5, 3)), "b": rng.uniform(0.3, 1.0, size=(4, 3)), "c": np.full((3, 3), 0.5)}


def test_iqm_known_answer():
    # 8 scores 1..8: the middle 50 % is 3, 4, 5, 6, whose mean is 4.5; a constant matrix has a zero-width CI.
    est = interval_estimates({"x": np.arange(1, 9, dtype=float).reshape(4, 2) / 10,
                              "k": np.full((4, 2), 0.7)}, reps=200)
    assert est["x"]["IQM"].point == pytest.approx(0.45)
    assert est["x"]["Mean"].point == pytest.approx(0.45)
    assert (est["k"]["IQM"].low, est["k"]["IQM"].high) == pytest.approx((0.7, 0.7))


def test_interval_estimates_equal_rliable_called_directly(scores):
    ours = interval_estimates(scores, reps=500, seed=7)
    for name, func in (("IQM", metrics.aggregate_iqm), ("Mean", metrics.aggregate_mean),
                       ("Median", metrics.aggregate_median)):
        np.random.seed(7)  # rliable resamples with the global RNG (np.random.choice)
        points, cis = rly.get_interval_estimates(scores, lambda x, f=func: np.array([f(x)]), reps=500)
        for agent in scores:
            assert ours[agent][name].point == pytest.approx(float(points[agent][0]))
            assert ours[agent][name].low == pytest.approx(float(cis[agent][0, 0]))
            assert ours[agent][name].high == pytest.approx(float(cis[agent][1, 0]))
            assert ours[agent][name].low <= ours[agent][name].point <= ours[agent][name].high


def test_probability_of_improvement_equals_rliable_and_known_answers(scores):
    pairs = [("a", "b"), ("b", "c")]
    ours = probability_of_improvement(scores, pairs, reps=300, seed=1)
    paired = {"a,b": (scores["a"], scores["b"]), "b,c": (scores["b"], scores["c"])}
    np.random.seed(1)
    points, cis = rly.get_interval_estimates(paired, metrics.probability_of_improvement, reps=300)
    for x, y in pairs:
        assert ours[(x, y)].point == pytest.approx(float(points[f"{x},{y}"]))
        assert (ours[(x, y)].low, ours[(x, y)].high) == pytest.approx(tuple(np.ravel(cis[f"{x},{y}"])))
    sure = probability_of_improvement({"hi": np.ones((3, 2)), "lo": np.zeros((3, 2))}, [("hi", "lo"), ("lo", "hi")],
                                      reps=100)
    assert sure[("hi", "lo")].point == 1.0 and sure[("lo", "hi")].point == 0.0


def test_estimates_are_reproducible_and_leave_the_global_rng_alone(scores):
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    first = interval_estimates(scores, reps=200, seed=5)
    assert np.random.rand() == expected
    assert interval_estimates(scores, reps=200, seed=5) == first
    assert interval_estimates(scores, reps=200, seed=6) != first


def test_performance_profile_point_estimates_are_fractions_above_tau():
    taus, profiles, cis = performance_profiles({"a": np.array([[0.2, 0.9], [0.6, 1.0]])}, taus=[0.0, 0.5, 0.95],
                                               reps=100)
    assert profiles["a"] == pytest.approx([1.0, 0.75, 0.25])
    assert cis["a"].shape == (2, 3)


def _record(agent, task, seed, success, status="ok"):
    return {"agent": agent, "env_label": task, "seed": seed, "status": status,
            "protocol": {"modes": ["deterministic"]},
            "metrics": {"final": {"deterministic": {"success_rate": success}}} if status == "ok" else None}


def test_score_matrix_keeps_only_seeds_finished_on_every_task():
    records = [_record("g", "t1", 0, 1.0), _record("g", "t2", 0, 0.5), _record("g", "t1", 1, 0.9),
               _record("g", "t2", 1, 0.0, status="failed"), _record("p", "t1", 0, 0.4)]
    mats = score_matrices(records, ["g", "p"], ["t1", "t2"])
    np.testing.assert_array_equal(mats["g"], [[1.0, 0.5]])
    assert "p" not in mats  # p never finished t2
