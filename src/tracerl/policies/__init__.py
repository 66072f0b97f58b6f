"""Policies: the one network stack of every algorithm.

Observation encoders (:mod:`.encoders`), the torso that joins an encoder, the previous action and reward to a memory
core (:mod:`.torso`), the PPO family's action and critic heads (:mod:`.distributions`) and actor-critic
(:mod:`.policy`), the off-policy heads (:mod:`.heads`) on normalized actions (:mod:`.action_codec`), and the carry
between steps (:mod:`.carry`).
"""

from .action_codec import ActionCodec
from .config import PolicyConfig
from .distributions import ActionDist, ActionHead, CriticHead, make_action_head
from .encoders import ObservationEncoder, flat_dim, preprocess
from .heads import ContinuousQ, DeterministicActor, DiscreteQ, SquashedGaussianActor
from .policy import PolicyOutput, RecurrentActorCritic
from .strategic import StrategicMemoryTransformerPolicy
from .torso import RecurrentTorso, Torso

__all__ = [
    "ActionCodec",
    "ActionDist",
    "ActionHead",
    "ContinuousQ",
    "CriticHead",
    "DeterministicActor",
    "DiscreteQ",
    "ObservationEncoder",
    "PolicyConfig",
    "PolicyOutput",
    "RecurrentActorCritic",
    "RecurrentTorso",
    "SquashedGaussianActor",
    "StrategicMemoryTransformerPolicy",
    "Torso",
    "flat_dim",
    "make_action_head",
    "preprocess",
]
