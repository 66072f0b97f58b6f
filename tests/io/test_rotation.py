"""Checkpoint rotation: numeric step order, only the run's own checkpoints, never the one just saved."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from tracerl.errors import CheckpointError
from tracerl.io.checkpoint import save_checkpoint
from tracerl.io.rotation import checkpoint_path, checkpoint_run_id, list_checkpoints, newest_loadable, rotate


def _save(directory: Path, step: int, run_id: str | None) -> Path:
    path = checkpoint_path(directory, step)
    meta = {"step": step} if run_id is None else {"step": step, "run_id": run_id}
    save_checkpoint(path, {"w": torch.full((2,), float(step))}, meta, kind="test")
    return path


def _steps(directory: Path) -> list[int]:
    return [int(p.name[5:-8]) for p in list_checkpoints(directory)]


def test_checkpoints_sort_by_step_as_a_number(tmp_path):
    for step in (10**12, 999_999_999_999, 5, 10**12 + 7):
        checkpoint_path(tmp_path, step).write_bytes(b"")
    (tmp_path / "ckpt_12.tracerl").write_bytes(b"")  # not a checkpoint name
    assert _steps(tmp_path) == [5, 999_999_999_999, 10**12, 10**12 + 7]


def test_rotation_counts_and_deletes_only_its_own_runs_checkpoints(tmp_path):
    for step in (100, 200, 300):
        _save(tmp_path, step, "b")  # another run's, with more steps: they used to outrank the new run's
    for step in (10, 20, 30, 40):
        _save(tmp_path, step, "a")
    (tmp_path / "ckpt_000000000050.tracerl").write_bytes(b"garbage")  # unreadable: whose it is is unknown
    rotate(tmp_path, keep=2, run_id="a", current=40)
    assert _steps(tmp_path) == [30, 40, 50, 100, 200, 300]
    assert {checkpoint_run_id(checkpoint_path(tmp_path, s)) for s in (100, 200, 300)} == {"b"}


def test_rotation_never_deletes_the_checkpoint_just_saved(tmp_path):
    """Resumed from step 20 because the killed run's step-30 file was corrupt: the step-25 save survives."""
    for step in (10, 20, 30):
        _save(tmp_path, step, "a")
    _save(tmp_path, 25, "a")
    rotate(tmp_path, keep=1, run_id="a", current=25)
    assert _steps(tmp_path) == [25, 30]


def test_rotation_without_a_run_id_keeps_the_newest_of_all(tmp_path):
    for step, run in ((1, "a"), (2, None), (3, "b")):
        _save(tmp_path, step, run)
    rotate(tmp_path, keep=2)
    assert _steps(tmp_path) == [2, 3]
    with pytest.raises(ValueError, match="keep=0"):
        rotate(tmp_path, keep=0)


def test_checkpoint_run_id_reads_the_header_and_names_a_bad_file(tmp_path):
    assert checkpoint_run_id(_save(tmp_path, 1, "abc")) == "abc"
    assert checkpoint_run_id(_save(tmp_path, 2, None)) is None
    bad = tmp_path / "bad.tracerl"
    for data in (b"", b"\xff" * 8 + b"{}", (20).to_bytes(8, "little") + b"{}"):
        bad.write_bytes(data)
        with pytest.raises(CheckpointError, match="bad.tracerl"):
            checkpoint_run_id(bad)


@pytest.mark.faults("Newest checkpoint in a run's directory written by another run | resume refuses it "
                    "(CheckpointError naming the file and both run ids) | none")
def test_newest_loadable_refuses_another_runs_checkpoint(tmp_path):
    _save(tmp_path, 10, "a")
    _save(tmp_path, 20, "b")
    assert newest_loadable(tmp_path, lambda p: None) == checkpoint_path(tmp_path, 20)
    with pytest.raises(CheckpointError, match="belongs to run 'b', not to run 'a'") as info:
        newest_loadable(tmp_path, lambda p: None, run_id="a")
    assert info.value.path == str(checkpoint_path(tmp_path, 20))
    checkpoint_path(tmp_path, 20).write_bytes(b"corrupt")  # a corrupt newest one is skipped, as before
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert newest_loadable(tmp_path, lambda p: checkpoint_run_id(p), run_id="a") == checkpoint_path(tmp_path, 10)
