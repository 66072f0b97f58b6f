"""``RunnerGroup``: the PPO family's collector when rollouts come from env runners (in this process or Ray actors).

Synchronous PPO: before every update the learner's weights go to every runner (one ``ray.put``, one object every
runner reads), each runner collects ``n_steps`` from its sub-envs with exactly those weights, and the group writes
the runners' rollouts side by side into the learner's :class:`~tracerl.data.rollout.RolloutBuffer` (runner ``i``
fills columns ``i * k .. (i + 1) * k - 1``, ``k = n_envs / runners``), chunk-start memory states and episode starts
included. The reward normalizer (statistics over all sub-envs) then runs on the learner, step by step, as one
collector would. With per-sub-env sampling streams (:mod:`tracerl.distributed.sampling`) and env seeds by global
index, N runners give exactly the rollouts, hence the updates, of one runner with all ``n_envs`` sub-envs.

Faults (Ray): a runner whose process dies is restarted by Ray (``max_restarts``); the group drops the rollout it
was collecting, resets the restarted runner's envs (every sub-env starts a new episode with the initial memory
state, so nothing is mixed across episodes) and asks it again. A runner that dies more than
``runner_max_restarts`` times stops training with :class:`RunnerError`.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from ..data.rollout import EpisodeStats, RolloutBuffer
from ..errors import CheckpointError, ConfigError, TraceRLError
from .runner import EnvRunner, RunnerSpec

UNAVAILABLE_TIMEOUT = 300.0
"""Seconds a Ray runner may stay unavailable (restarting, unreachable) before :class:`RunnerError`."""
RAY_INSTALL_HINT = "pip install 'tracerl[ray]' (or: pip install 'ray>=2.9')"


class RunnerError(TraceRLError, RuntimeError):
    """An env runner kept dying: ``runner`` is its index, ``envs`` its global sub-env indices, ``restarts`` how often
    it had been restarted, ``cause`` what Ray reported last."""

    def __init__(self, message: str, runner: int, envs: tuple[int, int], restarts: int, cause: str = "") -> None:
        super().__init__(message)
        self.runner = runner
        self.envs = envs
        self.restarts = restarts
        self.cause = cause

    def __reduce__(self):  # picklable across processes despite the extra constructor arguments
        return type(self), (str(self), self.runner, self.envs, self.restarts, self.cause)


def check_runner_setup(n_envs: int, runners: int, *, returns: str, use_rnd: bool) -> None:
    """ConfigError when ``runners`` cannot serve this PPO setup (naming the field and value)."""
    if runners < 1:
        return
    if n_envs % runners:
        raise ConfigError(f"runners={runners} does not divide n_envs={n_envs}: every runner gets n_envs / runners "
                          "sub-envs")
    if use_rnd:
        raise ConfigError(f"runners={runners} is not supported with use_rnd=True (RND's per-env statistics live in "
                          "the collector)")
    if returns == "monte_carlo":
        raise ConfigError(f"runners={runners} is not supported with returns='monte_carlo' (whole episodes are held "
                          "back in the collector)")


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"runner_backend='ray' needs Ray, which is not installed: {RAY_INSTALL_HINT}") from exc
    return ray


def start_ray(address: str | None, runners: int, num_cpus: float, verbose: int) -> Any:
    """Ray, initialized (joining the cluster at ``address``, else starting a local instance) unless it already is.
    On a local instance ``runners`` actors of ``num_cpus`` CPUs each must fit, or they would wait for ever:
    ConfigError naming both settings otherwise."""
    ray = _ray()
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=verbose >= 1)
        else:
            ray.init(include_dashboard=False, log_to_driver=verbose >= 1)
    if not address:
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        if runners * num_cpus > cpus + 1e-9:
            raise ConfigError(
                f"runners={runners} x runner_num_cpus={num_cpus} needs {runners * num_cpus:g} CPUs but the "
                f"local Ray instance has {cpus:g}: lower runner_num_cpus (e.g. {cpus / runners:g}; runners "
                "that wait on their env need little CPU) or join a larger cluster with ray_address")
    return ray


class RunnerPool:
    """The runners of a group (:class:`RunnerGroup`, :class:`~tracerl.distributed.offpolicy.OffPolicyRunnerGroup`)
    and what both groups do with them: start them (objects in this process, or one Ray actor each), name runner
    ``i``'s global sub-envs, seed resets by global sub-env index, read process ids, call a method on every runner,
    and restart a runner whose process died: count it (:class:`RunnerError` past ``max_restarts``) and reset it with
    env seeds and sampling streams of its restart count, so its sub-envs start new episodes.

    Args:
        runner_class: the runner (built from one spec; a Ray actor class is made of it with the ray backend).
        specs: one spec per runner.
        per_runner: sub-envs per runner (runner ``i`` has global sub-envs ``i * per_runner ..``).
        backend: ``"local"`` or ``"ray"`` (ConfigError otherwise).
        address, num_cpus: the Ray cluster to join and the CPUs each actor reserves (:func:`start_ray`).
        max_restarts: restarts allowed per runner (also Ray's actor restarts).
        verbose: print restarts when > 0.
    """

    def __init__(self, runner_class: type, specs: list[Any], *, per_runner: int, backend: str,
                 address: str | None, num_cpus: float, max_restarts: int, verbose: int) -> None:
        check_backend(backend)
        self.backend = backend
        self.per_runner = per_runner
        self.max_restarts = max_restarts
        self.verbose = verbose
        self.restarts = [0] * len(specs)
        """Restarts per runner."""
        self.steps_per_s = [float("nan")] * len(specs)
        """Env-steps/s of each runner's last rollout or chunk (NaN before its first)."""
        self.seed: int | None = None
        """The env seed of the last reset (sub-env ``g`` gets ``seed + g``)."""
        if backend == "local":
            self.runners: list[Any] = [runner_class(s) for s in specs]
        else:
            ray = start_ray(address, len(specs), num_cpus, verbose)
            actor_class = ray.remote(num_cpus=num_cpus, max_restarts=max_restarts, max_task_retries=0)(runner_class)
            self.runners = [actor_class.remote(s) for s in specs]

    def envs_of(self, i: int) -> tuple[int, int]:
        """Runner ``i``'s global sub-env indices, first and last."""
        return i * self.per_runner, (i + 1) * self.per_runner - 1

    def env_seed(self, i: int) -> int | None:
        """Runner ``i``'s env seed at the last reset (its first sub-env's; None: unseeded)."""
        return None if self.seed is None else self.seed + i * self.per_runner

    def pids(self) -> list[int]:
        """The runners' process ids (all this process's with the local backend)."""
        return self.call_all("pid", [()] * len(self.runners))

    def call_all(self, method: str, args: list[tuple[Any, ...]]) -> list[Any]:
        """``runner.method(*args[i])`` on every runner (with Ray: all sent, then all awaited); the results."""
        if self.backend == "local":
            return [getattr(r, method)(*a) for r, a in zip(self.runners, args)]
        ray = _ray()
        return ray.get([getattr(r, method).remote(*a) for r, a in zip(self.runners, args)])

    def wait(self, i: int, ref: Any, again: Any, ray: Any) -> tuple[Any, str | None]:
        """``ref``'s result and None, or None and why runner ``i``'s process died. While Ray reports the runner
        unavailable (restarting), the call is made again (``again()``) for up to :data:`UNAVAILABLE_TIMEOUT` s."""
        deadline = time.monotonic() + UNAVAILABLE_TIMEOUT
        while True:
            try:
                return ray.get(ref), None
            except ray.exceptions.ActorUnavailableError as exc:
                if time.monotonic() > deadline:
                    first, last = self.envs_of(i)
                    raise RunnerError(f"env runner {i} (sub-envs {first}..{last}) stayed unavailable for "
                                      f"{UNAVAILABLE_TIMEOUT:.0f} s: {exc}", runner=i, envs=(first, last),
                                      restarts=self.restarts[i], cause=str(exc)) from exc
                time.sleep(0.2)
                ref = again()
            except ray.exceptions.RayActorError as exc:
                return None, f"{type(exc).__name__}: {exc}"

    def restart(self, i: int, cause: str, dropped: str, on_count: Any = None) -> None:
        """Runner ``i``'s process died (``cause``): count the restart (RunnerError past ``max_restarts``), call
        ``on_count(first_env, last_env)`` if given, and reset the runner with env seeds and sampling streams of its
        restart count; a death while resetting counts as one more. ``dropped`` says what of its work was lost
        (for the message printed when verbose)."""
        ray = _ray()
        reset = lambda: self._reset_restarted(i)  # noqa: E731
        while cause is not None:
            self.restarts[i] += 1
            first, last = self.envs_of(i)
            if self.restarts[i] > self.max_restarts:
                raise RunnerError(
                    f"env runner {i} (sub-envs {first}..{last}) died {self.restarts[i]} times, more than "
                    f"runner_max_restarts={self.max_restarts}; last: {cause}",
                    runner=i, envs=(first, last), restarts=self.restarts[i] - 1, cause=cause)
            if on_count is not None:
                on_count(first, last)
            if self.verbose:
                print(f"tracerl: env runner {i} (sub-envs {first}..{last}) restarted ({self.restarts[i]} of at most "
                      f"{self.max_restarts}): {dropped}, its sub-envs start new episodes")
            _, cause = self.wait(i, reset(), reset, ray)

    def _reset_restarted(self, i: int) -> Any:
        """Reset restarted runner ``i`` with env seeds and sampling streams of its restart count; the call's ref."""
        salt = self.restarts[i]
        seed = None if self.seed is None else int(np.random.SeedSequence([self.seed, i, salt]).generate_state(1)[0])
        return self.runners[i].reset.remote(seed, salt)

    def record_log(self, logger: Any) -> None:
        """Per-runner env-steps/s and the restarts."""
        for i, rate in enumerate(self.steps_per_s):
            logger.record(f"runners/steps_per_s_{i}", int(rate) if np.isfinite(rate) else 0)
        logger.record("runners/restarts", int(sum(self.restarts)))


def check_backend(backend: str) -> None:
    """ConfigError unless ``backend`` is ``"ray"`` or ``"local"``."""
    if backend not in ("ray", "local"):
        raise ConfigError(f"runner_backend={backend!r} is invalid: must be 'ray' or 'local'")


class RunnerGroup:
    """Env runners standing in for the PPO family's :class:`~tracerl.data.rollout.RolloutCollector`.

    Args:
        learner: the :class:`~tracerl.algos.ppo_learner.PPOLearner` (its config, policy, reward normalizer).
        agent: the :class:`~tracerl.TraceRL` (env id and kwargs, seed, threads, verbosity).
        runners: how many runners.
        backend: ``"ray"`` (one Ray actor per runner) or ``"local"`` (runner objects in this process, one after
            the other: the reference the Ray path must equal, and a debugging aid).
        address: the Ray cluster to join (None: the running Ray instance, else a new local one).
        num_cpus: CPUs Ray reserves per runner actor.
        max_restarts: restarts allowed per runner before :class:`RunnerError`.
    """

    def __init__(self, learner: Any, agent: Any, runners: int, backend: str = "ray", address: str | None = None,
                 num_cpus: float = 1.0, max_restarts: int = 3) -> None:
        cfg = learner.config
        check_runner_setup(cfg.n_envs, runners, returns=cfg.returns, use_rnd=learner.rnd is not None)
        if agent.env_id is None:
            raise ConfigError(f"runners={runners} needs an env the runners can rebuild: an env id (with env_kwargs) "
                              "or one of tracerl's tasks, not an env object of unknown origin")
        self.learner = learner
        self.policy = learner.policy
        self.n_envs = cfg.n_envs
        self.n_runners = runners
        self.per_runner = cfg.n_envs // runners
        self.backend = backend
        self.reward_normalizer = learner.reward_normalizer
        self.stats = EpisodeStats(self.n_envs)
        self.total_steps = 0
        self.rnd_bonus_sum = 0.0
        self.episodes = None  # no whole-episode hold-back (REINFORCE's Monte Carlo returns are refused)
        self.env = None  # the envs live in the runners
        self.progress: float | None = None  # training progress for cores that follow it (set by the learner)
        self.collect_seconds = 0.0
        # sampling streams: from the agent's seed, or one draw of the agent's torch stream (learn() holds it)
        self.sample_seed = agent.seed if agent.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        collector_kwargs = dict(gamma=cfg.gamma, nan_policy=cfg.nan_policy,
                                bootstrap_on_truncation=cfg.bootstraps_truncations,
                                max_episode_steps=cfg.max_episode_steps)
        own_process = backend == "ray"
        env_options = {k: v for k, v in learner.env_options().items() if k != "n_envs"}
        self.specs = [
            RunnerSpec(env_id=agent.env_id, env_kwargs=dict(agent.env_kwargs), n_envs=self.per_runner,
                       first_env=i * self.per_runner, n_steps=cfg.n_steps, chunk_len=cfg.chunk_len,
                       sample_seed=self.sample_seed, policy=copy.deepcopy(self.policy).cpu(),
                       collector_kwargs=collector_kwargs, env_options=env_options,
                       import_modules=tuple(agent.import_modules), info_keys=learner._info_keys(),
                       threads=agent.threads if own_process else None)
            for i in range(runners)
        ]
        self.pool = RunnerPool(EnvRunner, self.specs, per_runner=self.per_runner, backend=backend, address=address,
                               num_cpus=num_cpus, max_restarts=max_restarts, verbose=agent.verbose)

    # -- the collector's interface ----------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Reset every runner's envs (sub-env ``g`` seeded ``seed + g``, as one vector env would) and carry."""
        self.pool.seed = seed
        if self.backend == "local":
            for i, r in enumerate(self.pool.runners):
                r.reset(self.pool.env_seed(i))
        else:
            ray = _ray()
            self._get_all(lambda i, r: r.reset.remote(self.pool.env_seed(i)), ray)
        self.stats = EpisodeStats(self.n_envs)

    def pids(self) -> list[int]:
        """The runners' process ids (all this process's with the local backend)."""
        return self.pool.pids()

    @torch.no_grad()
    def collect(self, buf: RolloutBuffer) -> None:
        """Fill ``buf`` with one rollout from every runner, all collected with the learner's current weights."""
        start = time.perf_counter()
        weights = {k: v.detach().to("cpu", copy=True) for k, v in self.policy.state_dict().items()}
        if self.backend == "local":
            results = [r.collect(weights, self.progress) for r in self.pool.runners]
        else:
            ray = _ray()
            ref = ray.put(weights)
            results = self._get_all(lambda i, r: r.collect.remote(ref, self.progress), ray, restart_collect=True)
        self._fill(buf, results)
        self.collect_seconds = time.perf_counter() - start

    def _get_all(self, call: Any, ray: Any, restart_collect: bool = False) -> list[Any]:
        """``call(i, runner)`` on every runner, then their results. A runner whose process died (during the call,
        or before it: then Ray's restarted runner answers that it was never reset) is restarted by Ray; its partial
        rollout is dropped, it is reset (every sub-env starts a new episode, new sampling streams) and, for a
        rollout, asked again."""
        refs = [call(i, r) for i, r in enumerate(self.pool.runners)]
        results: list[Any] = []
        for i, ref in enumerate(refs):
            while True:
                result, cause = self.pool.wait(i, ref, lambda: call(i, self.pool.runners[i]), ray)
                if cause is None and isinstance(result, dict) and result.get("restarted"):
                    cause = "its process was restarted by Ray before the call"
                if cause is None:
                    results.append(result)
                    break
                self.pool.restart(i, cause, "its partial rollout is dropped", self._restart_returns)
                if not restart_collect:
                    results.append(None)
                    break
                ref = call(i, self.pool.runners[i])
        return results

    def _restart_returns(self, first: int, last: int) -> None:
        """A restarted runner's sub-envs start new episodes: their running returns (reward normalizer) restart."""
        if self.reward_normalizer is not None:
            self.reward_normalizer.ret[first:last + 1] = 0.0

    def _fill(self, buf: RolloutBuffer, results: list[dict[str, Any]]) -> None:
        k = self.per_runner
        for i, res in enumerate(results):
            cols = slice(i * k, (i + 1) * k)
            for name, value in res["steps"].items():
                getattr(buf, name)[:, cols] = value.to(buf.obs.device)
            for name, value in res["chunk_states"].items():
                buf.chunk_states[name][:, cols] = value.to(buf.obs.device)
            for name, value in res["replay"].items():
                buf.replay[name][:, cols] = value.to(buf.obs.device)
            for name, value in res["info"].items():
                buf.info[name][:, cols] = value.to(buf.obs.device)
            if buf.last_value is None:
                buf.last_value = torch.zeros(self.n_envs, device=buf.obs.device)
            buf.last_value[cols] = res["last_value"].to(buf.obs.device)
            self.pool.steps_per_s[i] = res["env_steps"] / max(res["seconds"], 1e-9)
        # the runners' rewards are raw (with γ V(final obs) of truncations apart): normalize as one collector would
        assert buf.env_reward is not None
        for t in range(buf.n_steps):
            scaled = buf.env_reward[t] if self.reward_normalizer is None else self.reward_normalizer(
                buf.env_reward[t], buf.done[t])
            buf.reward[t] = scaled + buf.reward[t]
        # episodes in the order one process sees them: by step, then by global env index
        self.stats.add_finished(r for res in results for r in res["episodes"])
        self.total_steps += buf.n_steps * buf.n_envs

    def record_log(self, logger: Any) -> None:
        """Per-runner env-steps/s (of collecting), restarts and the seconds of the last collection."""
        self.pool.record_log(logger)
        logger.record("runners/collect_s", round(self.collect_seconds, 3))

    # -- checkpoints -------------------------------------------------------------------------------------------
    def save_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Every runner's carry, sampling streams, env state and episode statistics (``runners.<i>.*`` tensors,
        ``meta["runners"]``), and the learner-side episode statistics and step count."""
        states = self.pool.call_all("get_state", [()] * self.n_runners)
        runners_meta = []
        for i, st in enumerate(states):
            tensors.update({f"runners.{i}.carry.{k}": v for k, v in st["carry"].items()})
            tensors[f"runners.{i}.sampler"] = st["sampler"]
            if st["env"] is not None:
                tensors.update({f"runners.{i}.env.{k}": v for k, v in st["env"][0].items()})
            runners_meta.append({"stats": st["stats"], "total_steps": st["total_steps"],
                                 "env_state": None if st["env"] is None else st["env"][1]})
        meta["runners"] = {"n": self.n_runners, "total_steps": self.total_steps, "stats": self.stats.to_json(),
                           "per_runner": runners_meta}

    def load_state(self, states: list[dict[str, Any]], total_steps: int, stats: dict[str, Any], where: str) -> None:
        """Send every runner its checked state (:meth:`save_state`'s, per runner) and restore the counters."""
        if self.backend == "local":
            self.pool.call_all("set_state", [(st, where) for st in states])
        else:
            ray = _ray()
            try:
                self.pool.call_all("set_state", [(st, where) for st in states])
            except ray.exceptions.RayTaskError as exc:  # the runner's own CheckpointError, unwrapped
                cause = getattr(exc, "cause", None)
                if isinstance(cause, CheckpointError):
                    raise CheckpointError(str(cause)) from exc
                raise
        self.total_steps = total_steps
        self.stats.load_json(stats)


__all__ = ["RunnerError", "RunnerGroup", "RunnerPool", "check_backend", "check_runner_setup"]
