"""Aggregate statistics over seeds with rliable (Agarwal et al. 2021): interquartile mean (IQM), mean and
median with 95 % stratified-bootstrap confidence intervals, performance profiles, probability of
improvement.

Scores are ``{agent: array [runs, tasks]}``: one row per training seed, one column per env of the suite,
holding the run's final held-out score in the first mode of the protocol (deterministic by default): the
success rate, in [0, 1], or, for envs scored by return (POPGym), the mean episode return, in [-1, 1] there.
An agent's rows are the seeds it finished on every env.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

AGGREGATES: tuple[str, ...] = ("IQM", "Mean", "Median")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed NumPy's global RNG for the block and restore it afterwards.

    rliable's stratified bootstraps draw their resampling indices with ``np.random.choice`` (the global
    RNG), whatever ``random_state`` says, so this is what makes an estimate reproducible. Also hides
    arch's FutureWarning about ``random_state``.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module="arch")
            yield
    finally:
        np.random.set_state(state)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval ``[low, high]``."""

    point: float
    low: float
    high: float

    def fmt(self, digits: int = 3) -> str:
        """``0.950 [0.900, 1.000]``."""
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def run_score(record: Mapping[str, Any], score: str | None = None) -> float | None:
    """A finished run's score in its protocol's first mode (None if it failed): the final success rate, or
    the final mean return when ``score`` (default: the record's own ``score`` field) is ``"return"``."""
    if record.get("status") != "ok":
        return None
    final = record["metrics"]["final"]
    modes = record.get("protocol", {}).get("modes") or list(final)
    kind = score or record.get("score") or "success"
    return float(final[modes[0]]["mean_return" if kind == "return" else "success_rate"])


def score_matrices(records: Iterable[Mapping[str, Any]], agents: Sequence[str],
                   tasks: Sequence[str]) -> dict[str, np.ndarray]:
    """``{agent: [runs, tasks]}`` from run records (tasks are ``env_label`` values, in this order).

    Only seeds with a finished run on every task are kept, so rows are comparable; agents with none are
    left out.
    """
    if not tasks:
        return {}
    table: dict[tuple[str, str, int], float] = {}
    for r in records:
        score = run_score(r)
        if score is not None:
            table[(r["agent"], r["env_label"], int(r["seed"]))] = score
    out: dict[str, np.ndarray] = {}
    for agent in agents:
        seeds = sorted({s for (a, _, s) in table if a == agent})
        rows = [[table[(agent, t, s)] for t in tasks] for s in seeds
                if all((agent, t, s) in table for t in tasks)]
        if rows:
            out[agent] = np.asarray(rows, dtype=np.float64)
    return out


def _aggregate(x: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_median(x)])


def interval_estimates(scores: Mapping[str, np.ndarray], reps: int = 2000, seed: int = 0,
                       confidence: float = 0.95) -> dict[str, dict[str, Interval]]:
    """IQM, mean and median of every agent's scores with stratified-bootstrap CIs.

    One ``rliable.library.get_interval_estimates`` call over all agents inside :func:`seeded` ``(seed)``,
    so the result equals rliable called directly after ``np.random.seed(seed)``.
    """
    from rliable import library as rly

    if not scores:
        return {}
    with seeded(seed):
        points, cis = rly.get_interval_estimates(dict(scores), _aggregate, reps=reps,
                                                 confidence_interval_size=confidence,
                                                 random_state=np.random.RandomState(seed))
    return {agent: {name: Interval(float(points[agent][i]), float(cis[agent][0, i]), float(cis[agent][1, i]))
                    for i, name in enumerate(AGGREGATES)} for agent in scores}


def probability_of_improvement(scores: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]],
                               reps: int = 2000, seed: int = 0,
                               confidence: float = 0.95) -> dict[tuple[str, str], Interval]:
    """``P(X > Y)`` for every ``(X, Y)`` in ``pairs`` (rliable's Mann-Whitney estimate averaged over
    tasks), with stratified-bootstrap CIs from one ``get_interval_estimates`` call."""
    from rliable import library as rly
    from rliable import metrics

    pairs = [(x, y) for x, y in pairs if x in scores and y in scores]
    if not pairs:
        return {}
    paired = {f"{x},{y}": (scores[x], scores[y]) for x, y in pairs}
    with seeded(seed):
        points, cis = rly.get_interval_estimates(paired, metrics.probability_of_improvement, reps=reps,
                                                 confidence_interval_size=confidence,
                                                 random_state=np.random.RandomState(seed))
    out = {}
    for x, y in pairs:
        low, high = np.ravel(cis[f"{x},{y}"])[:2]
        out[(x, y)] = Interval(float(points[f"{x},{y}"]), float(low), float(high))
    return out


def performance_profiles(scores: Mapping[str, np.ndarray], taus: np.ndarray | None = None,
                         reps: int = 2000, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray],
                                                                    dict[str, np.ndarray]]:
    """Score distributions (fraction of runs with score > tau) with bootstrap CIs:
    ``(taus, {agent: [len(taus)]}, {agent: [2, len(taus)]})``."""
    from rliable import library as rly

    taus = np.linspace(0.0, 1.0, 51) if taus is None else np.asarray(taus, dtype=np.float64)
    if not scores:
        return taus, {}, {}
    with seeded(seed):
        profiles, cis = rly.create_performance_profile(dict(scores), taus, reps=reps)
    return taus, dict(profiles), dict(cis)
