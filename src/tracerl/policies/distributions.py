"""Action heads: features -> action distributions, for PPO-style algorithms.

An :class:`ActionHead` maps ``features: Tensor[..., in_dim]`` to an :class:`ActionDist` over
*raw* actions, the form stored in rollouts. Leading dims are arbitrary (time-major ``[T, B]``
in training). Per action space:

=============== ===================== ========================== ==================================
space           raw (shape, dtype)    distribution               action_features
=============== ===================== ========================== ==================================
Discrete(n)     ``()`` int64          Categorical(logits)        one-hot, ``n``
MultiDiscrete   ``(k,)`` int64        k independent Categoricals concatenated one-hots, ``sum(nvec)``
Box             ``(d,)`` float32      diagonal Gaussian          raw (``tanh(raw)`` if squashed), ``d``
MultiBinary     ``(n,)`` float32      n independent Bernoullis   raw as float, ``n``
=============== ===================== ========================== ==================================

Raw actions are indices without ``start`` (Discrete/MultiDiscrete), or the *unsquashed* Gaussian
sample (Box). :meth:`ActionHead.to_env` turns a batch of raw actions into env actions.

The distributions are hand-written (no argument validation, no ``torch.distributions`` object
construction per step); tests check them against ``torch.distributions``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from tracerl.errors import ConfigError, UnsupportedSpaceError
from tracerl.policies.init import orthogonal_init

__all__ = [
    "ActionDist",
    "CategoricalDist",
    "MultiCategoricalDist",
    "DiagGaussianDist",
    "BernoulliDist",
    "ActionHead",
    "DiscreteHead",
    "MultiDiscreteHead",
    "GaussianHead",
    "MultiBinaryHead",
    "CriticHead",
    "make_action_head",
]

POLICY_OUT_GAIN = 0.01
"""Gain of the orthogonal init of action output layers: a near-uniform / zero-mean initial policy."""

SQUASH_EPS = 1e-6
"""Added inside ``log(1 - tanh(u)^2 + eps)`` in the squashed log-density, to stay finite when tanh saturates."""

_PAD_LOGIT = -1e9
"""Logit of the padding categories of :class:`MultiCategoricalDist` (probability exactly 0, but finite)."""

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _sample_categorical(logits: Tensor) -> Tensor:
    """One index per row of ``logits[..., n]`` -> ``Tensor[...]`` int64."""
    probs = torch.softmax(logits.detach(), dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1).reshape(probs.shape[:-1])


def _categorical_entropy(log_probs: Tensor) -> Tensor:
    """Entropy of normalized ``log_probs[..., n]`` -> ``Tensor[...]``; 0 * log 0 counts as 0."""
    safe = log_probs.clamp(min=torch.finfo(log_probs.dtype).min)
    return -(safe.exp() * safe).sum(-1)


class ActionDist(abc.ABC):
    """A batch of action distributions with batch shape ``lead`` over raw actions ``[*lead, *raw_shape]``."""

    @abc.abstractmethod
    def sample(self) -> Tensor:
        """A random raw action ``Tensor[*lead, *raw_shape]`` (no gradient)."""

    @abc.abstractmethod
    def mode(self) -> Tensor:
        """The deterministic raw action ``Tensor[*lead, *raw_shape]`` (argmax / mean)."""

    @abc.abstractmethod
    def log_prob(self, raw: Tensor) -> Tensor:
        """Log-density of ``raw: Tensor[*lead, *raw_shape]``, summed over action dims -> ``Tensor[*lead]``."""

    @abc.abstractmethod
    def entropy(self) -> Tensor:
        """Entropy summed over action dims -> ``Tensor[*lead]``."""


class CategoricalDist(ActionDist):
    """Categorical over ``n`` actions from unnormalized ``logits: Tensor[*lead, n]``; raw ``Tensor[*lead]`` int64."""

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)

    def sample(self) -> Tensor:
        return _sample_categorical(self.logits)

    def mode(self) -> Tensor:
        return self.logits.argmax(dim=-1)

    def log_prob(self, raw: Tensor) -> Tensor:
        return self.logits.gather(-1, raw.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        return _categorical_entropy(self.logits)


def multi_categorical_layout(nvec: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Index ``[k, max_n]`` into back-to-back logits, and the mask ``[k, max_n]`` of padding slots."""
    sizes = [int(n) for n in nvec]
    max_n = max(sizes)
    offsets = np.cumsum([0, *sizes[:-1]])
    cols = np.arange(max_n)
    pad = cols[None, :] >= np.asarray(sizes)[:, None]
    index = np.where(pad, 0, offsets[:, None] + cols[None, :])
    return torch.as_tensor(index, dtype=torch.int64), torch.as_tensor(pad)


