"""Behaviour cloning: the Decision Transformer's network and context without the return tokens.

``(s_1, a_1, s_2, a_2, ...)`` through the same causal transformer, trained with the same action loss on the same
windows, acting under the same ``predict`` API (:class:`~tracerl.offline.decision_transformer.SequencePolicy`,
``kind == "bc"``). It has the same memory (the last ``K`` steps) as DT, so the two differ only in return
conditioning. ``top_fraction < 1`` gives percentile behaviour cloning (%BC, Chen et al. 2021): cloning only the
best episodes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .dataset import TrajectoryDataset
from .decision_transformer import DTConfig
from .train import TrainResult, train_offline


def bc_config(config: DTConfig | None = None, **overrides: Any) -> DTConfig:
    """``config`` (default :class:`DTConfig`) with ``condition_on_return=False`` and ``overrides`` applied."""
    return replace(config or DTConfig(), condition_on_return=False, **overrides)


def train_bc(dataset: TrajectoryDataset, config: DTConfig | None = None, seed: int = 0, **overrides: Any) -> TrainResult:
    """Behaviour cloning on ``dataset`` (:func:`~tracerl.offline.train.train_offline` with :func:`bc_config`)."""
    return train_offline(dataset, bc_config(config, **overrides), seed=seed)


__all__ = ["bc_config", "train_bc"]
