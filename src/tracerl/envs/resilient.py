"""A SAME_STEP vector env that survives sub-envs that crash or hang: :class:`ResilientVectorEnv`.

Each sub-env is built from its own zero-arg factory, either in this process or (``subprocess=True``) in
its own process (``multiprocessing`` spawn context) that must answer every ``step`` within
``step_timeout`` seconds. When a sub-env raises inside ``step`` or ``reset``, or its process dies or does
not answer in time (it is then killed), the wrapper rebuilds that sub-env from its factory, resets it and
returns, for that index only:

* the reset observation of the new episode, reward ``0.0``, ``terminated=False``, ``truncated=True``;
* ``infos["env_restarted"][i] = True`` and ``infos["env_error"][i]`` = the sub-env's traceback text
  (both with gymnasium's ``_key`` masks), and no ``final_obs`` (there is no last observation to bootstrap
  from).

:class:`~tracerl.data.rollout.RolloutCollector` reads ``env_restarted``: the crashed episode ends there
(``done``, so GAE does not cross it), it does not bootstrap, it never reaches the episode statistics, and
every step of it collected in the current rollout gets ``valid = 0`` in the buffer, which PPO multiplies
into its loss mask. Steps of that episode collected in an earlier rollout were already trained on.

``max_restarts`` counts per sub-env over the wrapper's lifetime (including crashes during ``reset``):
sub-env ``i`` may be rebuilt ``max_restarts`` times; its next failure raises
:class:`~tracerl.errors.EnvCrashError`, naming ``i`` and carrying the sub-env's own traceback text.
Restart counts are not stored in checkpoints. Autoreset is SAME_STEP, as everywhere in tracerl.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from copy import deepcopy
from typing import Any, Callable, Sequence

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import CloudpickleWrapper, batch_space, concatenate, create_empty_array, iterate

from ..errors import ConfigError, EnvCrashError
from .batched import expand_seeds

EnvFactory = Callable[[], gymnasium.Env]

DEFAULT_STEP_TIMEOUT = 60.0
"""Seconds a subprocess sub-env has to answer a ``step`` when no ``step_timeout`` is given: a hung sub-env is
killed, rebuilt and counted as a failure after a minute instead of blocking training for ever. Pass
``step_timeout=float("inf")`` to wait for ever. (A sub-env stepping in this process cannot be interrupted.)"""


class _SubEnvFailure(Exception):
    """A sub-env raised, died or hung; ``text`` is its traceback (or what happened to its process)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _step_same_step(env: gymnasium.Env, action: Any) -> tuple[Any, ...]:
    """One SAME_STEP-autoreset step: ``(obs, reward, terminated, truncated, info, final_obs, final_info)``."""
    obs, reward, terminated, truncated, info = env.step(action)
    final_obs = final_info = None
    if terminated or truncated:
        final_obs, final_info = obs, info
        obs, info = env.reset()
    return obs, float(reward), bool(terminated), bool(truncated), info, final_obs, final_info


class _InProcessEnv:
    """A sub-env living in this process; exceptions become :class:`_SubEnvFailure`."""

    def __init__(self, factory: EnvFactory) -> None:
        try:
            self.env = factory()
        except Exception:
            raise _SubEnvFailure(traceback.format_exc()) from None

    def spaces(self) -> tuple[gymnasium.Space, gymnasium.Space, dict[str, Any]]:
        return self.env.observation_space, self.env.action_space, dict(getattr(self.env, "metadata", {}) or {})

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        try:
            return self.env.reset(seed=seed, options=options)
        except Exception:
            raise _SubEnvFailure(traceback.format_exc()) from None

    def send_step(self, action: Any) -> None:
        self._action = action

    def recv_step(self, deadline: float | None) -> tuple[Any, ...]:
        try:
            return _step_same_step(self.env, self._action)
        except Exception:
            raise _SubEnvFailure(traceback.format_exc()) from None

    def close(self) -> None:
        try:
            self.env.close()
        except Exception:
            pass


def _worker(conn: Any, factory: CloudpickleWrapper) -> None:
    """Subprocess loop: build the env, report its spaces, then answer reset/step/close commands."""
    try:
        env = factory()
        conn.send(("ok", (env.observation_space, env.action_space, dict(getattr(env, "metadata", {}) or {}))))
    except Exception:
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        try:
            cmd, data = conn.recv()
        except (EOFError, KeyboardInterrupt):
            break
        if cmd == "close":
            try:
                env.close()
            finally:
                conn.send(("ok", None))
            break
        try:
            if cmd == "reset":
                result: Any = env.reset(seed=data[0], options=data[1])
            elif cmd == "step":
                result = _step_same_step(env, data)
            else:
                raise ValueError(f"unknown command {cmd!r}")
            conn.send(("ok", result))
        except Exception:
            conn.send(("error", traceback.format_exc()))


