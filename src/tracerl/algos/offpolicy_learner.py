"""``OffPolicyLearner``: recurrent SAC, TD3 and R2D2 as a :class:`~tracerl.algos.learner.Learner`.

    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 8}, algo="r2d2", memory="gru", seed=0)
    agent.learn(50_000)                      # a TraceRL whose learner is an OffPolicyLearner
    agent.save("cue.tracerl")                # weights, optimizers, replay contents, collector, RNG states
    agent = TraceRL.load("cue.tracerl", env="tracerl/CueDelay-v0")  # env_kwargs come from the checkpoint

Hyperparameters are the fields of the algorithm's config (:class:`~tracerl.algos.sac.SACConfig`,
:class:`~tracerl.algos.td3.TD3Config`, :class:`~tracerl.algos.r2d2.R2D2Config`) and of
:class:`~tracerl.policies.PolicyConfig` (the memory: ``hidden_size``, ``use_prev_action``, ...), passed as
keyword arguments to ``TraceRL``; any other keyword raises ``TypeError`` naming it. ``her=True`` (a field of the
algorithm's config) relabels windows with hindsight goals (:mod:`tracerl.data.her`) for goal-conditioned ``Dict``
observation envs. The agent options work as for the PPO family (:mod:`tracerl.agent_config`):

* ``memory_learn_retention`` / ``memory_retention_coef`` set every network's memory core;
* ``reward_norm=True`` keeps the running std of the discounted return of the collected (raw) rewards and divides
  the replayed rewards by the current one when a batch is sampled (as SB3's replay does with ``VecNormalize``);
* ``use_rnd=True`` trains RND's predictor on every sampled batch (observation statistics and the std of the
  non-episodic intrinsic return follow the collected steps); with ``intrinsic_expl=True`` each replayed step's
  reward becomes ``r / σ_ext + η · RND(next observation) / σ_int``, computed with the current predictor;
* ``env_max_restarts`` (and ``env_subprocess``, ``env_step_timeout``): a sub-env that raises or hangs is rebuilt;
  its episode ends at its last real observation (a truncation: the crashed step is never stored,
  :meth:`SequenceReplay.add`'s ``crashed``), so no replayed window crosses the restart.

Auxiliary losses (``aux`` / ``aux_modules``) and env runners are the PPO family's (ConfigError naming why).
Its checkpoints carry the kind ``tracerl.OffPolicy``.
"""

from __future__ import annotations

import copy
import os
from dataclasses import fields
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..agent_config import check_options_json, options_from_json, options_to_json, take_options
from ..data.her import GoalLayout, HindsightRelabeler, find_compute_reward, find_compute_terminated
from ..data.replay import SequenceReplay
from ..errors import CheckpointError, ConfigError
from ..io.checkpoint import check_tensor_shapes, read_checkpoint_metadata, upgrade_state_keys
from ..io.components import (Counters, GeneratorState, MetaEntry, ModuleState, OptimizerState, SaveOnly,
                             TorchStream, save_collector_state)
from ..io import restore_checks
from ..io.restore_checks import (building_on_meta, check_action_values, check_config_types,
                                 check_env_round_trip, check_env_state, check_episode_stats, check_int,
                                 check_network_budget, check_rng_state, check_run_meta, check_sizes, check_space_json,
                                 check_tensor_like, check_tensors_like, entry_errors)
from ..io.rng import restore_rng_state
from ..io.spaces import space_from_json
from ..memory import MemoryCore, State, describe_memory, memory_cores
from ..policies.carry import ACTING, Carry
from ..policies.encoders import flat_dim, preprocess
from ..policies.policy import PolicyConfig, checkpoint_policy_settings
from .learner import ActOutput
from .normalization import ReturnNormalizer
from .offpolicy import OffPolicyCollector, replay_state_spec
from .recurrent_nets import ActionCodec
from .registry import AlgoSpec, available_algos, get_algo, is_off_policy
from .rnd import RND

CHECKPOINT_KIND = "tracerl.OffPolicy"

LOG_BLOCK = 1_000
"""``learn(log_interval=k)`` logs (and calls the callback) every ``k`` blocks of this many env steps."""

_POLICY_FIELDS = {f.name for f in fields(PolicyConfig)} - {"memory"}
_OPTION_GROUPS = ("retention", "explore", "env_options", "agent")


def offpolicy_config_fields() -> set[str]:
    """Every field name of the off-policy configs (for the CLI)."""
    return {f.name for spec in _specs() for f in fields(spec.config_class)}


def _specs() -> list[AlgoSpec]:
    """The registered off-policy algorithms."""
    return [get_algo(name) for name in available_algos("off_policy")]


