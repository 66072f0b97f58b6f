"""Observation encoding: gymnasium observations -> one flat float tensor -> (CNN +) MLP features.

Two steps, kept separate so rollout code can preprocess once and store flat tensors:

* :func:`preprocess` turns a batch of raw observations (numpy arrays, python numbers/lists or
  torch tensors, with any leading batch dims ``lead``; for ``Dict``/``Tuple`` spaces a dict/tuple
  of such batches) into ``Tensor[*lead, flat_dim(space)]`` float32. Leading dims are inferred from
  the trailing ``space.shape``, so time-major ``[T, B, *space.shape]`` batches work as they are.
* :class:`ObservationEncoder` maps ``Tensor[..., input_dim] -> Tensor[..., output_dim]``: an MLP,
  with a small CNN (:class:`ImageCNN`) in front of every image leaf of the space (see below).

Images follow Stable-Baselines3's ``is_image_space`` conventions (:func:`is_image_space`): a 3-D
``uint8`` Box with low 0 and high 255 whose first or last axis has 1, 3 or 4 channels (CHW or HWC;
when both could be, the smallest axis is the channel axis, as SB3 decides). :func:`preprocess`
scales such leaves to ``[0, 1]`` (whatever network reads them) and keeps them flat in the space's
own layout, so buffers and replay store the same flat vector as for any other space; the encoder
cuts each image leaf back out of that vector and runs its CNN on it (``image_encoder="auto"``).
``image_encoder="cnn"`` also sends 3-D Boxes of other dtypes or bounds (e.g. float images already
in ``[0, 1]``) through a CNN, unscaled; ``"flat"`` uses no CNN (the scaled pixels go into the MLP).

Encoding per space (``lead`` = leading dims):

=================== ============================================ ===========================
space               input batch                                  flat encoding
=================== ============================================ ===========================
Box(shape)          ``[*lead, *shape]`` any numeric dtype        float32 cast, flattened
image Box (above)   ``[*lead, H, W, C]`` or ``[*lead, C, H, W]``  float32 ``/ 255``, flattened
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
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from tracerl.errors import ConfigError, UnsupportedSpaceError
from tracerl.policies.init import orthogonal_init

__all__ = ["IMAGE_ENCODER_MODES", "FastPreprocessor", "ImageCNN", "ImageEncoderMode", "ObservationEncoder",
           "check_image_encoder",
           "flat_dim", "image_layout", "is_image_space", "preprocess", "select_image_leaves"]

ImageEncoderMode = Literal["auto", "cnn", "flat"]
"""How :class:`ObservationEncoder` reads image leaves: ``"auto"`` a CNN for every :func:`is_image_space` leaf,
``"cnn"`` a CNN for every 3-D Box leaf with a channel axis (any dtype; at least one needed), ``"flat"`` none."""
IMAGE_ENCODER_MODES: tuple[str, ...] = get_args(ImageEncoderMode)

_IMAGE_CHANNELS = (1, 3, 4)

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


def _channel_axis_first(shape: tuple[int, ...]) -> bool | None:
    """For a 3-D shape: True (CHW), False (HWC), or None when neither end has 1, 3 or 4 channels."""
    first, last = shape[0] in _IMAGE_CHANNELS, shape[-1] in _IMAGE_CHANNELS
    if first and last:  # ambiguous, e.g. (3, 8, 3) or (1, 1, 1): SB3 takes the smallest axis (the first on ties)
        return int(np.argmin(shape)) == 0
    return True if first else (False if last else None)


def is_image_space(space: Any) -> bool:
    """Whether ``space`` is an image by Stable-Baselines3's conventions: a 3-D ``uint8`` Box, low 0, high 255,
    with 1, 3 or 4 channels on its first (CHW) or last (HWC) axis. Such leaves are scaled to ``[0, 1]``."""
    return (
        isinstance(space, spaces.Box)
        and len(space.shape) == 3
        and space.dtype == np.uint8
        and bool(np.all(space.low == 0))
        and bool(np.all(space.high == 255))
        and _channel_axis_first(space.shape) is not None
    )


def image_layout(space: Any) -> tuple[tuple[int, int, int], bool] | None:
    """``((C, H, W), channels_first)`` of a 3-D Box with a channel axis (1, 3 or 4 channels first or last, any
    dtype), or None for any other space."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 3:
        return None
    first = _channel_axis_first(space.shape)
    if first is None:
        return None
    a, b, c = (int(n) for n in space.shape)
    return ((a, b, c) if first else (c, a, b)), first


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
        if is_image_space(space):
            x = x / 255.0
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


