"""The results file: one JSON line per finished run, appended and fsynced as each run ends.

Reading keeps the last line of every run id, so a rerun (``--retry-failed``) supersedes the failure it
repeats. A line that cannot be used is skipped with a warning naming the file and line, and that run simply
runs again: a torn last line left by a killed process, a line that is not UTF-8 or not JSON, and a record
missing a field the report needs (:func:`record_problem`).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

RESULTS_FILE = "runs.jsonl"

_NUMBER = (int, float)
_RECORD_FIELDS: dict[str, tuple[type, ...]] = {"run_id": (str,), "status": (str,), "agent": (str,),
                                               "env_label": (str,), "seed": (int,), "budget": (int,)}
_METRIC_FIELDS: dict[str, tuple[type, ...]] = {
    "train_steps": (int,), "train_seconds": _NUMBER, "wall_seconds": _NUMBER, "steps_per_second": _NUMBER,
    "steps_to_threshold": (int, type(None)), "seconds_to_threshold": (*_NUMBER, type(None)),
    "final": (dict,), "curve": (list,)}
_RESULT_FIELDS = ("success_rate", "mean_return", "std_return")
_POINT_FIELDS = ("steps", "train_seconds", "success", "mean_return")


def _bad_type(value: object, types: tuple[type, ...]) -> bool:
    return isinstance(value, bool) or not isinstance(value, types)


def record_problem(record: object) -> str | None:
    """What makes ``record`` unusable by the runner and the report (None: nothing): a missing or wrongly
    typed identity field, or, for a finished run (``status`` ``ok``), a missing or wrongly typed metric,
    final result or curve point."""
    if not isinstance(record, dict):
        return f"a record must be a JSON object, not {type(record).__name__}"
    for key, types in _RECORD_FIELDS.items():
        if key not in record:
            return f"missing field {key!r}"
        if _bad_type(record[key], types):
            return f"field {key!r} = {record[key]!r} has the wrong type"
    if record["status"] != "ok":
        return None
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        return "status is 'ok' but 'metrics' is missing or not an object"
    for key, types in _METRIC_FIELDS.items():
        if key not in metrics:
            return f"missing field 'metrics.{key}'"
        if _bad_type(metrics[key], types):
            return f"field 'metrics.{key}' = {metrics[key]!r} has the wrong type"
    if not metrics["final"]:
        return "'metrics.final' is empty"
    for mode, result in metrics["final"].items():
        if not isinstance(result, dict):
            return f"'metrics.final.{mode}' is not an object"
        for key in _RESULT_FIELDS:
            if _bad_type(result.get(key), _NUMBER):
                return f"missing or non-numeric 'metrics.final.{mode}.{key}'"
    for i, point in enumerate(metrics["curve"]):
        if not isinstance(point, dict) or any(_bad_type(point.get(k), _NUMBER) for k in _POINT_FIELDS):
            return f"'metrics.curve[{i}]' lacks one of {', '.join(_POINT_FIELDS)}"
    return None


class ResultsStore:
    """``<out>/runs.jsonl``: append-only run records keyed by ``run_id``."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / RESULTS_FILE

    def load(self) -> dict[str, dict[str, Any]]:
        """``{run_id: record}`` with the newest record of each run (empty when there is no file)."""
        records: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return records
        for lineno, raw in enumerate(self.path.read_bytes().splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                warnings.warn(f"{self.path}:{lineno}: line skipped: not UTF-8 (byte 0x{raw[exc.start]:02x} at "
                              f"column {exc.start + 1}); that run runs again", stacklevel=2)
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(f"{self.path}:{lineno}: unreadable line skipped (a run interrupted while writing?)",
                              stacklevel=2)
                continue
            problem = record_problem(record)
            if problem is not None:
                warnings.warn(f"{self.path}:{lineno}: invalid record skipped: {problem}; that run runs again",
                              stacklevel=2)
                continue
            records[record["run_id"]] = record
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line and fsync it, so a finished run survives a crash of the suite."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True, default=str)
        torn = False
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"  # a line cut off by a kill: never glue a record onto it
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(("\n" if torn else "") + line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def archive(self) -> Path | None:
        """Move an existing results file aside (``runs.<time>.jsonl.bak``) to start afresh; its new path."""
        if not self.path.exists():
            return None
        target = self.path.with_name(f"runs.{time.strftime('%Y%m%d-%H%M%S')}.jsonl.bak")
        self.path.rename(target)
        return target