class _SubprocessEnv:
    """A sub-env in its own spawned process; no answer within the deadline, or a dead process, is a failure."""

    def __init__(self, factory: EnvFactory, index: int, start_timeout: float) -> None:
        ctx = mp.get_context("spawn")
        self.index = index
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(child, CloudpickleWrapper(factory)), daemon=True,
                                   name=f"tracerl-subenv-{index}")
        self.process.start()
        child.close()
        self._spaces = self._recv(time.monotonic() + start_timeout, "start")

    def _recv(self, deadline: float | None, what: str) -> Any:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            ready = self.conn.poll(timeout)
        except (OSError, EOFError):
            ready = True  # a broken pipe: recv below reports it
        if not ready:
            self.kill()
            raise _SubEnvFailure(f"sub-env {self.index} did not answer {what} within the timeout "
                                 f"(process {self.process.pid} killed)")
        try:
            status, payload = self.conn.recv()
        except (EOFError, OSError, ConnectionError):
            self.kill()
            hint = (" (with the spawn start method, a script must guard its entry point with "
                    "if __name__ == '__main__':)" if what == "start" else "")
            raise _SubEnvFailure(f"sub-env {self.index}'s process {self.process.pid} died during {what} "
                                 f"(exit code {self.process.exitcode}){hint}") from None
        if status == "error":
            self.kill()
            raise _SubEnvFailure(payload)
        return payload

    def spaces(self) -> tuple[gymnasium.Space, gymnasium.Space, dict[str, Any]]:
        return self._spaces

    def _send(self, msg: Any, what: str) -> None:
        try:
            self.conn.send(msg)
        except (OSError, BrokenPipeError, EOFError):
            self.kill()
            raise _SubEnvFailure(f"sub-env {self.index}'s process {self.process.pid} died before {what} "
                                 f"(exit code {self.process.exitcode})") from None

    def reset(self, seed: int | None, options: dict[str, Any] | None, timeout: float | None = None) -> Any:
        self._send(("reset", (seed, options)), "reset")
        return self._recv(None if timeout is None else time.monotonic() + timeout, "reset")

    def send_step(self, action: Any) -> None:
        self._pending: _SubEnvFailure | None = None
        try:
            self._send(("step", action), "step")
        except _SubEnvFailure as failure:
            self._pending = failure

    def recv_step(self, deadline: float | None) -> tuple[Any, ...]:
        if self._pending is not None:
            raise self._pending
        return self._recv(deadline, "step")

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5.0)
        self.conn.close()

    def close(self) -> None:
        if self.process.is_alive() and not self.conn.closed:
            try:
                self.conn.send(("close", None))
                if self.conn.poll(2.0):
                    self.conn.recv()
            except (OSError, EOFError, BrokenPipeError):
                pass
            self.process.join(timeout=2.0)
        if self.process.is_alive() or not self.conn.closed:
            self.kill()


