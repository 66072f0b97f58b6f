"""What rebuilds an env the user passed as an object: a registered env id and its keyword arguments.

An agent built from an env id records the id and ``env_kwargs``; one built from an env *object* records them too
when :func:`env_recipe` can tell them, so ``agent.inspect()``, ``tracerl eval`` and ``tracerl inspect`` need no
``env=`` again:

* an env made by ``gymnasium.make(id, **kwargs)`` (or ``gymnasium.make_vec``): its ``spec`` has the id and the
  kwargs, unless wrappers were added around it or ``max_episode_steps`` was changed (then the id would rebuild
  another env);
* an instance of one of tracerl's own env classes (``CueDelay(delay=16)``, ``TMaze(active=True)``, ...), not
  wrapped or subclassed: the id registered for its class and the arguments its constructor was given (recorded
  by ``gymnasium.utils.RecordConstructorArgs``);
* such a class itself, or ``functools.partial(cls_or_gymnasium.make, ...)`` of one of the above, as a zero-arg
  callable.

Anything else (a lambda, an unregistered class, a wrapped env) is not knowable: :func:`env_recipe` returns None
and :func:`not_rebuildable` says what to pass instead. A recipe's kwargs are JSON scalars (checked by
:func:`~tracerl.envs.safe_make.check_env_kwargs`); when they are not, the env is not knowable either. Nothing
here imports a module: only ids already in gymnasium's registry are used, and a recorded id read back from a
checkpoint goes through :mod:`tracerl.envs.safe_make` like any other.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import gymnasium
import numpy as np

from ..errors import ConfigError
from .safe_make import check_env_kwargs

_VECTOR_KEYS = ("num_envs", "vectorization_mode", "vector_kwargs")
"""Keys ``gymnasium.make_vec`` adds to a vector env's ``spec.kwargs`` (how it is vectorized, not the env's own
arguments; ``wrappers`` makes the env not rebuildable)."""
_DROPPED = ("render_mode",)
"""Keys left out of a recipe: how an env renders is not part of the task."""


class EnvRecipe(NamedTuple):
    """A registered env id and the keyword arguments that rebuild the env with ``gymnasium.make``."""

    env_id: str
    env_kwargs: dict[str, Any]


def _plain(value: Any) -> Any:
    """numpy scalars as Python scalars and tuples as lists (what JSON stores)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _checked(env_id: str, kwargs: dict[str, Any]) -> EnvRecipe | None:
    """The recipe, with kwargs as JSON values; None when they are not JSON scalars (the id alone would lie)."""
    plain = {k: _plain(v) for k, v in kwargs.items() if k not in _DROPPED}
    try:
        return EnvRecipe(env_id, check_env_kwargs(plain, f"env {env_id!r}"))
    except ConfigError:
        return None


