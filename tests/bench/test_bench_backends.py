"""Process and Ray backends run the same runs to the same results (CPU runs are deterministic per seed)."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import SMALL_SB3_PPO, tiny_suite

from tracerl.bench import AgentEntry, run_suite
from tracerl.bench.backends import RAY_INSTALL_HINT, make_backend
from tracerl.errors import ConfigError


def _deterministic_fields(out):
    """Everything but timings, dates and machine load, by run id."""
    result = {}
    for line in (out / "runs.jsonl").read_text().splitlines():
        r = json.loads(line)
        m = r["metrics"]
        result[r["run_id"]] = {
            "status": r["status"], "agent": r["agent"], "seed": r["seed"], "env": r["env"],
            "train_steps": m["train_steps"], "steps_to_threshold": m["steps_to_threshold"], "final": m["final"],
            "curve": [(p["steps"], p["success"], p["mean_return"]) for p in m["curve"]],
        }
    return result


def test_ray_and_process_backends_write_the_same_results(tmp_path):
    pytest.importorskip("ray")
    suite = tiny_suite(agents=(AgentEntry("tracerl-gru"), SMALL_SB3_PPO), seeds=(0,))
    by_process = run_suite(suite, tmp_path / "process", backend="process", workers=1, progress=False)
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        by_ray = run_suite(suite, tmp_path / "ray", backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert not by_process.failed and not by_ray.failed
    process, ray_results = _deterministic_fields(tmp_path / "process"), _deterministic_fields(tmp_path / "ray")
    assert set(process) == {s.run_id for s in suite.runs()} and len(process) == 2
    assert process == ray_results
    for name in ("runs.csv", "report.md", "learning_curves.png"):
        assert (tmp_path / "ray" / name).exists() and (tmp_path / "process" / name).exists()


def test_asking_for_ray_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match="pip install 'tracerl\\[ray\\]'") as info:
        make_backend("ray")
    assert RAY_INSTALL_HINT in str(info.value)


def test_unknown_backend_and_bad_worker_counts_are_config_errors():
    with pytest.raises(ConfigError, match="valid: process, inline, ray"):
        make_backend("threads")
    with pytest.raises(ConfigError, match="workers = 0"):
        make_backend("process", workers=0)
