"""Gymnasium spaces to and from plain JSON (for checkpoints: no pickle)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from ..errors import UnsupportedSpaceError


def _num(x: float) -> Any:
    """JSON has no infinity: encode it as a string."""
    if np.isposinf(x):
        return "inf"
    if np.isneginf(x):
        return "-inf"
    return float(x)


def _unnum(x: Any) -> float:
    return float(x)  # float("inf") / float("-inf") parse the strings back


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """Describe ``space`` as a JSON-serialisable dict (Box, Discrete, MultiDiscrete, MultiBinary, Tuple, Dict)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "low": [_num(v) for v in space.low.flatten()],
                "high": [_num(v) for v in space.high.flatten()], "shape": list(space.shape),
                "dtype": str(space.dtype)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist(),
                "dtype": str(space.dtype)}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "keys": list(space.spaces), "spaces": [space_to_json(s) for s in space.spaces.values()]}
    raise UnsupportedSpaceError(f"cannot serialise space {space!r}")


def space_from_json(d: dict[str, Any]) -> spaces.Space:
    """Inverse of :func:`space_to_json`. Raises ValueError on an unknown or malformed description."""
    kind = d.get("type")
    if kind == "Box":
        shape = tuple(d["shape"])
        low = np.array([_unnum(v) for v in d["low"]], dtype=np.float64).reshape(shape)
        high = np.array([_unnum(v) for v in d["high"]], dtype=np.float64).reshape(shape)
        return spaces.Box(low=low.astype(d["dtype"]), high=high.astype(d["dtype"]), shape=shape,
                          dtype=np.dtype(d["dtype"]))
    if kind == "Discrete":
        return spaces.Discrete(int(d["n"]), start=int(d["start"]))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.array(d["nvec"]), dtype=np.dtype(d["dtype"]), start=np.array(d["start"]))
    if kind == "MultiBinary":
        return spaces.MultiBinary(d["n"])
    if kind == "Tuple":
        return spaces.Tuple([space_from_json(s) for s in d["spaces"]])
    if kind == "Dict":
        return spaces.Dict({k: space_from_json(s) for k, s in zip(d["keys"], d["spaces"])})
    raise ValueError(f"unknown space type {kind!r}")
