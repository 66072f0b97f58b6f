"""The strategic memory's time features ``φ(τ)`` (part of every write embedding's input) and argument checks."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import ConfigError

_TIME_FREQS = (1.0, 2.0, 4.0)
TIME_FEATURES = 1 + 2 * len(_TIME_FREQS)


def time_features(tau: Tensor) -> Tensor:
    """``φ(τ)``: ``[...] -> [..., TIME_FEATURES]`` smooth features of ``log(1 + τ)``."""
    lt = torch.log1p(tau.clamp_min(0.0)).unsqueeze(-1)
    parts = [lt / 8.0]
    for k in _TIME_FREQS:
        parts += [torch.sin(k * lt), torch.cos(k * lt)]
    return torch.cat(parts, dim=-1)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"strategic memory: {name} must be an int >= 1, got {value!r}")
    return value

__all__ = ["TIME_FEATURES", "time_features"]
