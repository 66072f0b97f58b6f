"""The ``Learner`` protocol: what an algorithm gives :class:`tracerl.TraceRL`.

``TraceRL`` owns the env, the one learn loop (progress bar, logging, checkpoint cadence, callbacks, thread
setting), ``predict``, ``evaluate``, ``inspect``, ``save`` and ``load``. A learner owns everything the algorithm
needs: its configs, networks, optimizers, collector (and replay), how one training iteration collects and updates,
what it logs, and how its state goes into and comes out of a checkpoint. The registry
(:mod:`tracerl.algos.registry`) maps an algorithm name to its learner class; the built-in ones are
:class:`~tracerl.algos.ppo_learner.PPOLearner` (PPO, A2C, REINFORCE) and
:class:`~tracerl.algos.offpolicy_learner.OffPolicyLearner` (SAC, TD3, R2D2).

Life of a learner inside ``TraceRL``::

    learner = spec.learner_class(spec, hyperparams, memory=..., policy_class=..., aux_modules=..., device=...)
    env = make_vec_env(..., n_envs=learner.config.n_envs, **learner.env_options())    # configs only above
    learner.set_n_envs(env.num_envs)
    with agent.torch_rng.active():
        learner.build(agent, observation_space, action_space)                          # networks
    learner.ensure_collector(agent); learner.begin(agent, reset)                       # at learn()
    for each iteration: stats = learner.iterate(agent); agent.num_timesteps += learner.steps_per_iteration
    save: walk learner.components(agent); load: load_arguments -> a probe on the meta device (probe_state,
    check_probe) -> the agent -> walk its components (check all, then copy) -> after_restore
    (-> restore_training with an env, else restore_without_env)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from ..memory import State
from ..policies.carry import Carry


@dataclass
class ActOutput:
    """One acting step of a learner's acting network (``predict`` and ``inspect``)."""

    action: Tensor
    """The action as the network sees it (``[B, *action_shape]``; fed back as the next ``prev_action``)."""
    env_action: np.ndarray
    """The same action in the env's form."""
    state: State
    """The memory core's state after the step."""
    features: Tensor | None = None
    """The memory features ``[1, B, H]`` (with ``trace=True``)."""
    trace: Mapping[str, Tensor] = field(default_factory=dict)
    """The memory core's trace, name -> ``[1, B, ...]`` (with ``trace=True``)."""


