"""Env runners for the off-policy algorithms (R2D2, SAC, TD3, DRQN): asynchronous, the replay in an actor of its own.

``TraceRL(..., algo="r2d2", runners=N, runner_backend="ray"|"local")`` splits the ``n_envs`` sub-envs over ``N``
:class:`OffPolicyRunner` objects (Ray actors, or objects in this process for tests and debugging). Data flow::

    runner i: acting copy of the online networks + carry --OffPolicyCollector.step x runner_steps--> chunk
    chunk [T, k] (rows, stored states, episode starts, final observations) --> ReplayServer shard i
    learner: ReplayServer.sample --> algorithm.update --> (priorities back to the shards)
    every weight_sync_interval updates: new weights in Ray's object store; a runner takes the newest with its next chunk

A runner steps its vector env with :class:`~tracerl.algos.offpolicy.OffPolicyCollector`, the one-process
collector, writing into a recorder instead of the replay, so a chunk holds exactly what that collector would have
written: each step's observation, the memory state the online network started the step from (every network's,
``<torso>.<entry>``), episode starts, previous action and reward, the step's outcome and the final observation of
episodes that ended. :class:`~tracerl.distributed.replay_server.ReplayServer` writes it into the runner's own shard
of the sequence replay, step by step.

Asynchrony and staleness: the group keeps one chunk in flight per runner. ``learn()``'s iteration waits for the
next chunk to arrive (whichever runner finishes first), pushes it into the replay, sends that runner off on its
next chunk with the newest weights, and runs the updates due for the chunk's env steps (``gradient_steps`` per
``train_freq`` vector steps of all ``n_envs`` sub-envs, as one process would) while the other runners keep
collecting. A chunk's *policy lag* is the number of learner updates between the weights it was collected with and
its arrival; its mean and max are logged (``runners/policy_lag_mean``, ``runners/policy_lag_max``). With
``max_policy_lag`` set the staleness is bounded: updates that would leave a chunk in flight more than that many
updates behind wait (they stay due) until the oldest chunk has arrived and its runner has taken new weights.

Exploration (R2D2): ``runner_epsilon="env"`` gives sub-env ``g`` of all ``n_envs`` the rate
``epsilon^(1 + epsilon_alpha g / (n_envs - 1))``, the schedule of one process with the same sub-envs;
``"runner"`` gives every sub-env of runner ``i`` of ``N`` the rate ``epsilon^(1 + epsilon_alpha i / (N - 1))``
(Ape-X, Horgan et al. 2018: one rate per actor; epsilon 0.4 and alpha 7 by default).

Faults: a runner whose process dies is restarted by Ray (``runner_max_restarts``); the chunk it was collecting is
dropped (it never reaches the replay), it is reset (every sub-env starts a new episode from the initial memory
state, so its shard closes the episodes it cut off and nothing is mixed across episodes) and sent off again. One
that dies more often stops training with :class:`~tracerl.distributed.group.RunnerError`. Checkpoints hold the
learner, the counters and, unless ``include_replay=False``, every shard of the replay; on resume the runners start
new episodes (their carries are not saved: with chunks in flight there is no one instant to save them at).
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from ..config_checks import Range, validate_fields
from ..data.rollout import EpisodeStats
from ..errors import ConfigError
from .group import RunnerPool, _ray, check_backend, start_ray
from .replay_server import ReplayServer, ReplaySpec
from .runner import _RecordingStats


@dataclass
class RunnerSettings:
    """The env-runner fields of ``TraceRL`` for the off-policy algorithms (the same names and meaning as in
    :class:`~tracerl.agent_config.MemoryAgentConfig`, which holds them for the PPO family)."""

    runners: int = 0
    """Env runners collecting the sequences (0: the agent's own collector in this process)."""
    runner_backend: Literal["ray", "local"] = "ray"
    """Where runners and the replay run: 'ray' (one Ray actor per runner and one for the replay) or 'local' (in
    this process, one runner after the other: for tests and debugging)."""
    ray_address: str | None = None
    """With runner_backend='ray': the Ray cluster to join (None: the running Ray instance, else a new local one)."""
    runner_num_cpus: float = 1.0
    """With runner_backend='ray': CPUs Ray reserves per runner actor (the replay actor reserves none)."""
    runner_max_restarts: int = 3
    """With runner_backend='ray': restarts of a runner whose process died before training stops with RunnerError."""

    _field_ranges = {"runners": Range(0, 1024), "runner_num_cpus": Range(0, 1024, lo_open=True),
                     "runner_max_restarts": Range(0, 10_000)}

    def __post_init__(self) -> None:
        validate_fields(self)
        check_backend(self.runner_backend)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


RUNNER_FIELDS = tuple(RunnerSettings.__dataclass_fields__)
"""``TraceRL`` keyword arguments the off-policy learner takes for env runners."""


# -- the runner ---------------------------------------------------------------------------------------------------
@dataclass
class OffPolicyRunnerSpec:
    """Everything a runner needs to build its envs and acting networks (shipped once, to its constructor)."""

    index: int
    """The runner's index (its replay shard)."""
    env_id: Any
    """The agent's env id (a string or a :class:`~tracerl.envs.safe_make.FileEnvId`)."""
    env_kwargs: dict[str, Any]
    """Keyword arguments of the env id."""
    n_envs: int
    """Sub-envs of this runner."""
    first_env: int
    """Global index of its first sub-env."""
    chunk_steps: int
    """Vector steps per chunk (the config's ``runner_steps``)."""
    algorithm_class: Any
    """The algorithm class (``SAC``, ``TD3``, ``R2D2``), built here with the learner's arguments."""
    obs_dim: int
    """Width of a flat observation."""
    codec: Any
    """The learner's :class:`~tracerl.algos.recurrent_nets.ActionCodec`."""
    observation_space: gym.Space
    """The agent's observation space."""
    config: Any
    """The algorithm's config."""
    policy_config: Any
    """The networks' :class:`~tracerl.policies.PolicyConfig`."""
    memory: Any
    """A registered memory name or a MemoryCore object (deep-copied per network)."""
    input_index: list[int] | None
    """Observation columns the networks read (goal envs), as the learner's."""
    stream_seed: int
    """Base seed of the runner's random streams (exploration, warm-up actions)."""
    epsilons: Tensor | None
    """R2D2: the exploration rate of each of its sub-envs (None for the other algorithms)."""
    import_modules: tuple[str, ...] = ()
    """Modules a file's env id may import."""
    threads: int | None = None
    """torch threads in the runner's process (None: leave torch's setting alone)."""


class _StepRecorder:
    """Stands in for the replay inside a runner: :class:`~tracerl.algos.offpolicy.OffPolicyCollector` writes each
    vector step here (the arguments of ``SequenceReplay.add``); :meth:`take` stacks them into a chunk."""

    def __init__(self, obs_dim: int) -> None:
        self.obs_dim = obs_dim
        self.rows: list[dict[str, np.ndarray]] = []

    def add(self, *, obs: Any, state: Any, episode_start: Any, prev_action: Any, prev_reward: Any, action: Any,
            reward: Any, terminated: Any, truncated: Any, final_obs: Any = None, crashed: Any = None) -> None:
        if crashed is not None:  # env restarts (env_max_restarts) are refused with runners
            raise RuntimeError("a sub-env of an env runner crashed and was rebuilt: not supported with runners")
        B = len(episode_start)
        row = {"obs": np.array(obs, np.float32), "episode_start": np.array(episode_start, np.bool_),
               "prev_action": np.array(prev_action), "prev_reward": np.array(prev_reward, np.float32),
               "action": np.array(action), "reward": np.array(reward, np.float32),
               "terminated": np.array(terminated, np.bool_), "truncated": np.array(truncated, np.bool_),
               "final_obs": (np.zeros((B, self.obs_dim), np.float32) if final_obs is None
                             else np.array(final_obs, np.float32))}
        row.update({f"state.{k}": (v.detach().cpu().numpy().copy() if isinstance(v, Tensor) else np.array(v))
                    for k, v in state.items()})
        self.rows.append(row)

    def take(self) -> dict[str, np.ndarray]:
        rows, self.rows = self.rows, []
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def _stream_seed(base: int, index: int, salt: int) -> int:
    return int(np.random.SeedSequence([int(base), int(index), int(salt)]).generate_state(1, np.uint64)[0] >> 1)


class OffPolicyRunner:
    """A vector env and an acting copy of the algorithm's online networks (see the module docstring)."""

    def __init__(self, spec: OffPolicyRunnerSpec) -> None:
        import copy

        from ..algos.offpolicy import OffPolicyCollector
        from ..envs import make_vec_env
        from ..memory import MemoryCore

        if spec.threads is not None:
            torch.set_num_threads(spec.threads)
        self.spec = spec
        self.env = make_vec_env(spec.env_id, n_envs=spec.n_envs, seed=None, env_kwargs=spec.env_kwargs or None,
                                import_modules=spec.import_modules)
        memory = spec.memory
        factory = (lambda: copy.deepcopy(memory)) if isinstance(memory, MemoryCore) else None
        self.algorithm = spec.algorithm_class(spec.obs_dim, spec.codec, copy.deepcopy(spec.config),
                                              spec.policy_config, factory, spec.input_index, "cpu",
                                              observation_space=spec.observation_space)
        self.modules = {name: m for name, m in self.algorithm.modules().items() if not name.startswith("target")}
        for m in self.modules.values():
            m.eval()
            m.requires_grad_(False)
        if spec.epsilons is not None:
            self.algorithm.epsilons = spec.epsilons.clone()
        self.recorder = _StepRecorder(spec.obs_dim)
        self.collector = OffPolicyCollector(self.env, self.algorithm, self.recorder, spec.codec,  # type: ignore
                                            spec.observation_space, torch.device("cpu"))
        self.version = -1
        self.torch_state: Tensor | None = None

    def pid(self) -> int:
        """This runner's process id."""
        return os.getpid()

    def reset(self, seed: int | None, salt: int = 0) -> None:
        """Reset the envs (sub-env ``i`` seeded ``seed + i``), the carry and the random streams (``salt``: a
        restart count, for fresh streams)."""
        s = self.spec
        self.collector.reset(seed=seed)
        self.collector.stats = _RecordingStats(s.n_envs, s.first_env)
        stream = _stream_seed(s.stream_seed, s.index, salt)
        gen = torch.Generator()
        gen.manual_seed(stream)
        self.torch_state = gen.get_state()
        self.collector.random_rng = np.random.default_rng([stream, 1])
        rng = getattr(self.algorithm, "rng", None)
        if isinstance(rng, torch.Generator):  # R2D2's exploration draws
            rng.manual_seed(_stream_seed(s.stream_seed, s.index, salt + 1_000_003))
        if getattr(self.algorithm, "episode_step", None) is not None:
            self.algorithm.episode_step = None  # R2D2's start-of-episode counters: every sub-env starts anew

    def collect(self, weights: dict[str, dict[str, Tensor]], version: int, random_actions: bool,
                progress: float | None = None) -> tuple[dict[str, np.ndarray] | None, dict[str, Any]]:
        """Collect one chunk with ``weights`` (loaded unless this runner already holds ``version``): the chunk
        (``[T, k, ...]`` arrays) and a summary (episodes that ended, seconds, env steps, the weights' version).
        A runner never reset (Ray restarted its process) returns ``(None, {"restarted": True})``."""
        if self.collector.obs is None or self.torch_state is None:
            return None, {"restarted": True}
        if version != self.version:
            for name, sd in weights.items():
                self.modules[name].load_state_dict(sd)
            self.version = version
        if progress is not None:
            from ..memory import memory_cores

            for m in self.modules.values():
                for core in memory_cores(m):
                    core.set_training_progress(progress)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # the runner's own stream (in this process: not the agent's)
            torch.set_rng_state(self.torch_state)
            for _ in range(self.spec.chunk_steps):
                self.collector.step(random_actions=random_actions)
            self.torch_state = torch.get_rng_state()
        seconds = time.perf_counter() - start
        stats = self.collector.stats
        assert isinstance(stats, _RecordingStats)
        chunk = self.recorder.take()
        return chunk, {"episodes": stats.take(), "seconds": seconds, "version": version,
                       "env_steps": self.spec.chunk_steps * self.spec.n_envs}


# -- the group ----------------------------------------------------------------------------------------------------
def check_offpolicy_runner_setup(learner: Any, agent: Any, runners: int) -> None:
    """ConfigError when ``runners`` cannot serve this off-policy setup (naming the field and value)."""
    cfg = learner.config
    if cfg.n_envs % runners:
        raise ConfigError(f"runners={runners} does not divide n_envs={cfg.n_envs}: every runner gets n_envs / "
                          "runners sub-envs")
    if learner.her:
        raise ConfigError(f"runners={runners} is not supported with her=True (hindsight relabelling reads the "
                          "replay in the learner's process)")
    if getattr(cfg, "count_bonus", 0.0) > 0:
        raise ConfigError(f"runners={runners} is not supported with count_bonus={cfg.count_bonus} (the visit "
                          "counts would be split over the runners' processes)")
    if agent.env_id is None:
        raise ConfigError(f"runners={runners} needs an env the runners can rebuild: an env id (with env_kwargs) "
                          "or one of tracerl's tasks, not an env object of unknown origin")


def runner_epsilons(config: Any, n_envs: int, runners: int) -> list[Tensor] | None:
    """R2D2's per-sub-env exploration rates of every runner (see the module docstring), None for the others."""
    from ..algos.r2d2 import actor_epsilons

    mode = getattr(config, "runner_epsilon", None)
    if mode is None or not hasattr(config, "epsilon"):
        return None
    k = n_envs // runners
    if mode == "runner":
        per_runner = actor_epsilons(runners, config.epsilon, config.epsilon_alpha)
        return [per_runner[i].repeat(k) for i in range(runners)]
    every = actor_epsilons(n_envs, config.epsilon, config.epsilon_alpha)
    return [every[i * k:(i + 1) * k].clone() for i in range(runners)]


class OffPolicyRunnerGroup:
    """Env runners and the replay server standing in for the off-policy collector and replay.

    Args:
        learner: the :class:`~tracerl.algos.offpolicy_learner.OffPolicyLearner` (config, algorithm, codec, ...).
        agent: the :class:`~tracerl.TraceRL` (env id and kwargs, seed, threads, verbosity).
        settings: the runner fields (:class:`RunnerSettings`).
    """

    def __init__(self, learner: Any, agent: Any, settings: RunnerSettings) -> None:
        from ..algos.offpolicy import replay_state_spec

        n = settings.runners
        check_offpolicy_runner_setup(learner, agent, n)
        cfg = learner.config
        self.learner = learner
        self.algorithm = learner.algorithm
        self.backend = settings.runner_backend
        self.n_runners = n
        self.n_envs = cfg.n_envs
        self.per_runner = cfg.n_envs // n
        self.chunk_steps = cfg.runner_steps
        self.per_chunk = self.chunk_steps * self.per_runner
        self.sync_interval = cfg.weight_sync_interval
        self.learning_starts = cfg.learning_starts
        self.env = None  # the envs live in the runners
        self.stats = EpisodeStats(self.n_envs)
        self.total_steps = 0  # env steps of the chunks that reached the replay
        self.dispatched_steps = 0  # env steps of the chunks asked for (warm-up actions follow it)
        self.progress: float | None = None
        self._lags: list[int] = []
        self.lag_history: deque[int] = deque(maxlen=100_000)
        """Policy lag (learner updates) of every chunk that arrived, newest last."""
        self._log_mark = (time.perf_counter(), 0, 0.0)  # (time, updates, update seconds) at the last log
        self.update_seconds = 0.0
        self._weights: Any = None
        self.weights_version = -1
        self._pending: dict[int, Any] = {}
        self._pending_version: dict[int, int] = {}
        self._next_local = 0
        base = agent.seed if agent.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        self.stream_seed = base
        stores = learner._stores_state()
        replay_kwargs = dict(burn_in=cfg.burn_in, seq_len=cfg.seq_len, lookahead=cfg.lookahead,
                             state_stride=cfg.stride, prioritized=cfg.prioritized, priority_alpha=cfg.priority_alpha,
                             priority_eta=cfg.priority_eta,
                             always_from_initial_state=cfg.always_sample_from_initial_state,
                             random_seq_len=cfg.random_seq_len, nominal_seq_len_prob=cfg.nominal_seq_len_prob)
        self.replay_spec = ReplaySpec(
            n_shards=n, envs_per_shard=self.per_runner, capacity=cfg.buffer_size // n, obs_dim=learner.obs_dim,
            action_shape=tuple(learner.codec.shape), action_dtype=learner.codec.dtype,
            state_spec=replay_state_spec(self.algorithm.torsos()) if stores else {}, replay_kwargs=replay_kwargs,
            seed=agent.seed)
        eps = runner_epsilons(cfg, cfg.n_envs, n)
        own_process = self.backend == "ray"
        self.specs = [
            OffPolicyRunnerSpec(
                index=i, env_id=agent.env_id, env_kwargs=dict(agent.env_kwargs), n_envs=self.per_runner,
                first_env=i * self.per_runner, chunk_steps=self.chunk_steps,
                algorithm_class=learner.spec.algorithm, obs_dim=learner.obs_dim, codec=learner.codec,
                observation_space=learner.observation_space, config=cfg, policy_config=learner.policy_config,
                memory=learner._memory, input_index=learner.input_index, stream_seed=base,
                epsilons=None if eps is None else eps[i], import_modules=tuple(agent.import_modules),
                threads=agent.threads if own_process else None)
            for i in range(n)
        ]
        check_backend(self.backend)
        if self.backend == "local":
            self.replay: Any = ReplayServer(self.replay_spec)
        else:
            ray = start_ray(settings.ray_address, n, settings.runner_num_cpus, agent.verbose)
            # the replay reserves no CPU: it never blocks the runners' placement, and it mostly waits
            self.replay = ray.remote(num_cpus=0, max_restarts=0)(ReplayServer).remote(self.replay_spec)
        self.pool = RunnerPool(OffPolicyRunner, self.specs, per_runner=self.per_runner, backend=self.backend,
                               address=settings.ray_address, num_cpus=settings.runner_num_cpus,
                               max_restarts=settings.runner_max_restarts, verbose=agent.verbose)

    # -- the collector's interface ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Reset every runner's envs (sub-env ``g`` seeded ``seed + g``), carries and streams; chunks in flight
        are dropped."""
        self.pool.seed = seed
        self._pending.clear()
        self.pool.call_all("reset", [(self.pool.env_seed(i),) for i in range(self.n_runners)])
        self.stats = EpisodeStats(self.n_envs)

    def pids(self) -> list[int]:
        """The runners' process ids (all this process's with the local backend)."""
        return self.pool.pids()

    def _current_weights(self) -> tuple[Any, int]:
        """The weights runners act with (refreshed once ``weight_sync_interval`` updates have passed) and their
        version (the learner's update count when they were taken)."""
        n_updates = int(self.algorithm.n_updates)
        if self._weights is None or n_updates - self.weights_version >= self.sync_interval:
            weights = {name: {k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()}
                       for name, m in self.algorithm.modules().items() if not name.startswith("target")}
            self._weights = _ray().put(weights) if self.backend == "ray" else weights
            self.weights_version = n_updates
        return self._weights, self.weights_version

    def _dispatch(self, i: int) -> None:
        weights, version = self._current_weights()
        random_actions = self.dispatched_steps < self.learning_starts
        self.dispatched_steps += self.per_chunk
        self._pending_version[i] = version
        if self.backend == "local":
            self._pending[i] = (weights, version, random_actions, self.progress)
        else:
            runner = self.pool.runners[i]
            self._pending[i] = runner.collect.options(num_returns=2).remote(weights, version, random_actions,
                                                                            self.progress)

    def next_chunk(self) -> int:
        """Wait for the next chunk (any runner's), push it into the replay and send that runner off again; the
        runner's index."""
        if self.backend == "local":
            i = self._next_local
            self._next_local = (i + 1) % self.n_runners
            if i not in self._pending:
                self._dispatch(i)
            chunk, summary = self.pool.runners[i].collect(*self._pending.pop(i))
            self.replay.add_chunk(i, chunk)
        else:
            ray = _ray()
            while True:
                for j in range(self.n_runners):
                    if j not in self._pending:
                        self._dispatch(j)
                order = list(self._pending)
                ready, _ = ray.wait([self._pending[j][1] for j in order], num_returns=1)
                i = order[[self._pending[j][1] for j in order].index(ready[0])]
                chunk_ref, summary_ref = self._pending.pop(i)
                try:
                    summary = ray.get(summary_ref)
                    cause = "its process was restarted by Ray before the call" if summary.get("restarted") else None
                except ray.exceptions.RayActorError as exc:
                    cause = f"{type(exc).__name__}: {exc}"
                if cause is None:
                    break
                self.dispatched_steps -= self.per_chunk  # the chunk is dropped
                self.pool.restart(i, cause, "its chunk in flight is dropped")
            self.replay.add_chunk.remote(i, chunk_ref)  # the actor runs it before any later sample
            self._dispatch(i)
        self._account(i, summary)
        return i

    def updates_allowed(self, max_lag: int | None) -> int | None:
        """How many more updates keep every chunk in flight within ``max_lag`` updates of the learner (None: no
        bound)."""
        if max_lag is None or not self._pending:
            return None
        oldest = min(self._pending_version[j] for j in self._pending)
        return max(0, oldest + max_lag - int(self.algorithm.n_updates))

    def _account(self, i: int, summary: dict[str, Any]) -> None:
        self.total_steps += summary["env_steps"]
        self.pool.steps_per_s[i] = summary["env_steps"] / max(summary["seconds"], 1e-9)
        lag = int(self.algorithm.n_updates) - int(summary["version"])
        self._lags.append(lag)
        self.lag_history.append(lag)
        self.stats.add_finished(summary["episodes"])

    # -- the replay ---------------------------------------------------------------------------------------------
    def _call(self, method: str, *args: Any) -> Any:
        if self.backend == "local":
            return getattr(self.replay, method)(*args)
        ray = _ray()
        return ray.get(getattr(self.replay, method).remote(*args))

    def num_windows(self) -> int:
        """Windows the replay can give now."""
        return int(self._call("num_windows"))

    def sample(self, n: int, beta: float) -> tuple[Any, np.ndarray]:
        """``n`` windows from all shards and the shard of each."""
        return self._call("sample", n, beta)

    def update_priorities(self, index: np.ndarray, shards: np.ndarray, td_abs: Tensor, train: Tensor) -> None:
        """Send R2D2 priorities to the shards (without waiting, with Ray: the actor runs calls in order)."""
        if self.backend == "local":
            self.replay.update_priorities(index, shards, td_abs, train)
        else:
            self.replay.update_priorities.remote(index, shards, td_abs, train)

    def replay_summary(self) -> dict[str, int]:
        """Rows stored, windows available and chunks added."""
        return self._call("summary")

    # -- log and checkpoints ------------------------------------------------------------------------------------
    def record_log(self, logger: Any) -> None:
        """Per-runner env-steps/s, restarts, policy lag, learner updates/s and share, replay size and windows."""
        self.pool.record_log(logger)
        if self._lags:
            logger.record("runners/policy_lag_mean", round(float(np.mean(self._lags)), 2))
            logger.record("runners/policy_lag_max", int(max(self._lags)))
        self._lags = []
        now, updates = time.perf_counter(), int(self.algorithm.n_updates)
        t0, u0, s0 = self._log_mark
        elapsed = max(now - t0, 1e-9)
        logger.record("learner/updates_per_s", round((updates - u0) / elapsed, 2))
        logger.record("learner/share", round(min((self.update_seconds - s0) / elapsed, 1.0), 3))
        self._log_mark = (now, updates, self.update_seconds)
        summary = self.replay_summary()
        logger.record("replay/size", int(summary["size"]))
        logger.record("replay/windows", int(summary["windows"]))

    def save_state(self, tensors: dict[str, Tensor], meta: dict[str, Any], include_replay: bool) -> None:
        """The counters and episode statistics (``meta["runner_group"]``) and, when ``include_replay``, every
        shard of the replay (``replay.<shard>.*`` tensors, ``meta["replay"]``)."""
        meta["runner_group"] = {"n": self.n_runners, "total_steps": self.total_steps, "stats": self.stats.to_json()}
        if include_replay:
            rt, rmeta = self._call("state_dict")
            tensors.update({f"replay.{k}": v for k, v in rt.items()})
            meta["replay"] = rmeta

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any], where: str) -> None:
        """Restore :meth:`save_state`'s counters, statistics and (if saved) replay; CheckpointError naming the
        entry that does not fit."""
        from ..errors import CheckpointError
        from ..io.restore_checks import check_episode_stats, check_int, entry_errors

        gmeta = meta.get("runner_group")
        if not isinstance(gmeta, dict):
            raise CheckpointError("must be a JSON object", path=where, entry="meta.runner_group")
        n = check_int(gmeta.get("n"), where, "meta.runner_group.n", 1, 1024)
        if n != self.n_runners:
            raise CheckpointError(f"the checkpoint holds {n} runners' replay shards but the agent has "
                                  f"runners={self.n_runners}", path=where, entry="meta.runner_group.n")
        total = check_int(gmeta.get("total_steps"), where, "meta.runner_group.total_steps", 0, 2**62)
        check_episode_stats(gmeta.get("stats"), self.n_envs, where, "meta.runner_group.stats")
        replay_t = {k[len("replay."):]: v for k, v in tensors.items() if k.startswith("replay.")}
        if bool(replay_t) != ("replay" in meta):
            raise CheckpointError("the replay's tensors and metadata must be stored together", path=where,
                                  entry="replay")
        if replay_t:
            if self.backend == "local":
                with entry_errors(where, "replay", "replay does not fit"):
                    self.replay.load_state_dict(replay_t, meta["replay"])
            else:
                ray = _ray()
                try:
                    ray.get(self.replay.load_state_dict.remote(replay_t, meta["replay"]))
                except ray.exceptions.RayTaskError as exc:
                    raise CheckpointError(f"replay does not fit: {getattr(exc, 'cause', exc)}", path=where,
                                          entry="replay") from exc
        self.total_steps = self.dispatched_steps = total
        self.stats.load_json(gmeta["stats"])


__all__ = ["OffPolicyRunner", "OffPolicyRunnerGroup", "OffPolicyRunnerSpec", "RUNNER_FIELDS", "RunnerSettings",
           "check_offpolicy_runner_setup", "runner_epsilons"]
