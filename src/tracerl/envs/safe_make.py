"""Env ids and env kwargs read from files never run code: :class:`FileEnvId`, :func:`check_env_id`.

Gymnasium reads an id of the form ``"module:Env-v0"`` as "import ``module``, then make ``Env-v0``". An id typed
by the user (a plain ``str``, in code or on the command line) keeps that meaning. An id read from a file (a
checkpoint's metadata, a run's ``config.json``) is a :class:`FileEnvId`: its module prefix is imported only when

* the module belongs to a package on the fixed allowlist :data:`TRUSTED_MODULES` (``tracerl`` itself, and
  ``popgym`` when it is installed in site-packages: a ``popgym.py`` in the current directory is not trusted), or
* the user names the module explicitly: ``tracerl eval/inspect/train --env-module NAME``, or
  ``TraceRL.load(path, import_modules=["NAME"])``, ``evaluate(..., import_modules=[...])``,
  ``make_vec_env(..., import_modules=[...])``.

Anything else raises :class:`~tracerl.errors.ConfigError` saying how to allow it, before any import. An id
without a module prefix imports nothing (except that ``popgym-*`` ids import the installed ``popgym``, which
registers them). Keyword arguments stored with a file's id are checked by :func:`check_env_kwargs` (JSON
scalars or short lists of them, bounded sizes) before they reach a constructor; tracerl's own envs also cap
their sizes (see :data:`MAX_EPISODE_STEPS`).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import re
import site
import sys
import sysconfig
from typing import Any, Iterable

from ..errors import ConfigError

TRUSTED_MODULES: tuple[str, ...] = ("tracerl", "popgym")
"""Top-level packages whose modules an env id from a file may import without being named by the user
(popgym only when installed in site-packages)."""
TRUSTED_ID_PREFIXES: dict[str, str] = {"popgym-": "popgym"}
"""Env id prefix -> trusted package that registers such ids on import (imported on demand)."""
MAX_ENV_ID_LENGTH = 200
"""Longest env id accepted from a file."""
MAX_ENV_KWARGS = 32
"""Most keyword arguments accepted with an env id from a file."""
MAX_KWARG_STR = 256
"""Longest string value (and key) of a stored env kwarg."""
MAX_KWARG_LIST = 64
"""Longest list value of a stored env kwarg."""
MAX_KWARG_INT = 2**31 - 1
"""Largest absolute int value of a stored env kwarg."""
MAX_EPISODE_STEPS = 100_000
"""Cap of tracerl's own envs on their episode-length parameters (CueDelay delay, T-Maze corridor, CountWindow
horizon and episode length, GoalLine size and horizon): a stored ``delay=10**7`` must not run for ever."""

_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FileEnvId(str):
    """An env id read from a file: a ``str`` that remembers where it came from (``source``) and which modules
    the user allowed it to import (``import_modules``). Operations that build a new string return plain ``str``."""

    source: str
    import_modules: tuple[str, ...]

    def __new__(cls, value: str, source: str, import_modules: Iterable[str] = ()) -> "FileEnvId":
        obj = super().__new__(cls, value)
        obj.source = str(source)
        obj.import_modules = tuple(import_modules)
        return obj

    def __reduce__(self) -> Any:  # picklable (subprocess envs receive it)
        return FileEnvId, (str(self), self.source, self.import_modules)


def env_id_from_file(value: Any, source: Any, import_modules: Iterable[str] = ()) -> FileEnvId | None:
    """Wrap an env id read from ``source`` (a path) as a :class:`FileEnvId`; None stays None. A value that is
    not a short string raises :class:`ConfigError` naming the source."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ENV_ID_LENGTH or not value.isprintable():
        shown = repr(value) if len(repr(value)) < 300 else repr(value)[:300] + "..."
        raise ConfigError(f"env id {shown} from {source} is invalid: must be a printable string of 1 to "
                          f"{MAX_ENV_ID_LENGTH} characters")
    modules = tuple(import_modules)
    for name in modules:
        if not isinstance(name, str) or not _MODULE_RE.match(name):
            raise ConfigError(f"import_modules: {name!r} is not a module name (dotted identifiers)")
    return FileEnvId(value, str(source), modules)


def module_of(env_id: str) -> str | None:
    """The module an id of the form ``"module:Env-v0"`` names (None without a colon)."""
    return env_id.split(":", 1)[0] if ":" in env_id else None


def _site_dirs() -> list[str]:
    dirs = {sysconfig.get_paths().get(k) for k in ("purelib", "platlib")}
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - virtualenvs without getsitepackages
        pass
    user = getattr(site, "USER_SITE", None)
    if user:
        dirs.add(user)
    return [os.path.realpath(d) for d in dirs if d]


def _installed(package: str) -> bool:
    """Whether top-level ``package`` is (or would be) imported from site-packages, not from the current
    directory or another path a user can drop a file into. ``tracerl`` is the running package itself."""
    if package == "tracerl":
        return True
    mod = sys.modules.get(package)
    origin = getattr(mod, "__file__", None) if mod is not None else None
    if origin is None:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            return False
        origin = None if spec is None else spec.origin
    if not origin:
        return False
    origin = os.path.realpath(origin)
    return any(origin.startswith(d + os.sep) for d in _site_dirs())


