"""Cheap checks of what envs return: observation, reward and done flags of the declared shape and dtype.

:class:`CheckedEnv` wraps each sub-env that :func:`~tracerl.envs.make_vec_env` puts into a gymnasium Sync/Async
vector env, so a sub-env that returns a vector reward or an observation of the wrong shape raises
:class:`~tracerl.errors.EnvOutputError` naming its index (instead of a numpy broadcasting error from inside the
vector env). :func:`check_batch` does the same for the batched arrays a collector receives from any vector env
(a shape and dtype comparison per step; the per-env search runs only when that fails).
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium
import numpy as np
from gymnasium import spaces

from ..errors import EnvOutputError

_NUMERIC = "biuf"


def _describe(x: Any) -> str:
    arr = np.asarray(x) if not isinstance(x, (dict, tuple)) else None
    if arr is None:
        return type(x).__name__
    return f"{type(x).__name__} of shape {arr.shape} and dtype {arr.dtype}"


def obs_problem(space: spaces.Space, obs: Any, batch: tuple[int, ...] = ()) -> str | None:
    """What is wrong with ``obs`` (one observation when ``batch == ()``, else a batch with those leading dims) for
    ``space``: None when its shape and dtype fit. Only shapes and dtype kinds are compared (values are not)."""
    if isinstance(space, spaces.Dict):
        if not isinstance(obs, dict):
            return f"expected a dict with keys {list(space.spaces)}, got {_describe(obs)}"
        for key, sub in space.spaces.items():
            if key not in obs:
                return f"missing key {key!r}"
            problem = obs_problem(sub, obs[key], batch)
            if problem:
                return f"[{key!r}]: {problem}"
        return None
    if isinstance(space, spaces.Tuple):
        if not isinstance(obs, (tuple, list)) or len(obs) != len(space.spaces):
            return f"expected a tuple of {len(space.spaces)}, got {_describe(obs)}"
        for i, (sub, o) in enumerate(zip(space.spaces, obs)):
            problem = obs_problem(sub, o, batch)
            if problem:
                return f"[{i}]: {problem}"
        return None
    shape = getattr(space, "shape", None)
    if shape is None:
        return None  # spaces without a fixed shape (Text, Graph, ...): the encoder reports them
    try:
        arr = np.asarray(obs)
    except (ValueError, TypeError):
        return f"expected an array of shape {batch + tuple(shape)}, got a ragged {type(obs).__name__}"
    want = batch + tuple(shape)
    if arr.shape != want:
        return f"expected shape {want}, got {_describe(obs)}"
    if arr.dtype.kind not in _NUMERIC:
        return f"expected a numeric dtype ({space.dtype}), got dtype {arr.dtype}"
    return None


_SCALARS = (bool, int, float, np.bool_, np.integer, np.floating)
"""Python and numpy real scalars: what :func:`reward_problem` and the done-flag checks accept without a look."""


def _fits_quickly(space: spaces.Space, obs: Any) -> bool:
    """True when ``obs`` (one observation) obviously fits ``space``: an integer for a ``Discrete``, a numeric array of
    the space's shape for a ``Box`` / ``MultiDiscrete`` / ``MultiBinary``. False means "ask :func:`obs_problem`"."""
    if isinstance(space, spaces.Discrete):
        return isinstance(obs, (int, np.integer, np.bool_))
    if isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
        return type(obs) is np.ndarray and obs.shape == space.shape and obs.dtype.kind in _NUMERIC
    return False


def reward_problem(reward: Any) -> str | None:
    """What is wrong with one env's reward (None: a real scalar)."""
    try:
        arr = np.asarray(reward)
    except (ValueError, TypeError):
        return f"expected a scalar reward, got {type(reward).__name__}"
    if arr.shape != ():
        return f"expected a scalar reward, got {_describe(reward)}"
    if arr.dtype.kind not in _NUMERIC:
        return f"expected a numeric reward, got dtype {arr.dtype}"
    return None