def _entry_point(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _from_spec(env: Any) -> EnvRecipe | None:
    """The recipe in ``env.spec`` (set by ``gymnasium.make``/``make_vec``), when it rebuilds this very env."""
    spec = getattr(env, "spec", None)
    env_id = getattr(spec, "id", None)
    if not isinstance(env_id, str) or env_id not in gymnasium.registry:
        return None
    registered = gymnasium.registry[env_id]
    if getattr(spec, "entry_point", None) != registered.entry_point:
        return None
    if getattr(spec, "max_episode_steps", None) != registered.max_episode_steps:
        return None  # `gymnasium.make(id, max_episode_steps=...)`: not an argument of the env
    kwargs = dict(getattr(spec, "kwargs", None) or {})
    if isinstance(env, gymnasium.vector.VectorEnv):
        if kwargs.pop("wrappers", None):
            return None  # sub-envs wrapped by the user: the id would rebuild them without the wrappers
        for key in _VECTOR_KEYS:
            kwargs.pop(key, None)
        if kwargs.get("max_episode_steps", registered.max_episode_steps) == registered.max_episode_steps:
            kwargs.pop("max_episode_steps", None)
    elif getattr(spec, "additional_wrappers", ()) and not _made_by_gymnasium(env):
        return None  # wrappers added around the made env: the id would rebuild it without them
    return _checked(env_id, kwargs)


def _made_by_gymnasium(env: Any) -> bool:
    """Whether ``env``'s outermost layer is one ``gymnasium.make`` adds (so no user wrapper sits on top of it)."""
    from gymnasium.wrappers import HumanRendering, OrderEnforcing, PassiveEnvChecker, RenderCollection, TimeLimit

    return type(env) in (OrderEnforcing, PassiveEnvChecker, TimeLimit, RenderCollection, HumanRendering)


def _id_of_class(cls: type, kwargs: dict[str, Any]) -> str | None:
    """The tracerl id registered with ``cls`` as its entry point whose fixed kwargs agree with ``kwargs``."""
    from .registration import REGISTERED_ENV_IDS

    found = None
    for env_id in REGISTERED_ENV_IDS:
        spec = gymnasium.registry.get(env_id)
        if spec is None or spec.entry_point != _entry_point(cls):
            continue
        fixed = spec.kwargs or {}
        if all(kwargs.get(k, v) == v for k, v in fixed.items()):
            return env_id
        found = found or env_id  # an explicit kwarg overrides the id's fixed one
    return found


def _from_class(cls: Any, kwargs: dict[str, Any]) -> EnvRecipe | None:
    if not isinstance(cls, type) or not cls.__module__.startswith("tracerl."):
        return None
    env_id = _id_of_class(cls, kwargs)
    return None if env_id is None else _checked(env_id, kwargs)


def env_recipe(env: Any) -> EnvRecipe | None:
    """The env id and kwargs that rebuild ``env`` (an env id is returned with no kwargs), or None when that is not
    knowable (see the module docstring). Never imports anything and never builds an env."""
    if isinstance(env, str):
        return EnvRecipe(env, {})
    if isinstance(env, functools.partial):
        if env.func is gymnasium.make and len(env.args) == 1 and isinstance(env.args[0], str):
            return _checked(env.args[0], dict(env.keywords)) if env.args[0] in gymnasium.registry else None
        if not env.args:
            return _from_class(env.func, dict(env.keywords))
        return None
    if isinstance(env, type):
        return _from_class(env, {})
    if isinstance(env, (gymnasium.Env, gymnasium.vector.VectorEnv)):
        recipe = _from_spec(env)
        if recipe is not None or getattr(env, "spec", None) is not None:
            return recipe
        saved = getattr(env, "_saved_kwargs", None)
        if isinstance(env, gymnasium.Env) and env.unwrapped is env and isinstance(saved, dict):
            return _from_class(type(env), saved)
    return None


def describe(env: Any) -> str:
    """A short description of an env object for messages (``a lambda``, ``an instance of MyEnv``, ...)."""
    if isinstance(env, str):
        return f"the env id {env!r}"
    if isinstance(env, (gymnasium.Env, gymnasium.vector.VectorEnv)):
        return f"an instance of {type(env).__name__}"
    name = getattr(env, "__qualname__", None) or type(env).__name__
    return "a lambda" if name.endswith("<lambda>") else f"the callable {name}"


def not_rebuildable(what: str, source: str | None) -> str:
    """The message when ``what`` (``"inspect()"``, or a checkpoint file read by a ``tracerl`` command, given as
    ``"the checkpoint ..."``) has no env to run on: why, and what to pass (command-line flags for a checkpoint)."""
    if what.startswith("the checkpoint"):
        return (f"{what} records no env id (its agent was built from an env tracerl cannot rebuild); pass --env ID "
                "(and --env-kwargs KEY=VALUE ...)")
    built = (f"this agent was built from {source}, which tracerl cannot rebuild" if source else
             "this agent records no env id (it was built from an env tracerl cannot rebuild)")
    return (f"{what} needs an env: {built} (only a registered env id with JSON kwargs can be recorded). Pass env= (an "
            "env id with env_kwargs=, an env instance or a zero-arg callable), or build the agent from an env id "
            "(TraceRL(env='tracerl/CueDelay-v0', env_kwargs={'delay': 16})), a gymnasium.make(...) env or a tracerl "
            "env instance such as CueDelay(delay=16), so that it records them.")


__all__ = ["EnvRecipe", "describe", "env_recipe", "not_rebuildable"]