class MultiCategoricalDist(ActionDist):
    """Independent Categoricals with sizes ``nvec`` (k components).

    ``logits: Tensor[*lead, sum(nvec)]`` holds the components' logits back to back. They are
    gathered into a padded ``[*lead, k, max(nvec)]`` block (padding logit ``-1e9``, probability 0)
    so every operation is one vectorized call. Raw actions are ``Tensor[*lead, k]`` int64;
    ``log_prob`` and ``entropy`` are summed over the k components.
    """

    def __init__(self, logits: Tensor, gather_index: Tensor, pad_mask: Tensor) -> None:
        """``gather_index``/``pad_mask``: ``[k, max_n]`` from :func:`multi_categorical_layout`."""
        padded = logits[..., gather_index].masked_fill(pad_mask, _PAD_LOGIT)
        self.logits = padded - padded.logsumexp(dim=-1, keepdim=True)

    def sample(self) -> Tensor:
        return _sample_categorical(self.logits)

    def mode(self) -> Tensor:
        return self.logits.argmax(dim=-1)

    def log_prob(self, raw: Tensor) -> Tensor:
        return self.logits.gather(-1, raw.long().unsqueeze(-1)).squeeze(-1).sum(-1)

    def entropy(self) -> Tensor:
        return _categorical_entropy(self.logits).sum(-1)


class DiagGaussianDist(ActionDist):
    """Diagonal Gaussian over raw actions ``Tensor[*lead, d]`` float32, optionally tanh-squashed.

    ``mean: Tensor[*lead, d]``, ``log_std: Tensor[d]`` (broadcast over ``lead``). Raw actions are
    always the unsquashed Gaussian sample ``u``.

    Squashed (``half_range`` given): the env action is ``a = center + half_range * tanh(u)`` and
    ``log_prob(u)`` is the log-density of ``a``::

        log N(u; mean, std) - sum log(1 - tanh(u)^2 + 1e-6) - sum log(half_range)

    The last term is constant in the parameters (it does not change PPO ratios or gradients) and
    makes the value a true density of the env action, up to the ``1e-6`` stabilizer. ``entropy``
    is the entropy of the *pre-squash* Gaussian, the usual approximation (the squashed entropy has
    no closed form).
    """

    def __init__(self, mean: Tensor, log_std: Tensor, half_range: Tensor | None = None) -> None:
        self.mean = mean
        self.log_std = log_std
        self.half_range = half_range

    @property
    def std(self) -> Tensor:
        return self.log_std.exp()

    def sample(self) -> Tensor:
        with torch.no_grad():
            return self.mean + self.std * torch.randn_like(self.mean)

    def mode(self) -> Tensor:
        return self.mean.detach().clone()

    def log_prob(self, raw: Tensor) -> Tensor:
        z = (raw - self.mean) * torch.exp(-self.log_std)
        logp = (-0.5 * z.square() - self.log_std - _HALF_LOG_2PI).sum(-1)
        if self.half_range is not None:
            t = torch.tanh(raw)
            logp = logp - torch.log(1.0 - t.square() + SQUASH_EPS).sum(-1) - self.half_range.log().sum()
        return logp

    def entropy(self) -> Tensor:
        per_dim = 0.5 + _HALF_LOG_2PI + self.log_std
        return per_dim.sum(-1).expand(self.mean.shape[:-1])


class BernoulliDist(ActionDist):
    """Independent Bernoullis from ``logits: Tensor[*lead, n]``; raw ``Tensor[*lead, n]`` float32 in {0, 1}."""

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits

    def sample(self) -> Tensor:
        with torch.no_grad():
            return (torch.rand_like(self.logits) < torch.sigmoid(self.logits)).to(torch.float32)

    def mode(self) -> Tensor:
        return (self.logits.detach() > 0).to(torch.float32)

    def log_prob(self, raw: Tensor) -> Tensor:
        return -F.binary_cross_entropy_with_logits(self.logits, raw.to(self.logits.dtype), reduction="none").sum(-1)

    def entropy(self) -> Tensor:
        p = torch.sigmoid(self.logits)
        return -(p * F.logsigmoid(self.logits) + (1.0 - p) * F.logsigmoid(-self.logits)).sum(-1)


