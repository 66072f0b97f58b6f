"""The results file on read: a line that is not UTF-8, not JSON, or a record missing fields is skipped with a
warning naming the file and line, so one bad line never blocks a resume or crashes the report."""

from __future__ import annotations

import json

import pytest

from conftest import tiny_suite

from tracerl.bench import run_suite
from tracerl.bench.store import ResultsStore, record_problem


def _finished(tmp_path):
    """A results file with the two runs of the tiny suite (seeds 0 and 1), finished."""
    run_suite(tiny_suite(seeds=(0, 1), budget=1024), tmp_path, backend="inline", progress=False, report=False)
    return (tmp_path / "runs.jsonl").read_bytes().splitlines()


@pytest.mark.faults("a byte that is not UTF-8 in one line of runs.jsonl | that line is skipped with a warning "
                    "naming the file and line; the other runs resume, the damaged one runs again | the damaged "
                    "line's record")
def test_a_non_utf8_byte_skips_that_line_with_its_file_and_line_and_the_rest_resumes(tmp_path):
    first, second = _finished(tmp_path)
    (tmp_path / "runs.jsonl").write_bytes(first + b"\n" + second.replace(b'"status"', b'"st\xffatus"', 1) + b"\n")
    with pytest.warns(UserWarning, match=r"runs\.jsonl:2: line skipped: not UTF-8 \(byte 0xff"):
        records = ResultsStore(tmp_path).load()
    assert list(records) == [json.loads(first)["run_id"]]
    with pytest.warns(UserWarning, match="runs.jsonl:2"):
        again = run_suite(tiny_suite(seeds=(0, 1), budget=1024), tmp_path, backend="inline", progress=False,
                          report=True, bootstrap_reps=50)
    assert again.skipped == [json.loads(first)["run_id"]] and again.ran == [json.loads(second)["run_id"]]
    assert (tmp_path / "report.md").exists()


@pytest.mark.faults("a record in runs.jsonl missing a field (here metrics.final) | skipped with a warning naming the "
                    "file, line and field; the run runs again and the report is written | that record")
def test_a_record_missing_fields_is_skipped_with_its_file_line_and_field_and_the_report_is_written(tmp_path):
    first, second = _finished(tmp_path)
    broken = json.loads(second)
    del broken["metrics"]["final"]
    (tmp_path / "runs.jsonl").write_bytes(first + b"\n" + json.dumps(broken).encode() + b"\n")
    with pytest.warns(UserWarning, match=r"runs\.jsonl:2: invalid record skipped: missing field 'metrics.final'"):
        again = run_suite(tiny_suite(seeds=(0, 1), budget=1024), tmp_path, backend="inline", progress=False,
                          report=True, bootstrap_reps=50)
    assert again.ran == [broken["run_id"]] and len(again.records) == 2
    assert "2 ok, 0 failed" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("change,problem", [
    (lambda r: r.pop("env_label"), "missing field 'env_label'"),
    (lambda r: r.update(seed="0"), "field 'seed' = '0' has the wrong type"),
    (lambda r: r.update(metrics=None), "'metrics' is missing"),
    (lambda r: r["metrics"].pop("train_steps"), "missing field 'metrics.train_steps'"),
    (lambda r: r["metrics"]["final"]["deterministic"].pop("success_rate"),
     "missing or non-numeric 'metrics.final.deterministic.success_rate'"),
    (lambda r: r["metrics"]["curve"][0].pop("steps"), "'metrics.curve[0]' lacks one of"),
])
def test_record_problems_name_the_field(tmp_path, change, problem):
    record = json.loads(_finished(tmp_path)[0])
    assert record_problem(record) is None
    change(record)
    assert problem in record_problem(record)


def test_a_failed_run_record_needs_no_metrics():
    record = {"run_id": "x", "status": "failed", "agent": "a", "env_label": "e", "seed": 0, "budget": 1,
              "error": "boom", "metrics": None}
    assert record_problem(record) is None
