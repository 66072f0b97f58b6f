"""A small metrics logger: record values, then dump them to the console, a CSV file and TensorBoard.

::

    with Logger("runs/exp1", formats=("console", "csv", "tensorboard")) as logger:
        logger.record("time/fps", 142)
        logger.record_mean("train/loss", loss)   # averaged over the calls until the next dump
        logger.dump(step=num_timesteps)

Keys are grouped in the console table by the prefix before the first ``"/"``.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TextIO, Union

__all__ = ["FORMATS", "Logger", "Scalar", "format_table"]

Scalar = Union[float, int, str]
"""A logged value. Strings are shown on the console and written to CSV; TensorBoard skips them."""

FORMATS = ("console", "csv", "tensorboard")
_FILE_FORMATS = ("csv", "tensorboard")


# ------------------------------------------------------------------------------------------ formatting


def format_value(value: Scalar) -> str:
    """Ints as ints; floats with 3 decimals, or compact scientific notation when very large or small."""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude != 0.0 and (magnitude < 1e-3 or magnitude >= 1e6):
        return f"{value:.3g}"
    return f"{value:.3f}"


def _group_of(key: str) -> str | None:
    slash = key.find("/")
    return key[:slash] if slash > 0 else None


def format_table(values: dict[str, Scalar], group_order: Sequence[str] = ()) -> str:
    """Render ``values`` as a Stable-Baselines3-style box, grouped by the prefix before ``"/"``.

    Groups (and ungrouped keys) appear in ``group_order`` first, then in the order of ``values``;
    keys are sorted within a group.
    """
    sections: dict[str, list[str]] = {name: [] for name in group_order}
    for key in values:
        group = _group_of(key)
        sections.setdefault(key if group is None else group + "/", []).append(key)

    rows: list[tuple[str, str]] = []
    for section, keys in sections.items():
        if not keys:
            continue
        if section.endswith("/"):
            rows.append((section, ""))
            rows.extend(("   " + key[len(section) :], format_value(values[key])) for key in sorted(keys))
        else:
            rows.extend((key, format_value(values[key])) for key in keys)

    key_width = max(len(k) for k, _ in rows) + 6
    value_width = max(8, max(len(v) for _, v in rows))
    dashes = "-" * (key_width + value_width + 8)
    lines = [dashes]
    lines.extend(f"| {k.ljust(key_width)} | {v.rjust(value_width)}  |" for k, v in rows)
    lines.append(dashes)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- writers


class _Writer(Protocol):
    def write(self, values: dict[str, Scalar], step: int) -> None: ...

    def close(self) -> None: ...


class _ConsoleWriter:
    """Prints the table to ``sys.stdout`` as it is at dump time (so redirection and capture work)."""

    def __init__(self, logger: Logger) -> None:
        self._logger = logger

    def write(self, values: dict[str, Scalar], step: int) -> None:
        stream: TextIO = sys.stdout
        stream.write(format_table(values, self._logger.group_order) + "\n")
        stream.flush()

    def close(self) -> None:
        return None


STEP_KEY = "time/total_timesteps"
"""The logged key that holds a row's env step (used to cut a resumed log back to its checkpoint)."""


def _after(value: str | None, step: int) -> bool:
    """Whether a CSV cell ``value`` holds an env step later than ``step`` (blank or non-numeric: no)."""
    try:
        return value is not None and value != "" and float(value) > step
    except ValueError:
        return False


