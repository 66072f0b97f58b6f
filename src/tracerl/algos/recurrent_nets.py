"""Former home of the off-policy networks, kept so imports from it keep working: the torso is
:class:`tracerl.policies.torso.RecurrentTorso` (the one torso of every algorithm, :mod:`tracerl.policies.torso`),
the heads are in :mod:`tracerl.policies.heads`, the action codec in :mod:`tracerl.policies.action_codec`."""

from __future__ import annotations

from ..policies.action_codec import ActionCodec
from ..policies.heads import (LOG_STD_MAX, LOG_STD_MIN, ContinuousQ, DeterministicActor, DiscreteQ,
                              SquashedGaussianActor)
from ..policies.heads import mlp as _mlp  # noqa: F401  (the former private name)
from ..policies.torso import RecurrentTorso

__all__ = ["LOG_STD_MAX", "LOG_STD_MIN", "ActionCodec", "ContinuousQ", "DeterministicActor", "DiscreteQ",
           "RecurrentTorso", "SquashedGaussianActor"]
