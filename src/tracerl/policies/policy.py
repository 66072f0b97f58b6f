"""The recurrent actor-critic of the PPO family: the torso (encoder -> [previous action, reward] -> memory core,
:mod:`tracerl.policies.torso`) with an action head and critic head(s) (:mod:`tracerl.policies.distributions`).

The encoder is an MLP, with a small CNN in front of image observations (``PolicyConfig.image_encoder``).

Seed 000 writes the recurrent policy as ``h_{t+1} = f(h_t, s_t, a_t, r_t)``: with
``use_prev_action`` / ``use_prev_reward`` the memory also reads the previous action and reward,
both zeroed on the first step of every episode.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

import gymnasium as gym
import torch
from torch import Tensor

from ..errors import ConfigError
from ..memory import MemoryCore, State, Trace, memory_input_form
from .config import PolicyConfig
from .distributions import ActionDist, CriticHead, make_action_head
from .torso import Torso, raw_step_layout, reads_raw_steps, resolve_heads_read_obs


@dataclass
class PolicyOutput:
    """Everything one pass of the actor-critic computes (time-major)."""

    dist: ActionDist
    value: Tensor
    """``[T, B]`` value of the (extrinsic) return."""
    state: State
    features: Tensor
    """``[T, B, H]`` memory features (the core's output)."""
    trace: Trace
    """The core's trace (read/write/attention weights; empty for cores without addressable memory)."""
    value_int: Tensor | None = None
    """``[T, B]`` value of the intrinsic return (with ``PolicyConfig.intrinsic_value``)."""


class RecurrentActorCritic(Torso):
    """Policy = torso (encoder -> memory core) -> (action head, critic head), all time-major ``[T, B, ...]``.

    A :class:`~tracerl.policies.torso.Torso` that reads raw actions (the action head's samples, encoded by
    ``actor.action_features``) as the previous action. The core decides what it reads
    (:attr:`~tracerl.memory.MemoryCore.input_form`): encoded features by default; a ``"raw_steps"`` core (the
    strategic memory) gets the raw steps of :func:`~tracerl.policies.torso.raw_step_layout`.

    Args:
        observation_space: the single-env observation space.
        action_space: the single-env action space.
        config: network settings (:class:`PolicyConfig`).
        memory: a :class:`MemoryCore` object to use instead of ``config.memory``. Its ``input_dim`` may
            differ from the features' width: a linear projection is then inserted in front of it (not for a
            ``"raw_steps"`` core, whose input must be exactly a raw step: ConfigError otherwise).
    """

    force_raw_steps: bool = False
    """Feed the core raw steps whatever its declared input form (seed 001's StrategicMemoryTransformerPolicy)."""

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: PolicyConfig | None = None,
        memory: MemoryCore | None = None,
    ) -> None:
        config = resolve_squash(resolve_heads_read_obs(config or PolicyConfig(), memory), action_space)
        # The action head's width depends on the core's, so a throwaway head tells the action encoding's size.
        super().__init__(observation_space, action_space, config, memory,
                         action_feat_dim=lambda: make_action_head(action_space, 1, squash=config.squash).action_feat_dim,
                         force_raw_steps=self.force_raw_steps)
        self.observation_space = observation_space
        self.action_space = action_space
        config = self.config
        self.head_dim = self.core.output_dim + (self.encoder.mlp_input_dim if config.heads_read_obs else 0)
        self.actor = make_action_head(
            action_space, self.head_dim, squash=config.squash, log_std_init=config.log_std_init
        )
        self.critic = CriticHead(self.head_dim)
        self.critic_int = CriticHead(self.head_dim) if config.intrinsic_value else None

    def encode_action(self, action: Tensor) -> Tensor:
        """Raw actions ``[T, B, *action_shape]`` -> the action head's features."""
        return self.actor.action_features(action)

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def action_shape(self) -> tuple[int, ...]:
        return tuple(self.actor.raw_shape)

    @property
    def action_dtype(self) -> torch.dtype:
        return self.actor.raw_dtype

    def preprocess(self, obs: Any, device: torch.device | str | None = None) -> Tensor:
        """Raw batched observations -> flat float tensor ``[..., obs_dim]``."""
        return self.encoder.preprocess(obs, device)

    # -- forward --------------------------------------------------------------------------------
    def forward(
        self,
        obs: Tensor,
        state: State,
        episode_start: Tensor,
        prev_action: Tensor | None = None,
        prev_reward: Tensor | None = None,
    ) -> tuple[ActionDist, Tensor, State]:
        """Action distribution, value ``[T, B]`` and next state (arguments as in :meth:`features`)."""
        head_in, state = self.head_features(obs, state, episode_start, prev_action, prev_reward)
        return self.actor(head_in), self.critic(head_in), state

    def head_features(
        self,
        obs: Tensor,
        state: State,
        episode_start: Tensor,
        prev_action: Tensor | None = None,
        prev_reward: Tensor | None = None,
    ) -> tuple[Tensor, State]:
        """What the heads read, ``[T, B, head_dim]`` (see :meth:`head_input`), and the next state (arguments as in
        :meth:`features`)."""
        x, seen = self.core_input_and_seen(obs, episode_start, prev_action, prev_reward)
        h, state = self.core(x, state, episode_start)
        return self.head_input(h, seen), state

    def head_input(self, h: Tensor, seen: Tensor) -> Tensor:
        """The heads' input ``[T, B, head_dim]``: the core's output ``h [T, B, H]``, followed by the observation as
        the encoder's MLP reads it (``seen``, :meth:`core_input_and_seen`) with ``heads_read_obs``."""
        return torch.cat([h, seen.to(h.dtype)], dim=-1) if self.config.heads_read_obs else h

    def forward_full(
        self,
        obs: Tensor,
        state: State,
        episode_start: Tensor,
        prev_action: Tensor | None = None,
        prev_reward: Tensor | None = None,
        replay: Mapping[str, Tensor] | None = None,
    ) -> PolicyOutput:
        """One pass returning features, the core's trace and (if configured) the intrinsic value too.

        ``replay`` holds the core's recorded decisions (``core.replay_spec()``, ``[T, B, ...]``) when re-running
        steps the agent already took; arguments are otherwise as in :meth:`features`.
        """
        x, seen = self.core_input_and_seen(obs, episode_start, prev_action, prev_reward)
        h, state, trace = self.core.forward_replay(x, state, episode_start, replay)
        head_in = self.head_input(h, seen)
        value_int = None if self.critic_int is None else self.critic_int(head_in)
        return PolicyOutput(self.actor(head_in), self.critic(head_in), state, h, trace, value_int)