class _CsvWriter:
    """``progress.csv``: one row per dump; the header widens (file rewritten) when a new key appears."""

    def __init__(self, path: Path, append: bool = False, resume_step: int | None = None) -> None:
        self.path = path
        self.fieldnames: list[str] = []
        if append and path.exists():
            with open(path, newline="", encoding="utf-8") as old:
                reader = csv.DictReader(old)
                self.fieldnames = list(reader.fieldnames or [])
                rows = list(reader)
            if resume_step is not None and STEP_KEY in self.fieldnames:
                kept = [r for r in rows if not _after(r.get(STEP_KEY), resume_step)]
                if len(kept) < len(rows):  # rows of a killed run past its checkpoint: logged again on resume
                    self._rewrite(kept)
        mode = "a" if append and self.fieldnames else "w"
        self._file: TextIO | None = open(path, mode, newline="", encoding="utf-8")  # noqa: SIM115

    def _handle(self) -> TextIO:
        if self._file is None:
            raise ValueError(f"CSV log {self.path} is closed")
        return self._file

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        """Replace the file atomically with the header ``fieldnames`` and ``rows``."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=self.fieldnames, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def _widen(self, new_keys: list[str]) -> None:
        handle = self._handle()
        handle.close()
        with open(self.path, newline="", encoding="utf-8") as old:
            old_rows = list(csv.DictReader(old)) if self.fieldnames else []
        self.fieldnames.extend(new_keys)
        self._rewrite(old_rows)
        self._file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115

    def write(self, values: dict[str, Scalar], step: int) -> None:
        new_keys = [key for key in values if key not in self.fieldnames]
        if new_keys:
            self._widen(new_keys)
        handle = self._handle()
        csv.DictWriter(handle, fieldnames=self.fieldnames, restval="").writerow(values)
        handle.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _wait_past_event_files(log_dir: Path) -> None:
    """Wait (at most about a second) until the clock's whole second is past every event file's in ``log_dir``.

    TensorBoard reads event files in name order, ``events.out.tfevents.<second>.<host>.<pid>.<counter>``: two files
    of one second and one process sort by the counter as a string ("10" before "9"), so a resumed run's file, whose
    purge must be read after the old events, could sort first. A later second sorts it last."""
    newest = 0
    for f in log_dir.glob("events.out.tfevents.*"):
        parts = f.name.split(".")
        if len(parts) > 3 and parts[3].isdigit():
            newest = max(newest, int(parts[3]))
    deadline = time.monotonic() + 2.0
    while int(time.time()) <= newest and time.monotonic() < deadline:
        time.sleep(0.02)


class _TensorBoardWriter:
    """``add_scalar`` for every numeric value under ``out_dir/tb``; strings are skipped.

    ``purge_step``: events of earlier event files at this step or later are hidden by TensorBoard (a resumed
    run logs those steps again; see ``SummaryWriter(purge_step=...)``)."""

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # heavy import, only when asked for

        if purge_step is not None:
            _wait_past_event_files(Path(log_dir))
        self._writer: Any = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def write(self, values: dict[str, Scalar], step: int) -> None:
        for key, value in values.items():
            if not isinstance(value, str):
                self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


# -------------------------------------------------------------------------------------------- logger


def _as_scalar(key: str, value: Any, allow_str: bool) -> Scalar:
    if allow_str and isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    kinds = "a number or a str" if allow_str else "a number"
    raise TypeError(f"logged value for {key!r} must be {kinds}, got {type(value).__name__}")


class Logger:
    """Collects scalars between dumps and writes them to console, CSV and/or TensorBoard.

    Args:
        out_dir: directory for file formats (``out_dir/progress.csv``, ``out_dir/tb``); created if needed.
            An existing ``progress.csv`` is overwritten unless ``append``.
        formats: any of ``"console"``, ``"csv"``, ``"tensorboard"``.
        console_every_dump: print the console table on every :meth:`dump`; when False, it is printed
            only when ``dump(step, console=True)`` asks for it.
        append: continue an existing ``progress.csv`` (a resumed run) instead of overwriting it.
        resume_step: with ``append``, the env step the run resumes from: rows of the old log with a later
            ``time/total_timesteps`` (written after the checkpoint by a run that was then killed, and about to
            be logged again) are dropped, and the TensorBoard events of those steps are purged (the new event
            file starts with ``purge_step = resume_step + 1``, so TensorBoard hides the old ones).

    Raises:
        ValueError: an unknown format, or a file format without ``out_dir`` (the message names it).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str] | None = None,
        formats: Sequence[str] = ("console",),
        console_every_dump: bool = True,
        append: bool = False,
        resume_step: int | None = None,
    ) -> None:
        if isinstance(formats, str):
            formats = (formats,)
        for fmt in formats:
            if fmt not in FORMATS:
                raise ValueError(f"unknown log format {fmt!r}; choose from {', '.join(FORMATS)}")
            if fmt in _FILE_FORMATS and out_dir is None:
                raise ValueError(f"log format {fmt!r} writes files and needs out_dir")
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.formats = tuple(dict.fromkeys(formats))
        self.console_every_dump = console_every_dump
        self.group_order: list[str] = []
        self._values: dict[str, Scalar] = {}
        self._means: dict[str, tuple[float, int]] = {}
        self._order: dict[str, None] = {}
        self._console: _ConsoleWriter | None = None
        self._files: list[_Writer] = []
        self._closed = False

        if self.out_dir is not None and any(f in _FILE_FORMATS for f in self.formats):
            self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            for fmt in self.formats:
                if fmt == "console":
                    self._console = _ConsoleWriter(self)
                elif fmt == "csv":
                    assert self.out_dir is not None
                    self._files.append(_CsvWriter(self.out_dir / "progress.csv", append=append,
                                                          resume_step=resume_step))
                else:
                    assert self.out_dir is not None
                    purge = resume_step + 1 if append and resume_step is not None else None
                    self._files.append(_TensorBoardWriter(self.out_dir / "tb", purge_step=purge))
        except BaseException:
            self.close()
            raise

    def _touch(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise TypeError(f"log keys must be non-empty strings, got {key!r}")
        self._order.setdefault(key, None)
        group = _group_of(key)
        section = key if group is None else group + "/"
        if section not in self.group_order:
            self.group_order.append(section)

    def record(self, key: str, value: Scalar) -> None:
        """Set ``key`` to ``value``; the latest value wins until the next :meth:`dump`."""
        scalar = _as_scalar(key, value, allow_str=True)
        self._touch(key)
        self._means.pop(key, None)
        self._values[key] = scalar

    def record_mean(self, key: str, value: float | int) -> None:
        """Add ``value`` to ``key``'s running mean; the mean of all calls since the last dump is written."""
        scalar = float(_as_scalar(key, value, allow_str=False))
        self._touch(key)
        self._values.pop(key, None)
        total, count = self._means.get(key, (0.0, 0))
        self._means[key] = (total + scalar, count + 1)

    def dump(self, step: int, console: bool | None = None) -> dict[str, Scalar]:
        """Write everything recorded since the last dump to every format, clear it, and return it.

        Args:
            step: x-axis value for TensorBoard.
            console: print the console table; ``None`` follows ``console_every_dump``.
        """
        if self._closed:
            raise ValueError("Logger is closed")
        values: dict[str, Scalar] = {}
        for key in self._order:
            if key in self._values:
                values[key] = self._values[key]
            elif key in self._means:
                total, count = self._means[key]
                values[key] = total / count
        self._values.clear()
        self._means.clear()
        self._order.clear()
        if not values:
            return values
        show = self.console_every_dump if console is None else console
        if self._console is not None and show:
            self._console.write(values, step)
        for writer in self._files:
            writer.write(values, step)
        return values

    def close(self) -> None:
        """Close the files; further dumps raise. Closing twice is fine."""
        self._closed = True
        writers, self._files = self._files, []
        for writer in writers:
            writer.close()

    def __enter__(self) -> Logger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
