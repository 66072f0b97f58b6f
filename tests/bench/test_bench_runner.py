"""run_suite: results that last, resume without duplicates, failures recorded, --fail-fast."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import BROKEN, TINY_PROTOCOL, tiny_suite

from tracerl.bench import AgentEntry, Suite, run_suite
from tracerl.errors import ConfigError
from tracerl.bench.store import ResultsStore


def _lines(out):
    return [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]


def test_each_run_appends_a_record_with_config_provenance_and_metrics(tmp_path):
    outcome = run_suite(tiny_suite(seeds=(0,), budget=2048), tmp_path, backend="inline", progress=False,
                        report=False)
    (record,) = _lines(tmp_path)
    assert outcome.ran == [record["run_id"]] and record["status"] == "ok"
    assert record["agent"] == "tracerl-gru" and record["seed"] == 0 and record["budget"] == 2048
    assert record["env"] == {"id": "tracerl/CueDelay-v0", "kwargs": {"delay": 4, "difficulty": 1}}
    assert record["versions"]["torch"] != "not installed" and record["git_commit"] and "git_dirty" in record
    assert record["machine"]["torch_threads"] == 1 and record["machine"]["cpu_count"] >= 1
    m = record["metrics"]
    assert m["train_steps"] >= 2048 and m["steps_per_second"] > 0 and m["wall_seconds"] >= m["train_seconds"]
    assert set(m["final"]) == {"deterministic", "stochastic"}
    assert m["final"]["deterministic"]["episodes"] == 16
    # tracerl updates every 16 x 64 = 1024 steps: periodic evaluations at 1024 and 2048, then the final one
    steps = [p["steps"] for p in m["curve"]]
    assert sorted(set(steps)) == [1024, 2048] and steps[-1] == m["train_steps"] == 2048


def test_resume_skips_finished_runs_and_reruns_none(tmp_path):
    first = run_suite(tiny_suite(seeds=(0,)), tmp_path, backend="inline", progress=False, report=False)
    # "Interrupted" after seed 0: the full suite now runs seed 1 only.
    second = run_suite(tiny_suite(seeds=(0, 1)), tmp_path, backend="inline", progress=False, report=False)
    assert second.skipped == first.ran and len(second.ran) == 1
    assert ".s1." in second.ran[0]
    third = run_suite(tiny_suite(seeds=(0, 1)), tmp_path, backend="inline", progress=False, report=False)
    assert third.ran == [] and sorted(third.skipped) == sorted(first.ran + second.ran)
    ids = [r["run_id"] for r in _lines(tmp_path)]
    assert len(ids) == len(set(ids)) == 2
    assert len(third.records) == 2


@pytest.mark.filterwarnings("ignore:.*unreadable line skipped")
def test_a_torn_last_line_is_skipped_and_that_run_runs_again(tmp_path):
    run_suite(tiny_suite(seeds=(0,)), tmp_path, backend="inline", progress=False, report=False)
    with open(tmp_path / "runs.jsonl", "a") as fh:
        fh.write('{"run_id": "tracerl-gru.CueDelay(delay=4,difficulty=1).s1.')  # killed mid-write
    again = run_suite(tiny_suite(seeds=(0, 1)), tmp_path, backend="inline", progress=False, report=False)
    assert len(again.ran) == 1 and len(again.skipped) == 1
    assert len(ResultsStore(tmp_path).load()) == 2
    assert third_line_is_whole(tmp_path)


def third_line_is_whole(out):
    lines = (out / "runs.jsonl").read_text().splitlines()
    return len(lines) == 3 and json.loads(lines[2])["status"] == "ok"


def test_a_failing_run_is_recorded_with_its_traceback_and_the_suite_goes_on(tmp_path):
    suite = tiny_suite(agents=(BROKEN, AgentEntry("tracerl-gru")), seeds=(0,))
    outcome = run_suite(suite, tmp_path, backend="inline", progress=False, report=True)
    by_agent = {r["agent"]: r for r in _lines(tmp_path)}
    failed = by_agent["tracerl-mlp"]
    assert failed["status"] == "failed" and "learning_rate" in failed["error"]
    assert "Traceback" in failed["traceback"] and "ConfigError" in failed["traceback"]
    assert by_agent["tracerl-gru"]["status"] == "ok"
    assert outcome.failed == [failed["run_id"]] and not outcome.stopped_early
    # failed runs count as finished on resume, unless retried
    assert run_suite(suite, tmp_path, backend="inline", progress=False, report=False).ran == []
    retried = run_suite(suite, tmp_path, backend="inline", progress=False, report=False, retry_failed=True)
    assert retried.ran == [failed["run_id"]]
    report = (tmp_path / "report.md").read_text()
    assert "## Failed runs" in report and failed["run_id"] in report


def test_fail_fast_stops_at_the_first_failure(tmp_path):
    suite = tiny_suite(agents=(BROKEN, AgentEntry("tracerl-gru")), seeds=(0, 1))
    outcome = run_suite(suite, tmp_path, backend="inline", progress=False, report=False, fail_fast=True)
    assert outcome.stopped_early and len(outcome.ran) == 1
    assert [r["status"] for r in _lines(tmp_path)] == ["failed"]


def test_fresh_moves_old_results_aside(tmp_path):
    run_suite(tiny_suite(seeds=(0,)), tmp_path, backend="inline", progress=False, report=False)
    again = run_suite(tiny_suite(seeds=(0,)), tmp_path, backend="inline", progress=False, report=False, resume=False)
    assert len(again.ran) == 1 and len(list(tmp_path.glob("runs.*.jsonl.bak"))) == 1


def _escalating_suite(threshold: float) -> Suite:
    """BROKEN fails every run; tracerl-gru at ``threshold`` 0 solves every delay by definition."""
    from tracerl.bench import cue_delay

    return Suite(name="esc", description="escalation", agents=(BROKEN, AgentEntry("tracerl-gru")),
                 envs=tuple(cue_delay(d, 1) for d in (8, 4, 16)), seeds=(0, 1), budget=512,
                 protocol=dataclasses.replace(TINY_PROTOCOL, every=0, final_episodes=8, threshold=threshold,
                                              modes=("deterministic",)),
                 sweep="delay", escalate=True)


def test_escalation_stops_an_agent_at_its_first_unsolved_value_and_resumes_the_same_way(tmp_path):
    suite = _escalating_suite(threshold=0.0)
    outcome = run_suite(suite, tmp_path, backend="inline", progress=False, report=True)
    ran = {(r["agent"], r["env"]["kwargs"]["delay"]) for r in _lines(tmp_path)}
    # the broken agent fails at delay 4 (its shortest), so 8 and 16 are never run for it
    assert ran == {("tracerl-mlp", 4), ("tracerl-gru", 4), ("tracerl-gru", 8), ("tracerl-gru", 16)}
    assert len(outcome.ran) == 8 and len(outcome.not_run) == 4
    assert all(".s" in i and i.startswith("tracerl-mlp.") for i in outcome.not_run)
    assert len(outcome.records) == 8
    assert "Escalation:" in (tmp_path / "report.md").read_text()
    again = run_suite(suite, tmp_path, backend="inline", progress=False, report=False)
    assert again.ran == [] and sorted(again.skipped) == sorted(outcome.ran) and len(again.not_run) == 4


def test_without_escalation_every_value_runs(tmp_path):
    suite = dataclasses.replace(_escalating_suite(threshold=0.0), escalate=False)
    outcome = run_suite(suite, tmp_path, backend="inline", progress=False, report=False)
    assert len(outcome.ran) == 12 and outcome.not_run == []


def test_escalation_needs_a_sweep_keyword():
    with pytest.raises(ConfigError, match="escalate"):
        dataclasses.replace(_escalating_suite(0.0), sweep=None).validate()
