"""Where a result came from: git commit, package versions, machine, and the one-thread torch setup.

Every benchmark process runs single-threaded (:func:`configure_torch`) so that figures are comparable
across machines and parallel runs do not fight over cores.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VERSIONED_PACKAGES: tuple[str, ...] = (
    "tracerl", "torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy", "rliable", "ray",
)
"""Distributions whose versions every result records."""

REPO_ROOT = Path(__file__).resolve().parents[3]
"""The checkout this module lives in (for ``git rev-parse``; meaningless for an installed wheel)."""


def configure_torch() -> None:
    """One intra-op and one inter-op torch thread; call before any tensor work in a process."""
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started: harmless here
        pass


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (falls back to ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(repo: Path | None = None, short: bool = False) -> str:
    """``git rev-parse [--short] HEAD`` of ``repo`` (default: this checkout); ``"unknown"`` outside git."""
    cmd = ["git", "rev-parse", *(["--short"] if short else []), "HEAD"]
    try:
        out = subprocess.run(cmd, cwd=repo or REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def git_dirty(repo: Path | None = None) -> bool | None:
    """Whether the checkout has uncommitted changes to tracked files (None outside git)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo or REPO_ROOT,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def package_version(name: str) -> str:
    """Installed version of a distribution, or ``"not installed"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def package_versions(names: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """``{distribution: version}`` for ``names``."""
    return {name: package_version(name) for name in names}


def machine_info(repo: Path | None = None) -> dict[str, Any]:
    """Platform, CPU, torch thread settings, package versions, git commit, date and current load."""
    import torch

    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": package_versions(),
        "git_commit": git_commit(repo),
        "git_dirty": git_dirty(repo),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
