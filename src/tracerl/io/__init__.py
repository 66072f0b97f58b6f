"""Input/output: checkpoints (safetensors, verified on load), RNG state capture, and metrics logging."""

from __future__ import annotations

from tracerl.io.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    check_tensor_shapes,
    load_checkpoint,
    save_checkpoint,
)
from tracerl.io.logger import Logger
from tracerl.io.rng import TORCH_RNG_KEY, capture_rng_state, restore_rng_state

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "TORCH_RNG_KEY",
    "Logger",
    "capture_rng_state",
    "check_tensor_shapes",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]
