"""Auxiliary losses on memory features, pluggable through ``TraceRL(aux_modules=[...])``.

A module reads the memory features ``[T, B, feat_dim]`` of a training pass plus the rollout's batch and
returns a scalar loss; the trainer adds ``coef * loss`` to the PPO loss (logged as
``rollout/aux_loss_mean``), so the memory is shaped to hold what the module asks for.

Write your own by subclassing :class:`AuxModule`::

    class NextRewardAux(AuxModule):
        def __init__(self, feat_dim, coef=0.1):
            super().__init__(feat_dim, coef)
            self.head = nn.Linear(feat_dim, 1)
        def loss(self, features, batch, mask):
            err = (self.head(features).squeeze(-1) - batch["env_reward"]) ** 2
            return (err * mask).sum() / mask.sum().clamp_min(1)

The batch holds ``obs`` [T, B, obs_dim], ``action``, ``env_reward`` [T, B] (the env's reward before any
normalization or bootstrap), ``episode_start`` [T, B] and ``info/<key>`` [T, B] for every key listed
in ``info_keys`` (the collector records ``infos[key]`` of the episode each step belongs to).
To be rebuilt from a checkpoint, a module must be registered (:func:`register_aux_module`) and
report its constructor arguments in :meth:`AuxModule.config`.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_checks import NON_NEGATIVE, Range, check_value
from ..errors import ConfigError


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


class AuxModule(nn.Module, metaclass=abc.ABCMeta):
    """Base class of auxiliary losses.

    Args:
        feat_dim: width of the memory features it reads (the core's ``output_dim``).
        coef: weight of its loss in the total loss.
    """

    info_keys: tuple[str, ...] = ()
    """Per-step ``infos`` entries this module needs, recorded as ``batch["info/<key>"]``."""

    def __init__(self, feat_dim: int, coef: float = 0.1) -> None:
        super().__init__()
        check_value(type(self).__name__, "feat_dim", feat_dim, int, Range(1, 65536))
        check_value(type(self).__name__, "coef", coef, float, NON_NEGATIVE)
        self.feat_dim = feat_dim
        self.coef = float(coef)

    @abc.abstractmethod
    def loss(self, features: Tensor, batch: Mapping[str, Tensor], mask: Tensor) -> Tensor:
        """Scalar loss from ``features`` ``[T, B, feat_dim]``, the batch and ``mask`` ``[T, B]`` (1 on real steps)."""

    def config(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this module (stored in checkpoints)."""
        return {"feat_dim": self.feat_dim, "coef": self.coef}


class CueAuxModule(AuxModule):
    """Predict the class of a hidden variable of the episode (default: ``info["cue"]``, the cue shown at
    its first step) from the current memory features: cross-entropy of a linear classifier.

    Labels are ``infos[info_key]`` integers; negative values map to class 0 (so ``±1`` cues become 0/1).
    """

    def __init__(self, feat_dim: int, n_classes: int = 2, coef: float = 0.1, info_key: str = "cue") -> None:
        super().__init__(feat_dim, coef)
        check_value("CueAuxModule", "n_classes", n_classes, int, Range(2, 10_000))
        check_value("CueAuxModule", "info_key", info_key, str)
        self.n_classes = n_classes
        self.info_key = info_key
        self.info_keys = (info_key,)
        self.head = nn.Linear(feat_dim, n_classes)

    def labels(self, raw: Tensor) -> Tensor:
        return raw.long().clamp_min(0).clamp_max(self.n_classes - 1)

    def loss(self, features: Tensor, batch: Mapping[str, Tensor], mask: Tensor) -> Tensor:
        logits = self.head(features)
        target = self.labels(batch[f"info/{self.info_key}"])
        ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view_as(mask)
        return _masked_mean(ce, mask)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "n_classes": self.n_classes, "info_key": self.info_key}


class ConfidenceAuxModule(AuxModule):
    """Predict whether the current action will be rewarded (env reward > 0) from the memory features and
    the action taken: binary cross-entropy of a small MLP on ``[features; action features]``."""

    def __init__(self, feat_dim: int, coef: float = 0.1, hidden: int = 32) -> None:
        super().__init__(feat_dim, coef)
        check_value("ConfidenceAuxModule", "hidden", hidden, int, Range(1, 65536))
        self.hidden = hidden
        self.action_encoder: Callable[[Tensor], Tensor] | None = None
        self.net: nn.Module | None = None

    def bind(self, action_features: Callable[[Tensor], Tensor], action_dim: int) -> None:
        """Called by the trainer once the action encoding is known (its width decides the network's input)."""
        self.action_encoder = action_features
        self.net = nn.Sequential(nn.Linear(self.feat_dim + action_dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 1))

    def loss(self, features: Tensor, batch: Mapping[str, Tensor], mask: Tensor) -> Tensor:
        if self.net is None or self.action_encoder is None:
            raise RuntimeError("ConfidenceAuxModule.bind() must be called before loss() (TraceRL does it)")
        x = torch.cat([features, self.action_encoder(batch["action"])], dim=-1)
        logit = self.net(x).squeeze(-1)
        target = (batch["env_reward"] > 0).to(logit.dtype)
        return _masked_mean(F.binary_cross_entropy_with_logits(logit, target, reduction="none"), mask)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "hidden": self.hidden}


_AUX_REGISTRY: dict[str, type[AuxModule]] = {}


def register_aux_module(cls: type[AuxModule]) -> type[AuxModule]:
    """Make ``cls`` rebuildable from checkpoints by its class name (usable as a decorator)."""
    _AUX_REGISTRY[cls.__name__] = cls
    return cls


register_aux_module(CueAuxModule)
register_aux_module(ConfidenceAuxModule)


def aux_module_from_json(d: Mapping[str, Any]) -> AuxModule:
    """Rebuild a module from ``{"name": class name, "config": kwargs}`` (registered classes only)."""
    name = d.get("name")
    if name not in _AUX_REGISTRY:
        raise ConfigError(f"unknown auxiliary module {name!r}; registered: {', '.join(sorted(_AUX_REGISTRY))}")
    return _AUX_REGISTRY[name](**dict(d.get("config", {})))


def aux_module_to_json(module: AuxModule) -> dict[str, Any]:
    return {"name": type(module).__name__, "config": module.config()}


__all__ = ["AuxModule", "ConfidenceAuxModule", "CueAuxModule", "aux_module_from_json", "aux_module_to_json",
           "register_aux_module"]
