"""Data for training: on-policy rollouts (:mod:`.rollout`), off-policy sequence replay with stored states
(:mod:`.replay`) and hindsight relabelling of replayed windows (:mod:`.her`)."""

from .her import GoalLayout, HindsightRelabeler
from .replay import ReplayTooSmallError, SequenceBatch, SequenceReplay
from .rollout import RolloutBuffer, RolloutCollector

__all__ = ["GoalLayout", "HindsightRelabeler", "ReplayTooSmallError", "RolloutBuffer", "RolloutCollector",
           "SequenceBatch", "SequenceReplay"]
