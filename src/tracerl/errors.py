"""Typed exceptions raised by tracerl.

Every error names what was wrong (the field, value, file or env index) so a user can fix it
without reading the source.
"""

from __future__ import annotations


class TraceRLError(Exception):
    """Base class of every error tracerl raises on purpose."""


class ConfigError(TraceRLError, ValueError):
    """An invalid hyperparameter or combination. The message names the field, the value and the valid range."""


class FileContentError(TraceRLError):
    """A file whose contents cannot be trusted. ``path`` is the file (or directory), ``entry`` the part of it
    that failed (a tensor name, a metadata key, a dataset array), when known; both are appended to the message."""

    def __init__(self, message: str, path: str | None = None, entry: str | None = None) -> None:
        parts = [message]
        if path is not None:
            parts.append(f"file={path!s}")
        if entry is not None:
            parts.append(f"entry={entry!s}")
        super().__init__(" | ".join(parts))
        self.path = path
        self.entry = entry


class CheckpointError(FileContentError):
    """A checkpoint that cannot be trusted: missing, truncated, corrupted, foreign, or of a newer format.

    ``path`` is the file, ``entry`` the part of it that failed (a tensor name, a metadata key), when known.
    """


class NonFiniteError(TraceRLError, FloatingPointError):
    """A NaN or infinity in an observation, reward, loss or gradient, named by where it appeared."""


class UnsupportedSpaceError(TraceRLError, TypeError):
    """A gymnasium space tracerl cannot encode or act in. The message names the space."""


class EnvCrashError(TraceRLError, RuntimeError):
    """A sub-env of a :class:`~tracerl.envs.resilient.ResilientVectorEnv` kept failing (raised, died or hung)
    after ``max_restarts`` rebuilds. ``env_index`` names it; ``traceback_text`` is the sub-env's own traceback
    (or what happened to its process) from the failure that stopped training; ``restarts`` is how many times it
    had been rebuilt."""

    def __init__(self, message: str, env_index: int, traceback_text: str, restarts: int = 0) -> None:
        super().__init__(message)
        self.env_index = env_index
        self.traceback_text = traceback_text
        self.restarts = restarts

    def __reduce__(self):  # picklable across processes despite the extra constructor arguments
        return type(self), (str(self), self.env_index, self.traceback_text, self.restarts)


class EnvOutputError(TraceRLError, ValueError):
    """An env returned an observation, reward or done flag of the wrong shape or dtype (e.g. a vector reward).
    ``env_index`` is the first offending sub-env (None when the whole batch is malformed); the message names every
    offending index, what was returned and what was expected."""

    def __init__(self, message: str, env_index: int | None = None) -> None:
        super().__init__(message)
        self.env_index = env_index

    def __reduce__(self):  # picklable across processes despite the extra constructor argument
        return type(self), (str(self), self.env_index)


class ExportError(TraceRLError, RuntimeError):
    """An agent's policy cannot be exported to the asked format (:mod:`tracerl.export`). ``core`` names the memory
    core, ``op`` the operator that failed (when known) and ``fmt`` the format."""

    def __init__(self, message: str, core: str | None = None, op: str | None = None, fmt: str | None = None) -> None:
        super().__init__(message)
        self.core = core
        self.op = op
        self.fmt = fmt

    def __reduce__(self):  # picklable across processes despite the extra constructor arguments
        return type(self), (str(self), self.core, self.op, self.fmt)


class DatasetError(FileContentError, ValueError):
    """A trajectory dataset (:mod:`tracerl.offline`) that cannot be read or trusted: missing files, a foreign or
    malformed layout, inconsistent lengths or flags. ``path`` is the file or directory, ``entry`` the part that
    failed (``metadata.json`` key, ``episode_3/actions``), when known."""


__all__ = [
    "CheckpointError",
    "FileContentError",
    "ConfigError",
    "DatasetError",
    "EnvCrashError",
    "EnvOutputError",
    "ExportError",
    "NonFiniteError",
    "TraceRLError",
    "UnsupportedSpaceError",
]