_FastFn = Any  # (obs) -> np.ndarray [*lead, width] float32, or None: let preprocess() handle it


def _fast_fn(space: Any) -> _FastFn | None:
    """A numpy encoder of one (sub-)space with its constants computed once, or None where :func:`preprocess`
    alone is used (image Boxes, unknown spaces)."""
    if isinstance(space, (spaces.Box, spaces.MultiBinary)) and not is_image_space(space):
        shape, width = tuple(space.shape), _prod(space.shape)

        def box(obs: Any) -> np.ndarray | None:
            x = np.asarray(obs)
            if x.dtype.kind not in "biuf" or x.shape[x.ndim - len(shape):] != shape or x.ndim < len(shape):
                return None
            return np.array(x, dtype=np.float32).reshape(*x.shape[: x.ndim - len(shape)], width)
        return box
    if isinstance(space, spaces.Discrete):
        n, start = int(space.n), int(space.start)
        eye = np.eye(n, dtype=np.float32)

        def discrete(obs: Any) -> np.ndarray | None:
            x = np.asarray(obs)
            if x.dtype.kind not in "biu":
                return None
            idx = x.astype(np.int64) - start
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                return None
            return eye[idx]
        return discrete
    if isinstance(space, spaces.MultiDiscrete):
        shape = tuple(space.shape)
        nvec = np.asarray(space.nvec, dtype=np.int64).reshape(-1)
        start = np.asarray(space.start, dtype=np.int64).reshape(-1)
        offsets = np.cumsum(nvec) - nvec
        total, k = int(nvec.sum()), int(nvec.size)

        def multi_discrete(obs: Any) -> np.ndarray | None:
            x = np.asarray(obs)
            if x.dtype.kind not in "biu" or x.ndim < len(shape) or x.shape[x.ndim - len(shape):] != shape:
                return None
            lead = x.shape[: x.ndim - len(shape)]
            idx = x.astype(np.int64).reshape(*lead, k) - start
            if idx.size and bool(((idx < 0) | (idx >= nvec)).any()):
                return None
            out = np.zeros((*lead, total), dtype=np.float32)
            np.put_along_axis(out, idx + offsets, 1.0, axis=-1)
            return out
        return multi_discrete
    if isinstance(space, (spaces.Tuple, spaces.Dict)):
        keys = list(range(len(space.spaces))) if isinstance(space, spaces.Tuple) else list(space.spaces)
        children = [_fast_fn(s) for s in (space.spaces if isinstance(space, spaces.Tuple) else space.spaces.values())]
        if not keys or any(c is None for c in children):
            return None
        is_tuple = isinstance(space, spaces.Tuple)

        def composite(obs: Any) -> np.ndarray | None:
            if is_tuple:
                if not isinstance(obs, (tuple, list)) or len(obs) != len(keys):
                    return None
            elif not isinstance(obs, Mapping) or any(key not in obs for key in keys):
                return None
            parts = []
            for key, child in zip(keys, children):
                part = child(obs[key])  # type: ignore[misc]
                if part is None or (parts and part.shape[:-1] != parts[0].shape[:-1]):
                    return None
                parts.append(part)
            return np.concatenate(parts, axis=-1)
        return composite
    return None


