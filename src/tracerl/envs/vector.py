"""Build the vector env tracerl trains on, always with SAME_STEP autoreset.

tracerl's rollout code relies on SAME_STEP autoreset: the observation returned for a sub-env whose
episode just ended is already the first observation of its next episode, and the ended episode's last
observation is in ``infos["final_obs"]`` (masked by ``infos["_final_obs"]``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import gymnasium
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from tracerl.envs.count_window import CountWindow
from tracerl.envs.cue_delay import CueDelay
from tracerl.envs.image_cue import ImageCueDelay
from tracerl.envs.output_check import CheckedEnv, CheckedFactory
from tracerl.envs.registration import REGISTERED_ENV_IDS
from tracerl.envs.safe_make import FileEnvId, check_env_id, check_env_kwargs
from tracerl.envs.tmaze import TMaze
from tracerl.errors import ConfigError

VECTORIZATIONS = ("sync", "async")
BATCHABLE = (CueDelay, CountWindow, TMaze, ImageCueDelay)
"""Single-env classes with a ``batched(num_envs)`` method returning their native batched env."""
"""Valid ``vectorization`` values of :func:`make_vec_env`."""

EnvLike = Union[str, gymnasium.Env, VectorEnv, Callable[[], gymnasium.Env]]
"""What :func:`make_vec_env` accepts: an env id, an env instance, an existing vector env or a zero-arg env factory."""


def get_autoreset_mode(vec_env: VectorEnv) -> AutoresetMode:
    """The autoreset mode of ``vec_env`` (wrapped or not), from ``metadata["autoreset_mode"]``.

    A vector env that does not declare a mode is assumed to use gymnasium's default, NEXT_STEP.
    """
    mode = vec_env.metadata.get("autoreset_mode", getattr(vec_env, "autoreset_mode", AutoresetMode.NEXT_STEP))
    if isinstance(mode, AutoresetMode):
        return mode
    try:
        return AutoresetMode(mode)
    except ValueError as exc:
        valid = [m.value for m in AutoresetMode]
        raise ConfigError(f"vec_env.metadata['autoreset_mode']={mode!r} is not a gymnasium AutoresetMode; valid values: {valid}.") from exc


def _vectorize(env_fns: list[Callable[[], gymnasium.Env]], vectorization: str) -> VectorEnv:
    """Wrap env factories in a gymnasium Sync/Async vector env with SAME_STEP autoreset; every sub-env is a
    :class:`~tracerl.envs.output_check.CheckedEnv`, so a malformed observation or reward names its env index."""
    cls = SyncVectorEnv if vectorization == "sync" else AsyncVectorEnv
    return cls([CheckedFactory(fn, i) for i, fn in enumerate(env_fns)], autoreset_mode=AutoresetMode.SAME_STEP)


def _from_id(env_id: str, n_envs: int, env_kwargs: dict[str, Any], vectorization: str) -> VectorEnv:
    """A vector env for a registered id: tracerl's own ids use their native batched env."""
    if env_id in REGISTERED_ENV_IDS and gymnasium.spec(env_id).vector_entry_point is not None:
        return gymnasium.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **env_kwargs)
    vec = gymnasium.make_vec(
        env_id,
        num_envs=n_envs,
        vectorization_mode=vectorization,
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **env_kwargs,
    )
    if isinstance(vec, SyncVectorEnv):  # malformed outputs of a sub-env name its index
        vec.envs = [CheckedEnv(e, i) for i, e in enumerate(vec.envs)]
    return vec


def _from_instance(env: gymnasium.Env, n_envs: int, vectorization: str) -> VectorEnv:
    """A vector env around an env instance; copies beyond the first are rebuilt from ``env.spec``."""
    if type(env) in BATCHABLE:  # tracerl's own tasks, unwrapped and not subclassed: their native batched env
        return env.batched(n_envs)
    if vectorization == "sync" and n_envs == 1:
        return _vectorize([lambda: env], vectorization)
    spec = env.spec
    if spec is None:
        raise ConfigError(
            f"make_vec_env: env={env!r} has no spec, so tracerl cannot build more copies of it "
            f"(n_envs={n_envs}, vectorization={vectorization!r}); pass an env id or a zero-arg callable that returns the env."
        )

    def copy_from_spec() -> gymnasium.Env:
        return gymnasium.make(spec)

    if vectorization == "async":  # the instance cannot be shared with worker processes: rebuild every copy
        return _vectorize([copy_from_spec] * n_envs, vectorization)
    return _vectorize([lambda: env] + [copy_from_spec] * (n_envs - 1), vectorization)


def _check_vector_env(vec_env: VectorEnv) -> VectorEnv:
    """Return ``vec_env`` if it autoresets in the same step, else raise :class:`ConfigError`."""
    mode = get_autoreset_mode(vec_env)
    if mode != AutoresetMode.SAME_STEP:
        raise ConfigError(
            f"make_vec_env: the vector env {vec_env!r} uses autoreset_mode={mode.value}, but tracerl needs "
            f"SAME_STEP autoreset (the returned obs of a finished sub-env is its next episode's first obs and "
            f"infos['final_obs'] holds the last one); build it with autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP "
            f"or pass an env id / callable instead."
        )
    return vec_env