def is_trusted_module(module: str) -> bool:
    """Whether ``module`` belongs to a package of :data:`TRUSTED_MODULES` that is installed."""
    top = module.split(".", 1)[0]
    return top in TRUSTED_MODULES and _installed(top)


def check_env_id(env_id: Any, import_modules: Iterable[str] = ()) -> None:
    """Refuse, before any import, an env id from a file whose module prefix the user did not allow.

    A plain ``str`` id is the user's own and passes (gymnasium imports its module as usual). A
    :class:`FileEnvId` may name a module only if it is trusted (:func:`is_trusted_module`), listed in its own
    ``import_modules`` or in ``import_modules`` here. Also imports the trusted registrant of ids such as
    ``popgym-*`` when needed. Raises :class:`ConfigError` naming the id, the file and how to allow the module.
    """
    if not isinstance(env_id, str):
        return
    if isinstance(env_id, FileEnvId):
        if env_id.count(":") > 1:
            raise ConfigError(f"env id {str(env_id)!r} from {env_id.source} is invalid: at most one ':' "
                              "('module:Env-v0')")
        module = module_of(env_id)
        if module is not None:
            allowed = set(env_id.import_modules) | set(import_modules)
            if not _MODULE_RE.match(module):
                raise ConfigError(f"env id {str(env_id)!r} from {env_id.source} names an invalid module {module!r}")
            if module not in allowed and not is_trusted_module(module):
                raise ConfigError(
                    f"env id {str(env_id)!r} from {env_id.source} would import the Python module {module!r}; "
                    "tracerl never imports a module named by a file. If you trust that module, allow it "
                    f"explicitly: `--env-module {module}` on the command line, or import_modules=[{module!r}] "
                    "in code (TraceRL.load, evaluate, inspect, make_vec_env); or pass an env id yourself.")
    _import_registrant(str(env_id))


def _import_registrant(env_id: str) -> None:
    """Import the trusted package that registers ``env_id`` (e.g. popgym for ``popgym-*``) if it is not registered."""
    import gymnasium

    name = env_id.split(":", 1)[-1]
    for prefix, package in TRUSTED_ID_PREFIXES.items():
        if name.startswith(prefix) and name not in gymnasium.registry and package not in sys.modules:
            if _installed(package):
                importlib.import_module(package)


def _check_value(key: str, value: Any, source: str, nested: bool = False) -> None:
    where = f"env kwarg {key}={value!r}" if len(repr(value)) < 200 else f"env kwarg {key}"

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{where} from {source} is invalid: {why}")

    import numpy as np

    if value is None or isinstance(value, (bool, np.bool_)):
        return
    if isinstance(value, (int, np.integer)):
        if abs(value) > MAX_KWARG_INT:
            raise bad(f"ints must be within +-{MAX_KWARG_INT}")
        return
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise bad("floats must be finite")
        return
    if isinstance(value, str):
        if len(value) > MAX_KWARG_STR:
            raise bad(f"strings must have at most {MAX_KWARG_STR} characters")
        return
    if isinstance(value, (list, tuple)) and not nested:
        if len(value) > MAX_KWARG_LIST:
            raise bad(f"lists must have at most {MAX_KWARG_LIST} items")
        for item in value:
            _check_value(key, item, source, nested=True)
        return
    raise bad("values must be JSON scalars (None, bool, int, float, str) or a flat list of them")


def check_env_kwargs(kwargs: Any, source: str) -> dict[str, Any]:
    """Check env keyword arguments read from ``source``: a dict of at most :data:`MAX_ENV_KWARGS` identifier keys
    whose values are JSON scalars (finite floats, ints within +-2^31, strings of at most 256 characters) or flat
    lists of at most 64 of them. Returns a copy; raises :class:`ConfigError` naming the key and the source."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"env_kwargs from {source} is invalid: must be a mapping, got {type(kwargs).__name__}")
    if len(kwargs) > MAX_ENV_KWARGS:
        raise ConfigError(f"env_kwargs from {source} has {len(kwargs)} entries: at most {MAX_ENV_KWARGS}")
    for key, value in kwargs.items():
        if not isinstance(key, str) or len(key) > MAX_KWARG_STR or not _KEY_RE.match(key):
            raise ConfigError(f"env_kwargs from {source}: key {key!r} is not an identifier")
        _check_value(key, value, source)
    return dict(kwargs)


def check_episode_cap(owner: str, name: str, value: int) -> None:
    """Raise :class:`ConfigError` when a size parameter of tracerl's own env exceeds :data:`MAX_EPISODE_STEPS`."""
    if value > MAX_EPISODE_STEPS:
        raise ConfigError(f"{owner}: {name}={value!r} is invalid; it must be <= {MAX_EPISODE_STEPS} "
                          "(tracerl's cap on episode sizes)")


__all__ = ["FileEnvId", "MAX_EPISODE_STEPS", "TRUSTED_MODULES", "check_env_id", "check_env_kwargs",
           "env_id_from_file", "is_trusted_module", "module_of"]