def is_offpolicy_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a checkpoint written by an off-policy agent (reads the header only)."""
    try:
        return read_checkpoint_metadata(path).get("kind") == CHECKPOINT_KIND
    except CheckpointError:  # unreadable files are for load_checkpoint to report
        return False


def _split(algo: str, hyper: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg_cls = get_algo(algo).config_class
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


class _ExtraTensors:
    """An algorithm's ``extra_tensors()`` as ``extra.<name>`` (SAC's temperature, R2D2's exploration RNG and visit
    counts; R2D2's start-of-episode counters ``episode_step`` once its actors have acted), checked for shape,
    dtype, finiteness and bounds."""

    prefixes = ("extra.",)
    BOUNDS = {"visit_counts": (0, None), "log_alpha": (-80.0, 80.0)}  # exp(log_alpha) stays finite in float32

    def __init__(self, algorithm: Any) -> None:
        self.algorithm = algorithm

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        tensors.update({f"extra.{k}": v.detach() for k, v in self.algorithm.extra_tensors().items()})

    def check(self, tensors: Any, meta: Any, where: str) -> Any:
        alg = self.algorithm
        extra = alg.extra_tensors()
        optional = {"episode_step"} if hasattr(alg, "episode_step") else set()
        for name in tensors:
            if name.startswith("extra.") and name[len("extra."):] not in extra and name[len("extra."):] not in optional:
                raise CheckpointError("unexpected entry in the checkpoint", path=where, entry=name)
        for k, v in extra.items():
            low, high = self.BOUNDS.get(k, (None, None))
            check_tensor_like(tensors.get(f"extra.{k}"), v.shape, v.dtype, where, f"extra.{k}", finite=True,
                              low=low, high=high)
        episode_step = tensors.get("extra.episode_step") if optional else None
        if episode_step is not None:
            check_tensor_like(episode_step, episode_step.shape[:1], torch.int64, where, "extra.episode_step", low=0)
        return {k: tensors[f"extra.{k}"] for k in extra}, episode_step

    def load(self, staged: Any, where: str) -> None:
        alg = self.algorithm
        values, episode_step = staged
        live = alg.extra_tensors()
        with entry_errors(where, "extra", "extra state does not fit"):
            for k, src in values.items():
                if k == "act_rng":
                    alg.rng.set_state(src)
                else:
                    with torch.no_grad():
                        live[k].copy_(src)
            if episode_step is not None:  # R2D2's start-of-episode counters
                alg.episode_step = episode_step.clone()


class _ParamGroupNames:
    """``meta.optim_param_groups`` must name exactly the algorithm's optimizers (each is then checked on its own)."""

    prefixes: tuple[str, ...] = ()

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        return None

    def check(self, tensors: Any, meta: Any, where: str) -> None:
        groups = meta.get("optim_param_groups")
        if not isinstance(groups, dict) or sorted(groups) != self.names:
            raise CheckpointError(f"expected the param groups of optimizers {self.names}", path=where,
                                  entry="meta.optim_param_groups")

    def load(self, staged: None, where: str) -> None:
        return None


