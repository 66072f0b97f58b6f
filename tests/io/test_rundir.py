"""The run directory: its lock, what --overwrite removes, and the writability check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tracerl.io.rundir import (
    LOCK_NAME,
    RunDirError,
    RunLock,
    check_outputs_writable,
    clear_previous_run,
    foreign_entries,
    run_entries,
)


def test_a_held_lock_refuses_a_second_holder_until_released(tmp_path):
    first = RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    with pytest.raises(RunDirError, match=f"in use by another tracerl run \\(pid {os.getpid()}\\)"):
        RunLock(tmp_path).acquire()
    first.release()
    first.release()
    with RunLock(tmp_path) as second:
        assert second.held
    assert not second.held


def test_the_lock_of_a_killed_process_is_free(tmp_path):
    code = "import sys, time; from tracerl.io.rundir import RunLock; RunLock(sys.argv[1]).acquire(); " \
           "print('locked', flush=True); time.sleep(600)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
        with pytest.raises(RunDirError, match=f"pid {proc.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    RunLock(tmp_path).acquire().release()


def _make_run(directory):
    (directory / "checkpoints").mkdir(parents=True)
    (directory / "checkpoints" / "ckpt_000000000128.tracerl").write_bytes(b"c")
    (directory / "tb").mkdir()
    for name in ("config.json", "agent.tracerl", "progress.csv", "eval.json", "agent.123.fallback.tracerl",
                 ".config.json.0a1b2c.tmp"):
        (directory / name).write_text(name)


def test_clear_previous_run_removes_only_a_runs_files(tmp_path):
    _make_run(tmp_path)
    (tmp_path / LOCK_NAME).write_text("1")
    assert foreign_entries(tmp_path) == []
    removed = clear_previous_run(tmp_path)
    assert removed[0] == "config.json" and "checkpoints" in removed and "tb" in removed
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_NAME]
    assert run_entries(tmp_path) == []


@pytest.mark.parametrize("stranger", ["notes.txt", "inspect/", "agent.tracerl/", "checkpoints"])
def test_clear_previous_run_refuses_anything_else_and_deletes_nothing(tmp_path, stranger):
    run = tmp_path / "run"
    run.mkdir()
    if stranger == "checkpoints":  # a file where a run has a folder
        (run / "config.json").write_text("{}")
        (run / "checkpoints").write_text("not a folder")
    else:
        _make_run(run)
        if stranger.endswith("/"):
            target = run / stranger[:-1]
            if target.exists():
                target.unlink()
            target.mkdir()
        else:
            (run / stranger).write_text("mine")
    before = sorted(str(p) for p in run.rglob("*"))
    with pytest.raises(RunDirError, match=stranger.rstrip("/")):
        clear_previous_run(run)
    assert sorted(str(p) for p in run.rglob("*")) == before


def test_outputs_check_names_a_directory_in_the_way(tmp_path):
    check_outputs_writable(tmp_path, ("agent.tracerl",))
    assert list(tmp_path.iterdir()) == []  # the probe file is gone
    (tmp_path / "agent.tracerl").mkdir()
    with pytest.raises(RunDirError, match="agent.tracerl: it is a directory"):
        check_outputs_writable(tmp_path, ("agent.tracerl",))
    os.symlink(tmp_path / "nowhere", tmp_path / "eval.json")
    with pytest.raises(RunDirError, match="eval.json: it is a symlink"):
        check_outputs_writable(tmp_path, ("eval.json",))
