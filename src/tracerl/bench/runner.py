"""Run a suite: skip runs already in the results file, execute the rest on a backend, append each
record as it arrives, show progress, then write the report.

    outcome = run_suite(load_suite("quick"), out_dir="runs/bench/quick", workers=1)
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import ConfigError
from .backends import Backend, ProcessBackend, make_backend
from .store import ResultsStore
from .suites import RunSpec, Suite, escalation_groups


@dataclass
class SuiteOutcome:
    """What :func:`run_suite` did.

    Attributes:
        out_dir: where the results, CSV, report and figures are.
        records: the newest record of every run of the suite that has one (this and earlier invocations).
        ran: run ids executed by this invocation.
        skipped: run ids found finished in the results file and not run again.
        not_run: run ids an escalating suite left out, because the agent did not solve a shorter value.
        failed: run ids whose newest record is a failure.
        stopped_early: True when ``fail_fast`` stopped the suite.
        report: path of the Markdown report (None when not written).
        tables: the report's tables (:func:`tracerl.bench.report.render`), None when not written.
    """

    out_dir: Path
    records: list[dict[str, Any]]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stopped_early: bool = False
    report: Path | None = None
    tables: dict[str, Any] | None = None


def _best(records: dict[str, dict[str, Any]]) -> str:
    """``agent score`` of the agent with the best mean final score so far (for the progress bar)."""
    from .stats import run_score

    by_agent: dict[str, list[float]] = {}
    for r in records.values():
        score = run_score(r)
        if score is not None:
            by_agent.setdefault(r["agent"], []).append(score)
    if not by_agent:
        return "-"
    agent, scores = max(by_agent.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))
    return f"{agent} {sum(scores) / len(scores):.2f}"


def _level_solved(runs: list[RunSpec], records: dict[str, dict[str, Any]], threshold: float) -> bool:
    """True when every run of the level finished and the IQM of their final success reaches ``threshold``."""
    import numpy as np
    from rliable import metrics

    from .stats import run_score

    scores = [run_score(records[r.run_id], "success") if r.run_id in records else None for r in runs]
    if any(s is None for s in scores):
        return False
    return bool(metrics.aggregate_iqm(np.asarray(scores, dtype=np.float64)[:, None]) >= threshold)


Wave = Callable[[dict[str, dict[str, Any]]], tuple[list[RunSpec], list[RunSpec]]]
"""``wave(records by run id) -> (runs of the wave, runs dropped)``."""


def _waves(suite: Suite, specs: list[RunSpec]) -> Iterator[Wave]:
    """Yield, per wave, a function of the records so far that returns (runs of this wave, runs dropped).

    Without escalation there is one wave: every run. With it, wave k holds each (agent, sweep group)'s
    k-th swept value, for the groups that solved all their earlier values; a group that did not
    drops all its remaining values."""
    if not (suite.escalate and suite.sweep):
        yield lambda records: (specs, [])
        return
    groups = escalation_groups(specs, suite.sweep)
    alive = set(groups)
    depth = max(len(levels) for levels in groups.values())
    threshold = suite.protocol.threshold
    for k in range(depth):
        def wave(records: dict[str, dict[str, Any]], k: int = k) -> tuple[list[RunSpec], list[RunSpec]]:
            runs, dropped = [], []
            for group in sorted(alive):
                levels = groups[group]
                if k >= len(levels):
                    continue
                if k > 0 and not _level_solved(levels[k - 1], records, threshold):
                    alive.discard(group)
                    dropped += [r for level in levels[k:] for r in level]
                    continue
                runs += levels[k]
            return runs, dropped
        yield wave


def run_suite(
    suite: Suite,
    out_dir: str | Path,
    backend: str | Backend = "process",
    workers: int | None = None,
    ray_address: str | None = None,
    fail_fast: bool = False,
    resume: bool = True,
    retry_failed: bool = False,
    verbose: bool = False,
    progress: bool = True,
    report: bool = True,
    bootstrap_reps: int = 2000,
    execute: bool = True,
) -> SuiteOutcome:
    """Run every run of ``suite`` not already finished in ``out_dir/runs.jsonl``.

    Args:
        suite: the suite (validated here, before anything runs).
        out_dir: results folder: ``runs.jsonl``, ``suite.json``, ``runs.csv``, ``report.md``, ``*.png``.
        backend: ``"process"`` (default), ``"inline"``, ``"ray"``, or a :class:`Backend`.
        workers: parallel runs (process pool size, or the CPUs of a new local Ray instance).
        ray_address: an existing Ray cluster to use (``--backend ray``).
        fail_fast: stop at the first failed run (runs in flight are abandoned and run again on resume).
        resume: keep finished runs (the default); False moves the old results file aside first.
        retry_failed: run again the runs whose newest record is a failure.
        verbose: a progress bar per run (and Ray worker logs).
        progress: the bar over runs (done / total, ETA, current best).
        report: write CSV, Markdown and figures at the end.
        bootstrap_reps: bootstrap replications of the report's confidence intervals.
    """
    suite.validate()
    specs = suite.runs()
    ids = [s.run_id for s in specs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConfigError(f"suite {suite.name!r} lists the same run twice: {dup} (repeated agent, env or seed)")
    runner = make_backend(backend, workers, ray_address) if isinstance(backend, str) else backend
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultsStore(out)
    if not resume:
        store.archive()
    (out / "suite.json").write_text(json.dumps(suite.to_json(), indent=2, default=str) + "\n")
    existing = store.load()
    done_states = ("ok",) if retry_failed else ("ok", "failed")
    finished = {s.run_id for s in specs if existing.get(s.run_id, {}).get("status") in done_states}
    mine = {i: existing[i] for i in ids if i in existing}
    outcome = SuiteOutcome(out, [])
    if not execute:
        outcome.skipped = [i for i in ids if i in finished]

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(specs), initial=0, unit="run", desc=f"bench {suite.name}",
                   dynamic_ncols=True, file=sys.stderr,
                   mininterval=0.1 if sys.stderr.isatty() else 30.0)  # a log file gets a line per 30 s
        bar.set_postfix_str(f"best: {_best(mine)}")
    workers = runner.workers if isinstance(runner, ProcessBackend) else None
    try:
        for wave in (_waves(suite, specs) if execute else ()):
            runs, dropped = wave(mine)
            outcome.not_run += [r.run_id for r in dropped]
            todo = [r for r in runs if r.run_id not in finished]
            outcome.skipped += [r.run_id for r in runs if r.run_id in finished]
            if bar is not None:
                bar.total -= len(dropped)
                bar.update(len(runs) - len(todo))
            if not todo:
                continue
            if workers is not None:
                runner.workers = min(workers, len(todo))
            stream = runner.run(todo, verbose=verbose)
            try:
                for record in stream:
                    store.append(record)
                    mine[record["run_id"]] = record
                    outcome.ran.append(record["run_id"])
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(f"best: {_best(mine)}")
                    if record["status"] != "ok":
                        msg = f"run {record['run_id']} failed: {record.get('error')}"
                        (bar.write if bar is not None else print)(msg)
                        if fail_fast:
                            outcome.stopped_early = True
                            break
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            if outcome.stopped_early:
                break
    finally:
        if bar is not None:
            bar.close()
        if workers is not None:
            runner.workers = workers
    dropped = set(outcome.not_run)
    outcome.records = [mine[i] for i in ids if i in mine and i not in dropped]
    outcome.failed = [r["run_id"] for r in outcome.records if r["status"] != "ok"]
    if report and outcome.records:
        from .report import render, write_report

        outcome.tables = render(suite, outcome.records, bootstrap_reps)
        outcome.report = write_report(suite, outcome.records, out, bootstrap_reps=bootstrap_reps,
                                      tables=outcome.tables)
    return outcome