@runtime_checkable
class Learner(Protocol):
    """What one algorithm implements for :class:`tracerl.TraceRL` (see the module docstring)."""

    checkpoint_kind: ClassVar[str]
    """The ``kind`` its checkpoints carry in their header."""
    config: Any
    """The algorithm's config (a dataclass with ``n_envs``, ``to_json`` and ``validate``)."""
    policy_config: Any
    """The network's :class:`~tracerl.policies.PolicyConfig`."""
    collector: Any
    """The collector of the current env (None until ``learn`` or a load with an env); has ``stats``."""

    @property
    def policy(self) -> nn.Module:
        """The acting network (its ``core`` is the memory core)."""
        ...

    # -- construction ----------------------------------------------------------------------------------------------
    def set_n_envs(self, n_envs: int) -> None:
        """The env's width decides ``config.n_envs`` (called before :meth:`build` when the agent has an env)."""
        ...

    def env_options(self) -> dict[str, Any]:
        """Extra keyword arguments for :func:`tracerl.envs.make_vec_env` (e.g. the crash-restart wrapper); an
        ``n_envs`` entry replaces ``config.n_envs`` as the width of the agent's own env (env runners: 1)."""
        ...

    def build(self, agent: Any, observation_space: Any, action_space: Any) -> None:
        """Build the networks (inside the agent's torch stream) once the spaces and ``config.n_envs`` are known."""
        ...

    def modules(self) -> dict[str, nn.Module]:
        """Every network it trains, by name (targets included)."""
        ...

    # -- training --------------------------------------------------------------------------------------------------
    def detach_env(self) -> None:
        """Forget the collector (and replay) of the previous env (``set_env``)."""
        ...

    def ensure_collector(self, agent: Any) -> Any:
        """The collector for ``agent.env`` (made and reset on first use)."""
        ...

    def begin(self, agent: Any, reset_num_timesteps: bool) -> None:
        """Prepare a ``learn`` call (buffers, counters)."""
        ...

    @property
    def steps_per_iteration(self) -> int:
        """Env steps one :meth:`iterate` collects (all sub-envs)."""
        ...

    @property
    def log_block(self) -> int:
        """The callback runs whenever the step counter passes a multiple of this; the log every ``log_interval``
        of them."""
        ...

    def iterate(self, agent: Any) -> dict[str, float] | None:
        """Collect :attr:`steps_per_iteration` env steps and update as scheduled; the update's stats (None when
        it did not update)."""
        ...

    def record_log(self, logger: Any, stats: dict[str, float]) -> None:
        """Record the algorithm's own log entries (the agent records episodes, time and progress)."""
        ...

    # -- acting ----------------------------------------------------------------------------------------------------
    def preprocess(self, observation: Any, device: torch.device) -> Tensor:
        """Batched env observations ``[B, ...]`` -> the flat float tensor the network reads."""
        ...

    def initial_state(self, batch_size: int, device: torch.device | str | None) -> State:
        """The acting network's memory state at episode start."""
        ...

    @property
    def action_shape(self) -> tuple[int, ...]:
        ...

    @property
    def action_dtype(self) -> torch.dtype:
        ...

    def act(self, obs: Tensor, carry: Carry, deterministic: bool, trace: bool = False) -> ActOutput:
        """One step outside training of the acting network: ``obs [1, B, ...]`` from ``carry`` (its state under
        :data:`~tracerl.policies.carry.ACTING`); the training actors' state is left alone."""
        ...

    # -- checkpoints -----------------------------------------------------------------------------------------------
    def components(self, agent: Any, **options: Any) -> list[Any]:
        """Everything needed to continue, declared as checkpoint components (:mod:`tracerl.io.components`: module
        state dicts, optimizers, RNG streams, counters, extra tensors, config metadata, and save-only pieces that
        :meth:`restore_training` restores: collector carry, env state, replay), in the order a load checks them.
        ``TraceRL.save`` and ``TraceRL.load`` walk them; ``options`` are ``save``'s (e.g. ``include_replay``)."""
        ...

    @staticmethod
    def load_arguments(where: str, meta: dict[str, Any], memory: Any) -> dict[str, Any]:
        """What a checkpoint's metadata describes, type- and size-checked, nothing built: at least ``memory_name``,
        ``obs_space``, ``act_space``, ``seed`` (CheckpointError naming the entry otherwise)."""
        ...

    @staticmethod
    def constructor_kwargs(args: dict[str, Any]) -> dict[str, Any]:
        """The ``TraceRL`` keyword arguments (algo, hyperparameters, ...) that :meth:`load_arguments` describes."""
        ...

    def probe_state(self) -> State:
        """On a probe built on the meta device: the memory state of every network for ``config.n_envs`` envs."""
        ...

    def check_probe(self, where: str, tensors: dict[str, Tensor], state: State) -> None:
        """On the probe: the network budget and the stored tensors' shapes, before the real agent is built."""
        ...

    def after_restore(self, agent: Any) -> None:
        """After the walk restored the components (e.g. the memory cores' training progress follows the counter)."""
        ...

    def restore_without_env(self, agent: Any, where: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Loaded without an env: whatever else the component walk left (e.g. the torch stream off-policy)."""
        ...

    def restore_training(self, agent: Any, where: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """With an env attached: restore the collector (replay), the env state and the collection RNGs."""
        ...


__all__ = ["ActOutput", "Learner"]
