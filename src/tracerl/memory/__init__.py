"""Memory cores under one contract (see :mod:`tracerl.memory.base`) and their registry."""

from .base import MemoryCore, State, StateSpec, TensorSpec, state_detach, state_index, state_to
from .mlp import MLPCore
from .registry import available_memories, make_memory, register_memory
from .rnn import GRUCore, LSTMCore

register_memory("gru", GRUCore)
register_memory("lstm", LSTMCore)
register_memory("mlp", MLPCore)

__all__ = [
    "GRUCore",
    "LSTMCore",
    "MLPCore",
    "MemoryCore",
    "State",
    "StateSpec",
    "TensorSpec",
    "available_memories",
    "make_memory",
    "register_memory",
    "state_detach",
    "state_index",
    "state_to",
]
