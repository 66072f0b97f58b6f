"""Periodic checkpoints in one directory, keeping the newest ``keep``.

Files are named ``ckpt_<num_timesteps:012d>.tracerl`` so their order is their age. A save is atomic
(see :func:`tracerl.io.checkpoint.save_checkpoint`); older files are deleted only after the new one is
written, so a failed save never costs the last good checkpoint.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Callable

from ..errors import CheckpointError

_NAME = re.compile(r"^ckpt_(\d{12})\.tracerl$")
_STALE_TEMP = re.compile(r"^\.ckpt_\d{12}\.tracerl\.[0-9a-f]+\.tmp$")


def checkpoint_path(directory: str | os.PathLike[str], num_timesteps: int) -> Path:
    return Path(directory) / f"ckpt_{num_timesteps:012d}.tracerl"


def list_checkpoints(directory: str | os.PathLike[str]) -> list[Path]:
    """Checkpoint files in ``directory``, oldest first (temporary files and others are ignored)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if _NAME.match(p.name) and p.is_file() and not p.is_symlink())


def rotate(directory: str | os.PathLike[str], keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints, and the temporary files of saves that were killed
    before they finished (call it after a successful save: one trainer owns the directory)."""
    if keep < 1:
        raise ValueError(f"keep={keep} is invalid: must be >= 1")
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    for stale in Path(directory).iterdir():
        if _STALE_TEMP.match(stale.name) and stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)


def newest_loadable(directory: str | os.PathLike[str], check: Callable[[Path], object]) -> Path:
    """The newest checkpoint in ``directory`` that ``check(path)`` accepts; corrupted ones are skipped
    with a warning. Raises CheckpointError naming the directory when none is loadable."""
    for path in reversed(list_checkpoints(directory)):
        try:
            check(path)
            return path
        except CheckpointError as exc:
            warnings.warn(f"skipping unloadable checkpoint: {exc}", RuntimeWarning, stacklevel=2)
    raise CheckpointError("no loadable checkpoint", path=str(directory))