class CheckedEnv(gymnasium.Wrapper):
    """Raise :class:`EnvOutputError` naming ``env_index`` when the wrapped env returns an observation that does not
    fit its observation space, a reward that is not a real scalar, or done flags that are not scalars."""

    def __init__(self, env: gymnasium.Env, env_index: int) -> None:
        super().__init__(env)
        self.env_index = env_index

    def _fail(self, what: str, problem: str) -> EnvOutputError:
        return EnvOutputError(f"env index {self.env_index} ({self.env.spec.id if self.env.spec else type(self.env.unwrapped).__name__}) "
                              f"returned a malformed {what}: {problem}", env_index=self.env_index)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        problem = obs_problem(self.observation_space, obs)
        if problem:
            raise self._fail("observation from reset()", problem)
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not _fits_quickly(self.observation_space, obs):  # the common case costs two isinstance checks
            problem = obs_problem(self.observation_space, obs)
            if problem:
                raise self._fail("observation", problem)
        if not isinstance(reward, _SCALARS):
            problem = reward_problem(reward)
            if problem:
                raise self._fail("reward", problem)
        for name, flag in (("terminated", terminated), ("truncated", truncated)):
            if not isinstance(flag, _SCALARS) and np.shape(flag) != ():
                raise self._fail(name, f"expected a bool, got {_describe(flag)}")
        return obs, reward, terminated, truncated, info


class CheckedFactory:
    """A picklable zero-arg factory: ``CheckedEnv(factory(), index)``."""

    def __init__(self, factory: Callable[[], gymnasium.Env], index: int) -> None:
        self.factory, self.index = factory, index

    def __call__(self) -> gymnasium.Env:
        return CheckedEnv(self.factory(), self.index)


def check_batch(obs_space: spaces.Space, n_envs: int, obs: Any, reward: Any, terminated: Any,
                truncated: Any) -> None:
    """Check a vector env's step outputs: ``reward``, ``terminated`` and ``truncated`` of shape ``[n_envs]`` and
    numeric dtype, ``obs`` a batch of ``n_envs`` observations of ``obs_space``. Raises :class:`EnvOutputError`
    naming the offending env indices (every index when the batch as a whole has the wrong shape)."""
    for name, value in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
        arr = np.asarray(value) if not isinstance(value, (dict, tuple)) else None
        if arr is not None and arr.shape == (n_envs,) and arr.dtype.kind in _NUMERIC:
            continue
        bad = _bad_rows(value, n_envs, reward_problem)
        raise EnvOutputError(
            f"the vector env returned a malformed {name} batch: expected shape ({n_envs},) numeric, got "
            f"{_describe(value)}" + (f"; env index {bad} returned non-scalars" if bad else
                                     f" (every env index 0..{n_envs - 1})"), env_index=bad[0] if bad else None)
    problem = obs_problem(obs_space, obs, (n_envs,))
    if problem:
        bad = _bad_rows(obs, n_envs, lambda o: obs_problem(obs_space, o))
        raise EnvOutputError(f"the vector env returned a malformed observation batch: {problem}"
                             + (f"; env index {bad}" if bad else f" (every env index 0..{n_envs - 1})"),
                             env_index=bad[0] if bad else None)


def _bad_rows(value: Any, n_envs: int, problem: Callable[[Any], str | None]) -> list[int]:
    """Indices of the rows of ``value`` (a length-``n_envs`` sequence) that have a problem; [] when ``value`` is not
    such a sequence."""
    if isinstance(value, (dict, tuple)):
        return []
    try:
        rows = list(value)
    except TypeError:
        return []
    if len(rows) != n_envs:
        return []
    return [i for i, row in enumerate(rows) if problem(row)]


__all__ = ["CheckedEnv", "CheckedFactory", "check_batch", "obs_problem", "reward_problem"]
