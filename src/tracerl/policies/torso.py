"""The one torso of every algorithm's networks: ``observation -> encoder -> [previous action, previous reward] ->
memory core -> features [T, N, H]``.

:class:`Torso` holds the encoder (:class:`~tracerl.policies.ObservationEncoder`: an MLP, with a CNN per image leaf,
the same for every algorithm, so image and ``Dict`` observations work alike everywhere), the projection in front
of the core where widths differ, and the core; it builds the core's input (:meth:`Torso.core_input`) and runs it.
Heads sit on its features:

* the PPO family: :class:`~tracerl.policies.RecurrentActorCritic` *is* a torso with an action head and critic
  head(s) (:mod:`tracerl.policies.distributions`); it reads raw actions as the previous action;
* SAC, TD3, R2D2, DRQN, NEC, MFEC: :class:`RecurrentTorso` is a torso that reads normalized actions
  (:class:`~tracerl.policies.ActionCodec`); each network of an algorithm (SAC's actor and twin critics, R2D2's Q
  network, their target copies) is its own :class:`RecurrentTorso` with a head of :mod:`tracerl.policies.heads`.

The core chooses what it reads (:attr:`~tracerl.memory.MemoryCore.input_form`): encoded features by default; a
``"raw_steps"`` core (the strategic memory) gets the flat observation, previous action and previous reward
(:func:`raw_step_layout`), with no encoder layer and no projection. Previous action and reward are zeroed on the
first step of every episode (seed 000's ``h_{t+1} = f(h_t, s_t, a_t, r_t)``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Literal, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from ..errors import ConfigError
from ..memory import MemoryCore, State, Trace, make_memory, memory_input_form, memory_is_stateless
from .action_codec import ActionCodec
from .config import PolicyConfig
from .encoders import ObservationEncoder, check_image_encoder, flat_dim, select_image_leaves


def raw_step_layout(config: PolicyConfig, memory: MemoryCore | None, obs_dim: int, action_space: gym.Space,
                    action_feat_dim: Callable[[], int]) -> tuple[PolicyConfig, bool]:
    """The network settings that feed a core raw steps (:data:`~tracerl.memory.base.InputForm` ``"raw_steps"``) and
    whether a ``Discrete`` previous action enters as its index (True) rather than as its features.

    The flat observation (``obs_dim`` wide) goes straight in (``encoder_hidden=()``), with the previous action and
    reward (``use_prev_action`` / ``use_prev_reward`` forced on). A core built by name is sized here (``obs_dim``,
    ``action_dim`` in ``memory_kwargs``, unless given): a ``Discrete(2)`` action enters as its index (seed 001's
    convention), any other as its ``action_feat_dim()`` features. A core object decides by its ``action_dim``.
    """
    if memory is None and "obs_dim" not in config.memory_kwargs:
        act = action_feat_dim()
        sized = {"obs_dim": obs_dim,
                 "action_dim": 1 if isinstance(action_space, gym.spaces.Discrete) and action_space.n == 2 else act}
        config = replace(config, memory_kwargs={**config.memory_kwargs, **sized})
    scalar = isinstance(action_space, gym.spaces.Discrete) and (
        getattr(memory, "action_dim", None) == 1 or config.memory_kwargs.get("action_dim") == 1)
    return replace(config, encoder_hidden=(), use_prev_action=True, use_prev_reward=True), scalar


def resolve_prev_action(config: PolicyConfig, memory: MemoryCore | None) -> PolicyConfig:
    """``config`` with ``use_prev_action=None`` (automatic) made True or False: True unless the core (``memory``
    object, else ``config.memory`` by name) declares itself stateless (:attr:`~tracerl.memory.MemoryCore.stateless`)."""
    if config.use_prev_action is not None:
        return config
    return replace(config, use_prev_action=not _stateless(config, memory))


def _stateless(config: PolicyConfig, memory: MemoryCore | None) -> bool:
    """Whether the core (``memory`` object, else ``config.memory`` by name) declares itself stateless."""
    return memory.stateless if isinstance(memory, MemoryCore) else memory_is_stateless(config.memory)


def resolve_heads_read_obs(config: PolicyConfig, memory: MemoryCore | None) -> PolicyConfig:
    """``config`` with ``heads_read_obs=None`` (automatic) made True or False: True unless the core (``memory``
    object, else ``config.memory`` by name) declares itself stateless, as :func:`resolve_prev_action` decides."""
    if config.heads_read_obs is not None:
        return config
    return replace(config, heads_read_obs=not _stateless(config, memory))


def reads_raw_steps(config: PolicyConfig, memory: Any) -> bool:
    """Whether the core (``memory`` object, else ``config.memory`` by name) declares raw steps as its input and
    ``config.core_input`` follows the declaration."""
    if config.core_input == "features":
        return False
    if isinstance(memory, MemoryCore):
        return memory.input_form == "raw_steps"
    return memory is None and memory_input_form(config.memory) == "raw_steps"


def _flat_box(width: int) -> spaces.Box:
    return spaces.Box(-np.inf, np.inf, (width,), np.float32)


class Torso(nn.Module):
    """``obs [T, N, obs_dim] -> encoder -> (+ prev action, prev reward) -> (projection) -> memory core -> [T, N, H]``.

    The base of :class:`RecurrentTorso` (off-policy networks) and :class:`~tracerl.policies.RecurrentActorCritic`
    (the PPO family); a subclass says how a previous action becomes features (:meth:`encode_action`) and adds
    ``forward`` (and its heads). Parameters: ``encoder.*``, ``project.*`` (only where the core's input width differs
    from the features'), ``core.*``.

    Args:
        observation_space: the env's observation space, or the width of a flat observation (then no CNN can be
            placed: ``image_encoder="cnn"`` raises ConfigError).
        action_space: the env's action space (a raw-steps core sizes its action input from it).
        config: :class:`~tracerl.policies.PolicyConfig` (``memory``, ``hidden_size``, ``num_layers``,
            ``encoder_hidden``, ``use_prev_action``, ``use_prev_reward``, ``memory_kwargs``, ``image_encoder``,
            ``core_input``).
        memory: a core object to use instead of ``config.memory`` (a projection is added if its input differs; not
            for a raw-steps core, whose input must be exactly a raw step: ConfigError).
        action_feat_dim: the width of :meth:`encode_action`'s features; called once after the encoder is built
            (and once more before it when a raw-steps core is sized by name).
        input_index: the observation columns the torso reads (None: all), e.g. to hide HER's achieved goal.
        flat_init: the encoder MLP's initialization without CNNs (:class:`~tracerl.policies.ObservationEncoder`).
        force_raw_steps: feed the core raw steps whatever it declares.

    Attributes:
        config: the settings the network uses (for a raw-steps core, :func:`raw_step_layout`'s).
        prev_action_dim: the width of the previous action in the core's input (0 without ``use_prev_action``).
        output_dim: the width of the features (the core's output).
    """

    def __init__(self, observation_space: gym.Space | int, action_space: gym.Space, config: PolicyConfig,
                 memory: MemoryCore | None = None, *, action_feat_dim: Callable[[], int],
                 input_index: Sequence[int] | None = None, flat_init: Literal["orthogonal", "torch"] = "orthogonal",
                 force_raw_steps: bool = False) -> None:
        super().__init__()
        space = None if isinstance(observation_space, int) else observation_space
        width = int(observation_space) if space is None else flat_dim(space)
        self._obs_width = width
        self.input_index: Tensor | None
        if input_index is not None:
            self.register_buffer("input_index", torch.as_tensor(list(input_index), dtype=torch.int64), persistent=False)
            width = len(input_index)
        else:
            self.input_index = None
        raw = force_raw_steps or reads_raw_steps(config, memory)
        self._scalar_action = False
        if raw:
            config, self._scalar_action = raw_step_layout(config, memory, width, action_space, action_feat_dim)
        config = resolve_prev_action(config, memory)
        config.validate()
        self.config = config
        enc_space, image_encoder = self._encoder_space(space, width, input_index is not None, raw)
        self.encoder = ObservationEncoder(enc_space, config.encoder_hidden, image_encoder=image_encoder,
                                          flat_init=flat_init)
        act_dim = action_feat_dim()  # after the encoder: PPO's width comes from a throwaway head, whose random
        # draws seeded networks have always included
        self.prev_action_dim = (1 if self._scalar_action else act_dim) if config.use_prev_action else 0
        feat = self.encoder.output_dim + self.prev_action_dim + (1 if config.use_prev_reward else 0)
        if memory is None:
            memory = make_memory(config.memory, input_dim=feat, hidden_size=config.hidden_size,
                                 num_layers=config.num_layers, **config.memory_kwargs)
        if not isinstance(memory, MemoryCore):
            raise ConfigError(f"memory must be a registered name or a MemoryCore, got {type(memory).__name__}")
        self.core = memory
        self.project = nn.Identity() if memory.input_dim == feat else nn.Linear(feat, memory.input_dim)
        if raw and not isinstance(self.project, nn.Identity):
            obs, act = self.encoder.output_dim, self.prev_action_dim
            raise ConfigError(
                f"{type(self).__name__}: the memory takes inputs of width {memory.input_dim}, but it reads raw steps "
                f"and a raw step of this env is {obs + act + 1} wide (observation {obs} + action {act} + reward 1); "
                f"build StrategicMemoryBuffer(obs_dim={obs}, action_dim={act}, ...)")
        self.output_dim = memory.output_dim

    def _encoder_space(self, space: gym.Space | None, width: int, hidden_columns: bool,
                       raw: bool) -> tuple[gym.Space, str]:
        """The space the encoder reads and its image mode: a raw-steps core reads the flat observation (no CNN);
        hidden columns (``input_index``) or no space: a flat Box of ``width``."""
        mode = self.config.image_encoder
        check_image_encoder(mode)
        if raw:
            mode = "flat"
        if space is None:
            if mode == "cnn":
                raise ConfigError("image_encoder='cnn': this network was built without the observation space, so it "
                                  "cannot place a CNN; use image_encoder='auto' or 'flat'")
            return _flat_box(width), mode
        if hidden_columns:
            if select_image_leaves(space, mode):
                raise ConfigError("image observations with hidden observation columns (HER's achieved goal) are not "
                                  "supported by the CNN encoder; use image_encoder='flat'")
            return _flat_box(width), mode
        return space, mode

    # -- previous action ------------------------------------------------------------------------------
    def encode_action(self, action: Tensor) -> Tensor:
        """Actions ``[..., *action_shape]`` -> their features ``[..., action_feat_dim]`` (the subclass's form)."""
        raise NotImplementedError

    def prev_action_features(self, action: Tensor) -> Tensor:
        """Actions ``[..., *action_shape]`` -> the features ``[..., prev_action_dim]`` the core reads as the previous
        action (:meth:`encode_action`, or a ``Discrete`` action's index for a raw-steps core sized so)."""
        if self._scalar_action:
            return action.float().unsqueeze(-1)
        return self.encode_action(action)

    # -- shapes ---------------------------------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        """Width of a preprocessed (flat) observation (before ``input_index`` picks columns)."""
        return self._obs_width

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return self.core.initial_state(batch_size, device)

    # -- forward --------------------------------------------------------------------------------------
    def core_input(self, obs: Tensor, episode_start: Tensor, prev_action: Tensor | None = None,
                   prev_reward: Tensor | None = None) -> Tensor:
        """The core's input ``[T, N, core.input_dim]``: encoded observation, previous action and reward (zeroed
        where ``episode_start``), projected.

        Args:
            obs: ``[T, N, obs_dim]`` preprocessed observations.
            episode_start: ``[T, N]`` bool.
            prev_action: ``[T, N, *action_shape]`` previous actions (needed if ``use_prev_action``).
            prev_reward: ``[T, N]`` previous rewards (needed if ``use_prev_reward``).
        """
        return self.core_input_and_seen(obs, episode_start, prev_action, prev_reward)[0]

    def core_input_and_seen(self, obs: Tensor, episode_start: Tensor, prev_action: Tensor | None = None,
                            prev_reward: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`core_input` and the observation as the encoder's MLP reads it, ``[T, N, encoder.mlp_input_dim]``
        (the flat observation; images as their CNN features), from one pass of the encoder."""
        if self.input_index is not None:
            obs = obs.index_select(-1, self.input_index)
        seen = self.encoder.mlp_input(obs)
        parts = [self.encoder.net(seen)]
        keep = (~episode_start).unsqueeze(-1).to(obs.dtype)
        if self.config.use_prev_action:
            if prev_action is None:
                raise ValueError("use_prev_action=True: prev_action is required")
            parts.append(self.prev_action_features(prev_action) * keep)
        if self.config.use_prev_reward:
            if prev_reward is None:
                raise ValueError("use_prev_reward=True: prev_reward is required")
            parts.append(prev_reward.unsqueeze(-1).to(obs.dtype) * keep)
        return self.project(torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]), seen

    def features(self, obs: Tensor, state: State, episode_start: Tensor, prev_action: Tensor | None = None,
                 prev_reward: Tensor | None = None) -> tuple[Tensor, State]:
        """Memory features ``[T, N, H]`` and the next state (arguments as in :meth:`core_input`)."""
        return self.core(self.core_input(obs, episode_start, prev_action, prev_reward), state, episode_start)

    def forward_replay(self, obs: Tensor, state: State, episode_start: Tensor, prev_action: Tensor | None,
                       prev_reward: Tensor | None, replay: Mapping[str, Tensor] | None) -> tuple[Tensor, State, Trace]:
        """:meth:`features` through the core's ``forward_replay``: also the core's trace (for inspection and its
        memory losses). ``replay`` holds the core's recorded decisions (``core.replay_spec()``, ``[T, N, ...]``)
        when re-running steps the agent already took."""
        x = self.core_input(obs, episode_start, prev_action, prev_reward)
        return self.core.forward_replay(x, state, episode_start, replay)


class RecurrentTorso(Torso):
    """The off-policy algorithms' torso (a :class:`Torso` reading normalized actions): ``forward`` returns the
    features ``[T, N, H]`` and the next state.

    Args:
        obs_dim: width of the flat observation it reads.
        codec: the action codec (for previous-action features).
        config: :class:`~tracerl.policies.PolicyConfig`.
        memory: a core object to use instead of ``config.memory`` (a projection is added if its input differs).
        input_index: the observation columns the torso reads (None: all ``obs_dim``), e.g. to hide HER's
            achieved goal from the networks.
        observation_space: the env's observation space (its flat width must be ``obs_dim``). Image leaves that
            ``config.image_encoder`` selects get a CNN, as in the PPO family; without a space the encoder is the
            MLP alone (``image_encoder="cnn"`` needs the space). The MLP keeps PyTorch's default init on flat
            observations (``flat_init="torch"``), as these networks always had.
    """

    def __init__(self, obs_dim: int, codec: ActionCodec, config: PolicyConfig, memory: MemoryCore | None = None,
                 input_index: list[int] | None = None, observation_space: gym.Space | None = None) -> None:
        if observation_space is not None and flat_dim(observation_space) != obs_dim:
            raise ConfigError(f"obs_dim={obs_dim} differs from the flat width {flat_dim(observation_space)} of "
                              f"{observation_space!r}")
        if config.heads_read_obs:
            raise ConfigError("heads_read_obs=True: only the PPO family's heads read the observation beside the "
                              "memory; the off-policy algorithms' heads read the torso's features (leave it None)")
        super().__init__(obs_dim if observation_space is None else observation_space, codec.space,
                         replace(config, heads_read_obs=False), memory,
                         action_feat_dim=lambda: codec.feat_dim, input_index=input_index, flat_init="torch")
        self.codec = codec

    def encode_action(self, action: Tensor) -> Tensor:
        """Normalized actions ``[..., *codec.shape]`` -> the codec's features."""
        return self.codec.features(action)

    def action_features(self, action: Tensor) -> Tensor:
        """:meth:`prev_action_features` (this class's former name for it)."""
        return self.prev_action_features(action)

    def forward(self, obs: Tensor, state: State, episode_start: Tensor, prev_action: Tensor | None = None,
                prev_reward: Tensor | None = None) -> tuple[Tensor, State]:
        """Features ``[T, N, H]`` and the next state (``prev_action [T, N, *shape]``, ``prev_reward [T, N]``)."""
        return self.features(obs, state, episode_start, prev_action, prev_reward)


__all__ = ["RecurrentTorso", "Torso", "raw_step_layout", "reads_raw_steps", "resolve_heads_read_obs"]
