"""Read the docstring under each field of a dataclass (``x: int = 1`` followed by ``\"\"\"doc\"\"\"``)."""

from __future__ import annotations

import ast
import inspect
import textwrap


def field_docs(cls: type) -> dict[str, str]:
    """Map field name -> the string literal that follows it in ``cls``'s source (empty when absent)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    items = body.body
    for node, nxt in zip(items, items[1:] + [None]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def config_from_json(cls: type, d: dict, tuple_fields: tuple[str, ...] = ()):  # type: ignore[type-arg]
    """Build config dataclass ``cls`` from its JSON dict: unknown keys raise ConfigError naming them, and the
    fields in ``tuple_fields`` (JSON lists) become tuples again."""
    from dataclasses import fields

    from .errors import ConfigError

    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    d = dict(d)
    for name in tuple_fields:
        if name in d:
            d[name] = tuple(d[name])
    return cls(**d)
