"""The results file: one JSON line per finished run, appended and fsynced as each run ends.

Reading keeps the last line of every run id, so a rerun (``--retry-failed``) supersedes the failure it
repeats, and skips a torn last line left by a killed process (that run simply runs again).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

RESULTS_FILE = "runs.jsonl"


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
        for lineno, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                records[record["run_id"]] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                warnings.warn(f"{self.path}:{lineno}: unreadable line skipped (a run interrupted while writing?)",
                              stacklevel=2)
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
