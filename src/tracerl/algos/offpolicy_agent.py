"""``OffPolicyAgent``: recurrent SAC, TD3 and R2D2 behind the ``TraceRL`` API (learn / predict / save / load).

    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 8}, algo="r2d2", memory="gru", seed=0)
    agent.learn(50_000)                      # TraceRL(algo=...) with sac/td3/r2d2 builds an OffPolicyAgent
    agent.save("cue.tracerl")                # weights, optimizers, replay contents, collector, RNG states
    agent = TraceRL.load("cue.tracerl", env="tracerl/CueDelay-v0")  # env_kwargs come from the checkpoint

Hyperparameters are the fields of the algorithm's config (:class:`~tracerl.algos.sac.SACConfig`,
:class:`~tracerl.algos.td3.TD3Config`, :class:`~tracerl.algos.r2d2.R2D2Config`) and of
:class:`~tracerl.policies.PolicyConfig` (the memory: ``hidden_size``, ``use_prev_action``, ...), passed as
keyword arguments; any other keyword raises ``TypeError`` naming it. ``her=True`` relabels windows with
hindsight goals (:mod:`tracerl.data.her`) for goal-conditioned ``Dict`` observation envs.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import fields
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from .. import __version__
from ..data.her import GoalLayout, HindsightRelabeler, find_compute_reward, find_compute_terminated
from ..data.replay import SequenceReplay
from ..config_checks import check_agent_args
from ..errors import CheckpointError, ConfigError
from ..io.checkpoint import (check_tensor_shapes, load_checkpoint, load_module_state, read_checkpoint_metadata,
                             save_checkpoint)
from ..io import restore_checks
from ..io.restore_checks import (attach_env, building_on_meta, check_action_values, check_config_types,
                                 check_counters, check_env_round_trip, check_env_state,
                                 check_episode_stats, check_finite, check_int, check_network_budget,
                                 check_no_unexpected, check_rng_state, check_run_meta, check_sizes, check_space_json,
                                 check_tensor_like, check_tensors_like, entry_errors, load_optimizer, meta_copy,
                                 optimizer_state_from_checkpoint)
from ..io.logger import Logger
from ..io.rng import AgentRNG, capture_rng_state, restore_rng_state, uses_acting_rng, uses_agent_rng
from ..io.rotation import checkpoint_path, rotate
from ..io.spaces import space_from_json, space_to_json
from ..memory import MemoryCore, State
from ..policies.encoders import flat_dim, preprocess
from ..policies.policy import PolicyConfig
from .offpolicy import OffPolicyCollector, OffPolicyConfig, replay_state_spec
from .r2d2 import R2D2, R2D2Config
from .recurrent_nets import ActionCodec
from .sac import SAC, SACConfig
from .td3 import TD3, TD3Config

CHECKPOINT_KIND = "tracerl.OffPolicy"
OFFPOLICY_ALGOS: dict[str, tuple[type[OffPolicyConfig], type]] = {
    "sac": (SACConfig, SAC),
    "td3": (TD3Config, TD3),
    "r2d2": (R2D2Config, R2D2),
}
"""Algorithm name -> (config class, algorithm class)."""

LOG_BLOCK = 1_000
"""``learn(log_interval=k)`` logs (and calls the callback) every ``k`` blocks of this many env steps."""

_POLICY_FIELDS = {f.name for f in fields(PolicyConfig)} - {"memory"}


def offpolicy_config_fields() -> set[str]:
    """Every field name of the off-policy configs (for the CLI)."""
    return {f.name for cfg, _ in OFFPOLICY_ALGOS.values() for f in fields(cfg)}


def is_offpolicy_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a checkpoint written by :meth:`OffPolicyAgent.save` (reads the header only)."""
    try:
        return read_checkpoint_metadata(path).get("kind") == CHECKPOINT_KIND
    except CheckpointError:  # unreadable files are for load_checkpoint to report
        return False


