"""The run directory of ``tracerl train --out DIR``: one run per directory, locked while it runs.

A run directory holds what one run writes::

    DIR/.tracerl.lock        the lock file (held with ``fcntl.flock`` for the whole run; left in place)
    DIR/config.json          the run's settings and its ``run_id``
    DIR/checkpoints/         periodic checkpoints ``ckpt_<steps>.tracerl`` (each records the run id)
    DIR/progress.csv, tb/    the logs
    DIR/agent.tracerl        the final agent;   DIR/eval.json   its held-out evaluation

Rules (enforced by :mod:`tracerl.cli`):

- a new run needs an empty (or absent) directory; ``--overwrite`` first removes a previous run's files
  (only files a run writes; anything else makes it refuse, naming the files);
- one process at a time: :class:`RunLock` takes an exclusive ``flock`` on ``DIR/.tracerl.lock``. The kernel
  releases it when the process dies (even by SIGKILL), so a killed run never leaves a lock that blocks;
- every run has an id (:func:`new_run_id`) stored in ``config.json`` and in every checkpoint it writes, so a
  resume and checkpoint rotation only ever touch the run's own checkpoints.

:func:`resolve_checkpoint` turns a run directory into the checkpoint file to read (``TraceRL.load``, ``tracerl
eval``, ``inspect`` and ``export`` all accept either).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import CheckpointError, TraceRLError
from .checkpoint import atomic_write_bytes
from .rotation import checkpoint_step

__all__ = ["LOCK_NAME", "RunDirError", "RunLock", "check_outputs_writable", "clear_previous_run", "foreign_entries",
           "new_run_id", "read_config", "resolve_checkpoint", "run_entries", "write_json"]

LOCK_NAME = ".tracerl.lock"
"""The lock file's name inside a run directory."""

CONFIG_NAME = "config.json"
FINAL_NAME = "agent.tracerl"
INTERRUPTED_NAME = "agent.interrupted.tracerl"
"""Where ``tracerl train`` saves the agent when training is interrupted (Ctrl-C); never the final agent's file."""
EVAL_NAME = "eval.json"
CHECKPOINTS_NAME = "checkpoints"
"""The run's folder of periodic checkpoints (named as :mod:`tracerl.io.rotation` names them)."""
MAX_CHECKPOINT_ENTRIES = 100_000
"""Most entries :func:`resolve_checkpoint` reads from a run's ``checkpoints/`` (a run keeps a handful)."""

# What a run writes: name -> "file" or "dir" (anything of another type is not the run's).
_RUN_FILES = {CONFIG_NAME: "file", FINAL_NAME: "file", INTERRUPTED_NAME: "file", EVAL_NAME: "file",
              "progress.csv": "file", "checkpoints": "dir", "tb": "dir"}
# Leftovers of a run: atomic-write temporaries, fallback saves, an interrupted --overwrite, the write probe.
_RUN_PATTERNS = (re.compile(r"^\.(config\.json|agent\.tracerl|agent\.interrupted\.tracerl|agent\.\d+\.fallback\.tracerl|"
                            r"eval\.json|progress\.csv)(\.[0-9a-f]+)?\.tmp$"),
                 re.compile(r"^agent\.\d+\.fallback\.tracerl$"),
                 re.compile(r"^\.overwritten-\d+$"),
                 re.compile(r"^\.tracerl-write-check-\d+$"))


class RunDirError(TraceRLError):
    """A run directory that cannot be used as asked: in use by another process, holding another run's files,
    or not writable. The message names the directory (and the files or process concerned)."""


def new_run_id() -> str:
    """A fresh random run id (32 hex digits)."""
    return uuid.uuid4().hex


def run_entries(directory: Path) -> list[Path]:
    """Everything in ``directory`` except the lock file, sorted by name ([] when it does not exist)."""
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if p.name != LOCK_NAME), key=lambda p: p.name)


def _is_run_entry(path: Path) -> bool:
    kind = _RUN_FILES.get(path.name)
    if path.is_symlink():
        return False
    if kind == "file":
        return path.is_file()
    if kind == "dir":
        return path.is_dir()
    return any(p.match(path.name) for p in _RUN_PATTERNS) and (path.is_file() or path.is_dir())


def foreign_entries(directory: Path) -> list[Path]:
    """Entries of ``directory`` that a tracerl run does not write (``--overwrite`` refuses to delete them)."""
    return [p for p in run_entries(directory) if not _is_run_entry(p)]


def clear_previous_run(directory: Path) -> list[str]:
    """Remove a previous run's files from ``directory`` (call it holding the lock); return their names.

    ``config.json`` goes first, so an interrupted clear can never be resumed as a mix of two runs: the entries
    are renamed into one hidden folder, which is then deleted (an interrupted clear leaves that folder, which the
    next ``--overwrite`` removes). Raises RunDirError, deleting nothing, when the directory holds anything a run
    does not write.
    """
    foreign = foreign_entries(directory)
    if foreign:
        raise RunDirError(
            f"--overwrite {directory}: it holds files a tracerl run does not write ("
            f"{', '.join(p.name for p in foreign[:8])}{', ...' if len(foreign) > 8 else ''}); nothing was deleted. "
            "Move them away or choose another --out")
    entries = run_entries(directory)
    if not entries:
        return []
    trash = directory / f".overwritten-{os.getpid()}"
    trash.mkdir(exist_ok=True)
    entries.sort(key=lambda p: p.name != CONFIG_NAME)  # config.json first: the old run is no longer resumable
    names = []
    for entry in entries:
        if entry == trash:
            continue
        names.append(entry.name)
        os.replace(entry, trash / entry.name)
    shutil.rmtree(trash)
    return names


