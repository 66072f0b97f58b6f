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


def _children(pid):
    """PIDs of the live (not zombie) processes whose parent is ``pid``."""
    import os

    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.faults("kill -9 of a running `tracerl bench` | its worker processes and multiprocessing's resource "
                    "tracker exit within seconds (the worker dies with its parent) | the run in flight (it runs "
                    "again on resume)")
def test_kill_9_of_the_bench_takes_its_workers_and_resource_tracker_with_it(tmp_path):
    import os
    import signal
    import subprocess
    import time

    suite = tmp_path / "long.toml"
    suite.write_text('name = "long"\nseeds = [0]\nbudget = 100000000\nagents = ["tracerl-gru"]\n'
                     '[[envs]]\nid = "tracerl/CueDelay-v0"\nkwargs = { delay = 4 }\n[protocol]\nevery = 0\n')
    proc = subprocess.Popen([sys.executable, "-m", "tracerl", "bench", str(suite), "--out", str(tmp_path / "out"),
                             "--workers", "1", "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers, children = [], []
        while time.monotonic() < deadline and not workers:  # wait until the worker process is up
            workers = [p for p in _children(proc.pid) if "spawn_main" in _cmdline(p)]
            time.sleep(0.2)
        assert workers, "the bench never started a worker"
        children = _children(proc.pid)  # the worker(s) and the resource tracker
        assert any("resource_tracker" in _cmdline(p) for p in children)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.1)
        left = [(p, _cmdline(p)) for p in children if _alive(p)]
        assert not left, f"still running after the bench was killed: {left}"
    finally:
        for pid in {proc.pid, *children, *_children(proc.pid)}:  # never leave a process behind, even on failure
            if pid != proc.pid and "multiprocessing" not in _cmdline(pid):
                continue  # gone (its pid may already belong to another process)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