def resolve_squash(config: PolicyConfig, action_space: gym.Space) -> PolicyConfig:
    """``config`` with ``squash=None`` (automatic) made True or False: True for a Box action space whose every bound
    is finite (the Gaussian is tanh-squashed into them), False for any other space (a Box with an infinite bound is
    clipped where it is bounded; the other spaces have no Gaussian)."""
    if config.squash is not None:
        return config
    return replace(config, squash=isinstance(action_space, gym.spaces.Box) and action_space.is_bounded("both"))


def checkpoint_policy_settings(policy: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``policy`` settings as this version builds them: a file written before cores declared their
    input form (no ``core_input``) whose core declares raw steps but whose settings are not the raw-step layout
    was built with encoded features, so it gets ``core_input="features"`` (its tensors then fit); one written before
    the heads could read the observation (no ``heads_read_obs``) gets ``heads_read_obs=False``."""
    out = dict(policy)
    out.setdefault("heads_read_obs", False)  # written before the heads could read the observation
    if "core_input" in out or not isinstance(out.get("memory"), str):
        return out
    try:
        form = memory_input_form(out["memory"])
    except ConfigError:
        return out
    kwargs = out.get("memory_kwargs") if isinstance(out.get("memory_kwargs"), dict) else {}
    raw_layout = (not out.get("encoder_hidden") and out.get("use_prev_action") is True
                  and out.get("use_prev_reward") is True and "obs_dim" in kwargs)
    if form == "raw_steps" and not raw_layout:
        out["core_input"] = "features"
    return out


def loadable_policy_classes() -> dict[str, type[RecurrentActorCritic]]:
    """Policy classes a checkpoint may name, by ``module.qualname`` (nothing else is imported on load)."""
    from .strategic import StrategicMemoryTransformerPolicy

    return {f"{c.__module__}.{c.__qualname__}": c for c in (RecurrentActorCritic, StrategicMemoryTransformerPolicy)}


__all__ = ["PolicyConfig", "PolicyOutput", "RecurrentActorCritic", "checkpoint_policy_settings",
           "loadable_policy_classes", "raw_step_layout", "reads_raw_steps", "resolve_squash"]
