"""Observation encoding: gymnasium observations -> one flat float tensor -> MLP features.

Two steps, kept separate so rollout code can preprocess once and store flat tensors:

* :func:`preprocess` turns a batch of raw observations (numpy arrays, python numbers/lists or
  torch tensors, with any leading batch dims ``lead``; for ``Dict``/``Tuple`` spaces a dict/tuple
  of such batches) into ``Tensor[*lead, flat_dim(space)]`` float32. Leading dims are inferred from
  the trailing ``space.shape``, so time-major ``[T, B, *space.shape]`` batches work as they are.
* :class:`ObservationEncoder` is an MLP ``Tensor[..., input_dim] -> Tensor[..., output_dim]``.

Encoding per space (``lead`` = leading dims):

=================== ============================================ ===========================
space               input batch                                  flat encoding
=================== ============================================ ===========================
Box(shape)          ``[*lead, *shape]`` any numeric dtype        float32 cast, flattened
Discrete(n, start)  ``[*lead]`` integers                         one-hot of ``x - start``
MultiDiscrete(nvec) ``[*lead, *nvec.shape]`` integers            concatenated one-hots
MultiBinary(n)      ``[*lead, *shape]`` 0/1                      float32, flattened
Tuple / Dict        tuple / mapping of child batches             concatenation of children
=================== ============================================ ===========================

``Dict`` children are concatenated in the space's own key order (``space.spaces``). Every other
space raises :class:`~tracerl.errors.UnsupportedSpaceError` naming the space and its path inside
the observation (e.g. ``obs['sensors'][1]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from tracerl.errors import ConfigError, UnsupportedSpaceError
from tracerl.policies.init import orthogonal_init

__all__ = ["flat_dim", "preprocess", "ObservationEncoder"]

_ROOT = "obs"
_SUPPORTED = "Box, Discrete, MultiDiscrete, MultiBinary, and Tuple/Dict of these"


def _child_path(path: str, key: Any) -> str:
    return f"{path}[{key!r}]"


def _unsupported(space: Any, path: str, why: str = "") -> UnsupportedSpaceError:
    detail = f" ({why})" if why else ""
    return UnsupportedSpaceError(
        f"cannot encode observation space {space!r} at {path}{detail}; supported spaces: {_SUPPORTED}"
    )


def _prod(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _flat_dim(space: Any, path: str) -> int:
    if isinstance(space, spaces.Box):
        return _prod(space.shape)
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.asarray(space.nvec, dtype=np.int64).sum())
    if isinstance(space, spaces.MultiBinary):
        return _prod(space.shape)
    if isinstance(space, spaces.Tuple):
        if len(space.spaces) == 0:
            raise _unsupported(space, path, "empty Tuple: nothing to encode")
        return sum(_flat_dim(s, _child_path(path, i)) for i, s in enumerate(space.spaces))
    if isinstance(space, spaces.Dict):
        if len(space.spaces) == 0:
            raise _unsupported(space, path, "empty Dict: nothing to encode")
        return sum(_flat_dim(s, _child_path(path, k)) for k, s in space.spaces.items())
    raise _unsupported(space, path)


def flat_dim(space: spaces.Space[Any]) -> int:
    """Length of the flat float encoding of one observation of ``space``.

    Raises:
        UnsupportedSpaceError: ``space`` (or a nested sub-space) cannot be encoded; the message
            names the space and its path.
    """
    return _flat_dim(space, _ROOT)


def _as_tensor(obs: Any, dtype: torch.dtype, np_dtype: type[np.generic], device: torch.device | None) -> Tensor:
    """Convert ``obs`` (tensor, array, number, nested list) to a ``dtype`` tensor on ``device``.

    Tensors keep their device unless ``device`` is given; everything else lands on ``device`` (or CPU).
    """
    if isinstance(obs, Tensor):
        return obs.to(device=device if device is not None else obs.device, dtype=dtype)
    arr = np.asarray(obs)
    if arr.dtype == object:
        raise TypeError(f"observation has object dtype and cannot be converted to a tensor: {obs!r}")
    arr = arr.astype(np_dtype, copy=False)
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, dtype=np_dtype, order="C")
    return torch.from_numpy(arr).to(device=device)


def _split_lead(x: Tensor, shape: tuple[int, ...], space: Any, path: str) -> tuple[int, ...]:
    """Leading dims of ``x`` given that its trailing dims must equal ``shape``."""
    k = len(shape)
    if x.dim() < k or tuple(x.shape[x.dim() - k :]) != tuple(shape):
        raise ValueError(
            f"observation at {path} has shape {tuple(x.shape)}, expected [*lead, *{tuple(shape)}] for {space!r}"
        )
    return tuple(x.shape[: x.dim() - k])


def _check_range(idx: Tensor, n: Tensor | int, space: Any, path: str) -> None:
    if idx.numel() == 0:
        return
    bad = (idx < 0) | (idx >= n)
    if bool(bad.any()):
        raise ValueError(f"observation at {path} has values outside {space!r}")


def _encode(space: Any, obs: Any, path: str, device: torch.device | None) -> Tensor:
    """Encode one (sub-)observation batch into ``Tensor[*lead, _flat_dim(space)]``."""
    if isinstance(space, spaces.Box):
        x = _as_tensor(obs, torch.float32, np.float32, device)
        lead = _split_lead(x, space.shape, space, path)
        return x.reshape(*lead, _prod(space.shape))

    if isinstance(space, spaces.Discrete):
        x = _as_tensor(obs, torch.int64, np.int64, device)
        n = int(space.n)
        idx = x - int(space.start)
        _check_range(idx, n, space, path)
        out = torch.zeros(*x.shape, n, dtype=torch.float32, device=x.device)
        return out.scatter_(-1, idx.unsqueeze(-1), 1.0)

    if isinstance(space, spaces.MultiDiscrete):
        x = _as_tensor(obs, torch.int64, np.int64, device)
        lead = _split_lead(x, space.shape, space, path)
        nvec = torch.as_tensor(np.asarray(space.nvec, dtype=np.int64).reshape(-1), device=x.device)
        start = torch.as_tensor(np.asarray(space.start, dtype=np.int64).reshape(-1), device=x.device)
        idx = x.reshape(*lead, nvec.numel()) - start
        _check_range(idx, nvec, space, path)
        offsets = torch.cumsum(nvec, 0) - nvec
        out = torch.zeros(*lead, int(nvec.sum()), dtype=torch.float32, device=x.device)
        return out.scatter_(-1, idx + offsets, 1.0)

    if isinstance(space, spaces.MultiBinary):
        x = _as_tensor(obs, torch.float32, np.float32, device)
        lead = _split_lead(x, space.shape, space, path)
        return x.reshape(*lead, _prod(space.shape))

    if isinstance(space, (spaces.Tuple, spaces.Dict)):
        if isinstance(space, spaces.Tuple):
            if not isinstance(obs, (tuple, list)) or len(obs) != len(space.spaces):
                raise ValueError(
                    f"observation at {path} must be a tuple of {len(space.spaces)} batches for {space!r}, "
                    f"got {type(obs).__name__}"
                )
            items = [(_child_path(path, i), s, o) for i, (s, o) in enumerate(zip(space.spaces, obs))]
        else:
            if not isinstance(obs, Mapping):
                raise ValueError(f"observation at {path} must be a mapping for {space!r}, got {type(obs).__name__}")
            missing = [k for k in space.spaces if k not in obs]
            if missing:
                raise ValueError(f"observation at {path} is missing keys {missing} of {space!r}")
            items = [(_child_path(path, k), s, obs[k]) for k, s in space.spaces.items()]
        if not items:
            raise _unsupported(space, path, "empty composite space: nothing to encode")
        parts = [_encode(s, o, p, device) for p, s, o in items]
        lead0 = parts[0].shape[:-1]
        for (p, _, _), part in zip(items, parts):
            if part.shape[:-1] != lead0:
                raise ValueError(
                    f"leading dims disagree inside {path}: {items[0][0]} has {tuple(lead0)}, "
                    f"{p} has {tuple(part.shape[:-1])}"
                )
        return torch.cat(parts, dim=-1)

    raise _unsupported(space, path)


def preprocess(space: spaces.Space[Any], obs: Any, device: torch.device | str | None = None) -> Tensor:
    """Encode a batch of observations of ``space`` into one flat float32 tensor.

    Args:
        space: the observation space.
        obs: a batch with leading dims ``lead`` (``()`` for a single observation) followed by the
            space's own shape; a tuple/list (``Tuple``) or mapping (``Dict``) of such batches for
            composite spaces. numpy arrays, python numbers/lists and torch tensors are accepted.
        device: where the result goes. ``None`` keeps a tensor input's device, CPU otherwise.

    Returns:
        ``Tensor[*lead, flat_dim(space)]``, float32. Vectorized over the batch.

    Raises:
        UnsupportedSpaceError: a (sub-)space cannot be encoded (named with its path).
        ValueError: the batch's shape or values do not match the space (named with the path).
    """
    _flat_dim(space, _ROOT)  # reject unsupported (sub-)spaces before looking at the data
    dev = torch.device(device) if device is not None else None
    return _encode(space, obs, _ROOT, dev)


class ObservationEncoder(nn.Module):
    """MLP over preprocessed observations: ``Tensor[..., input_dim] -> Tensor[..., output_dim]``.

    Each entry of ``hidden_sizes`` adds ``Linear + activation`` (orthogonal init, gain sqrt(2),
    zero bias). With ``hidden_sizes=()`` the encoder is the identity and ``output_dim == input_dim``.

    Attributes:
        space: the observation space.
        input_dim: ``flat_dim(space)``.
        output_dim: ``hidden_sizes[-1]``, or ``input_dim`` when ``hidden_sizes`` is empty.
    """

    def __init__(
        self,
        space: spaces.Space[Any],
        hidden_sizes: Sequence[int] = (64,),
        activation: type[nn.Module] = nn.Tanh,
    ) -> None:
        super().__init__()
        sizes = tuple(hidden_sizes)
        for h in sizes:
            if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h <= 0:
                raise ConfigError(f"hidden_sizes must be positive integers, got hidden_sizes={hidden_sizes!r}")
        self.space = space
        self.input_dim = flat_dim(space)
        self.hidden_sizes = tuple(int(h) for h in sizes)
        layers: list[nn.Module] = []
        last = self.input_dim
        for h in self.hidden_sizes:
            layers.append(orthogonal_init(nn.Linear(last, h), gain=float(np.sqrt(2.0))))
            layers.append(activation())
            last = h
        self.output_dim = last
        self.net: nn.Module = nn.Sequential(*layers) if layers else nn.Identity()

    def preprocess(self, obs: Any, device: torch.device | str | None = None) -> Tensor:
        """:func:`preprocess` with this encoder's space; ``device`` defaults to the parameters' device
        (CPU for the identity encoder). Returns ``Tensor[*lead, input_dim]``."""
        if device is None:
            param = next(self.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
        return preprocess(self.space, obs, device)

    def forward(self, flat: Tensor) -> Tensor:
        """``flat: Tensor[..., input_dim]`` -> ``Tensor[..., output_dim]``."""
        return self.net(flat)