def read_config(directory: Path) -> dict[str, Any]:
    """``directory/config.json`` as a dict; RunDirError naming the file when it is missing or malformed."""
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise RunDirError(f"--resume {directory}: no {CONFIG_NAME} there (was it written by `tracerl train --out`?)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunDirError(f"--resume {directory}: cannot read {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise RunDirError(f"--resume {directory}: {path} does not hold a JSON object")
    return config


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON to ``path`` atomically (temp file, fsync, rename)."""
    atomic_write_bytes(path, (json.dumps(value, indent=2) + "\n").encode("utf-8"))


def check_outputs_writable(directory: Path, names: tuple[str, ...]) -> None:
    """Fail before training, not after it, when the run's outputs cannot be written: ``directory`` must be a
    writable directory (a file is created in it and removed) and none of ``names`` may exist as anything but a
    regular file. Raises RunDirError naming the path."""
    for name in names:
        path = directory / name
        if (path.exists() or path.is_symlink()) and (path.is_symlink() or not path.is_file()):
            what = "a directory" if path.is_dir() else "a symlink" if path.is_symlink() else "not a regular file"
            raise RunDirError(f"cannot write {path}: it is {what}; move it away before training")
    probe = directory / f".tracerl-write-check-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = "read-only" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else exc.strerror
        raise RunDirError(f"cannot write into {directory} ({reason}): the trained agent could not be saved; "
                          "fix the permissions or choose another --out") from exc


class RunLock:
    """An exclusive lock on a run directory, held from :meth:`acquire` to :meth:`release` (or the with-block).

    It is an ``fcntl.flock`` on ``directory/.tracerl.lock``: the kernel drops it when the process ends, however it
    ends, so a killed run never blocks the next one. The lock file holds the holder's pid (for the error message)
    and is left in place. Another process (or another RunLock in this one) gets RunDirError naming the directory
    and the holder's pid.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (the directory must exist) or raise RunDirError at once; never waits."""
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inheritable (PEP 446): children never hold it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            try:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirError(f"{self.directory} is in use by another tracerl run (pid {holder}); wait for it to "
                                  "finish or choose another --out") from exc
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the file stays). Releasing twice is fine."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _kind(path: Path) -> str:
    """What ``path`` is, for an error message (links are not followed)."""
    if path.is_symlink():
        return "a symlink"
    return "a directory" if path.is_dir() else "not a regular file"


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint file ``path`` stands for: ``path`` itself unless it is a directory; for a run directory
    (what ``tracerl train --out DIR`` writes) its final ``agent.tracerl`` if present, else the newest
    ``checkpoints/ckpt_<steps>.tracerl`` by step number, or ``agent.interrupted.tracerl`` (what Ctrl-C saved) when
    that was written after it (by modification time) or there is no checkpoint.

    Inside a run directory nothing odd is followed: a symlinked or non-regular ``agent.tracerl`` or
    ``checkpoints`` raises instead of being read, symlinked checkpoint files are ignored, and at most
    :data:`MAX_CHECKPOINT_ENTRIES` entries of ``checkpoints/`` are read. A path that is not a directory is returned
    as given (the loader reports a missing or malformed file).

    Raises:
        CheckpointError: naming the directory and what was looked for, when it holds neither (or holds an odd
            entry in their place).
    """
    source = Path(path)
    if source.is_symlink() or not source.is_dir():
        return source  # a file (a link given by the user is followed, as for any checkpoint path): load checks it
    final = source / FINAL_NAME
    if final.is_symlink() or (final.exists() and not final.is_file()):
        raise CheckpointError(f"the run directory's {FINAL_NAME} is {_kind(final)}, not a regular file; it is not "
                              "followed: pass a checkpoint file instead", path=str(final))
    if final.is_file():
        return final
    ckpt_dir = source / CHECKPOINTS_NAME
    if ckpt_dir.is_symlink() or (ckpt_dir.exists() and not ckpt_dir.is_dir()):
        raise CheckpointError(f"the run directory's {CHECKPOINTS_NAME}/ is {_kind(ckpt_dir)}, not a directory; it is "
                              "not followed: pass a checkpoint file instead", path=str(ckpt_dir))
    interrupted = source / INTERRUPTED_NAME
    if interrupted.is_symlink() or (interrupted.exists() and not interrupted.is_file()):
        raise CheckpointError(f"the run directory's {INTERRUPTED_NAME} is {_kind(interrupted)}, not a regular file; "
                              "it is not followed: pass a checkpoint file instead", path=str(interrupted))
    newest: tuple[int, str] | None = None
    if ckpt_dir.is_dir():
        with os.scandir(ckpt_dir) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_CHECKPOINT_ENTRIES:
                    raise CheckpointError(f"{ckpt_dir} holds more than {MAX_CHECKPOINT_ENTRIES} entries: not a "
                                          "tracerl run's checkpoints; pass a checkpoint file instead",
                                          path=str(ckpt_dir))
                step = checkpoint_step(entry.name)
                if step is None or not entry.is_file(follow_symlinks=False):
                    continue
                if newest is None or (step, entry.name) > newest:
                    newest = (step, entry.name)
    if interrupted.is_file() and (newest is None or interrupted.stat().st_mtime
                                  >= (ckpt_dir / newest[1]).stat(follow_symlinks=False).st_mtime):
        return interrupted
    if newest is None:
        raise CheckpointError(f"{source} is a directory holding no checkpoint: looked for {FINAL_NAME}, "
                              f"{CHECKPOINTS_NAME}/ckpt_<steps>.tracerl and {INTERRUPTED_NAME} (what "
                              "`tracerl train --out` writes)", path=str(source))
    return ckpt_dir / newest[1]
