"""Periodic checkpoints in one directory, keeping the newest ``keep`` of a run.

Files are named ``ckpt_<num_timesteps:012d>.tracerl``; their order is their step count, read as a number (a
13-digit step sorts after a 12-digit one). A save is atomic (see :func:`tracerl.io.checkpoint.save_checkpoint`);
older files are deleted only after the new one is written, so a failed save never costs the last good checkpoint.

A checkpoint written by a run with an id (``tracerl train``) records it in its metadata as ``run_id``. Given a
``run_id``, :func:`rotate` counts and deletes only that run's checkpoints, and :func:`newest_loadable` refuses a
checkpoint of another run instead of resuming from it.
"""

from __future__ import annotations

import json
import os
import re
import struct
import warnings
from pathlib import Path
from typing import Callable

from ..errors import CheckpointError

_NAME = re.compile(r"^ckpt_(\d{12,})\.tracerl$")
_STALE_TEMP = re.compile(r"^\.ckpt_\d{12,}\.tracerl\.[0-9a-f]+\.tmp$")
_MAX_HEADER = 256 * 2**20  # a checkpoint header (JSON) larger than this is not one tracerl wrote


def checkpoint_path(directory: str | os.PathLike[str], num_timesteps: int) -> Path:
    """``directory/ckpt_<num_timesteps:012d>.tracerl``."""
    return Path(directory) / f"ckpt_{num_timesteps:012d}.tracerl"


def checkpoint_step(path: str | os.PathLike[str]) -> int | None:
    """The step count in a checkpoint file's name, or None when the name is not a checkpoint's."""
    match = _NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(directory: str | os.PathLike[str]) -> list[Path]:
    """Checkpoint files in ``directory``, oldest (fewest steps) first; temporary files and others are ignored."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if _NAME.match(p.name) and p.is_file() and not p.is_symlink()]
    return sorted(found, key=lambda p: (checkpoint_step(p), p.name))


def checkpoint_run_id(path: str | os.PathLike[str]) -> str | None:
    """The ``run_id`` recorded in a checkpoint's metadata (None when it records none), read from the header only.

    Raises:
        CheckpointError: the header cannot be read (the message names the file).
    """
    where = str(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError("truncated: no header", path=where)
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER:
                raise CheckpointError(f"header of {n} bytes is larger than any tracerl checkpoint's", path=where)
            raw = f.read(n)
        if len(raw) < n:
            raise CheckpointError("truncated header", path=where)
        meta_text = json.loads(raw.decode("utf-8"))["__metadata__"]["meta"]
        run_id = json.loads(meta_text).get("run_id")
    except CheckpointError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"cannot read the checkpoint's run id: {exc}", path=where, entry="meta.run_id") from exc
    if run_id is not None and not isinstance(run_id, str):
        raise CheckpointError(f"run_id {run_id!r} is not a string", path=where, entry="meta.run_id")
    return run_id


def _belongs(path: Path, run_id: str | None) -> bool:
    """Whether ``path`` is a checkpoint of ``run_id`` (any checkpoint when None; unreadable ones never)."""
    if run_id is None:
        return True
    try:
        return checkpoint_run_id(path) == run_id
    except CheckpointError:
        return False


def rotate(directory: str | os.PathLike[str], keep: int, run_id: str | None = None,
           current: int | None = None) -> None:
    """Delete all but the newest ``keep`` checkpoints, and the temporary files of saves that were killed
    before they finished (call it after a successful save: one trainer owns the directory).

    Args:
        keep: how many to keep (>= 1).
        run_id: only checkpoints recording this run id are counted and deleted; others (another run's, or
            ones whose header cannot be read) are never touched. None: every checkpoint in the directory.
        current: the step count of the save just made: checkpoints beyond it (left by a killed run past the
            checkpoint this one resumed from; the same steps are saved again) are neither counted nor deleted,
            so the new checkpoint is never the one deleted.
    """
    if keep < 1:
        raise ValueError(f"keep={keep} is invalid: must be >= 1")
    mine = [p for p in list_checkpoints(directory)
            if (current is None or (checkpoint_step(p) or 0) <= current) and _belongs(p, run_id)]
    for old in mine[:-keep]:
        old.unlink(missing_ok=True)
    for stale in Path(directory).iterdir():
        if _STALE_TEMP.match(stale.name) and stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)


def newest_loadable(directory: str | os.PathLike[str], check: Callable[[Path], object],
                    run_id: str | None = None) -> Path:
    """The newest checkpoint in ``directory`` that ``check(path)`` accepts; corrupted ones are skipped
    with a warning. Raises CheckpointError naming the directory when none is loadable.

    With ``run_id``, the checkpoint found must record that run id: one of another run (or of none) raises
    CheckpointError naming the file and both ids, rather than resuming a different run.
    """
    for path in reversed(list_checkpoints(directory)):
        try:
            check(path)
            found = checkpoint_run_id(path) if run_id is not None else None
        except CheckpointError as exc:
            warnings.warn(f"skipping unloadable checkpoint: {exc}", RuntimeWarning, stacklevel=2)
            continue
        if run_id is not None and found != run_id:
            raise CheckpointError(
                f"this checkpoint belongs to run {found!r}, not to run {run_id!r} of this directory's config.json: "
                "it was written by another run; move it away to resume from this run's own checkpoints",
                path=str(path), entry="meta.run_id")
        return path
    raise CheckpointError("no loadable checkpoint", path=str(directory))
