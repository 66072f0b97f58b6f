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
    assert row["return_deterministic"] == row["return_mean"] and "return_stochastic" not in row  # one mode here
    def with_sampled(r):
        final = {**r["metrics"]["final"], "stochastic": {**r["metrics"]["final"]["deterministic"], "mean_return": -0.25}}
        return {**r, "metrics": {**r["metrics"], "final": final}}

    sampled = [with_sampled(r) if r["status"] == "ok" else r for r in records]
    both = next(r for r in render(suite, sampled, reps=100)["summary"]["rows"] if r["agent"] == "tracerl-gru")
    assert both["return_stochastic"] == -0.25 and both["return_mean"] == both["return_deterministic"] != -0.25
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


# -- the opening sentences -------------------------------------------------------------------------
def _timed_record(spec: RunSpec, score: float, steps: int, seconds: float, solved: bool = False) -> dict:
    """A finished run of an equal-time suite: ``score`` is the success or the return, per the env."""
    success = score if spec.env.score == "success" else float(score > 0)
    ret = score if spec.env.score == "return" else 2 * score - 1
    final = {"episodes": 200, "mean_return": ret, "std_return": 0.1, "success_rate": success, "mean_length": 17.0}
    return {"run_id": spec.run_id, "status": "ok", "agent": spec.agent, "env_label": spec.env.label,
            "seed": spec.seed, "budget": spec.budget, "protocol": spec.effective_protocol.to_json(),
            "time_budget": spec.time_budget, "comparison": spec.comparison, "score": spec.env.score,
            "git_commit": "abc",
            "metrics": {"train_steps": steps, "train_seconds": seconds, "wall_seconds": seconds + 1,
                        "steps_per_second": steps / seconds, "steps_to_threshold": steps if solved else None,
                        "seconds_to_threshold": seconds if solved else None,
                        "final": {"deterministic": final}, "curve": [
                            {"steps": steps, "train_seconds": seconds, "success": success, "mean_return": ret}],
                        "time_budget": spec.time_budget,
                        "stopped_by": "threshold" if solved else "time" if spec.time_budget else "budget"}}


def test_the_quick_report_opens_with_who_reached_what_within_the_time_budget(tmp_path):
    import dataclasses

    from tracerl.bench.envs import popgym_env
    from tracerl.bench.suites import quick_suite

    suite = dataclasses.replace(quick_suite(), envs=(cue_delay(16, 1), popgym_env("RepeatPrevious")))
    assert suite.comparisons == ("time",) and {r.time_budget for r in suite.runs()} == {15.0}
    known = {  # (agent, env score kind) -> per seed (score, steps, seconds, solved)
        ("tracerl-gru", "success"): [(1.0, 16384, 2.0, True), (1.0, 20480, 2.5, True), (0.97, 24576, 3.0, True)],
        ("sb3-recurrentppo", "success"): [(0.5, 4096, 15.1, False), (0.55, 5120, 15.0, False), (0.6, 4096, 15.2, False)],
        ("sb3-ppo", "success"): [(0.5, 30000, 15.0, False)] * 3,
        ("tracerl-gru", "return"): [(-0.2, 40960, 15.3, False), (-0.1, 39936, 15.1, False), (0.0, 41984, 15.2, False)],
        ("sb3-recurrentppo", "return"): [(-0.5, 2048, 15.4, False)] * 3,
        ("sb3-ppo", "return"): [(-0.45, 28672, 15.0, False)] * 3,
    }
    records = [_timed_record(spec, *known[(spec.agent, spec.env.score)][spec.seed]) for spec in suite.runs()]
    tables = render(suite, records, reps=100)
    assert tables["headline"] == [
        "Within 15 s of training each on CueDelay(delay=16,difficulty=1): tracerl-gru success 0.99 (3/3 seeds "
        "reached 95% success, median 2.5 s and 20,480 env steps), sb3-recurrentppo success 0.55 after 4,096 env "
        "steps, sb3-ppo success 0.50 after 30,000 env steps.",
        "Within 15 s of training each on popgym-RepeatPreviousEasy: tracerl-gru return -0.10 after 40,960 env "
        "steps, sb3-ppo return -0.45 after 28,672 env steps, sb3-recurrentppo return -0.50 after 2,048 env steps.",
    ]
    # success and return are aggregated separately
    assert [g["score"] for g in tables["comparisons"]["time"]["groups"]] == ["success", "return"]
    text = write_report(suite, records, tmp_path, bootstrap_reps=100).read_text()
    assert text.startswith("# tracerl bench quick\n\n**Within 15 s of training each on CueDelay(delay=16")
    assert (tmp_path / "learning_curves_time.png").stat().st_size > 1000


def test_a_large_suite_opens_with_one_aggregate_sentence_per_comparison(tmp_path):
    import dataclasses

    from tracerl.bench.envs import popgym_env

    envs = tuple(popgym_env(n) for n in ("RepeatPrevious", "RepeatFirst", "CountRecall", "Autoencode"))
    suite = Suite(name="pg", description="d", agents=(AgentEntry("tracerl-gru"), AgentEntry("sb3-recurrentppo")),
                  envs=envs, seeds=(0, 1, 2), budget=200_000, protocol=EvalProtocol(modes=("deterministic",)),
                  time_budget=60.0)
    records = [_timed_record(spec, (0.5 if spec.agent == "tracerl-gru" else -0.5) + 0.01 * spec.seed,
                             200_000 if spec.time_budget is None else 10_000, 60.0) for spec in suite.runs()]
    lines = render(suite, records, reps=100)["headline"]
    assert len(lines) == 2
    assert lines[0].startswith("At 200,000 env steps each over 4 envs, IQM return over seeds and envs: "
                               "tracerl-gru 0.51 [")
    assert lines[1].startswith("At 60 s of training each over 4 envs, IQM return over seeds and envs: tracerl-gru")
    assert all("P(tracerl-gru > sb3-recurrentppo) = 1.00" in line for line in lines)
    # on the CPU clock the time runs are other runs, and the report says what its seconds are
    on_cpu = dataclasses.replace(suite, time_clock="cpu")
    records = [_timed_record(spec, 0.5 if spec.agent == "tracerl-gru" else -0.5, 10_000, 60.0)
               for spec in on_cpu.runs() if spec.time_budget is not None]
    assert render(on_cpu, records, reps=100)["headline"][1].startswith("At 60 CPU-s of training each over 4 envs")
    text = write_report(on_cpu, records, tmp_path, bootstrap_reps=100).read_text()
    assert "60 CPU-s of training per run" in text and "CPU time of each run's own process" in text


def test_a_comparison_without_finished_runs_says_so():
    from tracerl.bench.suites import quick_suite

    assert render(quick_suite(), [], reps=10)["headline"] == ["Equal training time: no finished runs yet."]
