"""``KEY=VALUE`` text as keyword arguments (the ``--env-kwargs`` / ``--memory-kwargs`` form of the command line).

A library module, so the copy task, benchmarks and the CLI share it without importing from :mod:`tracerl.cli`.
"""

from __future__ import annotations

import ast
from typing import Any, Sequence


def parse_kwargs(items: Sequence[str], flag: str) -> dict[str, Any]:
    """``["delay=64", "difficulty=1"]`` -> ``{"delay": 64, "difficulty": 1}`` (values as Python literals,
    else strings). A malformed item raises ValueError naming the flag and the item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag}: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


__all__ = ["parse_kwargs"]
