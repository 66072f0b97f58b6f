"""Capture and restore random number generator states, for exactly reproducible resumes.

The torch CPU generator state is a ``uint8`` tensor (it belongs in a checkpoint's tensors); Python's
``random`` and numpy ``Generator`` states are plain JSON (they belong in a checkpoint's meta). Numpy
states may hold integers wider than 64 bits (PCG64's 128-bit state) and arrays (MT19937's key); both
survive ``json.dumps``/``json.loads`` in the encoding used here.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

__all__ = ["TORCH_RNG_KEY", "AgentRNG", "capture_rng_state", "check_rng_state", "restore_rng_state",
           "uses_acting_rng", "uses_agent_rng"]

F = TypeVar("F", bound=Callable[..., Any])

TORCH_RNG_KEY = "rng/torch_cpu"
"""Tensor name of the torch CPU generator state in :func:`capture_rng_state`'s tensors."""

_ARRAY_TAG = "__ndarray__"


def _encode(value: Any) -> Any:
    """Turn a numpy bit-generator state into JSON types (arrays become tagged lists)."""
    if isinstance(value, Mapping):
        return {str(key): _encode(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return {_ARRAY_TAG: value.tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value: Any) -> Any:
    """Inverse of :func:`_encode`."""
    if isinstance(value, Mapping):
        if _ARRAY_TAG in value:
            return np.asarray(value[_ARRAY_TAG], dtype=np.dtype(value["dtype"])).reshape(value["shape"])
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def capture_rng_state(np_rngs: Sequence[np.random.Generator] = (),
                      torch_rng: "AgentRNG | None" = None) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Snapshot the torch CPU (``torch_rng``'s stream if given, else the global generator), Python ``random``
    and given numpy generators.

    Returns:
        ``(tensors, json_state)``: ``tensors`` maps :data:`TORCH_RNG_KEY` to the torch CPU state (uint8);
        ``json_state`` holds the Python and numpy states as JSON-serialisable values.
    """
    version, internal, gauss_next = random.getstate()
    json_state = {
        "python_random": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": [_encode(rng.bit_generator.state) for rng in np_rngs],
    }
    torch_state = torch.get_rng_state() if torch_rng is None else torch_rng.current()
    return {TORCH_RNG_KEY: torch_state.clone()}, json_state


def _numpy_state(rng: np.random.Generator, encoded: Any, index: int) -> dict[str, Any]:
    """Decode one numpy state and check it fits ``rng`` by loading it into a scratch bit generator."""
    scratch = type(rng.bit_generator)()
    try:
        state = _decode(encoded)
        scratch.state = state
        taken = scratch.state
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise ValueError(
            f"numpy generator {index}: saved state does not fit a {type(rng.bit_generator).__name__}: {exc}"
        ) from exc
    if _encode(taken) != _encode(state) or _types(_encode(taken)) != _types(_encode(state)):
        raise ValueError(f"numpy generator {index}: saved state holds values of the wrong type (e.g. a fraction "
                         "where an integer belongs)")
    return state


def _types(value: Any) -> Any:
    """The JSON types of a nested value (so that 1 and 1.0, equal in Python, still count as different)."""
    if isinstance(value, Mapping):
        return {key: _types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_types(item) for item in value]
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_rng_state(
    tensors: Mapping[str, Tensor], json_state: Mapping[str, Any], np_rngs: Sequence[np.random.Generator] = ()
) -> tuple[Tensor, tuple[Any, ...], list[dict[str, Any]]]:
    """Validate a captured RNG state without applying it; return what :func:`restore_rng_state` applies."""
    if not isinstance(tensors, Mapping) or TORCH_RNG_KEY not in tensors:
        raise ValueError(f"RNG state lacks the tensor {TORCH_RNG_KEY!r}")
    raw = tensors[TORCH_RNG_KEY]
    expected_shape = list(torch.get_rng_state().shape)
    if not isinstance(raw, Tensor) or raw.dtype != torch.uint8 or list(raw.shape) != expected_shape:
        got = f"{list(raw.shape)} {raw.dtype}" if isinstance(raw, Tensor) else type(raw).__name__
        raise ValueError(f"torch RNG state is {got}, expected {expected_shape} torch.uint8")
    torch_state = raw.detach().to("cpu").contiguous()
    if not isinstance(json_state, Mapping):
        raise ValueError(f"RNG state must be a mapping, got {type(json_state).__name__}")
    for key in ("python_random", "numpy"):
        if key not in json_state:
            raise ValueError(f"RNG state lacks {key!r}")
    py = json_state["python_random"]
    if not isinstance(py, Mapping) or not all(k in py for k in ("version", "internal", "gauss_next")):
        raise ValueError("python_random must hold version, internal and gauss_next")
    internal, gauss = py["internal"], py["gauss_next"]
    if (not _is_int(py["version"]) or not isinstance(internal, list) or not all(_is_int(x) for x in internal)
            or not (gauss is None or (isinstance(gauss, float)))):
        raise ValueError("python_random has entries of the wrong type")
    py_state = (py["version"], tuple(internal), gauss)
    try:
        random.Random().setstate(py_state)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"invalid Python random state: {exc}") from exc
    saved_np = json_state["numpy"]
    if not isinstance(saved_np, list):
        raise ValueError(f"numpy RNG states must be a list, got {type(saved_np).__name__}")
    if len(saved_np) != len(np_rngs):
        raise ValueError(f"RNG state holds {len(saved_np)} numpy generator(s), {len(np_rngs)} given to restore")
    np_states = [_numpy_state(rng, enc, i) for i, (rng, enc) in enumerate(zip(np_rngs, saved_np))]
    return torch_state, py_state, np_states


def check_rng_state(
    tensors: Mapping[str, Tensor], json_state: Mapping[str, Any], np_rngs: Sequence[np.random.Generator] = ()
) -> None:
    """Raise ValueError if :func:`restore_rng_state` would refuse these states (changes nothing)."""
    _checked_rng_state(tensors, json_state, np_rngs)


def restore_rng_state(
    tensors: Mapping[str, Tensor], json_state: Mapping[str, Any], np_rngs: Sequence[np.random.Generator] = (),
    torch_rng: "AgentRNG | None" = None,
) -> None:
    """Restore the states captured by :func:`capture_rng_state` (after a JSON round trip or not); the torch
    state goes into ``torch_rng`` if given, else into the global generator.

    Everything is checked before anything is changed, so a bad state leaves every generator untouched.

    Raises:
        ValueError: an entry is missing, the number of numpy generators differs from the capture, or a
            numpy state belongs to another bit generator type.
    """
    torch_state, py_state, np_states = _checked_rng_state(tensors, json_state, np_rngs)
    if torch_rng is None:
        torch.set_rng_state(torch_state)
    else:
        torch_rng.set_state(torch_state)
    random.setstate(py_state)
    for rng, state in zip(np_rngs, np_states):
        rng.bit_generator.state = state


class AgentRNG:
    """An agent's own stream of torch random numbers, kept apart from torch's global generator.

    Parameter initialisation, action sampling and the memories' random draws (``torch.rand`` and friends) use
    the global generator. An agent runs them inside :meth:`active`, which swaps this stream in and the caller's
    global state back afterwards: a seeded run then gives the same result whatever else in the process drew
    random numbers between the agent's calls (another agent's training, an evaluation, user code), and the
    agent never moves the caller's generator.

    An agent keeps two: stream 0 for building and training, stream 1 for acting outside training
    (``predict``, ``inspect``), so that evaluating between ``learn`` calls leaves the training run unchanged.

    Args:
        seed: seeds the stream; ``None`` draws the stream's seed from the global generator (so
            ``torch.manual_seed`` before building the agent still makes an unseeded agent reproducible).
        stream: which of the seed's independent streams (0 is seeded with ``seed`` itself, as
            ``torch.manual_seed(seed)`` would; others with a ``numpy.random.SeedSequence([seed, stream])`` draw).
    """

    def __init__(self, seed: int | None, stream: int = 0) -> None:
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        if stream:
            seed = int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1, np.uint64)[0] >> 1)
        self.state: Tensor = torch.Generator().manual_seed(int(seed)).get_state()
        self._depth = 0

    @contextmanager
    def active(self) -> Iterator[None]:
        """Draw from this stream inside the block; the global generator is as it was afterwards. Re-entrant:
        a nested block (``learn`` calling ``train_step``) keeps drawing from the stream where it is."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        outer = torch.get_rng_state()
        torch.set_rng_state(self.state)
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            self.state = torch.get_rng_state()
            torch.set_rng_state(outer)

    def current(self) -> Tensor:
        """The stream's state now (inside :meth:`active` the live global generator's, else :attr:`state`): what a
        checkpoint written mid-``learn`` must save."""
        return (torch.get_rng_state() if self._depth else self.state).clone()

    def set_state(self, state: Tensor) -> None:
        """Continue from a saved :attr:`state` (``uint8`` CPU tensor of the torch generator's state size); not
        inside :meth:`active`, whose exit would overwrite it."""
        if self._depth:
            raise RuntimeError("AgentRNG.set_state inside active(): the block's exit would overwrite it")
        if state.dtype != torch.uint8 or state.shape != self.state.shape:
            raise ValueError(f"torch RNG state is {list(state.shape)} {state.dtype}, expected "
                             f"{list(self.state.shape)} torch.uint8")
        state = state.detach().to("cpu").contiguous()
        self.state = state.clone()


def _uses(attribute: str) -> Callable[[F], F]:
    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with getattr(self, attribute).active():
                return method(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


uses_agent_rng = _uses("torch_rng")
"""Run an agent's method with its training stream (``torch_rng``, an :class:`AgentRNG`) active."""
uses_acting_rng = _uses("acting_rng")
"""Run an agent's method with its acting stream (``acting_rng``, an :class:`AgentRNG`) active."""