class ActionHead(nn.Module, abc.ABC):
    """Maps ``features: Tensor[..., in_dim]`` to an :class:`ActionDist`.

    Attributes:
        space: the action space.
        in_dim: feature size.
        raw_shape / raw_dtype: shape and dtype of one raw action as stored in a rollout.
        action_feat_dim: size of :meth:`action_features`.
    """

    space: spaces.Space[Any]
    in_dim: int
    raw_shape: tuple[int, ...]
    raw_dtype: torch.dtype
    action_feat_dim: int

    @abc.abstractmethod
    def forward(self, features: Tensor) -> ActionDist:
        """``features: Tensor[*lead, in_dim]`` -> distribution with batch shape ``lead``."""

    @abc.abstractmethod
    def to_env(self, raw: Tensor) -> np.ndarray:
        """Raw actions ``Tensor[*lead, *raw_shape]`` -> env actions ``np.ndarray[*lead, *space.shape]``."""

    @abc.abstractmethod
    def action_features(self, raw: Tensor) -> Tensor:
        """Raw actions ``Tensor[*lead, *raw_shape]`` -> float ``Tensor[*lead, action_feat_dim]``
        (e.g. to feed the previous action into a memory)."""


def _to_numpy(raw: Tensor) -> np.ndarray:
    return raw.detach().cpu().numpy()


class DiscreteHead(ActionHead):
    """Head for ``Discrete(n, start)``: ``Linear(in_dim, n)`` logits -> :class:`CategoricalDist`."""

    def __init__(self, space: spaces.Discrete, in_dim: int) -> None:
        super().__init__()
        self.space = space
        self.in_dim = in_dim
        self.n = int(space.n)
        self.start = int(space.start)
        self.raw_shape = ()
        self.raw_dtype = torch.int64
        self.action_feat_dim = self.n
        self.logits = orthogonal_init(nn.Linear(in_dim, self.n), POLICY_OUT_GAIN)

    def forward(self, features: Tensor) -> CategoricalDist:
        return CategoricalDist(self.logits(features))

    def to_env(self, raw: Tensor) -> np.ndarray:
        return (_to_numpy(raw).astype(np.int64) + self.start).astype(self.space.dtype)

    def action_features(self, raw: Tensor) -> Tensor:
        return F.one_hot(raw.long(), self.n).to(torch.float32)


class MultiDiscreteHead(ActionHead):
    """Head for ``MultiDiscrete(nvec, start)`` (any nvec shape, flattened to k components):
    ``Linear(in_dim, sum(nvec))`` -> :class:`MultiCategoricalDist`."""

    def __init__(self, space: spaces.MultiDiscrete, in_dim: int) -> None:
        super().__init__()
        self.space = space
        self.in_dim = in_dim
        nvec = np.asarray(space.nvec, dtype=np.int64).reshape(-1)
        self.nvec = tuple(int(n) for n in nvec)
        self.start = np.asarray(space.start, dtype=np.int64).reshape(-1)
        self.raw_shape = (len(self.nvec),)
        self.raw_dtype = torch.int64
        self.action_feat_dim = int(nvec.sum())
        index, pad = multi_categorical_layout(self.nvec)
        self.register_buffer("gather_index", index, persistent=False)
        self.register_buffer("pad_mask", pad, persistent=False)
        self.register_buffer("offsets", torch.as_tensor(np.cumsum(nvec) - nvec), persistent=False)
        self.logits = orthogonal_init(nn.Linear(in_dim, self.action_feat_dim), POLICY_OUT_GAIN)

    def forward(self, features: Tensor) -> MultiCategoricalDist:
        return MultiCategoricalDist(self.logits(features), self.gather_index, self.pad_mask)

    def to_env(self, raw: Tensor) -> np.ndarray:
        a = _to_numpy(raw).astype(np.int64) + self.start
        return a.reshape(*a.shape[:-1], *self.space.shape).astype(self.space.dtype)

    def action_features(self, raw: Tensor) -> Tensor:
        idx = raw.long() + self.offsets
        out = torch.zeros(*raw.shape[:-1], self.action_feat_dim, dtype=torch.float32, device=raw.device)
        return out.scatter_(-1, idx, 1.0)


