"""Reports from known records: CSV rows, Markdown tables, the longest delay solved, figures."""

from __future__ import annotations

import csv

from tracerl.bench import AgentEntry, EvalProtocol, Suite, cue_delay
from tracerl.bench.report import render, write_report
from tracerl.bench.suites import RunSpec

SUCCESS = {  # (agent, delay) -> final success of seeds 0, 1, 2
    ("tracerl-gru", 4): (1.0, 1.0, 1.0), ("tracerl-gru", 8): (1.0, 0.97, 0.5), ("tracerl-gru", 16): (0.5, 0.96, 0.5),
    ("sb3-ppo", 4): (0.5, 0.5, 0.6), ("sb3-ppo", 8): (0.5, 0.5, 0.5), ("sb3-ppo", 16): (0.5, 0.5, 0.5),
}


def _suite() -> Suite:
    return Suite(name="sweep", description="known answers", agents=(AgentEntry("tracerl-gru"), AgentEntry("sb3-ppo")),
                 envs=tuple(cue_delay(d, 1) for d in (4, 8, 16)), seeds=(0, 1, 2), budget=1000,
                 protocol=EvalProtocol(modes=("deterministic",)), sweep="delay")


def _records(suite: Suite) -> list[dict]:
    out = []
    for spec in suite.runs():
        s = SUCCESS[(spec.agent, spec.env.kwargs["delay"])][spec.seed]
        out.append(_record(spec, s))
    return out


def _record(spec: RunSpec, success: float) -> dict:
    final = {"episodes": 100, "mean_return": 2 * success - 1, "std_return": 0.1, "success_rate": success,
             "mean_length": 4.0}
    return {"run_id": spec.run_id, "status": "ok", "agent": spec.agent, "env_label": spec.env.label,
            "seed": spec.seed, "budget": spec.budget, "protocol": spec.protocol.to_json(), "git_commit": "abc",
            "metrics": {"train_steps": 1000, "train_seconds": 2.0, "wall_seconds": 3.0, "steps_per_second": 500.0,
                        "steps_to_threshold": 512 if success >= 0.95 else None,
                        "seconds_to_threshold": 1.0 if success >= 0.95 else None,
                        "final": {"deterministic": final},
                        "curve": [{"steps": 1000, "train_seconds": 2.0, "success": success,
                                   "mean_return": 2 * success - 1}]}}


def test_longest_delay_solved_uses_the_iqm_over_seeds():
    suite = _suite()
    rows = {r["agent"]: r for r in render(suite, _records(suite), reps=100)["sweep"]["rows"]}
    # IQM over 3 seeds: delay 8 -> (0.5, 0.97, 1.0) has IQM 0.82 < 0.95, so GRU's longest is 4.
    assert rows["tracerl-gru"]["longest"] == 4 and rows["sb3-ppo"]["longest"] is None
    assert rows["tracerl-gru"]["per_seed"] == {0: 8, 1: 16, 2: 4}
    assert rows["tracerl-gru"]["iqm"].point == 1.0


def test_summary_rows_and_csv_from_records(tmp_path):
    suite = _suite()
    records = _records(suite)
    records[0] = {**records[0], "status": "failed", "metrics": None, "error": "RuntimeError: boom"}
    tables = render(suite, records, reps=100)
    row = next(r for r in tables["summary"]["rows"] if r["agent"] == "tracerl-gru" and r["env"].startswith("CueDelay(delay=8"))
    assert row["ok"] == 3 and row["solved"] == 2 and row["success_deterministic"] == (1.0 + 0.97 + 0.5) / 3
    first = tables["summary"]["rows"][0]
    assert first["runs"] == 3 and first["ok"] == 2  # the failed run is counted, not scored
    report = write_report(suite, records, tmp_path, bootstrap_reps=100)
    text = report.read_text()
    assert "## Longest delay solved" in text and "## Failed runs" in text and "RuntimeError: boom" in text
    assert "tracerl-gru > sb3-ppo" in text
    with open(tmp_path / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(records) and rows[0]["status"] == "failed" and rows[1]["success_deterministic"] == "1.0"
    for png in ("learning_curves.png", "aggregate_intervals.png", "performance_profile.png", "throughput.png"):
        assert (tmp_path / png).stat().st_size > 1000
