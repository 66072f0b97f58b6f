"""Memory cores by name: ``make_memory("gru", input_dim=8, hidden_size=64)``."""

from __future__ import annotations

from typing import Any, Callable

from ..errors import ConfigError
from .base import InputForm, MemoryCore

MemoryFactory = Callable[..., MemoryCore]
_REGISTRY: dict[str, MemoryFactory] = {}
_INPUT_FORMS: dict[str, InputForm] = {}
_STATELESS: dict[str, bool] = {}


def register_memory(name: str, factory: MemoryFactory, *, overwrite: bool = False,
                    input_form: InputForm | None = None) -> None:
    """Make ``factory(input_dim=..., **kwargs)`` available as ``make_memory(name, ...)``.

    ``input_form`` declares what the cores it builds read (:data:`~tracerl.memory.base.InputForm`), so a network
    can size their input before building them (None: the factory's class attribute when it is a core class, else
    ``"features"``)."""
    if name in _REGISTRY and not overwrite:
        raise ConfigError(f"memory {name!r} is already registered (pass overwrite=True to replace it)")
    if input_form is not None and input_form not in ("features", "raw_steps"):
        raise ConfigError(f"input_form={input_form!r} is invalid: must be 'features' or 'raw_steps'")
    core_class = factory if isinstance(factory, type) and issubclass(factory, MemoryCore) else None
    if input_form is None:
        input_form = core_class.input_form if core_class is not None else "features"
    _REGISTRY[name] = factory
    _INPUT_FORMS[name] = input_form
    _STATELESS[name] = bool(core_class is not None and core_class.stateless)


def _check_known(name: str) -> None:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown memory {name!r}; valid: {', '.join(available_memories())}")


def memory_input_form(name: str) -> InputForm:
    """The declared input form of the cores registered as ``name`` (ConfigError for an unknown name)."""
    _check_known(name)
    return _INPUT_FORMS[name]


def memory_is_stateless(name: str) -> bool:
    """Whether the cores registered as ``name`` declare no state (:attr:`MemoryCore.stateless`; False for a factory
    that is not a core class). ConfigError for an unknown name."""
    _check_known(name)
    return _STATELESS[name]


def available_memories() -> list[str]:
    """Names accepted by :func:`make_memory`, sorted."""
    return sorted(_REGISTRY)


def make_memory(name: str, input_dim: int, **kwargs: Any) -> MemoryCore:
    """Build the memory core registered as ``name`` for inputs of size ``input_dim``."""
    _check_known(name)
    return _REGISTRY[name](input_dim=input_dim, **kwargs)