def check_env_spaces(vec_env: VectorEnv, observation_space: gymnasium.Space, action_space: gymnasium.Space,
                     what: str = "the agent") -> None:
    """Raise :class:`ConfigError` (after closing ``vec_env``) when its single-env spaces differ from
    ``observation_space`` / ``action_space``; the message names both sides."""
    obs, act = vec_env.single_observation_space, vec_env.single_action_space
    if obs == observation_space and act == action_space:
        return
    try:
        vec_env.close()
    except Exception:  # noqa: BLE001 - the mismatch is the error to report
        pass
    parts = []
    if obs != observation_space:
        parts.append(f"observation space {obs} differs from {what}'s {observation_space}")
    if act != action_space:
        parts.append(f"action space {act} differs from {what}'s {action_space}")
    raise ConfigError(f"the env does not fit {what}: " + "; ".join(parts))


def make_vec_env(
    env: EnvLike,
    n_envs: int = 8,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    vectorization: str = "sync",
    resilient: bool = False,
    max_restarts: int = 3,
    step_timeout: float | None = None,
    subprocess: bool = False,
    import_modules: Sequence[str] = (),
) -> VectorEnv:
    """Build a SAME_STEP-autoreset vector env of ``n_envs`` copies of ``env``.

    Args:
        env: an env id (tracerl's batched tasks, e.g. ``"tracerl/CueDelay-v0"``, give their native batched
            env, such as :class:`CueDelayVectorEnv`; other ids a gymnasium Sync/AsyncVectorEnv of
            ``gymnasium.make(id, **env_kwargs)`` copies); an instance of one of tracerl's tasks
            (:data:`BATCHABLE`: its ``batched(n_envs)``, with the same parameters); another ``gymnasium.Env``
            instance (wrapped itself, with further copies made from ``env.spec``); a zero-arg callable
            returning an env; or an existing ``VectorEnv``, returned as is (``n_envs`` is then ignored) if its
            autoreset mode is SAME_STEP.
        n_envs: number of sub-envs, >= 1.
        seed: if given, seeds the returned env's action spaces (for reproducible ``action_space.sample()``).
            The env itself is not reset: call ``vec_env.reset(seed=...)`` yourself.
        env_kwargs: keyword arguments for ``gymnasium.make``; only valid when ``env`` is an id.
        vectorization: ``"sync"`` or ``"async"`` (tracerl's own ids always use their native batched env).
        resilient: build a :class:`~tracerl.envs.resilient.ResilientVectorEnv` of single envs instead (ignores
            ``vectorization``): a sub-env that raises, dies or hangs is rebuilt and reset, its episode is dropped
            from training, and after ``max_restarts`` rebuilds of the same sub-env an ``EnvCrashError`` naming
            it stops training.
        max_restarts: rebuilds allowed per sub-env (``resilient=True`` only).
        step_timeout: seconds a sub-env has to answer a step (``resilient=True, subprocess=True`` only; None: the
            default of 60 s, :data:`~tracerl.envs.resilient.DEFAULT_STEP_TIMEOUT`; ``float("inf")``: wait for ever).
        subprocess: run every sub-env in its own spawned process (``resilient=True`` only).
        import_modules: modules an env id read from a file (a :class:`~tracerl.envs.safe_make.FileEnvId`, e.g.
            a loaded agent's ``env_id``) may import through a ``"module:Env-v0"`` prefix; without them such an id
            raises ConfigError before any import (see :mod:`tracerl.envs.safe_make`). Its kwargs are checked too.

    Returns:
        A ``gymnasium.vector.VectorEnv`` whose ``metadata["autoreset_mode"]`` is ``AutoresetMode.SAME_STEP``.
    """
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ConfigError(f"make_vec_env: n_envs={n_envs!r} is invalid; it must be an int >= 1.")
    if vectorization not in VECTORIZATIONS:
        raise ConfigError(f"make_vec_env: vectorization={vectorization!r} is invalid; it must be one of {VECTORIZATIONS}.")
    if env_kwargs and not isinstance(env, str):
        raise ConfigError(
            f"make_vec_env: env_kwargs={env_kwargs!r} can only be used when env is an id string, got env={env!r}; "
            "construct the env with those arguments yourself instead."
        )
    if not resilient and (subprocess or step_timeout is not None):
        raise ConfigError(f"make_vec_env: subprocess={subprocess!r} / step_timeout={step_timeout!r} need resilient=True.")
    if isinstance(env, str):
        check_env_id(env, import_modules)
        if isinstance(env, FileEnvId) and env_kwargs:
            env_kwargs = check_env_kwargs(env_kwargs, env.source)
    if resilient:
        from tracerl.envs.resilient import ResilientVectorEnv, resilient_factories

        vec_env = ResilientVectorEnv(resilient_factories(env, n_envs, env_kwargs), max_restarts=max_restarts,
                                     step_timeout=step_timeout, subprocess=subprocess)
    elif isinstance(env, str):
        vec_env = _from_id(env, n_envs, dict(env_kwargs or {}), vectorization)
    elif isinstance(env, VectorEnv):
        vec_env = _check_vector_env(env)
    elif isinstance(env, gymnasium.Env):
        vec_env = _from_instance(env, n_envs, vectorization)
    elif callable(env):
        vec_env = _vectorize([env] * n_envs, vectorization)
    else:
        raise ConfigError(
            f"make_vec_env: env={env!r} (type {type(env).__name__}) is invalid; pass an env id, a gymnasium.Env, "
            "a zero-arg callable returning one, or a gymnasium.vector.VectorEnv."
        )
    if seed is not None:
        vec_env.action_space.seed(seed)
        vec_env.single_action_space.seed(seed)
    return vec_env