class FastPreprocessor:
    """:func:`preprocess` for one space, with the per-space work (validation, one-hot tables, offsets) done once.

    Numpy arrays, numbers and lists are encoded in numpy into exactly the numbers :func:`preprocess` gives (one-hot
    rows of an identity table for ``Discrete``, ``put_along_axis`` for ``MultiDiscrete``, a float32 copy for ``Box``
    and ``MultiBinary``); torch tensors, image Boxes, and anything out of range or misshapen go through
    :func:`preprocess` itself, which also raises its errors. The collector encodes every env step with this.
    """

    def __init__(self, space: spaces.Space[Any]) -> None:
        _flat_dim(space, _ROOT)  # UnsupportedSpaceError now, not at the first step
        self.space = space
        self._fn = _fast_fn(space)

    def __call__(self, obs: Any, device: torch.device | str | None = None) -> Tensor:
        """``Tensor[*lead, flat_dim(space)]`` float32 on ``device`` (None: a tensor input's device, else CPU)."""
        if self._fn is not None and not isinstance(obs, Tensor):
            try:
                out = self._fn(obs)
            except (TypeError, ValueError):  # ragged or odd input: preprocess() names the problem
                out = None
            if out is not None:
                x = torch.from_numpy(np.ascontiguousarray(out))
                return x if device is None else x.to(device)
        return preprocess(self.space, obs, device)


@dataclass(frozen=True)
class _Leaf:
    """One non-composite sub-space and where its encoding sits in the flat vector."""

    path: str
    space: Any
    start: int
    width: int


def _leaves(space: Any, path: str = _ROOT, start: int = 0) -> list[_Leaf]:
    """The leaves of ``space`` in flat-encoding order (``Dict`` in key order), with their column ranges."""
    if isinstance(space, (spaces.Tuple, spaces.Dict)):
        children = enumerate(space.spaces) if isinstance(space, spaces.Tuple) else space.spaces.items()
        out: list[_Leaf] = []
        for key, child in children:
            out += _leaves(child, _child_path(path, key), start)
            start = out[-1].start + out[-1].width
        return out
    return [_Leaf(path, space, start, _flat_dim(space, path))]


def _check_widths(name: str, value: Sequence[int]) -> tuple[int, ...]:
    widths = tuple(value)
    for h in widths:
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h <= 0:
            raise ConfigError(f"{name} must be positive integers, got {name}={value!r}")
    return tuple(int(h) for h in widths)


class ImageCNN(nn.Module):
    """A small CNN for one image: flat pixels ``Tensor[N, C*H*W]`` (in the space's own CHW or HWC order) ->
    features ``Tensor[N, output_dim]``.

    One 3x3 convolution (padding 1, ReLU) per entry of ``channels``; a layer halves a spatial side (stride 2)
    while that side is above 3 pixels, so 84x84 images end at 11x11 (84 -> 42 -> 21 -> 11), 16x16, 8x8 and 7x7
    ones at 2x2, 12x12 ones at 3x3, and even 1x1 images fit. Then ``Linear + ReLU`` to ``features``. Weights are orthogonal with gain
    sqrt(2), biases zero, as in SB3's NatureCNN, of which this is a CPU-sized variant for small images.

    Args:
        shape: ``(C, H, W)``.
        channels_first: whether the flat pixels are in CHW (True) or HWC (False) order.
        channels: output channels of each convolution.
        features: width of the output.
    """

    def __init__(self, shape: tuple[int, int, int], channels_first: bool, channels: Sequence[int] = (16, 32, 32),
                 features: int = 128) -> None:
        super().__init__()
        self.shape = tuple(int(n) for n in shape)
        self.channels_first = bool(channels_first)
        chans = _check_widths("channels", channels)
        (features,) = _check_widths("features", (features,))
        gain = float(np.sqrt(2.0))
        last, h, w = self.shape
        layers: list[nn.Module] = []
        for ch in chans:
            sh, sw = (2 if h > 3 else 1), (2 if w > 3 else 1)
            layers += [orthogonal_init(nn.Conv2d(last, ch, 3, stride=(sh, sw), padding=1), gain), nn.ReLU()]
            h, w, last = (h - 1) // sh + 1, (w - 1) // sw + 1, ch
        self.convs = nn.Sequential(*layers)
        self.out_hw = (h, w)
        self.linear = nn.Sequential(orthogonal_init(nn.Linear(last * h * w, features), gain), nn.ReLU())
        self.output_dim = features

    def forward(self, pixels: Tensor) -> Tensor:
        """``pixels: Tensor[N, C*H*W]`` -> ``Tensor[N, output_dim]``."""
        c, h, w = self.shape
        n = pixels.shape[0]
        x = pixels.reshape(n, c, h, w) if self.channels_first else pixels.reshape(n, h, w, c).permute(0, 3, 1, 2)
        return self.linear(self.convs(x).flatten(1))


