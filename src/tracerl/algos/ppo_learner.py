"""``PPOLearner``: recurrent PPO and its A2C / REINFORCE configurations as a :class:`~tracerl.algos.learner.Learner`.

It owns the actor-critic policy (with its auxiliary modules), RND, the reward normalizer, the PPO update, the
minibatch generator, the rollout collector and buffer, and the checkpoint entries of all of them (checkpoint kind
``tracerl.TraceRL``). :class:`tracerl.TraceRL` drives it.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..agent_config import (MOVED_FIELDS, check_options_json, option_fields, options_from_json,
                            options_to_json, take_options)
from ..data.episodes import rollout_steps
from ..data.rollout import RolloutBuffer, RolloutCollector
from ..errors import CheckpointError, ConfigError
from ..io import restore_checks
from ..io.checkpoint import check_tensor_shapes
from ..io.components import (Counters, GeneratorState, MetaEntry, ModuleState, OptimizerState, SaveOnly,
                             TorchStream, save_collector_state)
from ..io.restore_checks import (building_on_meta, check_action_values, check_config_types, check_env_round_trip,
                                 check_env_state, check_episode_stats, check_int, check_network_budget,
                                 check_run_meta, check_sizes, check_space_json, check_tensor_like, check_tensors_like,
                                 entry_errors)
from ..io.spaces import space_from_json
from ..memory import MemoryCore, State, describe_memory
from ..policies.carry import ACTING, Carry
from ..policies.policy import (PolicyConfig, RecurrentActorCritic, checkpoint_policy_settings,
                               loadable_policy_classes)
from .auxiliary import (AuxModule, ConfidenceAuxModule, CueAuxModule, PredictiveAuxModule, aux_module_from_json,
                        aux_module_to_json)
from .learner import ActOutput
from .normalization import ReturnNormalizer
from .ppo import PPOConfig
from .registry import AlgoSpec, available_algos
from .rnd import RND

CHECKPOINT_KIND = "tracerl.TraceRL"
_PPO_FIELDS = {f.name for f in fields(PPOConfig)}
_POLICY_FIELDS = {f.name for f in fields(PolicyConfig)} - {"memory", "intrinsic_value"}
_OPTION_GROUPS = ("retention", "explore", "env_options", "agent")
_EXTRA_FIELDS = set().union(*(option_fields(g) for g in _OPTION_GROUPS))


def _split_hyperparams(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    if kwargs.get("her"):
        raise ConfigError(f"her=True is not supported by the on-policy algorithms: hindsight relabelling needs "
                          f"replayed sequences ({MOVED_FIELDS['her']}); use an off-policy algorithm "
                          f"({', '.join(available_algos('off_policy'))}) with a goal-conditioned Dict env")
    kwargs = {k: v for k, v in kwargs.items() if k != "her"}  # her=False: the default, as before the split
    unknown = sorted(set(kwargs) - _PPO_FIELDS - _POLICY_FIELDS - _EXTRA_FIELDS)
    if unknown:
        raise TypeError(
            f"TraceRL got unexpected keyword argument(s): {', '.join(unknown)}. "
            f"Algorithm fields: {', '.join(sorted(_PPO_FIELDS))}; policy fields: {', '.join(sorted(_POLICY_FIELDS))}; "
            f"agent-option fields: {', '.join(sorted(_EXTRA_FIELDS))}"
        )
    ppo = {k: v for k, v in kwargs.items() if k in _PPO_FIELDS}
    pol = {k: v for k, v in kwargs.items() if k in _POLICY_FIELDS}
    extra = {k: v for k, v in kwargs.items() if k in _EXTRA_FIELDS}
    if "encoder_hidden" in pol:
        pol["encoder_hidden"] = tuple(pol["encoder_hidden"])
    return ppo, pol, extra



class PPOLearner:
    """Recurrent PPO (or A2C / REINFORCE) for :class:`tracerl.TraceRL`.

    Args:
        spec: the registered algorithm (its ``make_config`` gives the defaults, ``algorithm`` the update class).
        hyperparams: fields of PPOConfig, PolicyConfig and the agent options (RetentionConfig, ExploreConfig,
            EnvConfig, MemoryAgentConfig); any other raises TypeError naming it.
        memory: a registered memory name or a MemoryCore object.
        policy_class: the actor-critic class (default :class:`RecurrentActorCritic`).
        aux_modules: auxiliary losses on the memory features.
        device: torch device.
    """

    checkpoint_kind: ClassVar[str] = CHECKPOINT_KIND

    def __init__(self, spec: AlgoSpec, hyperparams: dict[str, Any], *, memory: str | MemoryCore = "gru",
                 policy_class: type[RecurrentActorCritic] | None = None, aux_modules: list[AuxModule] | None = None,
                 device: str | torch.device = "cpu") -> None:
        ppo_kwargs, policy_kwargs, extra_kwargs = _split_hyperparams(hyperparams)
        options = take_options(extra_kwargs, _OPTION_GROUPS, spec.name)
        self.options = options
        self.retention, self.explore, self.env_config = options["retention"], options["explore"], options["env_options"]
        self.extras = options["agent"]  # MemoryAgentConfig: aux losses and env runners
        self.spec = spec
        self.algo = spec.name
        self.config: PPOConfig = spec.make_config(**ppo_kwargs)
        self.config.validate()
        from ..distributed.group import check_runner_setup

        check_runner_setup(self.config.n_envs, self.extras.runners, returns=self.config.returns,
                           use_rnd=self.explore.use_rnd)
        memory_name, memory_kwargs = describe_memory(memory)
        if memory_kwargs is not None:  # a registered core passed as an object: record how to rebuild it by name
            policy_kwargs.setdefault("memory_kwargs", memory_kwargs)
        self.policy_config = PolicyConfig(memory=memory_name, intrinsic_value=self.explore.intrinsic_expl,
                                          **policy_kwargs)
        self.policy_config.validate()
        self.policy_class = policy_class or RecurrentActorCritic
        self._memory = None if isinstance(memory, str) else memory
        self._aux_init = aux_modules
        self.device = torch.device(device)
        self.collector: RolloutCollector | None = None
        self.buf: RolloutBuffer | None = None
        self.iterations = 0

    def set_n_envs(self, n_envs: int) -> None:
        """A VectorEnv passed in decides the batch width (not with env runners: theirs is ``n_envs``)."""
        if not self.extras.runners:
            self.config.n_envs = n_envs

    def env_options(self) -> dict[str, Any]:
        # with env runners the sub-envs live in the runners: this process builds one, for the spaces
        local = {"n_envs": 1} if self.extras.runners else {}
        return {**self.env_config.vec_env_options(), **local}  # crashing envs: tracerl.envs.resilient

    def build(self, agent: Any, observation_space: Any, action_space: Any) -> None:
        """The policy, aux modules, RND, reward normalizer and update (called inside the agent's torch stream)."""
        self.policy = self.policy_class(observation_space, action_space, self.policy_config, memory=self._memory)
        self.policy_config = self.policy.config  # the settings the network uses (a raw-steps core's input forced)
        self._configure_memory()
        self.policy.aux_modules = nn.ModuleList(self._build_aux_modules(self._aux_init))
        self._aux_init = None
        self.policy.to(self.device)
        self.rnd = (RND(self.policy.obs_dim, self.config.n_envs, self.explore.rnd_emb_dim, self.explore.rnd_lr)
                    .to(self.device) if self.explore.use_rnd else None)
        self.reward_normalizer = (ReturnNormalizer(self.config.n_envs, self.config.gamma).to(self.device)
                                  if self.explore.reward_norm else None)
        self.ppo = self.spec.algorithm(self.policy, self.config,
                                       intrinsic_coef=self.explore.intrinsic_eta if self.explore.intrinsic_expl else 0.0)
        self.minibatch_generator = torch.Generator()
        self.minibatch_generator.manual_seed(0 if agent.seed is None else agent.seed)

    def modules(self) -> dict[str, nn.Module]:
        """The trained networks: the policy (aux modules inside), RND and the reward normalizer when used."""
        out: dict[str, nn.Module] = {"policy": self.policy}
        if self.rnd is not None:
            out["rnd"] = self.rnd
        if self.reward_normalizer is not None:
            out["reward_norm"] = self.reward_normalizer
        return out

    # -- memory options ---------------------------------------------------------------------------
    def _configure_memory(self) -> None:
        """Apply memory_learn_retention / memory_retention_coef to a core that declares those options
        (``MemoryCore.training_options``)."""
        self.retention.apply([self.policy.core], self.policy_config.memory)

    def _build_aux_modules(self, modules: list[AuxModule] | None) -> list[AuxModule]:
        feat = self.policy.core.output_dim
        built: list[AuxModule] = list(modules or [])
        for name in self.extras.aux:
            if name == "predictive":
                built.append(PredictiveAuxModule(feat, coef=self.extras.aux_predictive_coef))
                continue
            built.append(CueAuxModule(feat, n_classes=2) if name == "cue" else ConfidenceAuxModule(feat))
        self.extras.aux = ()  # names are now modules; checkpoints store the modules
        for m in built:
            if not isinstance(m, AuxModule):
                raise ConfigError(f"aux_modules must hold AuxModule objects, got {type(m).__name__}")
            if m.feat_dim != feat:
                raise ConfigError(
                    f"{type(m).__name__}(feat_dim={m.feat_dim}) does not match the memory's output width {feat}")
            m.attach(self.policy)
        return built

    @property
    def aux_modules(self) -> list[AuxModule]:
        return list(self.policy.aux_modules)  # type: ignore[arg-type]

    def _info_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for m in self.aux_modules for k in m.info_keys))


    # -- training -----------------------------------------------------------------------------------------------
    def detach_env(self) -> None:
        self.collector = None

    def ensure_collector(self, agent: Any) -> RolloutCollector:
        if agent.env is None:
            raise ConfigError("learn() needs an environment: pass env= to TraceRL or call set_env()")
        if self.collector is None:
            self.collector = self._new_runner_group(agent) if self.extras.runners else self._new_collector(agent.env)
            self.collector.reset(seed=agent.seed)
        return self.collector

    def _new_runner_group(self, agent: Any) -> Any:
        """Env runners in place of the collector (``runners >= 1``: :mod:`tracerl.distributed`)."""
        from ..distributed.group import RunnerGroup

        ex = self.extras
        return RunnerGroup(self, agent, ex.runners, ex.runner_backend, ex.ray_address, ex.runner_num_cpus,
                           ex.runner_max_restarts)

    def _new_collector(self, env: Any) -> RolloutCollector:
        assert env is not None
        if env.num_envs != self.config.n_envs:
            if self.rnd is not None:
                raise ConfigError(f"the env has {env.num_envs} sub-envs but the agent was built for "
                                  f"n_envs={self.config.n_envs} (RND keeps per-env statistics)")
            if self.reward_normalizer is not None:  # its return statistics carry over; per-env returns restart
                self.reward_normalizer.resize(env.num_envs)
                self.config.n_envs = env.num_envs
        return RolloutCollector(env, self.policy, self.config.gamma, self.device,
                                nan_policy=self.config.nan_policy,
                                bootstrap_on_truncation=self.config.bootstraps_truncations,
                                info_keys=self._info_keys(), reward_normalizer=self.reward_normalizer,
                                rnd=self.rnd, whole_episodes=self.config.returns == "monte_carlo",
                                max_episode_steps=self.config.max_episode_steps)

    def begin(self, agent: Any, reset_num_timesteps: bool) -> None:
        assert self.collector is not None
        if reset_num_timesteps:
            self.iterations = 0
        cfg = self.config
        self.buf = RolloutBuffer.allocate(self.policy, cfg.n_steps, self.collector.n_envs, cfg.chunk_len, self.device,
                                          info_keys=self._info_keys(), intrinsic=self.explore.intrinsic_expl)

    @property
    def steps_per_iteration(self) -> int:
        """One rollout: ``n_steps`` of every sub-env (of the collector's env once there is one)."""
        n_envs = self.collector.n_envs if self.collector is not None else self.config.n_envs
        return self.config.n_steps * n_envs

    @property
    def log_block(self) -> int:
        return self.steps_per_iteration

    def iterate(self, agent: Any) -> dict[str, float]:
        """Collect one rollout and run the update on it (learning-rate schedule and training progress first)."""
        cfg, collector, buf = self.config, self.collector, self.buf
        assert collector is not None and buf is not None
        progress = agent.num_timesteps / max(agent._schedule_end, 1)
        if cfg.lr_schedule == "linear":
            frac = 1.0 - agent.num_timesteps / max(agent._schedule_end, 1)
            self.ppo.set_learning_rate(cfg.learning_rate * max(frac, 0.0))
        self.policy.core.set_training_progress(progress)  # MemoryCore's hook (a no-op for most cores)
        if self.extras.runners:
            collector.progress = progress  # type: ignore[union-attr]  # the runners' copies follow it too
        self.policy.eval()
        collector.collect(buf)
        self.policy.train()
        per_iter = self.steps_per_iteration
        stats = self.ppo.update(buf, self.minibatch_generator)
        if self.rnd is not None:
            stats["rnd_loss"] = self.rnd.train_predictor(
                buf.obs.reshape(-1, buf.obs.shape[-1]), cfg.n_epochs, cfg.batch_size if cfg.batch_size > 0
                else per_iter, self.minibatch_generator)
            stats["mean_rnd_bonus"] = collector.rnd_bonus_sum / per_iter
        self.iterations += 1
        return stats

    def record_log(self, logger: Any, stats: dict[str, float]) -> None:
        """PPO's entries: entropy, advantage statistics, losses, aux/memory losses, RND."""
        buf = self.buf
        assert buf is not None and buf.advantage is not None
        lg = logger
        lg.record("rollout/policy_entropy", stats["entropy"])
        adv = buf.advantage  # [T, B]; REINFORCE: the steps of the whole episodes trained on, flattened (maybe none)
        lg.record("rollout/advantage_mean", float(adv.mean()) if adv.numel() else float("nan"))
        lg.record("rollout/advantage_std", float(adv.std()) if adv.numel() > 1 else float("nan"))
        for key in ("loss", "policy_loss", "value_loss", "explained_variance", "approx_kl", "clip_fraction",
                    "learning_rate", "grad_norm"):
            lg.record(f"train/{key}", stats[key])
        lg.record("train/n_updates", int(stats["n_updates"]))
        lg.record("rollout/aux_loss_mean", stats.get("aux_loss", 0.0))  # 0 without aux modules (seed 001's table)
        for key in [k for k in stats if k.startswith(("aux/", "memory/"))]:  # aux loss parts, the core's own losses
            lg.record(key, stats[key])
        if "mean_rnd_bonus" in stats:
            lg.record("rnd_net_dist/mean_rnd_bonus", stats["mean_rnd_bonus"])
            lg.record("rnd_net_dist/predictor_loss", stats["rnd_loss"])
        if stats["skipped_updates"]:
            lg.record("train/skipped_updates", int(stats["skipped_updates"]))
        if self.extras.runners and self.collector is not None:
            self.collector.record_log(lg)  # type: ignore[union-attr]  # per-runner env-steps/s, restarts

    # -- acting -------------------------------------------------------------------------------------------------
    def preprocess(self, observation: Any, device: torch.device) -> Tensor:
        return self.policy.preprocess(observation, device)

    def initial_state(self, batch_size: int, device: torch.device | str | None) -> State:
        return self.policy.initial_state(batch_size, device)

    @property
    def action_shape(self) -> tuple[int, ...]:
        return self.policy.action_shape

    @property
    def action_dtype(self) -> torch.dtype:
        return self.policy.action_dtype

    def act(self, obs: Tensor, carry: Carry, deterministic: bool, trace: bool = False) -> ActOutput:
        """The distribution's mode or a sample; ``trace=True`` also returns the memory features and trace."""
        state, episode_start, prev_action, prev_reward = carry.step_inputs(ACTING)
        if trace:
            out = self.policy.forward_full(obs, state, episode_start, prev_action, prev_reward)
            dist, state, features, tr = out.dist, out.state, out.features, out.trace
        else:
            dist, _, state = self.policy(obs, state, episode_start, prev_action, prev_reward)
            features, tr = None, {}
        raw = (dist.mode() if deterministic else dist.sample())[0]
        return ActOutput(raw, self.policy.actor.to_env(raw), state, features, tr)

    # -- checkpoints --------------------------------------------------------------------------------------------
    def components(self, agent: Any) -> list[Any]:
        """Its checkpoint components (:mod:`tracerl.io.components`), in the order a load checks them: configs,
        the policy, the optimizer, the reward normalizer and RND, counters, the minibatch and acting streams, the
        training stream, and (saved here, restored by :meth:`restore_training`) the collector's carry and env."""
        lr_range = (0.0, self.config.learning_rate) if self.config.lr_schedule == "linear" else None
        ppo = self.ppo
        out: list[Any] = [
            MetaEntry("ppo", self.config.to_json),
            MetaEntry("policy", self.policy_config.to_json),
            MetaEntry("extras", lambda: options_to_json(self.options)),  # all agent options, one flat object
            MetaEntry("aux_modules", lambda: [aux_module_to_json(m) for m in self.aux_modules]),
            MetaEntry("policy_class", lambda: f"{self.policy_class.__module__}.{self.policy_class.__qualname__}"),
            ModuleState("policy.", self.policy),
            OptimizerState("optim.", ppo.optimizer, ("optim_param_groups",), lr_range),
        ]
        if self.reward_normalizer is not None:
            out.append(ModuleState("reward_norm.", self.reward_normalizer))
        if self.rnd is not None:
            out += [ModuleState("rnd.", self.rnd), OptimizerState("rnd_optim.", self.rnd.optimizer)]

        def read() -> dict[str, int]:
            return {"num_timesteps": agent.num_timesteps, "iterations": self.iterations,
                    "schedule_end": agent._schedule_end, "n_updates": ppo.n_updates,
                    "skipped_updates": ppo.skipped_updates, "consecutive_skips": ppo.consecutive_skips}

        def write(c: dict[str, int]) -> None:
            agent.num_timesteps, self.iterations = c["num_timesteps"], c["iterations"]
            agent._schedule_end = c["schedule_end"]
            ppo.n_updates, ppo.skipped_updates = c["n_updates"], c["skipped_updates"]
            ppo.consecutive_skips = c.get("consecutive_skips", 0)

        gen = self.minibatch_generator
        out += [
            Counters({"num_timesteps": True, "iterations": True, "schedule_end": True, "n_updates": True,
                      "skipped_updates": True, "consecutive_skips": False}, read, write),
            GeneratorState("rng.minibatch", gen.get_state, gen.set_state, lambda: gen.get_state().shape),
            # absent in checkpoints written before the acting stream existed
            GeneratorState("rng.acting", agent.acting_rng.current, agent.acting_rng.set_state,
                           lambda: agent.acting_rng.state.shape, optional=True),
            TorchStream(agent.torch_rng),
            SaveOnly(self._save_collector, ("collector.", "env.", "runners.")),
        ]
        return out

    def _save_collector(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        if self.collector is not None and self.extras.runners:  # tracerl.distributed: every runner's state
            self.collector.save_state(tensors, meta)  # type: ignore[union-attr]
        elif self.collector is not None:
            save_collector_state(self.collector, tensors, meta)

    def after_restore(self, agent: Any) -> None:
        """Nothing: the walk restored everything."""

    @staticmethod
    def load_arguments(where: str, meta: dict[str, Any], memory: MemoryCore | None) -> dict[str, Any]:
        """The constructor arguments a checkpoint's metadata describes, type- and size-checked (nothing built)."""
        from ..memory import available_memories

        with entry_errors(where, "meta", "malformed checkpoint metadata"):
            for key in ("observation_space", "action_space", "policy", "ppo"):
                if key not in meta:
                    raise CheckpointError(f"checkpoint metadata lacks {key!r}", path=where, entry=f"meta.{key}")
            check_space_json(meta["observation_space"], where, "meta.observation_space")
            check_space_json(meta["action_space"], where, "meta.action_space")
            for key, config_cls in (("policy", PolicyConfig), ("ppo", PPOConfig)):
                check_config_types(config_cls, meta.get(key, {}), where, f"meta.{key}")
                check_sizes(meta.get(key, {}), where, f"meta.{key}")
            check_options_json(meta.get("extras", {}), where, "meta.extras")
            check_sizes(meta.get("extras", {}), where, "meta.extras")
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
            pol = checkpoint_policy_settings(meta["policy"])  # files from before cores declared their input
            memory_name = pol.pop("memory")
            pol.pop("intrinsic_value", None)
            ppo_fields = PPOConfig.from_json(dict(meta["ppo"])).to_json()  # unknown keys -> ConfigError
            algo = meta.get("algo", "ppo")
            if algo not in available_algos("on_policy"):
                raise CheckpointError(f"algo {algo!r} is not one of {', '.join(available_algos('on_policy'))}",
                                      path=where, entry="meta.algo")
            extra_fields = options_from_json(dict(meta.get("extras", {})), _OPTION_GROUPS, algo)
            class_name = meta.get("policy_class", "tracerl.policies.policy.RecurrentActorCritic")
            classes = loadable_policy_classes()
            if class_name not in classes:
                raise CheckpointError(f"checkpoint names policy class {class_name!r}; loadable: {', '.join(classes)}",
                                      path=where, entry="meta.policy_class")
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

    @staticmethod
    def constructor_kwargs(args: dict[str, Any]) -> dict[str, Any]:
        """The ``TraceRL`` keyword arguments (besides memory, device, spaces, seed) that :meth:`load_arguments`'s
        result describes; fresh objects on every call (the aux modules)."""
        return {"policy_class": args["policy_class"], "algo": args["algo"],
                "aux_modules": [aux_module_from_json(d) for d in args["aux"]], **args["hyper"]}

    def probe_state(self) -> State:
        """The memory state of ``config.n_envs`` sub-envs, on the meta device (for the load-time budget)."""
        return self.policy.initial_state(self.config.n_envs, "meta")

    def check_probe(self, where: str, tensors: dict[str, Tensor], state: State) -> None:
        """On a probe built on the meta device: the networks' size is within the budget and the stored tensors
        have their shapes, checked before anything is allocated."""
        modules = [m for m in (self.policy, self.rnd, self.reward_normalizer) if m is not None]
        check_network_budget(modules, state, where)
        parts = ((self.policy, "policy."), (self.rnd, "rnd."), (self.reward_normalizer, "reward_norm."))
        for module, prefix in parts:
            if module is None:
                continue
            sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            check_tensor_shapes(module.state_dict(), sub, where, prefix)

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
                                             intrinsic=self.explore.intrinsic_expl)
                expected.update({f"episodes.rows.{k}": v for k, v in rollout_steps(buf).items()})
        return expected

    def restore_without_env(self, agent: Any, where: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Nothing more: :meth:`restore` restored every RNG stream."""

    def restore_training(self, agent: Any, where: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """The collector's carry and the env state (envs with ``set_state``), so training continues exactly."""
        if self.extras.runners:  # env runners: their own carries and env states (tracerl.distributed.checkpoint)
            from ..distributed.checkpoint import restore_runner_group

            self.collector = restore_runner_group(self, agent, where, tensors, meta)
            return
        carry = {k[len("collector."):]: v for k, v in tensors.items() if k.startswith("collector.")}
        env_t = {k[len("env."):]: v for k, v in tensors.items() if k.startswith("env.")}
        set_state = getattr(agent.env, "set_state", None)
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
        assert agent.env is not None
        with entry_errors(where, "collector", "collector state does not fit"):
            collector = self._new_collector(agent.env)
            B = agent.env.num_envs
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
            check_action_values(agent.action_space, carry["prev_action"], where, "collector.prev_action")
            for name in ("episodes.rows.action", "episodes.rows.prev_action"):
                if name in carry:
                    check_action_values(agent.action_space, carry[name], where, "collector." + name)
            cmeta = meta["collector"]
            if not isinstance(cmeta, dict):
                raise CheckpointError("must be a JSON object", path=where, entry="meta.collector")
            total_steps = check_int(cmeta.get("total_steps"), where, "meta.collector.total_steps", 0, 2**62)
            check_episode_stats(cmeta.get("stats"), B, where, "meta.collector.stats")
        with entry_errors(where, "collector.episodes" if collector.episodes is not None else "collector",
                          "collector carry does not fit"):
            collector.load_carry(carry)  # before the env is touched: a carry that does not fit leaves it as it was
        check_env_state(agent.env, env_t, meta["env_state"], where)
        with entry_errors(where, "env", "env state does not fit this env"):
            set_state({k: v.numpy() for k, v in env_t.items()}, meta["env_state"])
        check_env_round_trip(agent.env, env_t, meta["env_state"], where)
        collector.total_steps = total_steps
        collector.stats.load_json(cmeta["stats"])
        self.collector = collector


__all__ = ["CHECKPOINT_KIND", "PPOLearner"]
