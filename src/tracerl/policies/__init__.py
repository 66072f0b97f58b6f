"""Policies: observation encoders, action heads, and the recurrent actor-critic that joins them to a memory."""

from .distributions import ActionDist, ActionHead, CriticHead, make_action_head
from .encoders import ObservationEncoder, flat_dim, preprocess
from .policy import PolicyConfig, PolicyOutput, RecurrentActorCritic
from .strategic import StrategicMemoryTransformerPolicy

__all__ = [
    "ActionDist",
    "ActionHead",
    "CriticHead",
    "ObservationEncoder",
    "PolicyConfig",
    "PolicyOutput",
    "RecurrentActorCritic",
    "StrategicMemoryTransformerPolicy",
    "flat_dim",
    "make_action_head",
    "preprocess",
]
