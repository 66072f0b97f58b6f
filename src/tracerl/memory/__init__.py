"""Memory cores under one contract (see :mod:`tracerl.memory.base`) and their registry.

Every module of this package that defines a core registers it at import (``register_memory(name,
factory)`` at its bottom); this ``__init__`` imports every module, so adding a core is adding a file.
A factory is called as ``factory(input_dim=..., hidden_size=..., num_layers=..., **memory_kwargs)``.
"""

import importlib
import pkgutil

from .base import (MemoryCore, State, StateSpec, TensorSpec, Trace, TrainingInputs, describe_memory, memory_cores,
                   state_detach, state_index, state_to)
from .mlp import MLPCore
from .registry import available_memories, make_memory, memory_input_form, memory_is_stateless, register_memory
from .rnn import GRUCore, LSTMCore

_INFRASTRUCTURE = {"base", "registry", "packing", "scan"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "GRUCore",
    "LSTMCore",
    "MLPCore",
    "MemoryCore",
    "State",
    "StateSpec",
    "TensorSpec",
    "Trace",
    "TrainingInputs",
    "available_memories",
    "describe_memory",
    "make_memory",
    "memory_cores",
    "memory_input_form",
    "memory_is_stateless",
    "register_memory",
    "state_detach",
    "state_index",
    "state_to",
]
