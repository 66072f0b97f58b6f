"""Build the vector env tracerl trains on, always with SAME_STEP autoreset.

tracerl's rollout code relies on SAME_STEP autoreset: the observation returned for a sub-env whose
episode just ended is already the first observation of its next episode, and the ended episode's last
observation is in ``infos["final_obs"]`` (masked by ``infos["_final_obs"]``).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence, Union

import gymnasium
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from tracerl.envs.count_window import CountWindow
from tracerl.envs.cue_delay import CueDelay
from tracerl.envs.image_cue import ImageCueDelay
from tracerl.envs.output_check import CheckedEnv, CheckedFactory
from tracerl.envs.registration import REGISTERED_ENV_IDS
from tracerl.envs.rewrite_maze import RewriteMaze
from tracerl.envs.safe_make import FileEnvId, check_env_id, check_env_kwargs
from tracerl.envs.tmaze import TMaze
from tracerl.errors import ConfigError

VECTORIZATIONS = ("sync", "async", "auto")
"""Valid ``vectorization`` values of :func:`make_vec_env`: ``"sync"`` (every sub-env in this process, gymnasium's
``SyncVectorEnv``), ``"async"`` (one subprocess per sub-env, observations in shared memory: gymnasium's
``AsyncVectorEnv(shared_memory=True)``) or ``"auto"`` (:func:`choose_vectorization` from a measured step cost)."""
BATCHABLE = (CueDelay, CountWindow, TMaze, ImageCueDelay)
BATCHABLE += (RewriteMaze,)
"""Single-env classes with a ``batched(num_envs)`` method returning their native batched env."""

ASYNC_IPC_SECONDS = 1e-4
"""What one sub-env step costs the main process in an ``AsyncVectorEnv`` beyond the env's own work (pipes,
shared-memory copies, process switches): ~110 µs measured with 16 POPGym envs on 2 cores (BENCHMARKS.md)."""
ASYNC_MARGIN = 1.5
"""``"auto"`` picks subprocesses only when their predicted cost, times this, is still below in-process stepping."""
PROBE_STEPS = 32
"""Random-action steps :func:`measure_step_seconds` times (fewer when they take longer than ``PROBE_SECONDS``)."""
PROBE_SECONDS = 0.25
"""Most seconds :func:`measure_step_seconds` spends stepping."""

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


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def choose_vectorization(step_seconds: float, n_envs: int, cpus: int, ipc_seconds: float = ASYNC_IPC_SECONDS,
                         margin: float = ASYNC_MARGIN) -> str:
    """``"async"`` or ``"sync"`` for ``n_envs`` sub-envs whose single step costs ``step_seconds``, on ``cpus`` CPUs.

    In-process stepping costs ``n_envs * step_seconds`` per vector step. Subprocesses cost the main process
    ``ipc_seconds`` per sub-env and spread the envs' own work over ``min(cpus, n_envs)`` CPUs:
    ``n_envs * (ipc_seconds + step_seconds / min(cpus, n_envs))``. Subprocesses are picked only when that, times
    ``margin``, is at most the in-process cost, so fast envs (most POPGym and classic-control envs: 10-50 µs a
    step) stay in-process and slow ones (a simulator) get the other CPUs. One env or one CPU: always ``"sync"``.
    """
    if n_envs < 2 or cpus < 2 or not step_seconds > 0:
        return "sync"
    in_process = n_envs * step_seconds
    subprocesses = n_envs * (ipc_seconds + step_seconds / min(cpus, n_envs))
    return "async" if subprocesses * margin <= in_process else "sync"


def measure_step_seconds(make_env: Callable[[], gymnasium.Env], steps: int = PROBE_STEPS,
                         max_seconds: float = PROBE_SECONDS, seed: int = 0) -> float:
    """Seconds one ``step`` of a fresh env from ``make_env`` takes with random actions (reset, then up to ``steps``
    timed steps or ``max_seconds``, resetting where an episode ends; at least one step). The env is closed."""
    env = make_env()
    try:
        env.reset(seed=seed)
        space = env.action_space
        space.seed(seed)
        done, total, t_end = 0, 0.0, time.perf_counter() + max_seconds
        while done < max(steps, 1):
            action = space.sample()
            t0 = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            total += time.perf_counter() - t0
            done += 1
            if terminated or truncated:
                env.reset()
            if time.perf_counter() >= t_end:
                break
        return total / done
    finally:
        env.close()


def _single_factory(env: Any, env_kwargs: dict[str, Any]) -> Callable[[], gymnasium.Env] | None:
    """A zero-arg factory of one sub-env of what :func:`make_vec_env` vectorizes (None: nothing to measure)."""
    if isinstance(env, str):
        return lambda: gymnasium.make(env, **env_kwargs)
    if isinstance(env, gymnasium.Env):
        spec = env.spec
        return None if spec is None else (lambda: gymnasium.make(spec))
    if callable(env):
        return env
    return None


def resolve_vectorization(env: Any, n_envs: int, vectorization: str, env_kwargs: dict[str, Any] | None = None,
                          verbose: int = 0) -> str:
    """``vectorization`` itself, or for ``"auto"`` the choice of :func:`choose_vectorization` from one sub-env's
    step cost measured by :func:`measure_step_seconds` (no measurement when it cannot matter: one env, one CPU, or
    tracerl's own batched tasks). ``verbose`` >= 1 prints the measured cost and the choice."""
    if vectorization != "auto":
        return vectorization
    cpus = available_cpus()
    native = (isinstance(env, str) and env in REGISTERED_ENV_IDS) or type(env) in BATCHABLE
    factory = None if native or n_envs < 2 or cpus < 2 else _single_factory(env, dict(env_kwargs or {}))
    if factory is None:
        return "sync"
    cost = measure_step_seconds(factory)
    choice = choose_vectorization(cost, n_envs, cpus)
    if verbose >= 1:
        name = env if isinstance(env, str) else getattr(getattr(env, "spec", None), "id", None) or type(env).__name__
        print(f"tracerl: env {name} steps in {cost * 1e6:,.0f} µs; vectorization='auto' chose {choice!r} for "
              f"{n_envs} envs on {cpus} CPUs (subprocesses pay off above ~"
              f"{_break_even(n_envs, cpus) * 1e6:,.0f} µs a step; set env_vectorization to override)", flush=True)
    return choice


def _break_even(n_envs: int, cpus: int) -> float:
    """The step cost above which :func:`choose_vectorization` picks subprocesses."""
    k = min(cpus, n_envs)
    return ASYNC_MARGIN * ASYNC_IPC_SECONDS / (1.0 - ASYNC_MARGIN / k) if ASYNC_MARGIN < k else float("inf")


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
    verbose: int = 0,
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
        vectorization: ``"sync"`` (in-process), ``"async"`` (a subprocess per sub-env, shared-memory
            observations) or ``"auto"`` (:func:`resolve_vectorization`: one sub-env's random-action step is timed
            and subprocesses are used only for envs slow enough to gain from them, :func:`choose_vectorization`).
            tracerl's own ids and tasks always use their native batched env; an existing VectorEnv is kept.
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
        verbose: >= 1 prints what ``vectorization="auto"`` measured and chose.

    Returns:
        A ``gymnasium.vector.VectorEnv`` whose ``metadata["autoreset_mode"]`` is ``AutoresetMode.SAME_STEP``.
    """
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ConfigError(f"make_vec_env: n_envs={n_envs!r} is invalid; it must be an int >= 1.")
    if vectorization not in VECTORIZATIONS:
        raise ConfigError(f"make_vec_env: vectorization={vectorization!r} is invalid; it must be one of "
                          f"{', '.join(repr(v) for v in VECTORIZATIONS)}.")
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
    if not resilient and not isinstance(env, VectorEnv):
        vectorization = resolve_vectorization(env, n_envs, vectorization, env_kwargs, verbose)
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