class OffPolicyLearner:
    """Recurrent SAC, TD3 or R2D2 (or another registered off-policy algorithm) for :class:`tracerl.TraceRL`.

    Args:
        spec: the registered algorithm (``make_config`` gives its config, ``algorithm`` builds its networks).
        hyperparams: fields of the algorithm's config (``her`` among them), of PolicyConfig and of the agent
            options (RetentionConfig, ExploreConfig, EnvConfig); any other raises TypeError naming it.
        memory: a registered memory name or a MemoryCore object (deep-copied for every network).
        policy_class, aux_modules: not used by these algorithms (ConfigError when given).
        device: torch device.
    """

    checkpoint_kind: ClassVar[str] = CHECKPOINT_KIND

    def __init__(self, spec: AlgoSpec, hyperparams: dict[str, Any], *, memory: str | MemoryCore = "gru",
                 policy_class: Any = None, aux_modules: Any = None, device: str | torch.device = "cpu") -> None:
        algo = spec.name
        if policy_class is not None:
            raise ConfigError(f"policy_class is not used by algo={algo!r}; choose the memory with memory=")
        if aux_modules or hyperparams.get("aux"):
            raise ConfigError(f"auxiliary losses (aux_modules / aux) are not supported by algo={algo!r}: an auxiliary "
                              "module reads a rollout's per-step batch (info keys such as the cue, episode starts, "
                              "unnormalized rewards) beside the memory features of the same pass, which the sequence "
                              "replay does not store; the PPO family (ppo, a2c, reinforce) trains them")
        hyperparams = dict(hyperparams)
        from ..distributed.offpolicy import RUNNER_FIELDS, RunnerSettings

        # env runners (tracerl.distributed.offpolicy): taken before the agent options, which refuse them
        self.runner_settings = RunnerSettings(**{k: hyperparams.pop(k) for k in RUNNER_FIELDS if k in hyperparams})
        self.options = take_options(hyperparams, _OPTION_GROUPS, algo)
        self.retention, self.explore, self.env_config = (self.options["retention"], self.options["explore"],
                                                         self.options["env_options"])
        self.extras = self.options["agent"]
        cfg_kwargs, pol_kwargs = _split(algo, hyperparams)
        self.spec = spec
        self.algo = algo
        self.config = spec.make_config(**cfg_kwargs)
        self.config.validate()
        self.her = bool(self.config.her)
        if self.runner_settings.runners and not self._standard_loop():
            raise ConfigError(f"runners={self.runner_settings.runners} is not supported by algo={algo!r}: its learner "
                              f"({type(self).__name__}) runs its own collection loop (episodic memory writes after "
                              "every env step); SAC, TD3, R2D2 and DRQN take env runners")
        if self.runner_settings.runners:
            used = [f"{name}={value!r}" for name, value in (
                ("reward_norm", self.explore.reward_norm), ("use_rnd", self.explore.use_rnd),
                ("env_max_restarts", self.env_config.env_max_restarts)) if value not in (False, None)]
            if used:
                raise ConfigError(f"{', '.join(used)} is not supported with runners={self.runner_settings.runners}: "
                                  "the off-policy env runners do not yet carry reward statistics, RND or env "
                                  "restarts")
        if not self._standard_loop():
            used = [f"{name}={value!r}" for name, value in (
                ("reward_norm", self.explore.reward_norm), ("use_rnd", self.explore.use_rnd),
                ("env_max_restarts", self.env_config.env_max_restarts)) if value not in (False, None)]
            if used:
                raise ConfigError(f"{', '.join(used)} is not supported by algo={algo!r}: its learner "
                                  f"({type(self).__name__}) runs its own collection loop (episodic memory writes from "
                                  "the raw rewards of whole episodes), where reward scaling, RND bonuses and env "
                                  "restarts are not wired; SAC, TD3, R2D2 and DRQN support them")
        self.reward_normalizer: ReturnNormalizer | None = None
        self.rnd: RND | None = None
        memory_name, memory_kwargs = describe_memory(memory)
        if memory_kwargs is not None:  # a registered core passed as an object: record how to rebuild it by name
            pol_kwargs.setdefault("memory_kwargs", memory_kwargs)
        self.policy_config = PolicyConfig(memory=memory_name, **pol_kwargs)
        self.policy_config.validate()
        self._memory = memory
        self.device = torch.device(device)
        self._vec_steps = 0
        self.replay: SequenceReplay | None = None
        self.collector: OffPolicyCollector | None = None
        self.relabeler: HindsightRelabeler | None = None
        self._ready = False
        self._hooks: list[Callable[[float], None]] = []
        self._updates_due = 0.0
        self.input_index: list[int] | None = None

    @property
    def runners(self) -> int:
        """Env runners (0: this process's collector)."""
        return self.runner_settings.runners

    def set_n_envs(self, n_envs: int) -> None:
        """A VectorEnv passed in decides the batch width (not with env runners: theirs is ``n_envs``)."""
        if self.runners:
            return
        self.config.n_envs = n_envs
        self.config.validate()

    def env_options(self) -> dict[str, Any]:
        """Vectorization and the crash-restart wrapper (:class:`~tracerl.agent_config.EnvConfig`); with env runners
        the sub-envs live in the runners: this process builds one, for the spaces."""
        options = self.env_config.vec_env_options()
        return {**options, "n_envs": 1} if self.runners else options

    def _standard_loop(self) -> bool:
        """Whether this learner collects and updates with OffPolicyLearner's own steps (where reward scaling, RND and
        env restarts are wired), rather than steps of its own (the episodic-control learners replace
        :meth:`_after_vector_step` with their memory writes)."""
        return (type(self).iterate is OffPolicyLearner.iterate
                and type(self)._after_vector_step is OffPolicyLearner._after_vector_step)

    def build(self, agent: Any, observation_space: Any, action_space: Any) -> None:
        """The codec, goal layout and the algorithm's networks (called inside the agent's torch stream)."""
        self.codec = ActionCodec(action_space)
        # observe_achieved_goal=False hides the achieved goal with or without HER (a comparison of the two must
        # give both agents the same observations)
        needs_layout = self.her or not self.config.observe_achieved_goal
        self.goal_layout = GoalLayout.from_space(observation_space) if needs_layout else None
        input_index = self.goal_layout.policy_columns(self.config.observe_achieved_goal) if self.goal_layout else None
        self.input_index = input_index
        self.obs_dim = flat_dim(observation_space)
        self.observation_space = observation_space
        memory = self._memory
        factory = (lambda: copy.deepcopy(memory)) if isinstance(memory, MemoryCore) else None
        self.algorithm = self.spec.algorithm(self.obs_dim, self.codec, self.config, self.policy_config, factory,
                                             input_index, self.device, observation_space=observation_space)
        self.policy_config = self.policy.config  # the settings the networks use (a raw-steps core's input forced)
        # every network's memory core, targets included
        self.retention.apply([core for m in self.algorithm.modules().values() for core in memory_cores(m)],
                             self.policy_config.memory)
        n_envs = self.config.n_envs
        if self.explore.reward_norm:
            self.reward_normalizer = ReturnNormalizer(n_envs, self.config.gamma).to(self.device)
        if self.explore.use_rnd:
            self.rnd = RND(self.obs_dim, n_envs, self.explore.rnd_emb_dim, self.explore.rnd_lr).to(self.device)
        if not getattr(self.spec.algorithm, "trains_memory_losses", False):
            for name, torso in self.algorithm.torsos().items():
                why = torso.core.memory_losses_required()
                if why is not None:
                    raise ConfigError(f"the {name} network's memory cannot be used by algo={self.algo!r}, which does "
                                      f"not train a core's own losses (R2D2 and PPO do): {why}")

    @property
    def policy(self) -> torch.nn.Module:
        """The acting network's memory torso (``policy.core`` is its memory core)."""
        return self.algorithm.torsos()[self.algorithm.acting_torso()]

    def modules(self) -> dict[str, torch.nn.Module]:
        """Every network of the algorithm, targets included."""
        return dict(self.algorithm.modules())

    # -- environments and training ------------------------------------------------------------------------------
    def detach_env(self) -> None:
        """A new replay and collector are made at the next learn()."""
        self.replay, self.collector, self.relabeler = None, None, None
        self._ready = False

    def _build_replay(self, env: Any, seed: int | None) -> None:
        cfg = self.config
        n_envs = env.num_envs
        if n_envs != cfg.n_envs:  # set_env() / load() with another width
            if self.rnd is not None:
                raise ConfigError(f"the env has {n_envs} sub-envs but the agent was built for n_envs={cfg.n_envs} "
                                  "(RND keeps per-env statistics)")
            if self.reward_normalizer is not None:  # its return statistics carry over; per-env returns restart
                self.reward_normalizer.resize(n_envs)
            cfg.n_envs = n_envs
            cfg.validate()
        self.replay = SequenceReplay(
            cfg.buffer_size, n_envs, self.obs_dim, self.codec.shape, self.codec.dtype,
            replay_state_spec(self.algorithm.torsos()) if self._stores_state() else {},
            burn_in=cfg.burn_in, seq_len=cfg.seq_len,
            lookahead=cfg.lookahead, state_stride=cfg.stride, prioritized=cfg.prioritized,
            priority_alpha=cfg.priority_alpha, priority_eta=cfg.priority_eta,
            always_from_initial_state=cfg.always_sample_from_initial_state, random_seq_len=cfg.random_seq_len,
            nominal_seq_len_prob=cfg.nominal_seq_len_prob, seed=seed)
        self.collector = OffPolicyCollector(env, self.algorithm, self.replay, self.codec, self.observation_space,
                                            self.device)
        if self.her:
            assert self.goal_layout is not None
            self.relabeler = HindsightRelabeler(self.replay, self.goal_layout, find_compute_reward(env),
                                                cfg.her_strategy, cfg.her_ratio, seed=seed,
                                                compute_terminated=find_compute_terminated(env))

    def _stores_state(self) -> bool:
        """Whether the replay stores memory states: not for an algorithm whose updates never read them
        (``uses_stored_state`` False: R2D2 with ``zero_initial_state``, i.e. DRQN)."""
        return bool(getattr(self.algorithm, "uses_stored_state", True))

    def ensure_collector(self, agent: Any) -> OffPolicyCollector:
        if agent.env is None:
            raise ConfigError("learn() needs an environment: pass env= to TraceRL or call set_env()")
        if self.collector is None:
            if self.runners:
                self.collector = self._new_runner_group(agent)  # type: ignore[assignment]
            else:
                self._build_replay(agent.env, agent.seed)
            assert self.collector is not None
            self.collector.reset(seed=agent.seed)
        return self.collector

    def _new_runner_group(self, agent: Any) -> Any:
        """Env runners and the replay server in place of the collector and replay (``runners >= 1``)."""
        from ..distributed.offpolicy import OffPolicyRunnerGroup

        self._ready = False
        return OffPolicyRunnerGroup(self, agent, self.runner_settings)

    def train_step(self) -> dict[str, float]:
        """One gradient step on a freshly sampled batch of windows (HER-relabelled when enabled)."""
        assert self.replay is not None
        cfg = self.config
        batch = self.replay.sample(cfg.batch_size, beta=cfg.priority_beta if cfg.prioritized else 0.0,
                                   device=self.device)
        if self.relabeler is not None:
            self.relabeler.relabel(batch)
        explore_stats = self._scale_rewards(batch)
        stats, td = self.algorithm.update(batch)
        stats.update(explore_stats)
        if cfg.prioritized:
            self.replay.update_priorities(batch.index, td, batch.train[batch.burn_in:])
        return stats

    def _scale_rewards(self, batch: Any) -> dict[str, float]:
        """``reward_norm``: the replayed (raw) rewards divided by the current std of the discounted return; RND: one
        predictor step on the batch's observations and, with ``intrinsic_expl``, ``η · bonus`` of each step's next
        observation added (``[T, N]`` in place; rows without an action keep 0)."""
        out: dict[str, float] = {}
        if self.reward_normalizer is not None:
            std = self.reward_normalizer.rms.std.squeeze().to(batch.reward.dtype)
            clip = self.reward_normalizer.clip
            batch.reward = (batch.reward / std).clamp(-clip, clip)
        if self.rnd is not None:
            rnd = self.rnd
            with torch.no_grad():  # the bonus of reaching row t + 1, with the current predictor
                bonus = rnd.error(batch.obs[1:]) / rnd.int_rms.std.squeeze().to(batch.obs.dtype)
                bonus = torch.cat([bonus, torch.zeros_like(bonus[:1])]) * (batch.has_action & batch.valid.roll(-1, 0))
            seen = batch.obs[batch.valid]
            loss = rnd.error(seen).mean()
            rnd.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            rnd.optimizer.step()
            out = {"rnd_loss": float(loss.detach()), "mean_rnd_bonus": float(bonus[batch.train].mean())
                   if bool(batch.train.any()) else 0.0}
            if self.explore.intrinsic_expl:
                batch.reward = batch.reward + self.explore.intrinsic_eta * bonus
        return out

    def _observe_step(self) -> None:
        """The reward statistics and RND's observation and intrinsic-return statistics follow every collected step."""
        assert self.collector is not None and self.collector.last_step is not None
        reward, done, next_obs = self.collector.last_step
        if self.reward_normalizer is not None:
            self.reward_normalizer(torch.as_tensor(reward), torch.as_tensor(done))
        if self.rnd is not None:
            self.rnd.intrinsic_reward(next_obs)

    def begin(self, agent: Any, reset_num_timesteps: bool) -> None:
        assert self.replay is not None or self.runners
        self._hooks = _progress_hooks(self.algorithm)

    @property
    def steps_per_iteration(self) -> int:
        """One vector step (of the collector's env once there is one); with env runners one runner's chunk."""
        if self.runners:
            return self.config.runner_steps * (self.config.n_envs // self.runners)
        return self.collector.n_envs if self.collector is not None else self.config.n_envs

    @property
    def log_block(self) -> int:
        return LOG_BLOCK

    random_warmup: ClassVar[bool] = True
    """Whether the actors take uniform random actions before ``learning_starts`` (episodic control acts with its
    dictionaries from the first step instead)."""

    def iterate(self, agent: Any) -> dict[str, float] | None:
        """One vector step (random actions before ``learning_starts`` when :attr:`random_warmup`), then
        ``gradient_steps`` updates every ``train_freq`` vector steps once the replay holds a window and
        :meth:`_takes_gradient_steps`; the last update's stats."""
        assert self.collector is not None
        cfg = self.config
        warm = agent.num_timesteps < cfg.learning_starts
        for hook in self._hooks:
            hook(agent.num_timesteps / max(agent._schedule_end, 1))
        if self.runners:
            return self._iterate_runners(agent)
        self.collector.step(random_actions=warm and self.random_warmup)
        self._after_vector_step()
        self._vec_steps += 1
        stats = None
        if (self._takes_gradient_steps() and not warm and self._vec_steps % cfg.train_freq == 0
                and self._replay_ready()):
            for _ in range(cfg.gradient_steps):
                stats = self.train_step()
        return stats

    def _iterate_runners(self, agent: Any) -> dict[str, float] | None:
        """With env runners: wait for the next chunk (any runner's; the others keep collecting), then run the
        updates due for its env steps: ``gradient_steps`` per ``train_freq`` vector steps of all ``n_envs``
        sub-envs, as one process would, once ``learning_starts`` steps have arrived and the replay holds a window."""
        import time

        group: Any = self.collector
        cfg = self.config
        group.progress = agent.num_timesteps / max(agent._schedule_end, 1)
        group.next_chunk()
        if group.total_steps <= cfg.learning_starts:
            return None
        if not self._ready:
            self._ready = group.num_windows() > 0
            if not self._ready:
                return None
        self._updates_due += group.per_chunk * cfg.gradient_steps / (cfg.n_envs * cfg.train_freq)
        n = int(self._updates_due)
        allowed = group.updates_allowed(cfg.max_policy_lag)  # bounded staleness: the rest stays due
        if allowed is not None:
            n = min(n, allowed)
        self._updates_due -= n
        stats = None
        start = time.perf_counter()
        beta = cfg.priority_beta if cfg.prioritized else 0.0
        for _ in range(n):
            batch, shards = group.sample(cfg.batch_size, beta)
            batch = batch.to(self.device) if self.device.type != "cpu" else batch
            stats, td = self.algorithm.update(batch)
            if cfg.prioritized:
                group.update_priorities(batch.index, shards, td.detach().cpu(), batch.train[batch.burn_in:].cpu())
        group.update_seconds += time.perf_counter() - start
        return stats

    def _after_vector_step(self) -> None:
        """Called after every vector step of the training actors: the reward and RND statistics follow it
        (episodic control writes its dictionaries instead)."""
        if self.reward_normalizer is not None or self.rnd is not None:
            self._observe_step()

    def _takes_gradient_steps(self) -> bool:
        """Whether the algorithm is trained by gradient steps at all (MFEC is not)."""
        return True

    def _replay_ready(self) -> bool:
        """Whether a window can be sampled (checked until it first can: windows never all disappear after)."""
        if not self._ready:
            assert self.replay is not None
            self._ready = self.replay.num_windows() > 0
        return self._ready

    def record_log(self, logger: Any, stats: dict[str, float]) -> None:
        logger.record("train/n_updates", int(self.algorithm.n_updates))
        for k, v in stats.items():
            logger.record(f"train/{k}", float(v))
        if self.runners and self.collector is not None:
            self.collector.record_log(logger)  # type: ignore[attr-defined]  # env-steps/s, lag, updates/s, replay

    # -- acting -------------------------------------------------------------------------------------------------
    def preprocess(self, observation: Any, device: torch.device) -> Tensor:
        return preprocess(self.observation_space, observation, device)

    def initial_state(self, batch_size: int, device: torch.device | str | None) -> State:
        return self.policy.initial_state(batch_size, device)

    @property
    def action_shape(self) -> tuple[int, ...]:
        return tuple(self.codec.shape)

    @property
    def action_dtype(self) -> torch.dtype:
        return self.codec.dtype

    def act(self, obs: Tensor, carry: Carry, deterministic: bool, trace: bool = False) -> ActOutput:
        """``deterministic``: the actor's mean (SAC), its action without noise (TD3) or the greedy action (R2D2);
        otherwise a sample, with noise, or epsilon-greedy with the base ``epsilon`` (R2D2: no count bonus or
        start-of-episode rate, and the training actors' state is left alone)."""
        torso = self.policy
        state, episode_start, prev_action, prev_reward = carry.step_inputs(ACTING)
        tr: Any = {}
        if trace:
            h, state, tr = torso.forward_replay(obs, state, episode_start, prev_action, prev_reward, None)
        else:
            h, state = torso(obs, state, episode_start, prev_action, prev_reward)
        action = self.algorithm.act({self.algorithm.acting_torso(): h[0]}, explore=not deterministic, record=False)
        return ActOutput(action, self.codec.to_env(action), state, h if trace else None, tr)

    # -- checkpoints --------------------------------------------------------------------------------------------
    def components(self, agent: Any, include_replay: bool = True) -> list[Any]:
        """Its checkpoint components (:mod:`tracerl.io.components`), in the order a load checks them: configs,
        every network, extra tensors (temperature, exploration RNG, visit counts), the acting stream, optimizers,
        counters, the training stream with the collection generators, and (saved here, restored by
        :meth:`restore_training`) the collector's carry, the replay (unless ``include_replay=False``) and the env."""
        alg = self.algorithm
        optimizers = alg.optimizers()
        out: list[Any] = [
            MetaEntry("her", lambda: self.her),  # also in the config since the split; read by older versions
            MetaEntry("runners", lambda: self.runner_settings.to_json() if self.runners else None, skip_none=True),
            MetaEntry("config", self.config.to_json),
            MetaEntry("policy", self.policy_config.to_json),
            MetaEntry("extras", lambda: options_to_json(self.options)),  # absent in files from before the split
            *(ModuleState(f"net.{name}.", module) for name, module in alg.modules().items()),
            *([ModuleState("reward_norm.", self.reward_normalizer)] if self.reward_normalizer is not None else []),
            *([ModuleState("rnd.", self.rnd), OptimizerState("rnd_optim.", self.rnd.optimizer)]
              if self.rnd is not None else []),
            _ExtraTensors(alg),
            # absent in checkpoints written before the acting stream existed
            GeneratorState("rng.acting", agent.acting_rng.current, agent.acting_rng.set_state,
                           lambda: agent.acting_rng.state.shape, optional=True),
            _ParamGroupNames(sorted(optimizers)),
            *(OptimizerState(f"optim.{name}.", opt, ("optim_param_groups", name)) for name, opt in optimizers.items()),
        ]

        def read() -> dict[str, int]:
            return {"num_timesteps": agent.num_timesteps, "vec_steps": self._vec_steps, "n_updates": alg.n_updates,
                    "schedule_end": agent._schedule_end}

        def write(c: dict[str, int]) -> None:
            agent.num_timesteps, self._vec_steps = c["num_timesteps"], c["vec_steps"]
            alg.n_updates = c["n_updates"]
            agent._schedule_end = c.get("schedule_end", 0)  # absent in checkpoints written before it was saved

        out += [
            Counters({"num_timesteps": True, "vec_steps": True, "n_updates": True, "schedule_end": False}, read,
                     write),
            # the collection generators exist once an env is attached: restore_training restores the stream
            TorchStream(agent.torch_rng, self._np_rngs, restore=False),
            MetaEntry("n_np_rngs", lambda: len(self._np_rngs())),
            SaveOnly(lambda tensors, meta: self._save_training(tensors, meta, include_replay),
                     ("collector.", "replay.", "env.")),
        ]
        return out

    def _save_training(self, tensors: dict[str, Tensor], meta: dict[str, Any], include_replay: bool) -> None:
        if self.runners:
            if self.collector is not None:  # tracerl.distributed.offpolicy: counters and the replay's shards
                self.collector.save_state(tensors, meta, include_replay)  # type: ignore[attr-defined]
            return
        if self.collector is not None and self.replay is not None:
            save_collector_state(self.collector, tensors, meta)
            if include_replay:
                rt, rmeta = self.replay.state_dict()
                tensors.update({f"replay.{k}": v for k, v in rt.items()})
                meta["replay"] = rmeta

    def after_restore(self, agent: Any) -> None:
        """The memory cores' training progress follows the restored step counter."""
        for hook in _progress_hooks(self.algorithm) if agent._schedule_end > 0 else []:
            hook(agent.num_timesteps / agent._schedule_end)

    def _np_rngs(self) -> list[np.random.Generator]:
        out = []
        if self.collector is not None and not self.runners:  # runners keep their streams in their processes
            out.append(self.collector.random_rng)
        if self.relabeler is not None:
            out.append(self.relabeler.rng)
        return out

    @staticmethod
    def constructor_kwargs(args: dict[str, Any]) -> dict[str, Any]:
        """The ``TraceRL`` keyword arguments (besides memory, device, spaces, seed) that :meth:`load_arguments`'s
        result describes."""
        return {"algo": args["algo"], **args["hyper"]}

    def restore_without_env(self, agent: Any, where: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """The agent's torch stream (the collection RNGs are restored with an env)."""
        with entry_errors(where, "rng", "RNG state does not fit"):
            restore_rng_state({k: v for k, v in tensors.items() if k.startswith("rng/")},
                              dict(meta["rng"], numpy=[]), torch_rng=agent.torch_rng)

    @staticmethod
    def load_arguments(where: str, meta: dict[str, Any], memory: MemoryCore | None) -> dict[str, Any]:
        """The constructor arguments the metadata describes, type- and size-checked (nothing built)."""
        with entry_errors(where, "meta", "malformed checkpoint metadata"):
            for key in ("algo", "config", "policy", "observation_space", "action_space"):
                if key not in meta:
                    raise CheckpointError(f"checkpoint metadata lacks {key!r}", path=where, entry=f"meta.{key}")
            algo = meta["algo"]
            if not is_off_policy(algo):
                raise CheckpointError(f"algo {algo!r} is not one of {', '.join(available_algos('off_policy'))}",
                                      path=where, entry="meta.algo")
            check_space_json(meta["observation_space"], where, "meta.observation_space")
            check_space_json(meta["action_space"], where, "meta.action_space")
            cfg_cls = get_algo(algo).config_class
            check_config_types(cfg_cls, meta["config"], where, "meta.config")
            check_config_types(PolicyConfig, meta["policy"], where, "meta.policy")
            check_sizes(meta["config"], where, "meta.config")
            check_sizes(meta["policy"], where, "meta.policy")
            check_options_json(meta.get("extras", {}), where, "meta.extras")
            check_sizes(meta.get("extras", {}), where, "meta.extras")
            cfg = cfg_cls.from_json(meta["config"]).to_json()
            pol = checkpoint_policy_settings(meta["policy"])  # files from before cores declared their input
            memory_name = pol.pop("memory")
            obs_space = space_from_json(meta["observation_space"])
            act_space = space_from_json(meta["action_space"])
            her = meta.get("her", cfg.get("her", False))
            if not isinstance(her, bool) or her != cfg.get("her", her):
                raise CheckpointError(f"must be true or false and equal meta.config.her, got {her!r}", path=where,
                                      entry="meta.her")
            cfg["her"] = her  # files from before the split keep it in meta.her only
            options = options_from_json(dict(meta.get("extras", {})), _OPTION_GROUPS, algo)
            seed, stored_kwargs, env_id = check_run_meta(meta, where)
            if not isinstance(meta.get("rng"), dict):
                raise CheckpointError("checkpoint metadata lacks the RNG state", path=where, entry="meta.rng")
            runner_kw = meta.get("runners", {})
            if not isinstance(runner_kw, dict):
                raise CheckpointError("must be a JSON object", path=where, entry="meta.runners")
            from ..distributed.offpolicy import RunnerSettings

            check_config_types(RunnerSettings, runner_kw, where, "meta.runners")
            runner_kw = RunnerSettings(**runner_kw).to_json() if runner_kw else {}
        return {"algo": algo, "her": her, "seed": seed, "memory_name": memory_name, "obs_space": obs_space,
                "act_space": act_space, "env_id": env_id, "hyper": {**cfg, **pol, **options, **runner_kw},
                "env_kwargs": stored_kwargs}

    def probe_state(self) -> State:
        """The memory states of every network for ``config.n_envs`` sub-envs, on the meta device (``<net>.<k>``)."""
        n_envs = self.config.n_envs
        return {f"{name}.{k}": v for name, torso in self.algorithm.torsos().items()
                for k, v in torso.initial_state(n_envs, "meta").items()}

    def check_probe(self, where: str, tensors: dict[str, Tensor], state: State) -> None:
        """On a probe built on the meta device: the networks' size is within the budget, the stored networks,
        extra tensors and replay have the shapes this config gives, before anything is allocated."""
        probe = self
        n_envs = self.config.n_envs
        alg = probe.algorithm
        extra = alg.extra_tensors()
        modules = list(alg.modules().values()) + ([alg.counts] if getattr(alg, "counts", None) is not None else [])
        check_network_budget(modules, state, where)
        for name, module in alg.modules().items():
            prefix = f"net.{name}."
            stored = upgrade_state_keys(module, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            check_tensor_shapes(module.state_dict(), stored, where, prefix)
        for k, v in extra.items():
            check_tensor_like(tensors.get(f"extra.{k}"), v.shape, v.dtype, where, f"extra.{k}")
        # the replay: its arrays are the stored ones (checked below), or it is estimated from buffer_size
        cfg = probe.config
        per_env_state = (sum(t[0].numel() * t.element_size() for t in state.values())
                         if probe._stores_state() else 0)  # DRQN's replay stores no state
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

    def restore_training(self, agent: Any, where: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Rebuild replay and collector, and restore their contents, the env state and every RNG."""
        assert agent.env is not None
        if self.runners:  # env runners: the replay's shards and counters; the runners start new episodes
            self.restore_without_env(agent, where, tensors, meta)
            if "runner_group" in meta:
                self.collector = self._new_runner_group(agent)  # type: ignore[assignment]
                self.collector.reset(seed=agent.seed)
                self.collector.load_state(tensors, meta, where)  # type: ignore[attr-defined]
            return
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
        set_state = getattr(agent.env, "set_state", None)
        if carry and callable(set_state) and ("env_state" not in meta or not env_t):
            raise CheckpointError("the checkpoint holds a collector carry but not the env state this env needs to "
                                  "continue", path=where, entry="meta.env_state")
        if replay_t:
            B = agent.env.num_envs
            want = (B, self.config.buffer_size // B, self.obs_dim)
            if tuple(replay_t["obs"].shape) != want if "obs" in replay_t else True:
                got = list(replay_t["obs"].shape) if "obs" in replay_t else "nothing"
                raise CheckpointError(f"the stored replay holds {got}, this env and buffer_size need {list(want)}",
                                      path=where, entry="replay.obs")
        with entry_errors(where, "meta.config", "cannot build the replay for this env"):
            self._build_replay(agent.env, agent.seed)
        assert self.replay is not None and self.collector is not None
        resumable = bool(carry) and callable(set_state) and "replay" in meta
        if resumable:
            B = agent.env.num_envs
            with entry_errors(where, "collector", "collector state does not fit"):
                expected = {"obs": torch.empty(B, self.obs_dim), "episode_start": torch.empty(B, dtype=torch.bool),
                            "prev_action": torch.empty(B, *self.codec.shape, dtype=self.codec.dtype),
                            "prev_reward": torch.empty(B)}
                with building_on_meta():  # shapes only
                    for m, torso in self.algorithm.torsos().items():
                        expected.update({f"state.{m}.{k}": v for k, v in torso.initial_state(B, "meta").items()})
                check_tensors_like(carry, expected, where, "collector.")
                check_action_values(agent.action_space, carry["prev_action"], where, "collector.prev_action")
                cmeta = meta["collector"]
                if not isinstance(cmeta, dict):
                    raise CheckpointError("must be a JSON object", path=where, entry="meta.collector")
                total_steps = check_int(cmeta.get("total_steps"), where, "meta.collector.total_steps", 0, 2**62)
                check_episode_stats(cmeta.get("stats"), B, where, "meta.collector.stats")
            check_env_state(agent.env, env_t, meta["env_state"], where)
            self._load_replay(agent, where, replay_t, meta["replay"])
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
            check_env_round_trip(agent.env, env_t, meta["env_state"], where)
            self.collector.load_carry(carry)
            self.collector.total_steps = total_steps
            self.collector.stats.load_json(cmeta["stats"])
            restore_rng_state(rng_tensors, rng_json, np_rngs, torch_rng=agent.torch_rng)
        else:
            # the env cannot be restored exactly: the next learn() starts fresh episodes (replay restored if saved)
            if replay_t:
                self._load_replay(agent, where, replay_t, meta["replay"])
            self.collector.reset(seed=agent.seed)  # the replay's running episodes end where they stopped

    def _load_replay(self, agent: Any, where: str, replay_t: dict[str, Tensor], replay_meta: Any) -> None:
        assert self.replay is not None
        with entry_errors(where, "replay", "replay does not fit"):
            for key in ("action", "prev_action"):
                if key in replay_t:
                    check_action_values(agent.action_space, replay_t[key], where, f"replay.{key}")
            self.replay.load_state_dict(replay_t, replay_meta)


__all__ = ["CHECKPOINT_KIND", "LOG_BLOCK", "OffPolicyLearner", "is_offpolicy_checkpoint",
           "offpolicy_config_fields"]


# -- command line ----------------------------------------------------------------------------------------
def _progress_hooks(algorithm: Any) -> list[Callable[[float], None]]:
    """``set_training_progress`` of every memory core of the algorithm (``MemoryCore.set_training_progress``; a
    no-op for cores without a schedule of their own), online and target networks alike, so all follow the run."""
    return [core.set_training_progress for m in algorithm.modules().values() for core in memory_cores(m)]


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
    for spec in _specs():
        for f in fields(spec.config_class):
            users.setdefault(f.name, []).append(spec.name)
    for cfg_cls in dict.fromkeys(spec.config_class for spec in _specs()):
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