class ResilientVectorEnv(VectorEnv):
    """SAME_STEP vector env over ``env_fns`` (one zero-arg factory per sub-env) that restarts failing sub-envs.

    Args:
        env_fns: one factory per sub-env; a factory is called again to rebuild its sub-env after a failure.
            With ``subprocess=True`` factories are sent to the workers with cloudpickle.
        max_restarts: how many times each sub-env may be rebuilt (counted per sub-env, over the wrapper's
            lifetime); the next failure of that sub-env raises :class:`EnvCrashError`. 0 raises on the
            first failure.
        step_timeout: seconds a subprocess sub-env has to answer a ``step``; None gives
            :data:`DEFAULT_STEP_TIMEOUT` (60 s) with ``subprocess=True``; ``float("inf")`` waits for ever. An explicit
            value needs ``subprocess=True``.
        subprocess: run every sub-env in its own spawned process (as with any spawn-based multiprocessing, a
            script that builds one must guard its entry point with ``if __name__ == "__main__":``).
        reset_timeout: seconds a subprocess sub-env has to start (spawn, imports, factory) and to answer a
            ``reset`` (None: wait forever); separate from ``step_timeout`` because starting a process is slow.

    ``infos["env_restarted"]`` (bool ``[N]``) and ``infos["env_error"]`` (object ``[N]``, the traceback
    text) appear in the infos of a step or reset in which some sub-env was rebuilt; ``restarts`` (int
    ``[N]``) counts the rebuilds so far.
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        env_fns: Sequence[EnvFactory],
        max_restarts: int = 3,
        step_timeout: float | None = None,
        subprocess: bool = False,
        reset_timeout: float | None = 120.0,
    ) -> None:
        env_fns = list(env_fns)
        if not env_fns or not all(callable(f) for f in env_fns):
            raise ConfigError(f"ResilientVectorEnv: env_fns={env_fns!r} is invalid; it must be a non-empty list of "
                              "zero-arg callables returning a gymnasium.Env")
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise ConfigError(f"ResilientVectorEnv: max_restarts={max_restarts!r} is invalid; it must be an int >= 0")
        for name, value in (("step_timeout", step_timeout), ("reset_timeout", reset_timeout)):
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
                                          and (np.isfinite(value) or (name == "step_timeout" and value == np.inf))):
                raise ConfigError(f"ResilientVectorEnv: {name}={value!r} is invalid; it must be > 0 and finite, or None"
                                  + (" (or inf: wait for ever)" if name == "step_timeout" else ""))
        if step_timeout is not None and not subprocess:
            raise ConfigError(f"ResilientVectorEnv: step_timeout={step_timeout!r} needs subprocess=True (an env "
                              "stepping in this process cannot be interrupted)")
        self.env_fns = env_fns
        self.num_envs = len(env_fns)
        self.max_restarts = max_restarts
        if subprocess and step_timeout is None:
            step_timeout = DEFAULT_STEP_TIMEOUT
        self.step_timeout = None if step_timeout == np.inf else step_timeout
        self.reset_timeout = reset_timeout
        self.subprocess = bool(subprocess)
        self.autoreset_mode = AutoresetMode.SAME_STEP
        self.metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = None
        self.restarts = np.zeros(self.num_envs, dtype=np.int64)
        self.errors: list[list[str]] = [[] for _ in range(self.num_envs)]
        self._seeds: list[int | None] = [None] * self.num_envs
        self.closed = False
        self.envs: list[Any] = [None] * self.num_envs
        try:
            for i in range(self.num_envs):
                self.envs[i] = self._build_retrying(i)
        except BaseException:
            self.close()
            raise
        obs_space, act_space, meta = self.envs[0].spaces()
        self.single_observation_space = obs_space
        self.single_action_space = act_space
        self.metadata.update({k: v for k, v in meta.items() if k != "autoreset_mode"})
        self.observation_space = batch_space(obs_space, self.num_envs)
        self.action_space = batch_space(act_space, self.num_envs)
        self._observations = create_empty_array(obs_space, n=self.num_envs, fn=np.zeros)
        self._env_obs: list[Any] = [None] * self.num_envs

    # -- failures ---------------------------------------------------------------------------------
    def _build(self, i: int) -> Any:
        if self.subprocess:
            return _SubprocessEnv(self.env_fns[i], i, self.reset_timeout or 1e9)
        return _InProcessEnv(self.env_fns[i])

    def _record(self, i: int, text: str, during: str) -> None:
        """Count a failure of sub-env ``i``; raise EnvCrashError once it has used up its restarts."""
        self.errors[i].append(text)
        if self.restarts[i] >= self.max_restarts:
            self.close()
            raise EnvCrashError(
                f"sub-env {i} failed during {during} after {int(self.restarts[i])} restart(s) "
                f"(max_restarts={self.max_restarts}); its traceback:\n{text}",
                env_index=i, traceback_text=text, restarts=int(self.restarts[i]),
            )
        self.restarts[i] += 1

    def _build_retrying(self, i: int) -> Any:
        while True:
            try:
                return self._build(i)
            except _SubEnvFailure as failure:
                self._record(i, failure.text, "construction")

    def _restart_seed(self, i: int) -> int | None:
        """A seed for the rebuilt sub-env ``i``, derived from its last reset seed and its restart count."""
        if self._seeds[i] is None:
            return None
        return int(np.random.SeedSequence([int(self._seeds[i]), int(self.restarts[i])]).generate_state(1)[0])

    def _reset_one(self, i: int, seed: int | None, options: dict[str, Any] | None) -> tuple[Any, dict[str, Any], str | None]:
        """Reset sub-env ``i``, rebuilding it as often as needed; returns (obs, info, last failure text)."""
        failed: str | None = None
        while True:
            try:
                if self.subprocess:
                    obs, info = self.envs[i].reset(seed, options, self.reset_timeout)
                else:
                    obs, info = self.envs[i].reset(seed, options)
                return obs, info, failed
            except _SubEnvFailure as failure:
                failed = failure.text
                self._restart(i, failure.text, "reset")
                seed = self._restart_seed(i)

    def _restart(self, i: int, text: str, during: str) -> None:
        self._record(i, text, during)
        self.envs[i].close()
        self.envs[i] = self._build_retrying(i)

    # -- VectorEnv API ----------------------------------------------------------------------------
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every sub-env (``seed``: None, an int s giving sub-env i the seed s + i, or a list of N)."""
        seeds = expand_seeds(seed, self.num_envs)
        mask = np.ones(self.num_envs, dtype=bool)
        if options is not None and "reset_mask" in options:
            options = dict(options)
            mask = np.asarray(options.pop("reset_mask"), dtype=bool)
        infos: dict[str, Any] = {}
        restarted = np.zeros(self.num_envs, dtype=bool)
        errors = np.full(self.num_envs, None, dtype=object)
        for i in np.flatnonzero(mask):
            self._seeds[i] = seeds[i]
            self._env_obs[i], info, failed = self._reset_one(i, seeds[i], options)
            infos = self._add_info(infos, info, i)
            if failed is not None:
                restarted[i], errors[i] = True, failed
        self._add_restart_info(infos, restarted, errors)
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        return deepcopy(self._observations), infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env; a failing one is rebuilt, reset and reported as truncated with ``env_restarted``."""
        actions_list = list(iterate(self.action_space, actions))
        for i, action in enumerate(actions_list):
            self.envs[i].send_step(action)
        deadline = None if self.step_timeout is None else time.monotonic() + self.step_timeout
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        restarted = np.zeros(self.num_envs, dtype=bool)
        errors = np.full(self.num_envs, None, dtype=object)
        infos: dict[str, Any] = {}
        failures: dict[int, str] = {}
        for i in range(self.num_envs):
            try:
                obs, reward, term, trunc, info, final_obs, final_info = self.envs[i].recv_step(deadline)
            except _SubEnvFailure as failure:
                failures[i] = failure.text
                continue
            if term or trunc:
                infos = self._add_info(infos, {"final_obs": final_obs, "final_info": final_info}, i)
            self._env_obs[i], rewards[i], terminated[i], truncated[i] = obs, reward, term, trunc
            infos = self._add_info(infos, info, i)
        for i, text in failures.items():  # after every healthy sub-env has answered
            self._restart(i, text, "step")
            self._env_obs[i], info, failed = self._reset_one(i, self._restart_seed(i), None)
            infos = self._add_info(infos, info, i)
            truncated[i], restarted[i], errors[i] = True, True, failed or text
        self._add_restart_info(infos, restarted, errors)
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        return deepcopy(self._observations), rewards, terminated, truncated, infos

    def _add_restart_info(self, infos: dict[str, Any], restarted: np.ndarray, errors: np.ndarray) -> None:
        if restarted.any():
            infos["env_restarted"], infos["_env_restarted"] = restarted, restarted.copy()
            infos["env_error"], infos["_env_error"] = errors, restarted.copy()

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            if env is not None:
                env.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


__all__ = ["DEFAULT_STEP_TIMEOUT", "ResilientVectorEnv"]


class _CopyFactory:
    """Builds a fresh deep copy of an env instance (picklable if the instance is)."""

    def __init__(self, env: gymnasium.Env) -> None:
        self.template = deepcopy(env)

    def __call__(self) -> gymnasium.Env:
        return deepcopy(self.template)


def resilient_factories(env: Any, n_envs: int, env_kwargs: dict[str, Any] | None = None) -> list[EnvFactory]:
    """One factory per sub-env for :class:`ResilientVectorEnv`, from what :func:`make_vec_env` accepts.

    An id gives ``gymnasium.make(id, **env_kwargs)``; a zero-arg callable is used as is; an env instance is
    rebuilt with ``gymnasium.make(env.spec)`` when it has a spec, else deep-copied. An existing VectorEnv
    cannot be rebuilt per sub-env and raises ConfigError.
    """
    from functools import partial

    if isinstance(env, str):
        return [partial(gymnasium.make, env, **dict(env_kwargs or {}))] * n_envs
    if isinstance(env, VectorEnv):
        raise ConfigError(f"make_vec_env: resilient=True cannot rebuild the sub-envs of an existing vector env "
                          f"{env!r}; pass an env id, an env instance or a zero-arg env factory instead")
    if isinstance(env, gymnasium.Env):
        if env.spec is not None:
            return [partial(gymnasium.make, env.spec)] * n_envs
        return [_CopyFactory(env)] * n_envs
    if callable(env):
        return [env] * n_envs
    raise ConfigError(f"make_vec_env: env={env!r} (type {type(env).__name__}) is invalid; pass an env id, a "
                      "gymnasium.Env or a zero-arg callable returning one")


__all__ += ["resilient_factories"]
