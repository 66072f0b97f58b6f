"""``TraceRL``: the user-facing agent (the API of seed 001).

    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 16}, memory="gru", seed=0)
    agent.learn(total_timesteps=100_000, progress_bar=True)
    agent.save("runs/cue16.tracerl")
    agent = TraceRL.load("runs/cue16.tracerl")
    action, state = agent.predict(obs)                       # a fresh episode
    action, state = agent.predict(obs, state, episode_start)  # continuing: episode_start is required

Hyperparameters are the fields of :class:`~tracerl.algos.PPOConfig` (algorithm) and
:class:`~tracerl.policies.PolicyConfig` (network), passed as keyword arguments. A keyword that is
neither raises ``TypeError`` naming it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import fields
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from . import __version__
from .agent_config import OFF_POLICY_ALGOS, MemoryAgentConfig
from .algos.auxiliary import AuxModule, ConfidenceAuxModule, CueAuxModule, aux_module_from_json, aux_module_to_json
from .algos.normalization import ReturnNormalizer
from .algos.ppo import PPO, PPOConfig
from .algos.rnd import RND
from .data.episodes import rollout_steps
from .data.rollout import RolloutBuffer, RolloutCollector
from .envs.safe_make import FileEnvId, check_env_kwargs, env_id_from_file
from .config_checks import check_agent_args
from .errors import CheckpointError, ConfigError
from .io.checkpoint import check_tensor_shapes, load_checkpoint, load_module_state, save_checkpoint
from .io import restore_checks
from .io.restore_checks import (attach_env, building_on_meta, check_action_values, check_config_types,
                                check_counters, check_env_round_trip, check_env_state,
                                check_episode_stats, check_finite, check_int, check_network_budget,
                                check_no_unexpected, check_rng_state, check_run_meta, check_sizes, check_space_json,
                                check_tensor_like,
                                check_tensors_like, entry_errors, load_optimizer, meta_copy,
                                optimizer_state_from_checkpoint)
from .io.logger import Logger
from .io.rotation import checkpoint_path, rotate
from .io.rng import AgentRNG, capture_rng_state, restore_rng_state, uses_acting_rng, uses_agent_rng
from .io.spaces import space_from_json, space_to_json
from .memory import MemoryCore, State
from .policies.policy import PolicyConfig, RecurrentActorCritic

CHECKPOINT_KIND = "tracerl.TraceRL"
_PPO_FIELDS = {f.name for f in fields(PPOConfig)}
_POLICY_FIELDS = {f.name for f in fields(PolicyConfig)} - {"memory", "intrinsic_value"}
_EXTRA_FIELDS = {f.name for f in fields(MemoryAgentConfig)}
_ALGOS: dict[str, Callable[..., PPOConfig]] = {
    "ppo": PPOConfig,
    "a2c": PPOConfig.a2c,
    "reinforce": PPOConfig.reinforce,
}


def _split_hyperparams(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    unknown = sorted(set(kwargs) - _PPO_FIELDS - _POLICY_FIELDS - _EXTRA_FIELDS)
    if unknown:
        raise TypeError(
            f"TraceRL got unexpected keyword argument(s): {', '.join(unknown)}. "
            f"Algorithm fields: {', '.join(sorted(_PPO_FIELDS))}; policy fields: {', '.join(sorted(_POLICY_FIELDS))}; "
            f"memory-agent fields: {', '.join(sorted(_EXTRA_FIELDS))}"
        )
    ppo = {k: v for k, v in kwargs.items() if k in _PPO_FIELDS}
    pol = {k: v for k, v in kwargs.items() if k in _POLICY_FIELDS}
    extra = {k: v for k, v in kwargs.items() if k in _EXTRA_FIELDS}
    if "encoder_hidden" in pol:
        pol["encoder_hidden"] = tuple(pol["encoder_hidden"])
    if "aux" in extra:
        extra["aux"] = tuple(extra["aux"])
    return ppo, pol, extra


def _env_from_meta(meta: dict[str, Any], path: Any,
                   import_modules: Sequence[str]) -> tuple[FileEnvId | None, dict[str, Any]]:
    """A checkpoint's env id (as a :class:`FileEnvId`: it imports no module unless allowed) and its checked
    env kwargs; CheckpointError naming the entry when either is malformed."""
    try:
        env_id = env_id_from_file(meta.get("env_id"), path, import_modules)
    except ConfigError as exc:
        raise CheckpointError(str(exc), path=str(path), entry="meta.env_id") from exc
    try:
        env_kwargs = check_env_kwargs(meta.get("env_kwargs"), str(path))
    except ConfigError as exc:
        raise CheckpointError(str(exc), path=str(path), entry="meta.env_kwargs") from exc
    return env_id, env_kwargs


def _policy_classes() -> dict[str, type[RecurrentActorCritic]]:
    """Policy classes a checkpoint may name (nothing else is imported on load)."""
    from .policies.strategic import StrategicMemoryTransformerPolicy

    return {f"{c.__module__}.{c.__qualname__}": c for c in (RecurrentActorCritic, StrategicMemoryTransformerPolicy)}


def _is_single_observation(space: gym.Space, obs: Any) -> bool:
    """True when ``obs`` is one observation of ``space`` rather than a batch of them."""
    if isinstance(space, gym.spaces.Dict):
        key = next(iter(space.spaces))
        return _is_single_observation(space.spaces[key], obs[key])
    if isinstance(space, gym.spaces.Tuple):
        return _is_single_observation(space.spaces[0], obs[0])
    return np.shape(obs) == tuple(space.shape or ())


def _batch_single(space: gym.Space, obs: Any) -> Any:
    if isinstance(space, gym.spaces.Dict):
        return {k: _batch_single(s, obs[k]) for k, s in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_batch_single(s, o) for s, o in zip(space.spaces, obs))
    return np.asarray(obs)[None]


class TraceRL:
    """A memory agent trained by recurrent PPO (or its A2C / REINFORCE configurations).

    Args:
        policy_class: the actor-critic class (default :class:`RecurrentActorCritic`); it is built as
            ``policy_class(observation_space, action_space, PolicyConfig, memory=core_or_None)``.
        env: an env id, a gymnasium Env, a VectorEnv (SAME_STEP autoreset) or a zero-arg callable.
            May be None when only predicting (then ``observation_space`` and ``action_space`` are needed).
        memory: a registered memory name (``"gru"``, ``"lstm"``, ``"mlp"``, ...) or a MemoryCore object.
        algo: ``"ppo"``, ``"a2c"`` or ``"reinforce"`` (the defaults of the other fields follow it).
        device: torch device.
        verbose: 0 silent, 1 the log table every ``log_interval`` rollouts.
        seed: seeds the agent's own torch streams (parameter init, action sampling, the memories' random draws;
            kept apart from torch's global generator, one for training and one for ``predict``/``inspect``: see
            :class:`tracerl.io.rng.AgentRNG`), the envs (held-out seeds are the caller's business) and minibatch
            order. None: the streams' seed is drawn from torch's global generator.
        env_kwargs: keyword arguments for the env when ``env`` is an id.
        tensorboard_log: directory for TensorBoard and CSV logs (None: console only).
        threads: torch intra-op threads while ``learn`` runs (restored afterwards). 1, the default, is the
            fastest for the small networks of RL on CPU and never oversubscribes a shared machine (two threads
            on a busy 2-core machine ran 70x slower here); None keeps torch's own setting.
        aux_modules: auxiliary losses on the memory features (:class:`~tracerl.algos.auxiliary.AuxModule`
            objects, e.g. ``CueAuxModule(feat_dim, n_classes)``); their ``feat_dim`` must equal the memory's
            output width.
        **hyperparams: fields of PPOConfig, PolicyConfig and MemoryAgentConfig, e.g. ``learning_rate``,
            ``lam``, ``gamma``, ``ent_coef``, ``n_envs``, ``n_steps``, ``bptt_len``, ``hidden_size``,
            ``use_prev_action``, ``memory_learn_retention``, ``reward_norm``, ``use_rnd``, ``intrinsic_eta``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # algo="sac" | "td3" | "r2d2": the off-policy agent (tracerl.algos.offpolicy_agent), same API.
        if kwargs.get("algo") in OFF_POLICY_ALGOS:
            from .algos.offpolicy_agent import OffPolicyAgent

            return OffPolicyAgent(*args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        policy_class: type[RecurrentActorCritic] | None = None,
        env: Any = None,
        memory: str | MemoryCore = "gru",
        *,
        algo: str = "ppo",
        device: str | torch.device = "cpu",
        verbose: int = 1,
        seed: int | None = None,
        env_kwargs: dict[str, Any] | None = None,
        tensorboard_log: str | os.PathLike[str] | None = None,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        aux_modules: list[AuxModule] | None = None,
        threads: int | None = 1,
        **hyperparams: Any,
    ) -> None:
        check_agent_args("TraceRL", seed=seed, threads=threads, device=device, verbose=verbose)
        self.threads = threads
        ppo_kwargs, policy_kwargs, extra_kwargs = _split_hyperparams(hyperparams)
        self.extras = MemoryAgentConfig(**extra_kwargs)
        self.extras.validate(algo)
        if algo not in _ALGOS:
            raise ConfigError(f"unknown algo {algo!r}; valid: {', '.join(_ALGOS)}")
        self.algo = algo
        self.config: PPOConfig = _ALGOS[algo](**ppo_kwargs)
        self.config.validate()
        if isinstance(memory, str):
            memory_name = memory
        elif callable(getattr(memory, "memory_kwargs", None)) and getattr(memory, "memory_name", None):
            # A registered core passed as an object: record how to rebuild it by name.
            memory_name = memory.memory_name  # type: ignore[union-attr]
            policy_kwargs.setdefault("memory_kwargs", memory.memory_kwargs())  # type: ignore[union-attr]
        else:
            memory_name = type(memory).__name__
        self.policy_config = PolicyConfig(memory=memory_name, intrinsic_value=self.extras.intrinsic_expl,
                                          **policy_kwargs)
        self.policy_config.validate()
        self.device = torch.device(device)
        self.verbose = verbose
        self.seed = seed
        self.env_kwargs = dict(env_kwargs or {})
        self.import_modules: tuple[str, ...] = ()  # modules a file's env id may import (TraceRL.load)
        self.tensorboard_log = tensorboard_log
        self.policy_class = policy_class or RecurrentActorCritic

        self.env: gym.vector.VectorEnv | None = None
        self.env_id: str | None = env if isinstance(env, str) else getattr(getattr(env, "spec", None), "id", None)
        if env is not None:
            self.env = self._make_env(env)
            self.config.n_envs = self.env.num_envs  # a VectorEnv passed in decides the batch width
            observation_space = self.env.single_observation_space
            action_space = self.env.single_action_space
        if observation_space is None or action_space is None:
            raise ConfigError("TraceRL needs env=..., or observation_space and action_space to predict only")
        self.observation_space = observation_space
        self.action_space = action_space

        self.torch_rng = AgentRNG(seed)  # parameter init, sampling and memory draws: the agent's own stream
        self.acting_rng = AgentRNG(seed, stream=1)  # predict/inspect: evaluations leave training unchanged
        with self.torch_rng.active():
            self.policy = self.policy_class(
                observation_space, action_space, self.policy_config,
                memory=None if isinstance(memory, str) else memory,
            )
            self._configure_memory()
            self.policy.aux_modules = nn.ModuleList(self._build_aux_modules(aux_modules))
            self.policy.to(self.device)
            self.rnd = (RND(self.policy.obs_dim, self.config.n_envs, self.extras.rnd_emb_dim, self.extras.rnd_lr)
                        .to(self.device) if self.extras.use_rnd else None)
            self.reward_normalizer = (ReturnNormalizer(self.config.n_envs, self.config.gamma).to(self.device)
                                      if self.extras.reward_norm else None)
            self.ppo = PPO(self.policy, self.config,
                           intrinsic_coef=self.extras.intrinsic_eta if self.extras.intrinsic_expl else 0.0)
        self.minibatch_generator = torch.Generator()
        self.minibatch_generator.manual_seed(0 if seed is None else seed)
        self.num_timesteps = 0
        self.iterations = 0
        self._schedule_end = 0
        self.collector: RolloutCollector | None = None
        self.logger: Logger | None = None
        self.run_id: str | None = None  # set by `tracerl train`: recorded in every checkpoint, rotation keeps to it

    # -- memory options ---------------------------------------------------------------------------
    def _configure_memory(self) -> None:
        """Apply memory_learn_retention / memory_retention_coef to a core that has retention."""
        core, ex = self.policy.core, self.extras
        for field_name, attr in (("memory_learn_retention", "learn_retention"),
                                 ("memory_retention_coef", "retention_coef")):
            value = getattr(ex, field_name)
            if value is None:
                continue
            if not hasattr(core, attr):
                raise ConfigError(
                    f"{field_name}={value!r}: memory {self.policy_config.memory!r} has no retention to learn "
                    "(use memory='strategic' or StrategicMemoryBuffer)")
            setattr(core, attr, type(getattr(core, attr))(value))

    def _build_aux_modules(self, modules: list[AuxModule] | None) -> list[AuxModule]:
        feat = self.policy.core.output_dim
        built: list[AuxModule] = list(modules or [])
        for name in self.extras.aux:
            built.append(CueAuxModule(feat, n_classes=2) if name == "cue" else ConfidenceAuxModule(feat))
        self.extras.aux = ()  # names are now modules; checkpoints store the modules
        for m in built:
            if not isinstance(m, AuxModule):
                raise ConfigError(f"aux_modules must hold AuxModule objects, got {type(m).__name__}")
            if m.feat_dim != feat:
                raise ConfigError(
                    f"{type(m).__name__}(feat_dim={m.feat_dim}) does not match the memory's output width {feat}")
            if isinstance(m, ConfidenceAuxModule) and m.net is None:
                m.bind(self.policy.actor.action_features, self.policy.actor.action_feat_dim)
        return built

    @property
    def aux_modules(self) -> list[AuxModule]:
        return list(self.policy.aux_modules)  # type: ignore[arg-type]

    def _info_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for m in self.aux_modules for k in m.info_keys))

    # -- environments -----------------------------------------------------------------------------
    def _make_env(self, env: Any) -> gym.vector.VectorEnv:
        """The vector env for ``env``; once the agent has spaces (load, set_env), they must match (ConfigError)."""
        from .envs import make_vec_env
        from .envs.vector import check_env_spaces

        if isinstance(env, gym.vector.VectorEnv):
            vec = make_vec_env(env)
        else:
            kwargs = self.env_kwargs if isinstance(env, str) and str(env) == str(self.env_id or env) else None
            # (the recorded kwargs belong to the recorded env id: another id gets none)
            ex = self.extras
            resilient = {} if ex.env_max_restarts is None else dict(  # crashing envs: tracerl.envs.resilient
                resilient=True, max_restarts=ex.env_max_restarts, subprocess=ex.env_subprocess,
                step_timeout=ex.env_step_timeout)
            vec = make_vec_env(env, n_envs=self.config.n_envs, seed=self.seed, env_kwargs=kwargs,
                               import_modules=getattr(self, "import_modules", ()), **resilient,
                               vectorization=ex.env_vectorization, verbose=self.verbose)
        if getattr(self, "observation_space", None) is not None:
            check_env_spaces(vec, self.observation_space, self.action_space, what="the agent")
        return vec

    def set_env(self, env: Any) -> None:
        """Use ``env`` from now on (its spaces must equal the policy's); the next learn() resets it. An env id
        other than the agent's ``env_id`` is built without the agent's ``env_kwargs`` (they were for that env).
        Spaces that differ raise ConfigError naming both."""
        self.env = self._make_env(env)
        self.collector = None

    def _ensure_collector(self) -> RolloutCollector:
        if self.env is None:
            raise ConfigError("learn() needs an environment: pass env= to TraceRL or call set_env()")
        if self.collector is None:
            self.collector = self._new_collector()
            self.collector.reset(seed=self.seed)
        return self.collector

    def _new_collector(self) -> RolloutCollector:
        assert self.env is not None
        if self.env.num_envs != self.config.n_envs and (self.rnd is not None or self.reward_normalizer is not None):
            raise ConfigError(f"the env has {self.env.num_envs} sub-envs but the agent was built for "
                              f"n_envs={self.config.n_envs} (RND / reward normalization keep per-env statistics)")
        return RolloutCollector(self.env, self.policy, self.config.gamma, self.device,
                                nan_policy=self.config.nan_policy,
                                bootstrap_on_truncation=self.config.bootstraps_truncations,
                                info_keys=self._info_keys(), reward_normalizer=self.reward_normalizer,
                                rnd=self.rnd, whole_episodes=self.config.returns == "monte_carlo",
                                max_episode_steps=self.config.max_episode_steps)

    # -- training ---------------------------------------------------------------------------------
    @uses_agent_rng
    def learn(
        self,
        total_timesteps: int,
        log_interval: int = 1,
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
        callback: Callable[["TraceRL", dict[str, float]], bool | None] | None = None,
        checkpoint_every: int | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        keep_checkpoints: int = 3,
    ) -> "TraceRL":
        """Train for ``total_timesteps`` env steps (rounded up to whole rollouts).

        Args:
            total_timesteps: env steps to collect in this call.
            log_interval: write the log every this many rollouts (and after the last).
            progress_bar: show a tqdm bar over env steps.
            reset_num_timesteps: False continues the step counter (and the learning-rate schedule's
                horizon) of a previous call or of a loaded checkpoint.
            callback: called after every update with (agent, stats); returning False stops training.
            checkpoint_every: save a checkpoint into ``checkpoint_dir`` whenever the step counter passes
                a multiple of this (None: never). Loading the newest one with the env and calling
                ``learn(remaining, reset_num_timesteps=False)`` continues bit-identically.
            checkpoint_dir: where periodic checkpoints go (``ckpt_<steps>.tracerl``).
            keep_checkpoints: how many periodic checkpoints to keep (older ones are deleted after a
                successful save).
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
        cfg = self.config
        if reset_num_timesteps:
            self.num_timesteps = 0
            self.iterations = 0
            self._schedule_end = total_timesteps
        else:
            self._schedule_end = max(self._schedule_end, self.num_timesteps + total_timesteps)
        n_envs = collector.n_envs
        buf = RolloutBuffer.allocate(self.policy, cfg.n_steps, n_envs, cfg.chunk_len, self.device,
                                     info_keys=self._info_keys(), intrinsic=self.extras.intrinsic_expl)
        set_progress = getattr(self.policy.core, "set_training_progress", None)
        per_iter = cfg.n_steps * n_envs
        n_iters = math.ceil(total_timesteps / per_iter)
        if self.logger is None:
            formats = (["console"] if self.verbose >= 1 else []) + (
                ["csv", "tensorboard"] if self.tensorboard_log else [])
            self.logger = Logger(self.tensorboard_log, formats=formats, append=not reset_num_timesteps,
                                 resume_step=None if reset_num_timesteps else self.num_timesteps)
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_iters * per_iter, unit="step", desc="TraceRL", dynamic_ncols=True)
        start = time.perf_counter()
        steps_at_start = self.num_timesteps
        threads_before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            for it in range(n_iters):
                if cfg.lr_schedule == "linear":
                    frac = 1.0 - self.num_timesteps / max(self._schedule_end, 1)
                    self.ppo.set_learning_rate(cfg.learning_rate * max(frac, 0.0))
                if callable(set_progress):
                    set_progress(self.num_timesteps / max(self._schedule_end, 1))
                self.policy.eval()
                collector.collect(buf)
                self.policy.train()
                self.num_timesteps += per_iter
                stats = self.ppo.update(buf, self.minibatch_generator)
                if self.rnd is not None:
                    stats["rnd_loss"] = self.rnd.train_predictor(
                        buf.obs.reshape(-1, buf.obs.shape[-1]), cfg.n_epochs, cfg.batch_size if cfg.batch_size > 0
                        else per_iter, self.minibatch_generator)
                    stats["mean_rnd_bonus"] = collector.rnd_bonus_sum / per_iter
                self.iterations += 1
                if bar is not None:
                    bar.update(per_iter)
                    if collector.stats.returns:
                        bar.set_postfix(ep_rew=f"{np.mean(collector.stats.returns):.3f}")
                if (it + 1) % log_interval == 0 or it == n_iters - 1:
                    self._log(stats, buf, start, steps_at_start, total_timesteps)
                if checkpoint_every is not None and (
                    self.num_timesteps // checkpoint_every > (self.num_timesteps - per_iter) // checkpoint_every
                ):
                    assert checkpoint_dir is not None
                    self.save(checkpoint_path(checkpoint_dir, self.num_timesteps))
                    rotate(checkpoint_dir, keep_checkpoints, run_id=self.run_id, current=self.num_timesteps)
                if callback is not None and callback(self, stats) is False:
                    break
        finally:
            torch.set_num_threads(threads_before)
            if bar is not None:
                bar.close()
        return self

    def _log(self, stats: dict[str, float], buf: RolloutBuffer, start: float, steps0: int, total: int) -> None:
        assert self.logger is not None and self.collector is not None and buf.advantage is not None
        lg, st = self.logger, self.collector.stats
        if st.returns:
            lg.record("rollout/ep_len_mean", float(np.mean(st.lengths)))
            lg.record("rollout/ep_rew_mean", float(np.mean(st.returns)))
            lg.record("rollout/ep_rew_std", float(np.std(st.returns)))
        if st.successes:
            lg.record("rollout/success_rate", float(np.mean(st.successes)))
        lg.record("rollout/policy_entropy", stats["entropy"])
        adv = buf.advantage  # [T, B]; REINFORCE: the steps of the whole episodes trained on, flattened (maybe none)
        lg.record("rollout/advantage_mean", float(adv.mean()) if adv.numel() else float("nan"))
        lg.record("rollout/advantage_std", float(adv.std()) if adv.numel() > 1 else float("nan"))
        elapsed = time.perf_counter() - start
        lg.record("time/fps", int((self.num_timesteps - steps0) / max(elapsed, 1e-9)))
        lg.record("time/episodes", st.episodes)
        lg.record("time/time_elapsed", int(elapsed))
        lg.record("time/total_timesteps", self.num_timesteps)
        for key in ("loss", "policy_loss", "value_loss", "explained_variance", "approx_kl", "clip_fraction",
                    "learning_rate", "grad_norm"):
            lg.record(f"train/{key}", stats[key])
        lg.record("train/n_updates", int(stats["n_updates"]))
        lg.record("rollout/aux_loss_mean", stats.get("aux_loss", 0.0))  # 0 without aux modules (seed 001's table)
        for key in ("memory/usefulness_loss", "memory/hindsight_loss", "memory/read_loss"):
            if key in stats:
                lg.record(key, stats[key])
        if "mean_rnd_bonus" in stats:
            lg.record("rnd_net_dist/mean_rnd_bonus", stats["mean_rnd_bonus"])
            lg.record("rnd_net_dist/predictor_loss", stats["rnd_loss"])
        if stats["skipped_updates"]:
            lg.record("train/skipped_updates", int(stats["skipped_updates"]))
        done = self.num_timesteps - steps0
        lg.record("train/progress", f"{100.0 * min(done / total, 1.0):.1f}%")
        lg.dump(self.num_timesteps)

    @uses_acting_rng
    def inspect(self, env: Any = None, episodes: int = 20, out: str | os.PathLike[str] | None = None,
                **kwargs: Any) -> Any:
        """What the memory holds and what the agent attends to over ``episodes`` held-out episodes: see
        :func:`tracerl.inspection.inspect` (``env`` defaults to the agent's env id and kwargs; ``out`` gets
        ``inspection.json`` and ``inspection.png``)."""
        from .inspection import inspect

        if env is None:
            if self.env_id is None:
                raise ConfigError("inspect() needs env=...: this agent does not record an env id")
            env = self.env_id
            kwargs.setdefault("env_kwargs", self.env_kwargs)
        return inspect(self, env, episodes=episodes, out=out, **kwargs)

    # -- acting -----------------------------------------------------------------------------------
    @uses_acting_rng
    @torch.no_grad()
    def predict(
        self,
        observation: Any,
        state: State | None = None,
        episode_start: Any = None,
        deterministic: bool = False,
        prev_reward: Any = None,
    ) -> tuple[np.ndarray, State]:
        """Act on one observation or a batch of them.

        Args:
            observation: one observation of the env's space, or a batch ``[B, ...]``.
            state: the state returned by the previous call (None: fresh episodes).
            episode_start: ``[B]`` bool, True where the observation starts a new episode. Required
                whenever ``state`` is given, so a stale memory can never carry into a new episode.
            deterministic: the distribution's mode instead of a sample.
            prev_reward: ``[B]`` rewards received after the previous action (only for
                ``use_prev_reward`` policies).

        Returns:
            ``(action, state)``: env actions (unbatched if the observation was) and the next state.
        """
        single = _is_single_observation(self.observation_space, observation)
        if single:
            observation = _batch_single(self.observation_space, observation)
        obs = self.policy.preprocess(observation, self.device)
        B = obs.shape[0]
        if state is None:
            state = {f"memory.{k}": v for k, v in self.policy.initial_state(B, self.device).items()}
            state["prev_action"] = torch.zeros(B, *self.policy.action_shape, dtype=self.policy.action_dtype,
                                               device=self.device)
            starts = torch.ones(B, dtype=torch.bool, device=self.device) if episode_start is None else None
        elif episode_start is None:
            raise ValueError("predict(): a state was given without episode_start; pass episode_start "
                             "([B] bool) so a new episode never inherits the previous one's memory")
        else:
            starts = None
        if starts is None:
            starts = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(B), device=self.device)
        if self.policy_config.use_prev_reward and prev_reward is None and not bool(starts.all()):
            raise ValueError("predict(): this policy reads the previous reward (use_prev_reward=True); pass prev_reward")
        reward = torch.zeros(B, device=self.device) if prev_reward is None else torch.as_tensor(
            np.asarray(prev_reward, dtype=np.float32).reshape(B), device=self.device)
        core_state = {k[len("memory."):]: v for k, v in state.items() if k.startswith("memory.")}
        dist, _, core_state = self.policy(
            obs[None], core_state, starts[None], state["prev_action"][None], reward[None]
        )
        raw = (dist.mode() if deterministic else dist.sample())[0]
        new_state = {f"memory.{k}": v for k, v in core_state.items()}
        new_state["prev_action"] = raw
        action = self.policy.actor.to_env(raw)
        return (action[0] if single else action), new_state

    # -- checkpoints ------------------------------------------------------------------------------
    def _checkpoint_payload(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors: dict[str, Tensor] = {f"policy.{k}": v for k, v in self.policy.state_dict().items()}
        opt = self.ppo.optimizer.state_dict()
        for idx, pstate in opt["state"].items():
            for key, value in pstate.items():
                tensors[f"optim.{idx}.{key}"] = value if isinstance(value, Tensor) else torch.tensor(value)
        groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in opt["param_groups"]]
        rng_tensors, rng_json = capture_rng_state(torch_rng=self.torch_rng)
        tensors.update(rng_tensors)
        tensors["rng.minibatch"] = self.minibatch_generator.get_state()
        tensors["rng.acting"] = self.acting_rng.current()
        if self.reward_normalizer is not None:
            tensors.update({f"reward_norm.{k}": v for k, v in self.reward_normalizer.state_dict().items()})
        if self.rnd is not None:
            tensors.update({f"rnd.{k}": v for k, v in self.rnd.state_dict().items()})
            for idx, pstate in self.rnd.optimizer.state_dict()["state"].items():
                for key, value in pstate.items():
                    tensors[f"rnd_optim.{idx}.{key}"] = value if isinstance(value, Tensor) else torch.tensor(value)
        meta: dict[str, Any] = {
            "tracerl_version": __version__,
            "algo": self.algo,
            "ppo": self.config.to_json(),
            "policy": self.policy_config.to_json(),
            "extras": self.extras.to_json(),
            "aux_modules": [aux_module_to_json(m) for m in self.aux_modules],
            "policy_class": f"{self.policy_class.__module__}.{self.policy_class.__qualname__}",
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "counters": {"num_timesteps": self.num_timesteps, "iterations": self.iterations,
                         "schedule_end": self._schedule_end, "n_updates": self.ppo.n_updates,
                         "skipped_updates": self.ppo.skipped_updates,
                         "consecutive_skips": self.ppo.consecutive_skips},
            "optim_param_groups": groups,
            "rng": rng_json,
            "seed": self.seed,
            "env_kwargs": self.env_kwargs,
            "env_id": self.env_id,
        }
        if self.run_id is not None:
            meta["run_id"] = self.run_id
        if self.collector is not None:
            tensors.update({f"collector.{k}": v for k, v in self.collector.carry_tensors().items()})
            meta["collector"] = {"total_steps": self.collector.total_steps, "stats": self.collector.stats.to_json()}
            get_state = getattr(self.collector.env, "get_state", None)
            if callable(get_state):
                arrays, env_json = get_state()
                tensors.update({f"env.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
                meta["env_state"] = env_json
        return tensors, meta

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a checkpoint (one safetensors file, no pickle, atomic) holding everything to resume exactly:
        weights, optimizer moments, RNG states, counters, config, spaces, the collector's carried state and,
        for envs that support it (``get_state``/``set_state``), the envs' state."""
        tensors, meta = self._checkpoint_payload()
        save_checkpoint(path, tensors, meta, kind=CHECKPOINT_KIND)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        env: Any = None,
        device: str | torch.device = "cpu",
        memory: MemoryCore | None = None,
        verbose: int | None = None,
        import_modules: Sequence[str] = (),
    ) -> "TraceRL":
        """Rebuild an agent from :meth:`save`'s file. With ``env``, training can continue; when that env
        supports state capture and the checkpoint holds its state, it continues exactly where it stopped.

        The recorded ``env_id`` becomes a :class:`~tracerl.envs.safe_make.FileEnvId`: a ``"module:Env-v0"``
        prefix in it is imported only if the module is trusted (tracerl, an installed popgym) or listed in
        ``import_modules`` (otherwise making that env raises ConfigError). The recorded ``env_kwargs`` are
        checked (JSON scalars, bounded sizes). ``env``'s spaces must equal the checkpoint's (ConfigError).
        Everything in the file is untrusted: sizes are bounded (:data:`tracerl.io.restore_checks.LIMITS`) and the
        networks the metadata describes are built on the ``meta`` device and compared with the stored tensors
        before anything is allocated; every restored piece is checked against the live agent.

        Raises:
            CheckpointError: the file is missing, not a regular file, corrupted, truncated, foreign, of a newer
                format, asks for more than the limits, or holds an entry that does not fit (naming the file and
                the entry).
        """
        from .algos.offpolicy_agent import OffPolicyAgent, is_offpolicy_checkpoint

        if is_offpolicy_checkpoint(path):
            return OffPolicyAgent.load(path, env=env, device=device, memory=memory, verbose=verbose,  # type: ignore[return-value]
                                       import_modules=import_modules)
        tensors, meta = load_checkpoint(path, kind=CHECKPOINT_KIND)
        where = str(path)
        args = cls._load_arguments(where, meta, memory)
        args["env_id"], args["env_kwargs"] = _env_from_meta(meta, path, import_modules)
        cls._probe_on_meta(where, tensors, args, memory)
        with entry_errors(where, "meta", "checkpoint metadata does not describe a buildable agent"):
            agent = cls(
                args["policy_class"], None, memory if memory is not None else args["memory_name"], algo=args["algo"],
                device=device, verbose=1 if verbose is None else verbose, seed=args["seed"],
                env_kwargs=args["env_kwargs"], observation_space=args["obs_space"], action_space=args["act_space"],
                aux_modules=[aux_module_from_json(d) for d in args["aux"]], **args["hyper"],
            )
        agent._restore(path, tensors, meta)
        agent.env_id = args["env_id"]
        agent.import_modules = tuple(import_modules)
        if env is not None:
            agent.env = attach_env(agent, env, where)
            agent._restore_collector(path, tensors, meta)
        return agent

    @staticmethod
    def _load_arguments(where: str, meta: dict[str, Any], memory: MemoryCore | None) -> dict[str, Any]:
        """The constructor arguments a checkpoint's metadata describes, type- and size-checked (nothing built)."""
        from .memory import available_memories

        with entry_errors(where, "meta", "malformed checkpoint metadata"):
            for key in ("observation_space", "action_space", "policy", "ppo"):
                if key not in meta:
                    raise CheckpointError(f"checkpoint metadata lacks {key!r}", path=where, entry=f"meta.{key}")
            check_space_json(meta["observation_space"], where, "meta.observation_space")
            check_space_json(meta["action_space"], where, "meta.action_space")
            for key, config_cls in (("policy", PolicyConfig), ("ppo", PPOConfig), ("extras", MemoryAgentConfig)):
                check_config_types(config_cls, meta.get(key, {}), where, f"meta.{key}")
                check_sizes(meta.get(key, {}), where, f"meta.{key}")
            intrinsic = meta.get("extras", {}).get("intrinsic_expl", False)
            if meta["policy"].get("intrinsic_value", intrinsic) != intrinsic:
                raise CheckpointError(f"policy.intrinsic_value must equal extras.intrinsic_expl={intrinsic!r}",
                                      path=where, entry="meta.policy.intrinsic_value")
            aux_json = meta.get("aux_modules", [])
            if not isinstance(aux_json, list) or not all(isinstance(d, dict) for d in aux_json):
                raise CheckpointError("must be a list of JSON objects", path=where, entry="meta.aux_modules")
            for i, d in enumerate(aux_json):
                check_sizes(d, where, f"meta.aux_modules[{i}]")
            obs_space = space_from_json(meta["observation_space"])
            act_space = space_from_json(meta["action_space"])
            pol = dict(meta["policy"])
            memory_name = pol.pop("memory")
            pol.pop("intrinsic_value", None)
            ppo_fields = PPOConfig.from_json(dict(meta["ppo"])).to_json()  # unknown keys -> ConfigError
            extra_fields = MemoryAgentConfig.from_json(dict(meta.get("extras", {}))).to_json()
            class_name = meta.get("policy_class", "tracerl.policies.policy.RecurrentActorCritic")
            classes = _policy_classes()
            if class_name not in classes:
                raise CheckpointError(f"checkpoint names policy class {class_name!r}; loadable: {', '.join(classes)}",
                                      path=where, entry="meta.policy_class")
            algo = meta.get("algo", "ppo")
            if algo not in _ALGOS:
                raise CheckpointError(f"algo {algo!r} is not one of {', '.join(_ALGOS)}", path=where, entry="meta.algo")
            seed, env_kwargs, env_id = check_run_meta(meta, where)
            n_envs, n_steps = ppo_fields.get("n_envs", 1), ppo_fields.get("n_steps", 1)
            limit = restore_checks.LIMITS.max_rollout_steps  # looked up now: a user may have replaced LIMITS
            if isinstance(n_envs, int) and isinstance(n_steps, int) and n_envs * n_steps > limit:
                raise CheckpointError(f"n_steps * n_envs = {n_steps * n_envs} is more than the limit {limit}",
                                      path=where, entry="meta.ppo.n_steps")
        if memory is None and memory_name not in available_memories():
            raise CheckpointError(
                f"checkpoint uses memory {memory_name!r}, which is not registered here; pass memory=",
                path=where, entry="policy.memory")
        return {"obs_space": obs_space, "act_space": act_space, "memory_name": memory_name,
                "policy_class": classes[class_name], "algo": algo, "seed": seed, "env_kwargs": env_kwargs,
                "env_id": env_id, "aux": aux_json, "hyper": {**ppo_fields, **pol, **extra_fields}}

    @classmethod
    def _probe_on_meta(cls, where: str, tensors: dict[str, Tensor], args: dict[str, Any],
                       memory: MemoryCore | None) -> None:
        """Build the described agent on the meta device (no memory) and compare its networks with the stored
        tensors, so a file asking for a huge network is refused before anything is allocated."""
        with entry_errors(where, "meta", "checkpoint metadata does not describe a buildable agent"):
            with building_on_meta():
                probe = cls(
                    args["policy_class"], None, meta_copy(memory) if memory is not None else args["memory_name"],
                    algo=args["algo"], device="meta", verbose=0, seed=0, env_kwargs=args["env_kwargs"],
                    observation_space=args["obs_space"], action_space=args["act_space"],
                    aux_modules=[aux_module_from_json(d) for d in args["aux"]], **args["hyper"],
                )
                state = probe.policy.initial_state(probe.config.n_envs, "meta")
        modules = [m for m in (probe.policy, probe.rnd, probe.reward_normalizer) if m is not None]
        check_network_budget(modules, state, where)
        parts = ((probe.policy, "policy."), (probe.rnd, "rnd."), (probe.reward_normalizer, "reward_norm."))
        for module, prefix in parts:
            if module is None:
                continue
            sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            check_tensor_shapes(module.state_dict(), sub, where, prefix)

    def _restore(self, path: Any, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        where = str(path)
        known = ("policy.", "optim.", "rng/", "rng.minibatch", "rng.acting", "collector.", "env.")
        known += ("reward_norm.",) if self.reward_normalizer is not None else ()
        known += ("rnd.", "rnd_optim.") if self.rnd is not None else ()
        check_no_unexpected(list(tensors), lambda n: n.startswith(known), where)
        policy_t = {k[len("policy."):]: v for k, v in tensors.items() if k.startswith("policy.")}
        check_tensor_shapes(self.policy.state_dict(), policy_t, where, "policy.")
        check_finite(policy_t, where, "policy.")
        # Everything is checked before anything is copied, so a failed load leaves the agent unchanged.
        lr_range = (0.0, self.config.learning_rate) if self.config.lr_schedule == "linear" else None
        opt_sd = optimizer_state_from_checkpoint(self.ppo.optimizer, tensors, "optim.", meta.get("optim_param_groups"),
                                                 where, "meta.optim_param_groups", lr_range)
        extra_state: list[tuple[nn.Module, str]] = []
        if self.reward_normalizer is not None:
            extra_state.append((self.reward_normalizer, "reward_norm."))
        if self.rnd is not None:
            extra_state.append((self.rnd, "rnd."))
        extra_t = []
        for module, prefix in extra_state:
            sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            check_tensor_shapes(module.state_dict(), sub, where, prefix)
            check_finite(sub, where, prefix)
            extra_t.append((module, sub, prefix))
        rnd_sd = None
        if self.rnd is not None:
            rnd_sd = optimizer_state_from_checkpoint(
                self.rnd.optimizer, tensors, "rnd_optim.", self.rnd.optimizer.state_dict()["param_groups"], where,
                "rnd_optim", None)
        c = check_counters(meta.get("counters"), {"num_timesteps": True, "iterations": True, "schedule_end": True,
                                                  "n_updates": True, "skipped_updates": True,
                                                  "consecutive_skips": False}, where)
        check_tensor_like(tensors.get("rng.minibatch"), self.minibatch_generator.get_state().shape, torch.uint8,
                          where, "rng.minibatch")
        if "rng.acting" in tensors:  # absent in checkpoints written before the acting stream existed
            check_tensor_like(tensors["rng.acting"], self.acting_rng.state.shape, torch.uint8, where, "rng.acting")
        with entry_errors(where, "rng", "RNG state does not fit"):
            if not isinstance(meta.get("rng"), dict):
                raise CheckpointError("checkpoint metadata lacks the RNG state", path=where, entry="meta.rng")
            rng_tensors = {k: v for k, v in tensors.items() if k.startswith("rng/")}
            check_rng_state(rng_tensors, meta["rng"])

        load_module_state(self.policy, policy_t, where, "policy.")
        for module, sub, prefix in extra_t:
            load_module_state(module, sub, where, prefix)
        if self.rnd is not None and rnd_sd is not None:
            load_optimizer(self.rnd.optimizer, rnd_sd, where, "rnd_optim")
        load_optimizer(self.ppo.optimizer, opt_sd, where, "optim")
        self.num_timesteps, self.iterations = c["num_timesteps"], c["iterations"]
        self._schedule_end = c["schedule_end"]
        self.ppo.n_updates, self.ppo.skipped_updates = c["n_updates"], c["skipped_updates"]
        self.ppo.consecutive_skips = c.get("consecutive_skips", 0)
        with entry_errors(where, "rng", "RNG state does not fit"):
            restore_rng_state(rng_tensors, meta["rng"], torch_rng=self.torch_rng)
            self.minibatch_generator.set_state(tensors["rng.minibatch"])
            if "rng.acting" in tensors:
                self.acting_rng.set_state(tensors["rng.acting"])

    def _held_back_expected(self, max_steps: int, B: int, carry: dict[str, Tensor], where: str) -> dict[str, Tensor]:
        """The shapes of a whole-episode (REINFORCE) collector's held-back steps in a checkpoint's carry:
        ``episodes.length`` [B] int64 in ``[0, max_steps]``, ``episodes.whole`` [B] bool and, when some env holds
        steps back, one ``episodes.rows.<field>`` [P, B, ...] per step field of a rollout (P = the longest)."""
        length = check_tensor_like(carry.get("episodes.length"), (B,), torch.int64, where,
                                   "collector.episodes.length", low=0, high=max_steps)
        expected = {"episodes.length": torch.empty(B, dtype=torch.int64),
                    "episodes.whole": torch.empty(B, dtype=torch.bool)}
        P = int(length.max()) if length.numel() else 0
        if P:
            with building_on_meta():  # shapes only: P is bounded by max_steps, the rows are not allocated here
                buf = RolloutBuffer.allocate(self.policy, P, B, P, torch.device("meta"), info_keys=self._info_keys(),
                                             intrinsic=self.extras.intrinsic_expl)
                expected.update({f"episodes.rows.{k}": v for k, v in rollout_steps(buf).items()})
        return expected

    def _restore_collector(self, path: Any, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        where = str(path)
        carry = {k[len("collector."):]: v for k, v in tensors.items() if k.startswith("collector.")}
        env_t = {k[len("env."):]: v for k, v in tensors.items() if k.startswith("env.")}
        set_state = getattr(self.env, "set_state", None)
        if not carry:
            if env_t or "env_state" in meta or "collector" in meta:
                raise CheckpointError("the checkpoint holds env or collector state but no collector carry",
                                      path=where, entry="collector")
            return  # saved without an env: the next learn() resets the env
        if "collector" not in meta:
            raise CheckpointError("the checkpoint holds a collector carry but no collector metadata", path=where,
                                  entry="meta.collector")
        if not callable(set_state):
            return  # this env cannot be restored: the next learn() resets it (a fresh episode for every sub-env)
        if "env_state" not in meta or not env_t:
            raise CheckpointError("the checkpoint holds a collector carry but not the env state this env needs to "
                                  "continue", path=where, entry="meta.env_state")
        assert self.env is not None
        with entry_errors(where, "collector", "collector state does not fit"):
            collector = self._new_collector()
            B = self.env.num_envs
            policy = self.policy
            expected = {"obs": torch.empty(B, policy.obs_dim), "episode_start": torch.empty(B, dtype=torch.bool),
                        "prev_action": torch.empty(B, *policy.action_shape, dtype=policy.action_dtype),
                        "prev_reward": torch.empty(B)}
            with building_on_meta():  # shapes only: a huge state in the file's config is not allocated here
                expected.update({f"state.{k}": v for k, v in policy.initial_state(B, "meta").items()})
            expected.update({f"info.{k}": torch.empty(B) for k in self._info_keys()})
            if collector.episodes is not None:
                expected.update(self._held_back_expected(collector.episodes.max_steps, B, carry, where))
            check_tensors_like(carry, expected, where, "collector.")
            check_action_values(self.action_space, carry["prev_action"], where, "collector.prev_action")
            for name in ("episodes.rows.action", "episodes.rows.prev_action"):
                if name in carry:
                    check_action_values(self.action_space, carry[name], where, "collector." + name)
            cmeta = meta["collector"]
            if not isinstance(cmeta, dict):
                raise CheckpointError("must be a JSON object", path=where, entry="meta.collector")
            total_steps = check_int(cmeta.get("total_steps"), where, "meta.collector.total_steps", 0, 2**62)
            check_episode_stats(cmeta.get("stats"), B, where, "meta.collector.stats")
        with entry_errors(where, "collector.episodes" if collector.episodes is not None else "collector",
                          "collector carry does not fit"):
            collector.load_carry(carry)  # before the env is touched: a carry that does not fit leaves it as it was
        check_env_state(self.env, env_t, meta["env_state"], where)
        with entry_errors(where, "env", "env state does not fit this env"):
            set_state({k: v.numpy() for k, v in env_t.items()}, meta["env_state"])
        check_env_round_trip(self.env, env_t, meta["env_state"], where)
        collector.total_steps = total_steps
        collector.stats.load_json(cmeta["stats"])
        self.collector = collector
