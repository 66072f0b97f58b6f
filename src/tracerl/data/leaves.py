"""Combining observations leaf by leaf: arrays, or dicts / tuples of them (gymnasium's Dict and Tuple spaces)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np


def combine_leaves(values: Sequence[Any], combine: Callable[[list[np.ndarray]], np.ndarray]) -> Any:
    """Apply ``combine`` to the list of matching leaves of ``values`` (each an array, or a dict / tuple nesting
    of arrays, all with the structure of ``values[0]``); returns that structure with the combined leaves."""
    first = values[0]
    if isinstance(first, dict):
        return {k: combine_leaves([v[k] for v in values], combine) for k in first}
    if isinstance(first, tuple):
        return tuple(combine_leaves([v[i] for v in values], combine) for i in range(len(first)))
    return combine([np.asarray(v) for v in values])


def stack_leaves(values: Sequence[Any]) -> Any:
    """Stack single observations into one batch along a new first axis (``np.stack`` per leaf)."""
    return combine_leaves(values, np.stack)


__all__ = ["combine_leaves", "stack_leaves"]
