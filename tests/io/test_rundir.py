"""The run directory: its lock, what --overwrite removes, and the writability check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tracerl.errors import CheckpointError
from tracerl.io.rundir import (
    LOCK_NAME,
    RunDirError,
    RunLock,
    check_outputs_writable,
    clear_previous_run,
    foreign_entries,
    resolve_checkpoint,
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


# -- a run directory given where a checkpoint file is expected -------------------------------------------------

def _ckpt(directory, steps):
    (directory / "checkpoints").mkdir(parents=True, exist_ok=True)
    path = directory / "checkpoints" / f"ckpt_{steps:012d}.tracerl"
    path.write_bytes(b"c")
    return path


def test_resolve_checkpoint_prefers_the_final_agent_then_the_newest_checkpoint_by_step(tmp_path):
    _ckpt(tmp_path, 256)
    newest = _ckpt(tmp_path, 1_000_000_000_000)  # 13 digits: newer than any 12-digit name, read as a number
    _ckpt(tmp_path, 999_999_999_999)
    (tmp_path / "checkpoints" / ".ckpt_000000000512.tracerl.0a1b.tmp").write_bytes(b"t")
    assert resolve_checkpoint(tmp_path) == newest
    (tmp_path / "agent.tracerl").write_bytes(b"a")
    assert resolve_checkpoint(tmp_path) == tmp_path / "agent.tracerl"
    assert resolve_checkpoint(str(newest)) == newest  # a file is returned as given
    assert resolve_checkpoint(tmp_path / "missing.tracerl") == tmp_path / "missing.tracerl"


def test_resolve_checkpoint_takes_an_interrupted_agent_newer_than_the_newest_checkpoint(tmp_path):
    interrupted = tmp_path / "agent.interrupted.tracerl"
    interrupted.write_bytes(b"i")  # Ctrl-C before the first periodic checkpoint: the only agent there is
    assert resolve_checkpoint(tmp_path) == interrupted
    older = _ckpt(tmp_path, 256)
    os.utime(older, (interrupted.stat().st_mtime - 10,) * 2)
    assert resolve_checkpoint(tmp_path) == interrupted  # saved at the interrupt, after the last checkpoint
    newer = _ckpt(tmp_path, 512)  # a resumed run checkpointed after the interrupt
    os.utime(newer, (interrupted.stat().st_mtime + 10,) * 2)
    assert resolve_checkpoint(tmp_path) == newer
    (tmp_path / "agent.tracerl").write_bytes(b"a")
    assert resolve_checkpoint(tmp_path) == tmp_path / "agent.tracerl"  # a finished run's final agent wins
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(interrupted, linked / "agent.interrupted.tracerl")
    with pytest.raises(CheckpointError, match="not followed"):
        resolve_checkpoint(linked)


@pytest.mark.faults("A run directory with no agent.tracerl and no checkpoints/ckpt_*.tracerl given as a checkpoint | "
                    "CheckpointError naming the directory and both names | none")
@pytest.mark.parametrize("content", ["empty", "other files", "empty checkpoints/"])
def test_resolve_checkpoint_of_a_directory_without_one_names_it_and_what_was_looked_for(tmp_path, content):
    if content == "other files":
        (tmp_path / "config.json").write_text("{}")
        (tmp_path / "agent.tracerl.bak").write_bytes(b"x")
    elif content == "empty checkpoints/":
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "ckpt_12.tracerl").write_bytes(b"x")  # not a rotation name
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "agent.tracerl" in str(info.value) and "checkpoints/ckpt_<steps>.tracerl" in str(info.value)


@pytest.mark.faults("A run directory whose agent.tracerl or checkpoints/ is a symlink or of the wrong type, or whose "
                    "newest checkpoint is a symlink | CheckpointError naming the entry (not followed), or the link "
                    "is skipped | none")
def test_resolve_checkpoint_follows_no_odd_entries_in_a_run_directory(tmp_path):
    target = tmp_path / "elsewhere.tracerl"
    target.write_bytes(b"x")
    run = tmp_path / "run"
    real = _ckpt(run, 128)
    os.symlink(target, run / "checkpoints" / "ckpt_000000000999.tracerl")
    assert resolve_checkpoint(run) == real  # a symlinked checkpoint is not a candidate
    os.symlink(target, run / "agent.tracerl")
    with pytest.raises(CheckpointError, match="agent.tracerl is a symlink"):
        resolve_checkpoint(run)
    (run / "agent.tracerl").unlink()
    (run / "agent.tracerl").mkdir()
    with pytest.raises(CheckpointError, match="agent.tracerl is a directory"):
        resolve_checkpoint(run)
    other = tmp_path / "other"
    other.mkdir()
    _ckpt(tmp_path / "src", 64)
    os.symlink(tmp_path / "src" / "checkpoints", other / "checkpoints")
    with pytest.raises(CheckpointError, match="checkpoints/ is a symlink"):
        resolve_checkpoint(other)


@pytest.mark.faults("A run directory whose checkpoints/ holds more entries than any run writes | CheckpointError "
                    "after reading a bounded number of entries | none")
def test_resolve_checkpoint_reads_a_bounded_number_of_entries(tmp_path, monkeypatch):
    import tracerl.io.rundir as rundir

    monkeypatch.setattr(rundir, "MAX_CHECKPOINT_ENTRIES", 5)
    for i in range(6):
        (tmp_path / "checkpoints").mkdir(exist_ok=True)
        (tmp_path / "checkpoints" / f"junk{i}").write_bytes(b"")
    with pytest.raises(CheckpointError, match="more than 5 entries"):
        resolve_checkpoint(tmp_path)
