"""Memory cores by name: ``make_memory("gru", input_dim=8, hidden_size=64)``."""

from __future__ import annotations

from typing import Any, Callable

from ..errors import ConfigError
from .base import MemoryCore

MemoryFactory = Callable[..., MemoryCore]
_REGISTRY: dict[str, MemoryFactory] = {}


def register_memory(name: str, factory: MemoryFactory, *, overwrite: bool = False) -> None:
    """Make ``factory(input_dim=..., **kwargs)`` available as ``make_memory(name, ...)``."""
    if name in _REGISTRY and not overwrite:
        raise ConfigError(f"memory {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = factory


def available_memories() -> list[str]:
    """Names accepted by :func:`make_memory`, sorted."""
    return sorted(_REGISTRY)


def make_memory(name: str, input_dim: int, **kwargs: Any) -> MemoryCore:
    """Build the memory core registered as ``name`` for inputs of size ``input_dim``."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown memory {name!r}; valid: {', '.join(available_memories())}")
    return _REGISTRY[name](input_dim=input_dim, **kwargs)