class ObservationEncoder(nn.Module):
    """Preprocessed observations ``Tensor[..., input_dim] -> Tensor[..., output_dim]``: an MLP, after a CNN per
    image leaf.

    Each entry of ``hidden_sizes`` adds ``Linear + activation`` (orthogonal init, gain sqrt(2),
    zero bias). With no image leaf selected (the usual case) the MLP reads the flat observation; with
    ``hidden_sizes=()`` it is then the identity and ``output_dim == input_dim``. With image leaves, each goes
    through its own :class:`ImageCNN`, the other columns are passed as they are, and the MLP reads the
    concatenation ``[cnn features of each image (space order), other columns (flat order)]``.

    Args:
        space: the observation space.
        hidden_sizes: MLP widths.
        activation: MLP activation.
        image_encoder: ``"auto"`` (a CNN for each :func:`is_image_space` leaf), ``"cnn"`` (a CNN for each 3-D Box
            leaf with 1, 3 or 4 channels first or last, of any dtype; :class:`~tracerl.errors.ConfigError` if
            there is none) or ``"flat"`` (no CNN).
        flat_init: initialization of the MLP when no leaf goes through a CNN: ``"orthogonal"`` (as above) or
            ``"torch"`` (PyTorch's default ``nn.Linear`` init, which the off-policy networks have always used for
            flat observations; kept so their seeded parameters do not move). With a CNN the MLP is orthogonal.

    The MLP's parameters are ``net.<i>.weight`` / ``net.<i>.bias``; a state dict of the off-policy torsos' former
    MLP encoder (``<i>.weight``, an ``nn.Sequential``) loads into them (checkpoints written before both stacks
    shared this encoder).

    Attributes:
        space: the observation space.
        input_dim: ``flat_dim(space)``.
        output_dim: ``hidden_sizes[-1]``, or the MLP's input width when ``hidden_sizes`` is empty.
        image_paths: paths of the leaves read by a CNN (e.g. ``("obs['pixels']",)``; empty: none).
        mlp_input_dim: the width of :meth:`mlp_input` (``input_dim`` without image leaves).
    """

    def __init__(
        self,
        space: spaces.Space[Any],
        hidden_sizes: Sequence[int] = (64,),
        activation: type[nn.Module] = nn.Tanh,
        image_encoder: str = "auto",
        flat_init: Literal["orthogonal", "torch"] = "orthogonal",
    ) -> None:
        super().__init__()
        if flat_init not in ("orthogonal", "torch"):
            raise ConfigError(f"flat_init must be 'orthogonal' or 'torch', got flat_init={flat_init!r}")
        sizes = tuple(hidden_sizes)
        self.hidden_sizes = _check_widths("hidden_sizes", sizes)
        check_image_encoder(image_encoder)
        self.space = space
        self.input_dim = flat_dim(space)
        self.image_encoder = image_encoder
        self.fast_preprocess = FastPreprocessor(space)
        images = select_image_leaves(space, image_encoder)
        self.image_paths = tuple(leaf.path for leaf in images)
        self.cnns = nn.ModuleList()
        for leaf in images:
            shape, first = image_layout(leaf.space)  # type: ignore[misc]
            self.cnns.append(ImageCNN(shape, first))
        self._image_cols = [(leaf.start, leaf.width) for leaf in images]
        taken = np.zeros(self.input_dim, dtype=bool)
        for start, width in self._image_cols:
            taken[start : start + width] = True
        others = np.flatnonzero(~taken)
        self.other_index: Tensor | None
        if images and others.size:
            self.register_buffer("other_index", torch.as_tensor(others, dtype=torch.int64), persistent=False)
        else:
            self.other_index = None
        last = self.input_dim if not images else sum(cnn.output_dim for cnn in self.cnns) + int(others.size)
        self.mlp_input_dim = last
        layers: list[nn.Module] = []
        orthogonal = bool(images) or flat_init == "orthogonal"
        for h in self.hidden_sizes:
            linear = nn.Linear(last, h)
            layers.append(orthogonal_init(linear, gain=float(np.sqrt(2.0))) if orthogonal else linear)
            layers.append(activation())
            last = h
        self.output_dim = last
        self.net: nn.Module = nn.Sequential(*layers) if layers else nn.Identity()

    def upgrade_state_keys(self, state: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        """``state`` with the keys of the off-policy torsos' former MLP encoder (an ``nn.Sequential``: ``<i>.weight``
        under ``prefix``) renamed to this encoder's (``net.<i>.weight``); other keys as they are.
        :func:`tracerl.io.checkpoint.upgrade_state_keys` calls it before a checkpoint's entries are checked."""
        out = dict(state)
        for key in [k for k in state if k.startswith(prefix) and k[len(prefix):].split(".", 1)[0].isdigit()]:
            new = f"{prefix}net.{key[len(prefix):]}"
            if new not in out:
                out[new] = out.pop(key)
        return out

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        upgraded = self.upgrade_state_keys(state_dict, prefix)
        if upgraded.keys() != state_dict.keys():  # load_state_dict hands each module its own copy to change
            state_dict.clear()
            state_dict.update(upgraded)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def preprocess(self, obs: Any, device: torch.device | str | None = None) -> Tensor:
        """:func:`preprocess` with this encoder's space; ``device`` defaults to the parameters' device
        (CPU for the identity encoder). Returns ``Tensor[*lead, input_dim]``."""
        if device is None:
            param = next(self.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
        return self.fast_preprocess(obs, device)

    def forward(self, flat: Tensor) -> Tensor:
        """``flat: Tensor[..., input_dim]`` -> ``Tensor[..., output_dim]``."""
        return self.net(self.mlp_input(flat))

    def mlp_input(self, flat: Tensor) -> Tensor:
        """What the MLP reads, ``Tensor[..., mlp_input_dim]``: ``flat`` itself without image leaves; with them, each
        image's CNN features followed by the other columns."""
        if not self._image_cols:
            return flat
        lead = flat.shape[:-1]
        parts = [  # reshape(-1, ...): no Python batch size, so a traced (exported) graph keeps the batch dynamic
            cnn(flat.narrow(-1, start, width).reshape(-1, width)).reshape(*lead, cnn.output_dim)
            for cnn, (start, width) in zip(self.cnns, self._image_cols)
        ]
        if self.other_index is not None:
            parts.append(flat.index_select(-1, self.other_index))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


def check_image_encoder(image_encoder: Any) -> None:
    """Raise :class:`~tracerl.errors.ConfigError` unless ``image_encoder`` is one of ``"auto"``, ``"cnn"``, ``"flat"``."""
    if image_encoder not in IMAGE_ENCODER_MODES:
        raise ConfigError(f"image_encoder must be one of {list(IMAGE_ENCODER_MODES)}, got image_encoder={image_encoder!r}")


def select_image_leaves(space: spaces.Space[Any], image_encoder: str = "auto") -> list[_Leaf]:
    """The leaves of ``space`` that ``image_encoder`` sends through a CNN (see :class:`ObservationEncoder`).

    Raises:
        ConfigError: ``image_encoder`` is not a mode, or is ``"cnn"`` and no leaf is a 3-D Box with a channel axis.
        UnsupportedSpaceError: ``space`` cannot be encoded (see :func:`flat_dim`).
    """
    check_image_encoder(image_encoder)
    _flat_dim(space, _ROOT)  # UnsupportedSpaceError for spaces that cannot be encoded at all
    if image_encoder == "flat":
        return []
    leaves = _leaves(space)
    if image_encoder == "auto":
        return [leaf for leaf in leaves if is_image_space(leaf.space)]
    chosen = [leaf for leaf in leaves if image_layout(leaf.space) is not None]
    if not chosen:
        raise ConfigError(
            f"image_encoder='cnn' needs an image in the observation space (a 3-D Box with 1, 3 or 4 channels first "
            f"or last), but {space!r} has none; use 'auto' or 'flat'"
        )
    return chosen