class GaussianHead(ActionHead):
    """Head for ``Box`` actions (flattened to d dims): ``Linear(in_dim, d)`` mean and a
    state-independent learnable ``log_std: Parameter[d]`` -> :class:`DiagGaussianDist`.

    Unsquashed: ``to_env`` clips the raw sample to ``[low, high]``. Squashed (finite bounds only):
    ``to_env`` maps ``u`` to ``low + (tanh(u) + 1) / 2 * (high - low)`` and ``log_prob`` includes
    the tanh and affine change of variables (see :class:`DiagGaussianDist`).
    """

    def __init__(self, space: spaces.Box, in_dim: int, squash: bool = False, log_std_init: float = 0.0) -> None:
        super().__init__()
        self.space = space
        self.in_dim = in_dim
        self.squash = bool(squash)
        d = int(np.prod(space.shape, dtype=np.int64))
        self.raw_shape = (d,)
        self.raw_dtype = torch.float32
        self.action_feat_dim = d
        self._low = np.asarray(space.low, dtype=np.float64).reshape(-1)
        self._high = np.asarray(space.high, dtype=np.float64).reshape(-1)
        half = torch.as_tensor((self._high - self._low) / 2.0, dtype=torch.float32)
        self.register_buffer("half_range", half, persistent=False)
        self.mean = orthogonal_init(nn.Linear(in_dim, d), POLICY_OUT_GAIN)
        self.log_std = nn.Parameter(torch.full((d,), float(log_std_init)))

    def forward(self, features: Tensor) -> DiagGaussianDist:
        return DiagGaussianDist(self.mean(features), self.log_std, self.half_range if self.squash else None)

    def to_env(self, raw: Tensor) -> np.ndarray:
        u = _to_numpy(raw).astype(np.float64)
        if self.squash:
            a = self._low + (np.tanh(u) + 1.0) / 2.0 * (self._high - self._low)
        else:
            a = u
        a = np.clip(a, self._low, self._high)
        if np.issubdtype(self.space.dtype, np.integer):
            a = np.rint(a)
        return a.reshape(*a.shape[:-1], *self.space.shape).astype(self.space.dtype)

    def action_features(self, raw: Tensor) -> Tensor:
        raw = raw.to(torch.float32)
        return torch.tanh(raw) if self.squash else raw


class MultiBinaryHead(ActionHead):
    """Head for ``MultiBinary`` (any shape, flattened to n): ``Linear(in_dim, n)`` logits ->
    :class:`BernoulliDist`. Raw actions are float32 0/1; ``to_env`` gives int8 in the space's shape."""

    def __init__(self, space: spaces.MultiBinary, in_dim: int) -> None:
        super().__init__()
        self.space = space
        self.in_dim = in_dim
        n = int(np.prod(space.shape, dtype=np.int64))
        self.raw_shape = (n,)
        self.raw_dtype = torch.float32
        self.action_feat_dim = n
        self.logits = orthogonal_init(nn.Linear(in_dim, n), POLICY_OUT_GAIN)

    def forward(self, features: Tensor) -> BernoulliDist:
        return BernoulliDist(self.logits(features))

    def to_env(self, raw: Tensor) -> np.ndarray:
        a = np.rint(_to_numpy(raw)).astype(self.space.dtype)
        return a.reshape(*a.shape[:-1], *self.space.shape)

    def action_features(self, raw: Tensor) -> Tensor:
        return raw.to(torch.float32)


class CriticHead(nn.Module):
    """Value head: ``Tensor[..., in_dim] -> Tensor[...]`` via ``Linear(in_dim, 1)`` (orthogonal, gain 1)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.value = orthogonal_init(nn.Linear(in_dim, 1), 1.0)

    def forward(self, features: Tensor) -> Tensor:
        return self.value(features).squeeze(-1)


def make_action_head(
    space: spaces.Space[Any], in_dim: int, squash: bool = False, log_std_init: float = 0.0
) -> ActionHead:
    """Build the action head for ``space`` on features of size ``in_dim``.

    Args:
        space: Discrete, MultiDiscrete, Box or MultiBinary.
        in_dim: feature size (> 0).
        squash: tanh-squash Box actions into their bounds (Box with finite bounds only).
        log_std_init: initial value of the Box head's ``log_std`` (ignored otherwise).

    Raises:
        UnsupportedSpaceError: any other action space (named in the message).
        ConfigError (a ValueError): ``squash=True`` with a non-Box space or a Box with an infinite
            bound; ``in_dim`` not positive.
    """
    if isinstance(in_dim, bool) or not isinstance(in_dim, (int, np.integer)) or in_dim <= 0:
        raise ConfigError(f"in_dim must be a positive integer, got in_dim={in_dim!r}")
    in_dim = int(in_dim)
    if isinstance(space, spaces.Box):
        if squash and not space.is_bounded("both"):
            raise ConfigError(
                f"squash=True needs finite action bounds, but {space!r} has an infinite bound; "
                "use squash=False (actions are then clipped)"
            )
        return GaussianHead(space, in_dim, squash=squash, log_std_init=log_std_init)
    if not isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        raise UnsupportedSpaceError(
            f"cannot act in action space {space!r}; supported: Discrete, MultiDiscrete, Box, MultiBinary"
        )
    if squash:
        raise ConfigError(f"squash=True is only valid for Box action spaces, got {space!r}")
    if isinstance(space, spaces.Discrete):
        return DiscreteHead(space, in_dim)
    if isinstance(space, spaces.MultiDiscrete):
        return MultiDiscreteHead(space, in_dim)
    return MultiBinaryHead(space, in_dim)
