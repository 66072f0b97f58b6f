"""``TraceRL``: the user-facing agent (the API of seed 001), one class for every algorithm.

    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 16}, memory="gru", seed=0)
    agent.learn(total_timesteps=100_000, progress_bar=True)
    agent.save("runs/cue16.tracerl")
    agent = TraceRL.load("runs/cue16.tracerl")
    action, state = agent.predict(obs)                       # a fresh episode
    action, state = agent.predict(obs, state, episode_start)  # continuing: episode_start is required

``algo=`` names a registered algorithm (:mod:`tracerl.algos.registry`: ``ppo``, ``a2c``, ``reinforce``, ``sac``,
``td3``, ``r2d2``, or one registered by the user). The agent builds the algorithm's learner
(:class:`~tracerl.algos.learner.Learner`) and owns the env, the one learn loop (progress bar, logging, checkpoint
cadence, callbacks, thread setting), ``predict``, ``evaluate``, ``inspect``, ``save`` and ``load``; the learner owns
the algorithm's configs, networks, collector and update. Hyperparameters are the fields of the algorithm's config
(e.g. :class:`~tracerl.algos.PPOConfig`), :class:`~tracerl.policies.PolicyConfig` (network) and, for the PPO family,
:class:`~tracerl.agent_config.MemoryAgentConfig`, passed as keyword arguments. A keyword that is none of these
raises ``TypeError`` naming it. Attributes that belong to one algorithm (``agent.ppo``, ``agent.rnd``,
``agent.replay``, ``agent.algorithm``, ...) are the learner's, read through the agent.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from . import __version__
from .algos.learner import Learner
from .algos.ppo_learner import CHECKPOINT_KIND
from .algos.registry import get_algo, learner_classes
from .config_checks import check_agent_args
from .envs.recipe import describe as describe_env
from .envs.recipe import env_recipe, not_rebuildable
from .envs.safe_make import FileEnvId, check_env_kwargs, env_id_from_file
from .errors import CheckpointError, ConfigError
from .io.checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from .io.components import MetaEntry, Walk
from .io.logger import Logger
from .io.restore_checks import attach_env, building_on_meta, entry_errors, meta_copy
from .io.rng import AgentRNG, uses_acting_rng, uses_agent_rng
from .io.rotation import checkpoint_path, rotate
from .threads import torch_threads
from .io.rundir import resolve_checkpoint
from .io.spaces import space_to_json
from .memory import MemoryCore, State
from .policies.carry import ACTING, Carry


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
    """A memory agent trained by any registered algorithm (recurrent PPO / A2C / REINFORCE, SAC, TD3, R2D2, ...).

    Args:
        policy_class: PPO family: the actor-critic class (default
            :class:`~tracerl.policies.RecurrentActorCritic`), built as
            ``policy_class(observation_space, action_space, PolicyConfig, memory=core_or_None)``. Off-policy
            algorithms take none (ConfigError).
        env: an env id, a gymnasium Env, a VectorEnv (SAME_STEP autoreset) or a zero-arg callable.
            May be None when only predicting (then ``observation_space`` and ``action_space`` are needed). For an
            env object the agent records the id and kwargs that rebuild it when they are knowable (a
            ``gymnasium.make`` env, a tracerl env instance such as ``CueDelay(delay=16)``: see
            :mod:`tracerl.envs.recipe`), so ``inspect()``, ``tracerl eval`` and ``tracerl inspect`` need no env.
        memory: a registered memory name (``"gru"``, ``"lstm"``, ``"mlp"``, ...) or a MemoryCore object.
        algo: a registered algorithm name (see :func:`tracerl.algos.registry.available_algos`); the defaults of
            the other fields follow it.
        device: torch device.
        verbose: 0 silent, 1 the log table every ``log_interval`` rollouts (blocks of env steps off-policy).
        seed: seeds the agent's own torch streams (parameter init, action sampling, the memories' random draws;
            kept apart from torch's global generator, one for training and one for ``predict``/``inspect``: see
            :class:`tracerl.io.rng.AgentRNG`), the envs (held-out seeds are the caller's business), minibatch
            order and replay sampling. None: the streams' seed is drawn from torch's global generator.
        env_kwargs: keyword arguments for the env when ``env`` is an id.
        tensorboard_log: directory for TensorBoard and CSV logs (None: console only).
        threads: torch intra-op threads while ``learn`` runs (restored afterwards). 1, the default, is the
            fastest for the small networks of RL on CPU and never oversubscribes a shared machine (two threads
            on a busy 2-core machine ran 70x slower here); None keeps torch's own setting.
        aux_modules: PPO family: auxiliary losses on the memory features
            (:class:`~tracerl.algos.auxiliary.AuxModule` objects, e.g. ``CueAuxModule(feat_dim, n_classes)``);
            their ``feat_dim`` must equal the memory's output width.
        **hyperparams: fields of the algorithm's config, PolicyConfig and (PPO family) MemoryAgentConfig, e.g.
            ``learning_rate``, ``gamma``, ``n_envs``, ``hidden_size``, ``use_prev_action``, PPO's ``lam``,
            ``n_steps``, ``bptt_len``, ``reward_norm``, ``use_rnd``, off-policy ``buffer_size``, ``seq_len``,
            ``burn_in`` and ``her``.
    """

    def __init__(
        self,
        policy_class: Any = None,
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
        aux_modules: list[Any] | None = None,
        threads: int | None = 1,
        **hyperparams: Any,
    ) -> None:
        check_agent_args("TraceRL", seed=seed, threads=threads, device=device, verbose=verbose)
        self.threads = threads
        spec = get_algo(algo)
        self.algo = algo
        self.learner: Learner = spec.learner_class(spec, hyperparams, memory=memory, policy_class=policy_class,
                                                   aux_modules=aux_modules, device=device)
        self.device = torch.device(device)
        self.verbose = verbose
        self.seed = seed
        self.env_kwargs = dict(env_kwargs or {})
        self.import_modules: tuple[str, ...] = ()  # modules a file's env id may import (TraceRL.load)
        self.tensorboard_log = tensorboard_log

        self.env: gym.vector.VectorEnv | None = None
        self.env_id: str | None = env if isinstance(env, str) else None
        self._env_source: str | None = None  # what an env object that cannot be rebuilt was (for the message)
        if env is not None and not isinstance(env, str):  # an env object: record its id and kwargs when knowable
            recipe = env_recipe(env)
            if recipe is not None:
                self.env_id, self.env_kwargs = recipe.env_id, recipe.env_kwargs
            else:
                self._env_source = describe_env(env)
        if env is not None:
            self.env = self._make_env(env)
            self.learner.set_n_envs(self.env.num_envs)  # a VectorEnv passed in decides the batch width
            observation_space = self.env.single_observation_space
            action_space = self.env.single_action_space
        if observation_space is None or action_space is None:
            raise ConfigError("TraceRL needs env=..., or observation_space and action_space to predict only")
        self.observation_space = observation_space
        self.action_space = action_space

        self.torch_rng = AgentRNG(seed)  # parameter init, sampling and memory draws: the agent's own stream
        self.acting_rng = AgentRNG(seed, stream=1)  # predict/inspect: evaluations leave training unchanged
        with self.torch_rng.active():
            self.learner.build(self, observation_space, action_space)
        if verbose >= 1 and hyperparams.get("use_prev_action") is None:  # say what the automatic setting chose
            chose = self.policy_config.use_prev_action
            print(f"tracerl: memory {self.policy_config.memory!r} {'reads' if chose else 'does not read'} its previous "
                  f"action (use_prev_action=None chose {chose}: on for every core with memory; set it to override)")
        if verbose >= 1 and hyperparams.get("heads_read_obs") is None and self.policy_config.heads_read_obs:
            print("tracerl: the action and value heads read the observation beside the memory's output "
                  "(heads_read_obs=None chose True: on for every core with memory in the PPO family; set it to "
                  "override)")
        if verbose >= 1 and algo == "ppo" and hyperparams.get("learning_rate") is None:
            print(f"tracerl: learning rate {self.config.learning_rate:g} (learning_rate=None chose it from the action "
                  "space: 1e-3 for Box actions, 3e-3 otherwise; set it to override)")
        if verbose >= 1 and hyperparams.get("squash") is None and self.policy_config.squash:
            print(f"tracerl: Box actions are tanh-squashed into their bounds {action_space!r} (squash=None chose True: "
                  "every bound is finite; set squash=False to clip the Gaussian's samples instead)")
        self.num_timesteps = 0
        self._schedule_end = 0
        self.last_stats: dict[str, float] = {}
        self.logger: Logger | None = None
        self.run_id: str | None = None  # set by `tracerl train`: recorded in every checkpoint, rotation keeps to it

    # -- what every algorithm has -------------------------------------------------------------------------------
    @property
    def config(self) -> Any:
        """The algorithm's config (e.g. :class:`~tracerl.algos.PPOConfig`, :class:`~tracerl.algos.SACConfig`)."""
        return self.learner.config

    @property
    def policy_config(self) -> Any:
        """The network's :class:`~tracerl.policies.PolicyConfig`."""
        return self.learner.policy_config

    @property
    def policy(self) -> torch.nn.Module:
        """The acting network (``policy.core`` is its memory core)."""
        return self.learner.policy

    @property
    def collector(self) -> Any:
        """The collector of the current env (None before ``learn`` or a load with an env)."""
        return self.learner.collector

    def __getattr__(self, name: str) -> Any:
        # one algorithm's components (agent.ppo, agent.rnd, agent.replay, agent.algorithm, ...) are its learner's
        learner = self.__dict__.get("learner")
        if learner is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        try:
            return getattr(learner, name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__!r} object (algo={self.__dict__.get('algo')!r}) has no "
                                 f"attribute {name!r}") from None

    # -- environments -------------------------------------------------------------------------------------------
    def _make_env(self, env: Any) -> gym.vector.VectorEnv:
        """The vector env for ``env``; once the agent has spaces (load, set_env), they must match (ConfigError)."""
        from .envs import make_vec_env
        from .envs.vector import check_env_spaces

        if isinstance(env, gym.vector.VectorEnv):
            vec = make_vec_env(env)
        else:
            kwargs = self.env_kwargs if isinstance(env, str) and str(env) == str(self.env_id or env) else None
            # (the recorded kwargs belong to the recorded env id: another id gets none)
            options = self.learner.env_options()  # may say how many sub-envs this process needs (env runners: 1)
            vec = make_vec_env(env, n_envs=options.pop("n_envs", self.learner.config.n_envs), seed=self.seed,
                               env_kwargs=kwargs, import_modules=getattr(self, "import_modules", ()),
                               verbose=self.verbose, **options)
        if getattr(self, "observation_space", None) is not None:
            check_env_spaces(vec, self.observation_space, self.action_space, what="the agent")
        return vec

    def set_env(self, env: Any) -> None:
        """Use ``env`` from now on (its spaces must equal the agent's); the next learn() resets it (and, off-policy,
        starts a new replay). An env id other than the agent's ``env_id`` is built without the agent's
        ``env_kwargs`` (they were for that env). Spaces that differ raise ConfigError naming both."""
        self.env = self._make_env(env)
        self.learner.detach_env()

    def _ensure_collector(self) -> Any:
        return self.learner.ensure_collector(self)

    # -- training -----------------------------------------------------------------------------------------------
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
        """Train for ``total_timesteps`` env steps (rounded up to whole iterations of the learner: rollouts of
        ``n_steps * n_envs`` steps for the PPO family, vector steps of ``n_envs`` off-policy).

        Args:
            total_timesteps: env steps to collect in this call.
            log_interval: write the log every this many log blocks (PPO family: rollouts; off-policy: blocks of
                :data:`~tracerl.algos.offpolicy_learner.LOG_BLOCK` env steps) and after the last iteration.
            progress_bar: show a tqdm bar over env steps.
            reset_num_timesteps: False continues the step counter (and the schedules' horizon) of a previous
                call or of a loaded checkpoint.
            callback: called with (agent, stats of the latest update) whenever the step counter passes a log
                block (PPO family: after every update); returning False stops training.
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
        learner = self.learner
        collector = learner.ensure_collector(self)
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._schedule_end = total_timesteps
        else:
            self._schedule_end = max(self._schedule_end, self.num_timesteps + total_timesteps)
        learner.begin(self, reset_num_timesteps)
        per_iter = learner.steps_per_iteration
        block = learner.log_block
        n_iters = math.ceil(total_timesteps / per_iter)
        if self.logger is None:
            formats = (["console"] if self.verbose >= 1 else []) + (
                ["csv", "tensorboard"] if self.tensorboard_log else [])
            self.logger = Logger(self.tensorboard_log, formats=formats, append=not reset_num_timesteps,
                                 resume_step=None if reset_num_timesteps else self.num_timesteps)
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_iters * per_iter, unit="step", desc=f"TraceRL {self.algo}", dynamic_ncols=True)
        start = time.perf_counter()
        steps_at_start = self.num_timesteps

        def crossed(every: int) -> bool:
            return self.num_timesteps // every > (self.num_timesteps - per_iter) // every

        with torch_threads(self.threads):
            try:
                for it in range(n_iters):
                    stats = learner.iterate(self)
                    self.num_timesteps += per_iter
                    if stats is not None:
                        self.last_stats = stats
                    if bar is not None:
                        bar.update(per_iter)
                        if collector.stats.returns:
                            bar.set_postfix(ep_rew=f"{np.mean(collector.stats.returns):.3f}")
                    if crossed(block * log_interval) or it == n_iters - 1:
                        self._log(start, steps_at_start, total_timesteps)
                    if checkpoint_every is not None and crossed(checkpoint_every):
                        assert checkpoint_dir is not None
                        self.save(checkpoint_path(checkpoint_dir, self.num_timesteps))
                        rotate(checkpoint_dir, keep_checkpoints, run_id=self.run_id, current=self.num_timesteps)
                    if crossed(block) and callback is not None and callback(self, dict(self.last_stats)) is False:
                        break
            finally:
                if bar is not None:
                    bar.close()
        return self

    def _log(self, start: float, steps0: int, total: int) -> None:
        """Episodes, time and progress, and the learner's own entries for its latest update."""
        assert self.logger is not None and self.collector is not None
        lg, st = self.logger, self.collector.stats
        if st.returns:
            lg.record("rollout/ep_len_mean", float(np.mean(st.lengths)))
            lg.record("rollout/ep_rew_mean", float(np.mean(st.returns)))
            lg.record("rollout/ep_rew_std", float(np.std(st.returns)))
        if st.successes:
            lg.record("rollout/success_rate", float(np.mean(st.successes)))
        elapsed = time.perf_counter() - start
        lg.record("time/fps", int((self.num_timesteps - steps0) / max(elapsed, 1e-9)))
        lg.record("time/episodes", st.episodes)
        lg.record("time/time_elapsed", int(elapsed))
        lg.record("time/total_timesteps", self.num_timesteps)
        self.learner.record_log(lg, self.last_stats)
        done = self.num_timesteps - steps0
        lg.record("train/progress", f"{100.0 * min(done / total, 1.0):.1f}%")
        lg.dump(self.num_timesteps)

    @uses_acting_rng
    def inspect(self, env: Any = None, episodes: int = 20, out: str | os.PathLike[str] | None = None,
                **kwargs: Any) -> Any:
        """What the memory holds and what the agent attends to over ``episodes`` held-out episodes: see
        :func:`tracerl.inspection.inspect` (``env`` defaults to the agent's env id and kwargs; ``out`` gets
        ``inspection.json`` and ``inspection.png``). Works for every algorithm (the acting network's memory)."""
        from .inspection import inspect

        if env is None:
            if self.env_id is None:
                raise ConfigError(not_rebuildable("inspect()", self.__dict__.get("_env_source")))
            env = self.env_id
            kwargs.setdefault("env_kwargs", self.env_kwargs)
        return inspect(self, env, episodes=episodes, out=out, **kwargs)

    # -- acting -------------------------------------------------------------------------------------------------
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
            deterministic: the greedy choice (the distribution's mode, SAC's mean, TD3's action without noise,
                R2D2's argmax) instead of a sample (off-policy: with noise, or epsilon-greedy with the base
                ``epsilon``; the training actors' state is left alone).
            prev_reward: ``[B]`` rewards received after the previous action (only for
                ``use_prev_reward`` policies).

        Returns:
            ``(action, state)``: env actions (unbatched if the observation was) and the next state
            (``memory.<entry>`` for the memory core's state and ``prev_action``).
        """
        learner = self.learner
        single = _is_single_observation(self.observation_space, observation)
        if single:
            observation = _batch_single(self.observation_space, observation)
        obs = learner.preprocess(observation, self.device)
        B = obs.shape[0]
        if state is None:
            state = Carry.initial({ACTING: learner}, B, learner.action_shape, learner.action_dtype,
                                  self.device).public()
            if episode_start is None:
                episode_start = np.ones(B, dtype=bool)
        elif episode_start is None:
            raise ValueError("predict(): a state was given without episode_start; pass episode_start "
                             "([B] bool) so a new episode never inherits the previous one's memory")
        carry = Carry.from_public(state, episode_start, prev_reward, self.device)
        if self.policy_config.use_prev_reward and prev_reward is None and not bool(carry.episode_start.all()):
            raise ValueError("predict(): this policy reads the previous reward (use_prev_reward=True); pass prev_reward")
        out = learner.act(obs[None], carry, deterministic)
        # The caller passes the next episode_start and prev_reward with the next observation.
        after = carry.advance({ACTING: out.state}, out.action, torch.zeros(B, device=self.device),
                              torch.zeros(B, dtype=torch.bool, device=self.device))
        return (out.env_action[0] if single else out.env_action), after.public()

    def export(self, path: str | os.PathLike[str], format: str = "onnx", **kwargs: Any) -> Any:
        """Write the acting policy with its memory state as explicit inputs and outputs (``"onnx"`` or
        ``"torchscript"``) and a JSON sidecar ``path + ".json"``: see :func:`tracerl.export.export_agent`."""
        from .export import export_agent

        return export_agent(self, path, format, **kwargs)

    # -- checkpoints --------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], **options: Any) -> None:
        """Write a checkpoint (one safetensors file, no pickle, atomic) holding everything to resume exactly:
        weights, optimizer moments, RNG states, counters, config, spaces, the collector's carried state (and the
        replay, off-policy) and, for envs that support it (``get_state``/``set_state``), the envs' state.
        ``options`` are the learner's (off-policy: ``include_replay=False`` leaves the replay out)."""
        tensors, meta = Walk(self._components(**options)).save()
        save_checkpoint(path, tensors, meta, kind=self.learner.checkpoint_kind)

    def _components(self, **options: Any) -> list[Any]:
        """What a checkpoint holds, as components (:mod:`tracerl.io.components`): the run's own metadata, then
        the learner's declared components (networks, optimizers, RNG streams, counters, collector, replay)."""
        return [
            MetaEntry("tracerl_version", lambda: __version__),
            MetaEntry("algo", lambda: self.algo),
            MetaEntry("observation_space", lambda: space_to_json(self.observation_space)),
            MetaEntry("action_space", lambda: space_to_json(self.action_space)),
            MetaEntry("seed", lambda: self.seed),
            MetaEntry("env_kwargs", lambda: self.env_kwargs),
            MetaEntry("env_id", lambda: self.env_id),
            MetaEntry("run_id", lambda: self.run_id, skip_none=True),
            *self.learner.components(self, **options),
        ]

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        env: Any = None,
        device: str | torch.device = "cpu",
        memory: MemoryCore | None = None,
        verbose: int | None = None,
        import_modules: Sequence[str] = (),
        env_kwargs: dict[str, Any] | None = None,
    ) -> "TraceRL":
        """Rebuild an agent from :meth:`save`'s file (any algorithm), or from a run directory of ``tracerl train
        --out`` (its ``agent.tracerl``, else its newest checkpoint: :func:`~tracerl.io.rundir.resolve_checkpoint`).
        With ``env``, training can continue; when that env supports state capture and the checkpoint holds its
        state, it continues exactly where it stopped.

        The recorded ``env_id`` becomes a :class:`~tracerl.envs.safe_make.FileEnvId`: a ``"module:Env-v0"``
        prefix in it is imported only if the module is trusted (tracerl, an installed popgym) or listed in
        ``import_modules`` (otherwise making that env raises ConfigError). The recorded ``env_kwargs`` are
        checked (JSON scalars, bounded sizes); ``env_kwargs`` replaces them. ``env``'s spaces must equal the
        checkpoint's (ConfigError). Everything in the file is untrusted: sizes are bounded
        (:data:`tracerl.io.restore_checks.LIMITS`) and the networks the metadata describes are built on the
        ``meta`` device and compared with the stored tensors before anything is allocated; every restored piece
        is checked against the live agent.

        Raises:
            CheckpointError: the file is missing, not a regular file, corrupted, truncated, foreign, of a newer
                format, asks for more than the limits, or holds an entry that does not fit (naming the file and
                the entry).
        """
        path = resolve_checkpoint(path)
        learner_cls = _learner_class_of(path)
        tensors, meta = load_checkpoint(path, kind=learner_cls.checkpoint_kind)
        where = str(path)
        args = learner_cls.load_arguments(where, meta, memory)
        args["env_id"], checked_kwargs = _env_from_meta(meta, path, import_modules)  # imports nothing unless allowed
        args["env_kwargs"] = checked_kwargs if env_kwargs is None else env_kwargs

        def build(mem: Any, device: Any, verbose: int, seed: int | None) -> "TraceRL":
            return cls(memory=mem, device=device, verbose=verbose, seed=seed, env_kwargs=args["env_kwargs"],
                       observation_space=args["obs_space"], action_space=args["act_space"],
                       **learner_cls.constructor_kwargs(args))

        # The described agent, built on the meta device first (no memory): a file asking for a huge network or
        # replay is refused before anything is allocated.
        with entry_errors(where, "meta", "checkpoint metadata does not describe a buildable agent"):
            with building_on_meta():
                probe = build(meta_copy(memory) if memory is not None else args["memory_name"], "meta", 0, 0)
                probe_state = probe.learner.probe_state()
        probe.learner.check_probe(where, tensors, probe_state)
        with entry_errors(where, "meta", "checkpoint metadata does not describe a buildable agent"):
            agent = build(memory if memory is not None else args["memory_name"], device,
                          1 if verbose is None else verbose, args["seed"])
        agent.env_id = args["env_id"]
        agent.import_modules = tuple(import_modules)
        Walk(agent._components()).restore(tensors, meta, where)  # everything checked, then copied
        agent.learner.after_restore(agent)
        if env is not None:
            agent.env = attach_env(agent, env, where)
            agent.learner.restore_training(agent, where, tensors, meta)
        else:
            agent.learner.restore_without_env(agent, where, tensors, meta)
        return agent


def _learner_class_of(path: str | os.PathLike[str]) -> Any:
    """The learner class whose checkpoints carry the kind in ``path``'s header (the PPO family's when the header
    is unreadable or foreign: its load reports the file's problem)."""
    classes = learner_classes()
    try:
        kind = read_checkpoint_metadata(path).get("kind")
    except CheckpointError:  # unreadable files are for load_checkpoint to report
        kind = None
    return classes.get(kind) or classes[CHECKPOINT_KIND]


__all__ = ["CHECKPOINT_KIND", "TraceRL"]
