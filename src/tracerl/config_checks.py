"""One validator for every config field: types from the dataclass annotations, ranges from per-field metadata.

Every config dataclass (:class:`~tracerl.algos.PPOConfig`, :class:`~tracerl.policies.PolicyConfig`,
:class:`~tracerl.algos.offpolicy.OffPolicyConfig` and its SAC / TD3 / R2D2 subclasses,
:class:`~tracerl.agent_config.MemoryAgentConfig`) calls :func:`validate_fields` from ``__post_init__`` and from its
``validate()`` (fields can be reassigned after construction). The field's annotation decides the type check:

* ``int``: an int (a numpy integer is accepted; ``bool`` and ``float`` are not), within ``[lo, hi]``, and
  within :data:`MAX_INT` in absolute value unless the range bounds it on both sides;
* ``float``: an int or float (not bool) that is finite (no NaN, no inf) and within the field's range;
* ``bool``: ``True`` or ``False`` (numpy bools accepted); ``str``: a string of at most :data:`MAX_STR` characters;
* ``Literal[...]``: one of the listed values; ``X | None``: None or a valid ``X``;
* ``tuple[int, ...]`` / ``tuple[str, ...]``: a tuple (or list) of at most :data:`MAX_TUPLE` valid items (the
  field's range applies to every item); ``dict[str, Any]``: at most :data:`MAX_DICT` identifier keys whose values
  are JSON scalars or flat lists of them.

Ranges are declared next to the fields, in a ``_field_ranges`` class attribute (a dict field name ->
:class:`Range`), merged along the class's bases. Every failure is a :class:`~tracerl.errors.ConfigError` of one
form: ``"<Class>.<field>=<value> is invalid: must be <what>"``. :func:`check_agent_args` checks the agent's own
arguments (seed, threads, device, verbose) the same way.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from .errors import ConfigError

MAX_INT = 2**31 - 1
"""Largest absolute value of any int field (larger values overflow tensors and allocations)."""
MAX_SEED = 2**32 - 1
"""Largest agent seed (seeds are ints in [0, 2**32 - 1], as numpy's legacy seeding requires)."""
MAX_STR = 256
"""Longest string field."""
MAX_TUPLE = 32
"""Most items of a tuple field (e.g. encoder_hidden)."""
MAX_DICT = 32
"""Most entries of a dict field (memory_kwargs)."""
MAX_THREADS = 1024
"""Largest torch thread count."""

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric field: ``lo <= v <= hi`` (``lo_open``/``hi_open``: strict), or one of
    ``also`` (e.g. ``-1`` meaning "whole rollout")."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    also: tuple[Any, ...] = ()

    def contains(self, v: float) -> bool:
        if v in self.also:
            return True
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def describe(self) -> str:
        parts = []
        if self.lo is not None and self.hi is not None:
            parts.append(f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}")
        elif self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {_num(self.lo)}")
        elif self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {_num(self.hi)}")
        text = " and ".join(parts)
        if self.also:
            text = " or ".join([", ".join(repr(a) for a in self.also)] + ([text] if text else []))
        return text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


POSITIVE_INT = Range(lo=1)
NON_NEGATIVE = Range(lo=0)
POSITIVE = Range(lo=0, lo_open=True)
UNIT = Range(lo=0, hi=1)
ANY = Range()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _fail(owner: str, name: str, value: Any, what: str) -> ConfigError:
    return ConfigError(f"{owner}.{name}={_short(value)} is invalid: must be {what}")


def _is_int(v: Any) -> bool:
    import numpy as np

    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    import numpy as np

    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def check_value(owner: str, name: str, value: Any, typ: Any, rng: Range | None = None) -> Any:
    """Check one value against annotation ``typ`` and range ``rng``; returns the value (tuples for tuple
    fields given as lists, plain Python numbers for numpy ones). Raises :class:`ConfigError` naming
    ``owner.name``, the value and what it must be."""
    import numpy as np

    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin is Union or (hasattr(__import__("types"), "UnionType") and isinstance(typ, __import__("types").UnionType)):
        inner = [a for a in args if a is not type(None)]
        if value is None and len(inner) < len(args):
            return None
        if len(inner) == 1:
            try:
                return check_value(owner, name, value, inner[0], rng)
            except ConfigError as exc:
                raise ConfigError(str(exc) + " (or None)") from None
        for a in inner:
            try:
                return check_value(owner, name, value, a, rng)
            except ConfigError:
                continue
        raise _fail(owner, name, value, " or ".join(getattr(a, "__name__", str(a)) for a in args))
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise _fail(owner, name, value, "one of " + ", ".join(repr(a) for a in args))
    if typ is bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise _fail(owner, name, value, "a bool (True or False)")
    if typ is int:
        if not _is_int(value):
            raise _fail(owner, name, value, "an int" + (f" {rng.describe()}" if rng and rng.describe() else ""))
        value = int(value)
        bounded = rng is not None and rng.lo is not None and rng.hi is not None  # the range itself bounds it
        if abs(value) > MAX_INT and not bounded:
            raise _fail(owner, name, value, f"an int within +-{MAX_INT}")
        if rng is not None and not rng.contains(value):
            raise _fail(owner, name, value, f"an int {rng.describe()}")
        return value
    if typ is float:
        if not _is_real(value):
            raise _fail(owner, name, value, "a number" + (f" {rng.describe()}" if rng and rng.describe() else ""))
        if not math.isfinite(float(value)):
            raise _fail(owner, name, value, "finite" + (f" and {rng.describe()}" if rng and rng.describe() else ""))
        if abs(float(value)) > 1e15:
            raise _fail(owner, name, value, "a number within +-1e15")
        if rng is not None and not rng.contains(float(value)):
            raise _fail(owner, name, value, f"a finite number {rng.describe()}")
        return value.item() if isinstance(value, (np.integer, np.floating)) else value
    if typ is str:
        if isinstance(value, str) and len(value) <= MAX_STR:
            return value
        raise _fail(owner, name, value, f"a string of at most {MAX_STR} characters")
    if origin is tuple:
        item_type = args[0] if args else Any
        if not isinstance(value, (tuple, list)) or len(value) > MAX_TUPLE:
            raise _fail(owner, name, value, f"a tuple of at most {MAX_TUPLE} {getattr(item_type, '__name__', item_type)}s")
        return tuple(check_value(owner, f"{name}[{i}]", v, item_type, rng) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or len(value) > MAX_DICT:
            raise _fail(owner, name, value, f"a dict of at most {MAX_DICT} entries")
        for k, v in value.items():
            if not isinstance(k, str) or not _KEY_RE.match(k):
                raise _fail(owner, name, value, f"a dict with identifier keys (not {k!r})")
            _check_json_scalar(owner, f"{name}[{k!r}]", v)
        return value
    return value  # Any and other annotations: the owner checks them


def _check_json_scalar(owner: str, name: str, v: Any, nested: bool = False) -> None:
    if v is None or isinstance(v, bool):
        return
    if _is_int(v):
        if abs(int(v)) > MAX_INT:
            raise _fail(owner, name, v, f"an int within +-{MAX_INT}")
        return
    if _is_real(v):
        if not math.isfinite(float(v)):
            raise _fail(owner, name, v, "finite")
        return
    if isinstance(v, str):
        if len(v) > MAX_STR:
            raise _fail(owner, name, v, f"a string of at most {MAX_STR} characters")
        return
    if isinstance(v, (list, tuple)) and not nested:
        if len(v) > MAX_TUPLE:
            raise _fail(owner, name, v, f"a list of at most {MAX_TUPLE} items")
        for item in v:
            _check_json_scalar(owner, name, item, nested=True)
        return
    raise _fail(owner, name, v, "a JSON scalar (None, bool, int, float, str) or a flat list of them")


def field_ranges(cls: type) -> dict[str, Range]:
    """The ``_field_ranges`` of ``cls`` merged along its bases (a subclass overrides)."""
    out: dict[str, Range] = {}
    for klass in reversed(cls.__mro__):
        out.update(klass.__dict__.get("_field_ranges", {}))
    return out


_HINTS: dict[type, dict[str, Any]] = {}


def validate_fields(obj: Any) -> None:
    """Check every field of config dataclass ``obj`` (type from its annotation, range from ``_field_ranges``);
    normalises tuples given as lists and numpy scalars in place. Raises :class:`ConfigError` naming the first bad
    field, its value and its valid range."""
    cls = type(obj)
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    ranges = field_ranges(cls)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        checked = check_value(cls.__name__, f.name, value, hints[f.name], ranges.get(f.name))
        if checked is not value and type(checked) is not type(value):
            object.__setattr__(obj, f.name, checked)


def check_agent_args(owner: str, seed: Any = None, threads: Any = None, device: Any = "cpu",
                     verbose: Any = 0) -> None:
    """Check an agent's own arguments: ``seed`` None or an int in [0, 2**32 - 1]; ``threads`` None or an int in
    [1, 1024]; ``device`` a torch device that exists in this build; ``verbose`` an int in [0, 2]."""
    import torch

    check_value(owner, "seed", seed, typing.Optional[int], Range(lo=0, hi=MAX_SEED))
    check_value(owner, "threads", threads, typing.Optional[int], Range(lo=1, hi=MAX_THREADS))
    check_value(owner, "verbose", verbose, int, Range(lo=0, hi=2))
    if not isinstance(device, (str, torch.device)):
        raise _fail(owner, "device", device, "a torch device name such as 'cpu' or 'cuda:0'")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise _fail(owner, "device", device, "a torch device name such as 'cpu' or 'cuda:0'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise _fail(owner, "device", device, "a device this torch build has: CUDA is not available here (use 'cpu')")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise _fail(owner, "device", device, f"a CUDA index below {torch.cuda.device_count()}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise _fail(owner, "device", device, "a device this torch build has: MPS is not available here (use 'cpu')")
    if dev.type not in ("cpu", "cuda", "mps", "meta"):  # meta: checkpoint loading builds a shape-only probe on it
        raise _fail(owner, "device", device, "'cpu', 'cuda[:i]', 'mps' or 'meta'")


__all__ = ["ANY", "MAX_INT", "MAX_SEED", "NON_NEGATIVE", "POSITIVE", "POSITIVE_INT", "Range", "UNIT",
           "check_agent_args", "check_value", "field_ranges", "validate_fields"]
