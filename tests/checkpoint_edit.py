"""Edit a tracerl checkpoint and re-hash it, as an attacker (or a careless script) can: the hashes live in the file
they protect, so an edited file is "valid" byte-wise and only the loader's own checks stand between it and the agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from tracerl.io.checkpoint import save_checkpoint


def read_raw(path: Path) -> tuple[dict[str, Tensor], dict[str, Any], str]:
    """``(tensors, meta, kind)`` of a checkpoint, read without tracerl's checks."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    return load_file(str(path)), json.loads(metadata["meta"]), metadata["kind"]


def write_rehashed(path: Path, tensors: dict[str, Tensor], meta: dict[str, Any], kind: str) -> None:
    """Write ``tensors`` and ``meta`` as a checkpoint with fresh hashes and manifest (passes every byte-level check)."""
    save_checkpoint(path, tensors, meta, kind)