def _split(algo: str, hyper: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg_cls = OFFPOLICY_ALGOS[algo][0]
    cfg_fields = {f.name for f in fields(cfg_cls)}
    unknown = sorted(set(hyper) - cfg_fields - _POLICY_FIELDS)
    if unknown:
        raise TypeError(f"TraceRL(algo={algo!r}) got unexpected keyword argument(s): {', '.join(unknown)}. "
                        f"Algorithm fields: {', '.join(sorted(cfg_fields))}; policy fields: "
                        f"{', '.join(sorted(_POLICY_FIELDS))}")
    cfg = {k: v for k, v in hyper.items() if k in cfg_fields}
    pol = {k: v for k, v in hyper.items() if k in _POLICY_FIELDS}
    for key in ("head_hidden",):
        if key in cfg:
            cfg[key] = tuple(cfg[key])
    if "encoder_hidden" in pol:
        pol["encoder_hidden"] = tuple(pol["encoder_hidden"])
    return cfg, pol


class OffPolicyAgent:
    """A memory agent trained off-policy by recurrent SAC, TD3 or R2D2 (arguments as :class:`tracerl.TraceRL`).

    Args:
        env: an env id, a gymnasium Env, a VectorEnv (SAME_STEP autoreset) or a zero-arg callable; None to
            predict only (then ``observation_space`` and ``action_space`` are needed).
        memory: a registered memory name or a MemoryCore object (deep-copied for every network).
        algo: ``"sac"``, ``"td3"`` or ``"r2d2"``.
        her: relabel replayed windows with hindsight goals (goal-conditioned Dict observations).
        **hyperparams: fields of the algorithm's config and of PolicyConfig.
    """

    def __init__(
        self,
        policy_class: Any = None,
        env: Any = None,
        memory: str | MemoryCore = "gru",
        *,
        algo: str = "sac",
        her: bool = False,
        device: str | torch.device = "cpu",
        verbose: int = 1,
        seed: int | None = None,
        env_kwargs: dict[str, Any] | None = None,
        tensorboard_log: str | os.PathLike[str] | None = None,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        **hyperparams: Any,
    ) -> None:
        check_agent_args("TraceRL", seed=seed, device=device, verbose=verbose)
        if algo not in OFFPOLICY_ALGOS:
            raise ConfigError(f"unknown off-policy algo {algo!r}; valid: {', '.join(OFFPOLICY_ALGOS)}")
        if policy_class is not None:
            raise ConfigError(f"policy_class is not used by algo={algo!r}; choose the memory with memory=")
        cfg_kwargs, pol_kwargs = _split(algo, hyperparams)
        cfg_cls, algo_cls = OFFPOLICY_ALGOS[algo]
        self.algo = algo
        self.her = bool(her)
        self.config = cfg_cls(**cfg_kwargs)
        self.config.validate()
        memory_name = memory if isinstance(memory, str) else type(memory).__name__
        self.policy_config = PolicyConfig(memory=memory_name, **pol_kwargs)
        self.policy_config.validate()
        self.device = torch.device(device)
        self.verbose, self.seed = verbose, seed
        self.env_kwargs = dict(env_kwargs or {})
        self.import_modules: tuple[str, ...] = ()  # modules a file's env id may import (load)
        self.tensorboard_log = tensorboard_log
        self.env: gym.vector.VectorEnv | None = None
        self.env_id = env if isinstance(env, str) else getattr(getattr(env, "spec", None), "id", None)
        if env is not None:
            self.env = self._make_env(env)
            self.config.n_envs = self.env.num_envs  # a VectorEnv passed in decides the batch width
            self.config.validate()
            observation_space = self.env.single_observation_space
            action_space = self.env.single_action_space
        if observation_space is None or action_space is None:
            raise ConfigError("TraceRL needs env=..., or observation_space and action_space to predict only")
        self.observation_space, self.action_space = observation_space, action_space
        self.codec = ActionCodec(action_space)
        # observe_achieved_goal=False hides the achieved goal with or without HER (a comparison of the two must
        # give both agents the same observations)
        needs_layout = self.her or not self.config.observe_achieved_goal
        self.goal_layout = GoalLayout.from_space(observation_space) if needs_layout else None
        input_index = self.goal_layout.policy_columns(self.config.observe_achieved_goal) if self.goal_layout else None
        self.obs_dim = flat_dim(observation_space)
        self.torch_rng = AgentRNG(seed)  # parameter init, sampling and memory draws: the agent's own stream
        self.acting_rng = AgentRNG(seed, stream=1)  # predict/inspect: evaluations leave training unchanged
        factory = (lambda: copy.deepcopy(memory)) if isinstance(memory, MemoryCore) else None
        with self.torch_rng.active():
            self.algorithm = algo_cls(self.obs_dim, self.codec, self.config, self.policy_config, factory,
                                      input_index, self.device, observation_space=observation_space)
        for name, torso in self.algorithm.torsos().items():
            if algo != "r2d2" and getattr(torso.core, "learn_retention", False):
                raise ConfigError(
                    f"the {name} network's memory learns its retention (learn_retention=True), which PPO and R2D2 "
                    f"train but algo={algo!r} does not (its scorer would stay untrained). Pass "
                    "memory_kwargs={'learn_retention': False} (random, reservoir-style retention) or use algo='r2d2' "
                    "or 'ppo'")
        self.num_timesteps = 0
        self._schedule_end = 0
        self._vec_steps = 0
        self.replay: SequenceReplay | None = None
        self.collector: OffPolicyCollector | None = None
        self.relabeler: HindsightRelabeler | None = None
        self.logger: Logger | None = None
        self.last_stats: dict[str, float] = {}
        self._ready = False
        self.run_id: str | None = None  # set by `tracerl train`: recorded in every checkpoint, rotation keeps to it

    # -- what TraceRL-facing code reads -------------------------------------------------------------
    @property
    def policy(self) -> torch.nn.Module:
        """The acting network's memory torso (``policy.core`` is its memory core)."""
        return self.algorithm.torsos()[self.algorithm.acting_torso()]

    # -- environments -------------------------------------------------------------------------------
    def _make_env(self, env: Any) -> gym.vector.VectorEnv:
        """The vector env for ``env``; once the agent has spaces (load, set_env), they must match (ConfigError)."""
        from ..envs import make_vec_env
        from ..envs.vector import check_env_spaces

        if isinstance(env, gym.vector.VectorEnv):
            vec = make_vec_env(env)
        else:
            kwargs = self.env_kwargs if isinstance(env, str) and str(env) == str(self.env_id or env) else None
            # (the recorded kwargs belong to the recorded env id: another id gets none)
            vec = make_vec_env(env, n_envs=self.config.n_envs, seed=self.seed, env_kwargs=kwargs,
                               import_modules=getattr(self, "import_modules", ()))
        if getattr(self, "observation_space", None) is not None:
            check_env_spaces(vec, self.observation_space, self.action_space, what="the agent")
        return vec

    def set_env(self, env: Any) -> None:
        """Train on ``env`` from now on (same spaces; a new replay and collector are made at the next learn()). An env id
        other than the agent's ``env_id`` is built without the agent's ``env_kwargs`` (they were for that env).
        Spaces that differ raise ConfigError naming both."""
        self.env = self._make_env(env)
        self.replay, self.collector, self.relabeler = None, None, None
        self._ready = False

    def _build_replay(self) -> None:
        assert self.env is not None
        cfg = self.config
        n_envs = self.env.num_envs
        if n_envs != cfg.n_envs:  # set_env() / load() with another width
            cfg.n_envs = n_envs
            cfg.validate()
        self.replay = SequenceReplay(
            cfg.buffer_size, n_envs, self.obs_dim, self.codec.shape, self.codec.dtype,
            replay_state_spec(self.algorithm.torsos()), burn_in=cfg.burn_in, seq_len=cfg.seq_len,
            lookahead=cfg.lookahead, state_stride=cfg.stride, prioritized=cfg.prioritized,
            priority_alpha=cfg.priority_alpha, priority_eta=cfg.priority_eta,
            always_from_initial_state=cfg.always_sample_from_initial_state, random_seq_len=cfg.random_seq_len,
            nominal_seq_len_prob=cfg.nominal_seq_len_prob, seed=self.seed)
        self.collector = OffPolicyCollector(self.env, self.algorithm, self.replay, self.codec, self.observation_space,
                                            self.device)
        if self.her:
            assert self.goal_layout is not None
            self.relabeler = HindsightRelabeler(self.replay, self.goal_layout, find_compute_reward(self.env),
                                                cfg.her_strategy, cfg.her_ratio, seed=self.seed,
                                                compute_terminated=find_compute_terminated(self.env))

    def _ensure_collector(self) -> OffPolicyCollector:
        if self.env is None:
            raise ConfigError("learn() needs an environment: pass env= to TraceRL or call set_env()")
        if self.collector is None:
            self._build_replay()
            assert self.collector is not None
            self.collector.reset(seed=self.seed)
        return self.collector

    # -- training -----------------------------------------------------------------------------------
    @uses_agent_rng
    def train_step(self) -> dict[str, float]:
        """One gradient step on a freshly sampled batch of windows (HER-relabelled when enabled)."""
        assert self.replay is not None
        cfg = self.config
        batch = self.replay.sample(cfg.batch_size, beta=cfg.priority_beta if cfg.prioritized else 0.0,
                                   device=self.device)
        if self.relabeler is not None:
            self.relabeler.relabel(batch)
        stats, td = self.algorithm.update(batch)
        if cfg.prioritized:
            self.replay.update_priorities(batch.index, td, batch.train[batch.burn_in:])
        return stats

    @uses_agent_rng
    def learn(
        self,
        total_timesteps: int,
        log_interval: int = 1,
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
        callback: Callable[["OffPolicyAgent", dict[str, float]], bool | None] | None = None,
        checkpoint_every: int | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        keep_checkpoints: int = 3,
    ) -> "OffPolicyAgent":
        """Collect ``total_timesteps`` env steps (whole vector steps), training as the config schedules.

        The replay persists across calls. ``log_interval`` counts blocks of :data:`LOG_BLOCK` env steps; the
        callback ``(agent, stats) -> False to stop`` runs after every block. Checkpoints as in TraceRL.learn.
        """
        if total_timesteps < 1:
            raise ConfigError(f"total_timesteps={total_timesteps} is invalid: must be >= 1")
        if log_interval < 1:
            raise ConfigError(f"log_interval={log_interval} is invalid: must be >= 1")
        if checkpoint_every is not None and (checkpoint_every < 1 or checkpoint_dir is None):
            raise ConfigError(f"checkpoint_every={checkpoint_every} needs a value >= 1 and a checkpoint_dir")
        if keep_checkpoints < 1:
            raise ConfigError(f"keep_checkpoints={keep_checkpoints} is invalid: must be >= 1")
        collector = self._ensure_collector()
        assert self.replay is not None
        cfg = self.config
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._schedule_end = total_timesteps
        else:
            self._schedule_end = max(self._schedule_end, self.num_timesteps + total_timesteps)
        progress_hooks = _progress_hooks(self.algorithm)
        if self.logger is None:
            formats = (["console"] if self.verbose >= 1 else []) + (["csv", "tensorboard"] if self.tensorboard_log else [])
            self.logger = Logger(self.tensorboard_log, formats=formats, append=not reset_num_timesteps,
                                 resume_step=None if reset_num_timesteps else self.num_timesteps)
        B = collector.n_envs
        end = self.num_timesteps + total_timesteps
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_timesteps, unit="step", desc=f"TraceRL {self.algo}", dynamic_ncols=True)
        start_t, start_steps = time.perf_counter(), self.num_timesteps
        block = LOG_BLOCK * log_interval
        try:
            while self.num_timesteps < end:
                warm = self.num_timesteps < cfg.learning_starts
                for hook in progress_hooks:
                    hook(self.num_timesteps / max(self._schedule_end, 1))
                collector.step(random_actions=warm)
                self.num_timesteps += B
                self._vec_steps += 1
                if bar is not None:
                    bar.update(B)
                if not warm and self._vec_steps % cfg.train_freq == 0 and self._replay_ready():
                    for _ in range(cfg.gradient_steps):
                        self.last_stats = self.train_step()
                if checkpoint_every is not None and (
                        self.num_timesteps // checkpoint_every > (self.num_timesteps - B) // checkpoint_every):
                    assert checkpoint_dir is not None
                    self.save(checkpoint_path(checkpoint_dir, self.num_timesteps))
                    rotate(checkpoint_dir, keep_checkpoints, run_id=self.run_id, current=self.num_timesteps)
                crossed = self.num_timesteps // LOG_BLOCK > (self.num_timesteps - B) // LOG_BLOCK
                if self.num_timesteps // block > (self.num_timesteps - B) // block or self.num_timesteps >= end:
                    self._log(start_t, start_steps)
                if crossed and callback is not None and callback(self, dict(self.last_stats)) is False:
                    break
        finally:
            if bar is not None:
                bar.close()
        return self

    def _replay_ready(self) -> bool:
        """Whether a window can be sampled (checked until it first can: windows never all disappear after)."""
        if not self._ready:
            assert self.replay is not None
            self._ready = self.replay.num_windows() > 0
        return self._ready

    def _log(self, start: float, steps0: int) -> None:
        assert self.logger is not None and self.collector is not None
        lg, st = self.logger, self.collector.stats
        if st.returns:
            lg.record("rollout/ep_len_mean", float(np.mean(st.lengths)))
            lg.record("rollout/ep_rew_mean", float(np.mean(st.returns)))
        if st.successes:
            lg.record("rollout/success_rate", float(np.mean(st.successes)))
        elapsed = time.perf_counter() - start
        lg.record("time/fps", int((self.num_timesteps - steps0) / max(elapsed, 1e-9)))
        lg.record("time/episodes", st.episodes)
        lg.record("time/total_timesteps", self.num_timesteps)
        lg.record("train/n_updates", int(self.algorithm.n_updates))
        for k, v in self.last_stats.items():
            lg.record(f"train/{k}", float(v))
        lg.dump(self.num_timesteps)

    # -- acting -------------------------------------------------------------------------------------
    @uses_acting_rng
    @torch.no_grad()
    def predict(self, observation: Any, state: State | None = None, episode_start: Any = None,
                deterministic: bool = False, prev_reward: Any = None) -> tuple[np.ndarray, State]:
        """Act on one observation or a batch ``[B, ...]`` (same contract as :meth:`tracerl.TraceRL.predict`).

        ``state`` holds ``memory.<entry>`` (the acting network's core state) and ``prev_action``; it is required
        with ``episode_start`` after the first call. ``deterministic``: the actor's mean (SAC), its action without
        noise (TD3) or the greedy action (R2D2); otherwise a sample, with noise, or epsilon-greedy with the base
        ``epsilon`` (R2D2: no count bonus or start-of-episode rate, and the training actors' state is left alone).
        """
        from ..agent import _batch_single, _is_single_observation

        single = _is_single_observation(self.observation_space, observation)
        if single:
            observation = _batch_single(self.observation_space, observation)
        obs = preprocess(self.observation_space, observation, self.device)
        B = obs.shape[0]
        torso = self.policy
        if state is None:
            state = {f"memory.{k}": v for k, v in torso.initial_state(B, self.device).items()}
            state["prev_action"] = torch.zeros(B, *self.codec.shape, dtype=self.codec.dtype, device=self.device)
            starts = torch.ones(B, dtype=torch.bool, device=self.device)
            if episode_start is not None:
                starts = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(B), device=self.device)
        elif episode_start is None:
            raise ValueError("predict(): a state was given without episode_start; pass episode_start "
                             "([B] bool) so a new episode never inherits the previous one's memory")
        else:
            starts = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(B), device=self.device)
        if self.policy_config.use_prev_reward and prev_reward is None and not bool(starts.all()):
            raise ValueError("predict(): this policy reads the previous reward (use_prev_reward=True); pass prev_reward")
        reward = torch.zeros(B, device=self.device) if prev_reward is None else torch.as_tensor(
            np.asarray(prev_reward, dtype=np.float32).reshape(B), device=self.device)
        core_state = {k[len("memory."):]: v for k, v in state.items() if k.startswith("memory.")}
        h, core_state = torso(obs[None], core_state, starts[None], state["prev_action"][None], reward[None])
        action = self.algorithm.act({self.algorithm.acting_torso(): h[0]}, explore=not deterministic, record=False)
        new_state = {f"memory.{k}": v for k, v in core_state.items()}
        new_state["prev_action"] = action
        env_action = self.codec.to_env(action)
        return (env_action[0] if single else env_action), new_state

    def export(self, path: str | os.PathLike[str], format: str = "onnx", **kwargs: Any) -> Any:
        """The acting network (torso and actor / Q head) with explicit state: see :func:`tracerl.export.export_agent`."""
        from ..export import export_agent

        return export_agent(self, path, format, **kwargs)

    # -- checkpoints --------------------------------------------------------------------------------
    def checkpoint_payload(self, include_replay: bool = True) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Tensors and JSON metadata of everything needed to continue: networks, optimizers, temperature, RNG
        states, counters, and (with an env) the replay contents, the collector's carried state and the env state."""
        alg = self.algorithm
        tensors: dict[str, Tensor] = {}
        for name, module in alg.modules().items():
            tensors.update({f"net.{name}.{k}": v for k, v in module.state_dict().items()})
        tensors.update({f"extra.{k}": v.detach() for k, v in alg.extra_tensors().items()})
        groups: dict[str, Any] = {}
        for oname, opt in alg.optimizers().items():
            st = opt.state_dict()
            for idx, pstate in st["state"].items():
                for key, value in pstate.items():
                    tensors[f"optim.{oname}.{idx}.{key}"] = value if isinstance(value, Tensor) else torch.tensor(value)
            groups[oname] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
                             for g in st["param_groups"]]
        np_rngs = self._np_rngs()
        rng_t, rng_json = capture_rng_state(np_rngs, torch_rng=self.torch_rng)
        tensors.update(rng_t)
        tensors["rng.acting"] = self.acting_rng.current()
        meta: dict[str, Any] = {
            "tracerl_version": __version__, "algo": self.algo, "her": self.her,
            "config": self.config.to_json(), "policy": self.policy_config.to_json(),
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "counters": {"num_timesteps": self.num_timesteps, "vec_steps": self._vec_steps,
                         "n_updates": alg.n_updates, "schedule_end": self._schedule_end},
            "optim_param_groups": groups, "rng": rng_json, "seed": self.seed, "env_kwargs": self.env_kwargs,
            "env_id": self.env_id, "n_np_rngs": len(np_rngs),
        }
        if self.run_id is not None:
            meta["run_id"] = self.run_id
        if self.collector is not None and self.replay is not None:
            tensors.update({f"collector.{k}": v for k, v in self.collector.carry_tensors().items()})
            meta["collector"] = {"total_steps": self.collector.total_steps, "stats": self.collector.stats.to_json()}
            if include_replay:
                rt, rmeta = self.replay.state_dict()
                tensors.update({f"replay.{k}": v for k, v in rt.items()})
                meta["replay"] = rmeta
            get_state = getattr(self.collector.env, "get_state", None)
            if callable(get_state):
                arrays, env_json = get_state()
                tensors.update({f"env.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
                meta["env_state"] = env_json
        return tensors, meta

    def _np_rngs(self) -> list[np.random.Generator]:
        out = []
        if self.collector is not None:
            out.append(self.collector.random_rng)
        if self.relabeler is not None:
            out.append(self.relabeler.rng)
        return out

    def save(self, path: str | os.PathLike[str], include_replay: bool = True) -> None:
        """One safetensors checkpoint (no pickle, atomic). ``include_replay=False`` leaves the replay out
        (smaller; training then continues with an empty replay)."""
        tensors, meta = self.checkpoint_payload(include_replay)
        save_checkpoint(path, tensors, meta, kind=CHECKPOINT_KIND)

    @classmethod
    def load(cls, path: str | os.PathLike[str], env: Any = None, device: str | torch.device = "cpu",
             memory: MemoryCore | None = None, verbose: int | None = None,
             env_kwargs: dict[str, Any] | None = None, import_modules: Sequence[str] = ()) -> "OffPolicyAgent":
        """Rebuild an agent from :meth:`save`'s file; with ``env``, the replay, collector and (for envs with
        ``get_state``) env state are restored too, so training continues where it stopped.

        The recorded env id imports no module unless trusted or listed in ``import_modules``, and the recorded
        env kwargs are checked (see :meth:`tracerl.TraceRL.load`); ``env``'s spaces must equal the checkpoint's.
        Everything in the file is untrusted (see :meth:`tracerl.TraceRL.load`): sizes are bounded, the networks
        are first built on the ``meta`` device and compared with the stored tensors, the replay's size with the
        stored replay, and every restored piece is checked against the live agent.

        Raises:
            CheckpointError: the file is missing, corrupted, foreign, asks for more than the limits, or does not
                fit (naming the file and the entry).
        """
        tensors, meta = load_checkpoint(path, kind=CHECKPOINT_KIND)
        where = str(path)
        args = cls._load_arguments(where, meta, env_kwargs)
        from ..agent import _env_from_meta

        args["env_id"], checked_kwargs = _env_from_meta(meta, path, import_modules)  # imports nothing unless allowed
        if env_kwargs is None:
            args["env_kwargs"] = checked_kwargs
        cls._probe_on_meta(where, tensors, args, memory)
        with entry_errors(where, "meta", "checkpoint metadata does not describe a buildable agent"):
            agent = cls(None, None, memory if memory is not None else args["memory_name"], algo=args["algo"],
                        her=args["her"], verbose=1 if verbose is None else verbose, seed=args["seed"], device=device,
                        env_kwargs=args["env_kwargs"], observation_space=args["obs_space"],
                        action_space=args["act_space"], **args["hyper"])
        agent.env_id = args["env_id"]
        agent.import_modules = tuple(import_modules)
        agent._restore_networks(where, tensors, meta)
        if env is not None:
            agent.env = attach_env(agent, env, where)
            agent._restore_training(where, tensors, meta)
        else:
            with entry_errors(where, "rng", "RNG state does not fit"):
                restore_rng_state({k: v for k, v in tensors.items() if k.startswith("rng/")},
                                  dict(meta["rng"], numpy=[]), torch_rng=agent.torch_rng)
        return agent

    @staticmethod
    def _load_arguments(where: str, meta: dict[str, Any], env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        """The constructor arguments the metadata describes, type- and size-checked (nothing built)."""
        with entry_errors(where, "meta", "malformed checkpoint metadata"):
            for key in ("algo", "config", "policy", "observation_space", "action_space"):
                if key not in meta:
                    raise CheckpointError(f"checkpoint metadata lacks {key!r}", path=where, entry=f"meta.{key}")
            algo = meta["algo"]
            if not isinstance(algo, str) or algo not in OFFPOLICY_ALGOS:
                raise CheckpointError(f"algo {algo!r} is not one of {', '.join(OFFPOLICY_ALGOS)}", path=where,
                                      entry="meta.algo")
            check_space_json(meta["observation_space"], where, "meta.observation_space")
            check_space_json(meta["action_space"], where, "meta.action_space")
            check_config_types(OFFPOLICY_ALGOS[algo][0], meta["config"], where, "meta.config")
            check_config_types(PolicyConfig, meta["policy"], where, "meta.policy")
            check_sizes(meta["config"], where, "meta.config")
            check_sizes(meta["policy"], where, "meta.policy")
            cfg = OFFPOLICY_ALGOS[algo][0].from_json(meta["config"]).to_json()
            pol = dict(meta["policy"])
            memory_name = pol.pop("memory")
            obs_space = space_from_json(meta["observation_space"])
            act_space = space_from_json(meta["action_space"])
            her = meta.get("her", False)
            if not isinstance(her, bool):
                raise CheckpointError(f"must be true or false, got {her!r}", path=where, entry="meta.her")
            seed, stored_kwargs, env_id = check_run_meta(meta, where)
            if not isinstance(meta.get("rng"), dict):
                raise CheckpointError("checkpoint metadata lacks the RNG state", path=where, entry="meta.rng")
        return {"algo": algo, "her": her, "seed": seed, "memory_name": memory_name, "obs_space": obs_space,
                "act_space": act_space, "env_id": env_id, "hyper": {**cfg, **pol},
                "env_kwargs": env_kwargs if env_kwargs is not None else stored_kwargs}

    @classmethod
    def _probe_on_meta(cls, where: str, tensors: dict[str, Tensor], args: dict[str, Any],
                       memory: MemoryCore | None) -> None:
        """Build the described agent on the meta device (no memory) and compare its networks, extra tensors and
        the replay it would build with what the file stores, before anything is allocated."""
        with entry_errors(where, "meta", "checkpoint metadata does not describe a buildable agent"):
            with building_on_meta():
                probe = cls(None, None, meta_copy(memory) if memory is not None else args["memory_name"],
                            algo=args["algo"], her=args["her"], verbose=0, seed=0, device="meta",
                            env_kwargs=args["env_kwargs"], observation_space=args["obs_space"],
                            action_space=args["act_space"], **args["hyper"])
                n_envs = probe.config.n_envs
                states = {name: torso.initial_state(n_envs, "meta") for name, torso in probe.algorithm.torsos().items()}
        alg = probe.algorithm
        extra = alg.extra_tensors()
        modules = list(alg.modules().values()) + ([alg.counts] if getattr(alg, "counts", None) is not None else [])
        check_network_budget(modules, {f"{m}.{k}": v for m, s in states.items() for k, v in s.items()}, where)
        for name, module in alg.modules().items():
            prefix = f"net.{name}."
            check_tensor_shapes(module.state_dict(), {k[len(prefix):]: v for k, v in tensors.items()
                                                      if k.startswith(prefix)}, where, prefix)
        for k, v in extra.items():
            check_tensor_like(tensors.get(f"extra.{k}"), v.shape, v.dtype, where, f"extra.{k}")
        # the replay: its arrays are the stored ones (checked below), or it is estimated from buffer_size
        cfg = probe.config
        per_env_state = sum(t[0].numel() * t.element_size() for s in states.values() for t in s.values())
        act_bytes = probe.codec.dtype.itemsize * max(1, int(np.prod(probe.codec.shape)))
        rows = cfg.buffer_size
        stride = max(1, cfg.stride)
        estimate = rows * (probe.obs_dim * 4 + 2 * act_bytes + 64) + (2 * rows // stride + n_envs) * per_env_state
        limit = restore_checks.LIMITS.max_replay_bytes  # looked up now: a user may have replaced LIMITS
        if estimate > limit:
            raise CheckpointError(f"buffer_size={rows} asks for a replay of about {estimate} bytes, more than the "
                                  f"limit {limit}", path=where, entry="meta.config.buffer_size")
        stored = tensors.get("replay.obs")
        if stored is not None:
            want = (stored.shape[0], rows // max(1, stored.shape[0]), probe.obs_dim) if stored.dim() == 3 else None
            if want is None or tuple(stored.shape) != want:
                raise CheckpointError(f"the stored replay holds {list(stored.shape)} observations, buffer_size={rows} "
                                      f"needs [n_envs, {rows} // n_envs, {probe.obs_dim}]", path=where,
                                      entry="replay.obs")

    def _restore_networks(self, where: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Networks, extra tensors (temperature, exploration RNG, visit counts), optimizers, counters and the acting
        RNG stream, each checked against the live agent before anything is copied."""
        alg = self.algorithm
        optimizers = alg.optimizers()
        known = ("net.", "extra.", "rng/", "rng.acting", "collector.", "replay.", "env.",
                 *(f"optim.{name}." for name in optimizers))
        check_no_unexpected(list(tensors), lambda n: n.startswith(known), where)
        loaded: dict[str, dict[str, Tensor]] = {}
        for name, module in alg.modules().items():
            prefix = f"net.{name}."
            sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            check_tensor_shapes(module.state_dict(), sub, where, prefix)
            check_finite(sub, where, prefix)
            loaded[name] = sub
        extra = alg.extra_tensors()
        optional = {"episode_step"} if hasattr(alg, "episode_step") else set()
        for name in tensors:
            if name.startswith("extra.") and name[len("extra."):] not in extra and name[len("extra."):] not in optional:
                raise CheckpointError("unexpected entry in the checkpoint", path=where, entry=name)
        bounds = {"visit_counts": (0, None), "log_alpha": (-80.0, 80.0)}  # exp(log_alpha) stays finite in float32
        for k, v in extra.items():
            low, high = bounds.get(k, (None, None))
            check_tensor_like(tensors.get(f"extra.{k}"), v.shape, v.dtype, where, f"extra.{k}", finite=True,
                              low=low, high=high)
        episode_step = tensors.get("extra.episode_step") if optional else None
        if episode_step is not None:
            check_tensor_like(episode_step, episode_step.shape[:1], torch.int64, where, "extra.episode_step", low=0)
        if "rng.acting" in tensors:  # absent in checkpoints written before the acting stream existed
            check_tensor_like(tensors["rng.acting"], self.acting_rng.state.shape, torch.uint8, where, "rng.acting")
        groups = meta.get("optim_param_groups")
        if not isinstance(groups, dict) or sorted(groups) != sorted(optimizers):
            raise CheckpointError(f"expected the param groups of optimizers {sorted(optimizers)}", path=where,
                                  entry="meta.optim_param_groups")
        opt_states = {oname: optimizer_state_from_checkpoint(opt, tensors, f"optim.{oname}.", groups[oname], where,
                                                             f"meta.optim_param_groups.{oname}")
                      for oname, opt in optimizers.items()}
        c = check_counters(meta.get("counters"), {"num_timesteps": True, "vec_steps": True, "n_updates": True,
                                                  "schedule_end": False}, where)

        for name, module in alg.modules().items():
            load_module_state(module, loaded[name], where, f"net.{name}.")
        with entry_errors(where, "extra", "extra state does not fit"):
            for k, v in extra.items():
                src = tensors[f"extra.{k}"]
                if k == "act_rng":
                    alg.rng.set_state(src)
                else:
                    with torch.no_grad():
                        v.copy_(src)
            if episode_step is not None:  # R2D2's start-of-episode counters
                alg.episode_step = episode_step.clone()
            if "rng.acting" in tensors:
                self.acting_rng.set_state(tensors["rng.acting"])
        for oname, opt in optimizers.items():
            load_optimizer(opt, opt_states[oname], where, f"optim.{oname}")
        self.num_timesteps, self._vec_steps = c["num_timesteps"], c["vec_steps"]
        alg.n_updates = c["n_updates"]
        self._schedule_end = c.get("schedule_end", 0)  # absent in checkpoints written before it was saved
        for hook in _progress_hooks(alg) if self._schedule_end > 0 else []:
            hook(self.num_timesteps / self._schedule_end)

    def _restore_training(self, where: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Rebuild replay and collector, and restore their contents, the env state and every RNG."""
        assert self.env is not None
        carry = {k[len("collector."):]: v for k, v in tensors.items() if k.startswith("collector.")}
        env_t = {k[len("env."):]: v for k, v in tensors.items() if k.startswith("env.")}
        replay_t = {k[len("replay."):]: v for k, v in tensors.items() if k.startswith("replay.")}
        if not carry and (env_t or replay_t or "env_state" in meta or "collector" in meta or "replay" in meta):
            raise CheckpointError("the checkpoint holds env, replay or collector state but no collector carry",
                                  path=where, entry="collector")
        if bool(replay_t) != ("replay" in meta):
            raise CheckpointError("the replay's tensors and metadata must be stored together", path=where,
                                  entry="replay")
        if carry and "collector" not in meta:
            raise CheckpointError("the checkpoint holds a collector carry but no collector metadata", path=where,
                                  entry="meta.collector")
        set_state = getattr(self.env, "set_state", None)
        if carry and callable(set_state) and ("env_state" not in meta or not env_t):
            raise CheckpointError("the checkpoint holds a collector carry but not the env state this env needs to "
                                  "continue", path=where, entry="meta.env_state")
        if replay_t:
            B = self.env.num_envs
            want = (B, self.config.buffer_size // B, self.obs_dim)
            if tuple(replay_t["obs"].shape) != want if "obs" in replay_t else True:
                got = list(replay_t["obs"].shape) if "obs" in replay_t else "nothing"
                raise CheckpointError(f"the stored replay holds {got}, this env and buffer_size need {list(want)}",
                                      path=where, entry="replay.obs")
        with entry_errors(where, "meta.config", "cannot build the replay for this env"):
            self._build_replay()
        assert self.replay is not None and self.collector is not None
        resumable = bool(carry) and callable(set_state) and "replay" in meta
        if resumable:
            B = self.env.num_envs
            with entry_errors(where, "collector", "collector state does not fit"):
                expected = {"obs": torch.empty(B, self.obs_dim), "episode_start": torch.empty(B, dtype=torch.bool),
                            "prev_action": torch.empty(B, *self.codec.shape, dtype=self.codec.dtype),
                            "prev_reward": torch.empty(B)}
                with building_on_meta():  # shapes only
                    for m, torso in self.algorithm.torsos().items():
                        expected.update({f"state.{m}.{k}": v for k, v in torso.initial_state(B, "meta").items()})
                check_tensors_like(carry, expected, where, "collector.")
                check_action_values(self.action_space, carry["prev_action"], where, "collector.prev_action")
                cmeta = meta["collector"]
                if not isinstance(cmeta, dict):
                    raise CheckpointError("must be a JSON object", path=where, entry="meta.collector")
                total_steps = check_int(cmeta.get("total_steps"), where, "meta.collector.total_steps", 0, 2**62)
                check_episode_stats(cmeta.get("stats"), B, where, "meta.collector.stats")
            check_env_state(self.env, env_t, meta["env_state"], where)
            self._load_replay(where, replay_t, meta["replay"])
            np_rngs = self._np_rngs()
            with entry_errors(where, "rng", "RNG state does not fit"):
                rng_json = dict(meta["rng"])
                saved_np = rng_json.get("numpy", [])
                if not isinstance(saved_np, list):
                    raise CheckpointError("must be a list", path=where, entry="meta.rng.numpy")
                n_saved = meta.get("n_np_rngs", len(saved_np))
                if n_saved != len(saved_np) or len(saved_np) != len(np_rngs):
                    raise CheckpointError(f"the checkpoint holds {len(saved_np)} numpy generator state(s) "
                                          f"(n_np_rngs={n_saved!r}); this agent restores {len(np_rngs)}", path=where,
                                          entry="meta.rng.numpy")
                rng_tensors = {k: v for k, v in tensors.items() if k.startswith("rng/")}
                check_rng_state(rng_tensors, rng_json, np_rngs)
            with entry_errors(where, "env", "env state does not fit this env"):
                set_state({k: v.numpy() for k, v in env_t.items()}, meta["env_state"])
            check_env_round_trip(self.env, env_t, meta["env_state"], where)
            self.collector.load_carry(carry)
            self.collector.total_steps = total_steps
            self.collector.stats.load_json(cmeta["stats"])
            restore_rng_state(rng_tensors, rng_json, np_rngs, torch_rng=self.torch_rng)
        else:
            # the env cannot be restored exactly: the next learn() starts fresh episodes (replay restored if saved)
            if replay_t:
                self._load_replay(where, replay_t, meta["replay"])
            self.collector.reset(seed=self.seed)  # the replay's running episodes end where they stopped

    def _load_replay(self, where: str, replay_t: dict[str, Tensor], replay_meta: Any) -> None:
        assert self.replay is not None
        with entry_errors(where, "replay", "replay does not fit"):
            for key in ("action", "prev_action"):
                if key in replay_t:
                    check_action_values(self.action_space, replay_t[key], where, f"replay.{key}")
            self.replay.load_state_dict(replay_t, replay_meta)


__all__ = ["CHECKPOINT_KIND", "LOG_BLOCK", "OFFPOLICY_ALGOS", "OffPolicyAgent", "is_offpolicy_checkpoint",
           "offpolicy_config_fields"]


# -- command line ----------------------------------------------------------------------------------------
def _progress_hooks(algorithm: Any) -> list[Callable[[float], None]]:
    """``set_training_progress`` of every memory core with a training schedule (the strategic memory's retention
    exploration), online and target networks alike, so that all of them follow the run."""
    cores = [getattr(m, "core", None) for m in algorithm.modules().values()]
    return [hook for core in cores if callable(hook := getattr(core, "set_training_progress", None))]


def offpolicy_cli_fields(skip: set[str]) -> list[tuple[str, Any, Any]]:
    """``tracerl train`` flags for the off-policy config fields not already in ``skip`` (optional, default None =
    the algorithm's default), with the fields' docstrings as help."""
    import dataclasses
    import typing
    from typing import Annotated, Optional

    import tyro

    from .offpolicy import config_field_docs

    out: list[tuple[str, Any, Any]] = []
    seen = set(skip)
    users: dict[str, list[str]] = {}
    for algo, (cfg_cls, _) in OFFPOLICY_ALGOS.items():
        for f in fields(cfg_cls):
            users.setdefault(f.name, []).append(algo)
    for cfg_cls, _ in OFFPOLICY_ALGOS.values():
        docs = config_field_docs(cfg_cls)
        hints = typing.get_type_hints(cfg_cls)
        for f in fields(cfg_cls):
            if f.name in seen:
                continue
            seen.add(f.name)
            typ = hints[f.name]
            if typing.get_origin(typ) is tuple:
                typ = tuple[int, ...]
            help_text = f"{docs.get(f.name, '')} [--algo {'/'.join(users[f.name])}] Unset (None) keeps the default of --algo."
            out.append((f.name, Annotated[Optional[typ], tyro.conf.arg(help=help_text)], dataclasses.field(default=None)))
    return out


def offpolicy_cli_values(args: Any, skip: set[str]) -> dict[str, Any]:
    """The off-policy flags the user set (not None), except the names in ``skip``."""
    return {name: getattr(args, name) for name in sorted(offpolicy_config_fields() - skip)
            if getattr(args, name, None) is not None}
