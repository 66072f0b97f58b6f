"""Policies: observation encoders, action heads, and the recurrent actor-critic that joins them to a memory."""

from .distributions import ActionDist, ActionHead, CriticHead, make_action_head
from .encoders import ObservationEncoder, flat_dim, preprocess
from .policy import PolicyConfig, RecurrentActorCritic

__all__ = [
    "ActionDist",
    "ActionHead",
    "CriticHead",
    "ObservationEncoder",
    "PolicyConfig",
    "RecurrentActorCritic",
    "flat_dim",
    "make_action_head",
    "preprocess",
]
