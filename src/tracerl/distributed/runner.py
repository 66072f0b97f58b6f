"""``EnvRunner``: one group of sub-envs and an acting copy of the policy, collecting PPO rollouts.

A runner owns a vector env of ``n_envs`` sub-envs (global indices ``first_env .. first_env + n_envs - 1`` of the
agent's ``n_envs``), a copy of the actor-critic and, through the usual
:class:`~tracerl.data.rollout.RolloutCollector`, its carry: the current observations, the memory state, the
previous action and reward and which sub-envs start an episode at the next step. The same class runs in this
process (``runner_backend="local"``) or as a Ray actor (``"ray"``); :class:`~tracerl.distributed.group.RunnerGroup`
drives it.

What travels back with every rollout (:meth:`EnvRunner.collect`): every ``[T, B_runner]`` field of the rollout
buffer, the memory state at every chunk start (``chunk_states``), the episode starts, the final value and the
episodes that ended (step, global env index, return, length, success). Rewards come back raw: the learner applies
the reward normalizer, whose statistics span all sub-envs, in step order (:class:`_ZeroReward` explains how).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data.rollout import EpisodeStats, RolloutBuffer, RolloutCollector
from .sampling import PerEnvSamplingPolicy, env_generators


@dataclass
class RunnerSpec:
    """Everything a runner needs to build its envs and policy (shipped once, to the actor's constructor)."""

    env_id: Any
    """The agent's env id (a string or a :class:`~tracerl.envs.safe_make.FileEnvId`)."""
    env_kwargs: dict[str, Any]
    """Keyword arguments of the env id."""
    n_envs: int
    """Sub-envs of this runner."""
    first_env: int
    """Global index of its first sub-env."""
    n_steps: int
    """Steps per sub-env of one rollout."""
    chunk_len: int
    """BPTT chunk length (the memory state is stored at every chunk start)."""
    sample_seed: int
    """Base seed of the per-sub-env sampling generators (:func:`~tracerl.distributed.sampling.env_generators`)."""
    policy: nn.Module
    """The actor-critic to copy (its weights are replaced before every rollout)."""
    collector_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of :class:`~tracerl.data.rollout.RolloutCollector` (gamma, nan_policy, ...)."""
    env_options: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of :func:`~tracerl.envs.make_vec_env` (vectorization, crash-restart wrapper)."""
    import_modules: tuple[str, ...] = ()
    """Modules a file's env id may import."""
    info_keys: tuple[str, ...] = ()
    """``infos`` keys the auxiliary modules read."""
    threads: int | None = None
    """torch threads in the runner's process (None: leave torch's setting alone, as in-process runners do)."""


class _ZeroReward:
    """Stands in for the reward normalizer inside a runner: the collector then stores exactly ``γ V(final obs)``
    on truncated steps (``0 + x``) and 0 elsewhere as ``reward``, and the raw reward as ``env_reward``; the learner
    adds ``normalize(env_reward)`` step by step over all sub-envs, the same arithmetic as one collector."""

    def __call__(self, reward: Tensor, done: Tensor) -> Tensor:
        return torch.zeros_like(reward)


class _RecordingStats(EpisodeStats):
    """Episode statistics that also list every finished episode as (step, global env index, return, length,
    success) since the last :meth:`take`, so the learner can merge runners' episodes in the order one process
    would have seen them."""

    def __init__(self, n_envs: int, first_env: int) -> None:
        super().__init__(n_envs)
        self.first_env = first_env
        self.t = 0
        self.records: list[tuple[int, int, float, int, float]] = []

    def step(self, reward: np.ndarray, done: np.ndarray, success: np.ndarray | None,
             dropped: np.ndarray | None = None) -> None:
        ended = done & ~dropped if dropped is not None else done
        returns, lengths = self.running_return + reward, self.running_length + 1
        for i in np.flatnonzero(ended):
            ok = float("nan") if success is None else float(success[i])
            self.records.append((self.t, self.first_env + int(i), float(returns[i]), int(lengths[i]), ok))
        self.t += 1
        super().step(reward, done, success, dropped)

    def take(self) -> list[tuple[int, int, float, int, float]]:
        out, self.records, self.t = self.records, [], 0
        return out


class EnvRunner:
    """A vector env and an acting copy of the policy (see the module docstring)."""

    def __init__(self, spec: RunnerSpec) -> None:
        from ..envs import make_vec_env

        if spec.threads is not None:
            torch.set_num_threads(spec.threads)
        self.spec = spec
        self.env = make_vec_env(spec.env_id, n_envs=spec.n_envs, seed=None, env_kwargs=spec.env_kwargs or None,
                                import_modules=spec.import_modules, **spec.env_options)
        self.policy = spec.policy
        self.policy.eval()
        for p in self.policy.parameters():
            p.requires_grad_(False)
        self.gens = env_generators(spec.sample_seed, spec.first_env, spec.n_envs)
        self.collector = RolloutCollector(self.env, PerEnvSamplingPolicy(self.policy, self.gens),  # type: ignore
                                          device=torch.device("cpu"), reward_normalizer=_ZeroReward(),
                                          info_keys=spec.info_keys, **spec.collector_kwargs)
        self.buf = RolloutBuffer.allocate(self.policy, spec.n_steps, spec.n_envs, spec.chunk_len,  # type: ignore
                                          torch.device("cpu"), info_keys=spec.info_keys)

    def pid(self) -> int:
        """This runner's process id."""
        return os.getpid()

    def reset(self, seed: int | None, salt: int = 0) -> None:
        """Reset the envs (sub-env ``i`` seeded ``seed + i``; ``seed`` is the global index's share of the agent's
        seed) and the carry; ``salt`` (a restart count) gives the sampling generators fresh streams."""
        spec = self.spec
        self.gens[:] = env_generators(spec.sample_seed, spec.first_env, spec.n_envs, salt)
        self.collector.reset(seed=seed)
        self.collector.stats = _RecordingStats(spec.n_envs, spec.first_env)

    def get_state(self) -> dict[str, Any]:
        """What continues this runner exactly (checkpoints): the collector's carry, the sampling generators' states,
        the episode statistics and, for envs with ``get_state``, the env state (else None)."""
        c = self.collector
        env_state = None
        get_state = getattr(self.env, "get_state", None)
        if callable(get_state):
            arrays, env_json = get_state()
            env_state = ({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, env_json)
        return {"carry": {k: v.detach().clone() for k, v in c.carry_tensors().items()},
                "sampler": torch.stack([g.get_state() for g in self.gens]), "stats": c.stats.to_json(),
                "env": env_state, "total_steps": c.total_steps}

    def set_state(self, state: dict[str, Any], where: str = "checkpoint") -> None:
        """Continue from :meth:`get_state`'s result. The learner checked the carry, sampler and statistics against
        this runner's shapes; the env state is checked here against the live env (CheckpointError naming
        ``runners.<i>.env``), before anything changes."""
        from ..errors import CheckpointError
        from ..io.restore_checks import check_env_round_trip, check_env_state, entry_errors

        index = self.spec.first_env // self.spec.n_envs
        arrays, env_json = state["env"] if state["env"] is not None else ({}, None)
        if state["env"] is not None:
            try:
                check_env_state(self.env, arrays, env_json, where)
            except CheckpointError as exc:
                raise CheckpointError(f"runner {index}: {exc}") from exc
        c = self.collector
        c.load_carry(state["carry"])
        for gen, gen_state in zip(self.gens, state["sampler"]):
            gen.set_state(gen_state.clone())
        if state["env"] is not None:
            with entry_errors(where, f"runners.{index}.env", "env state does not fit this runner's env"):
                self.env.set_state({k: v.numpy() for k, v in arrays.items()}, env_json)  # type: ignore[attr-defined]
            try:
                check_env_round_trip(self.env, arrays, env_json, where)
            except CheckpointError as exc:
                raise CheckpointError(f"runner {index}: {exc}") from exc
        stats = _RecordingStats(self.spec.n_envs, self.spec.first_env)
        stats.load_json(state["stats"])
        c.stats = stats
        c.total_steps = int(state["total_steps"])

    def collect(self, weights: dict[str, Tensor], progress: float | None = None) -> dict[str, Any]:
        """Load ``weights`` into the acting copy, collect one rollout and return it (see the module docstring).
        A runner never reset (Ray restarted its process, which rebuilt it) returns ``{"restarted": True}``."""
        if self.collector.obs is None:
            return {"restarted": True}
        self.policy.load_state_dict(weights)
        if progress is not None:
            self.policy.core.set_training_progress(progress)  # MemoryCore's hook (a no-op for most cores)
        start = time.perf_counter()
        self.collector.collect(self.buf)
        seconds = time.perf_counter() - start
        stats = self.collector.stats
        assert isinstance(stats, _RecordingStats)
        buf = self.buf
        steps = {name: getattr(buf, name).clone() for name in
                 ("obs", "episode_start", "prev_action", "prev_reward", "action", "log_prob", "value", "reward",
                  "done", "env_reward", "valid")}
        return {
            "steps": steps,
            "chunk_states": {k: v.clone() for k, v in buf.chunk_states.items()},
            "replay": {k: v.clone() for k, v in buf.replay.items()},
            "info": {k: v.clone() for k, v in buf.info.items()},
            "last_value": buf.last_value.clone() if buf.last_value is not None else None,
            "episodes": stats.take(),
            "seconds": seconds,
            "env_steps": buf.n_steps * buf.n_envs,
        }


__all__ = ["EnvRunner", "RunnerSpec"]
