"""Networks of the off-policy algorithms, each ``torso -> head`` on the memory contract.

A :class:`RecurrentTorso` is ``flat observation -> encoder (+ previous action, previous reward) -> memory
core`` and returns features ``[T, N, H]`` (the encoder is an MLP, or PPO's CNN + MLP encoder for image
observations when the torso is given the observation space); any registered core (or a :class:`~tracerl.memory.MemoryCore` object)
works. Heads are plain MLPs on those features:

* :class:`SquashedGaussianActor` (SAC): ``a = tanh(u)``, ``u ~ N(mu(h), sigma(h))`` with the log-density
  ``log pi(a|h) = log N(u; mu, sigma) - sum_i log(1 - tanh(u_i)^2)`` (Haarnoja et al. 2018, appendix C).
* :class:`DeterministicActor` (TD3): ``a = tanh(mu(h))``.
* :class:`ContinuousQ`: ``Q(h_t, a_t)`` from the critic torso's features and an action in ``[-1, 1]^d``.
* :class:`DiscreteQ` (R2D2): ``Q(h_t, .)`` for every discrete action, optionally dueling
  (``Q = V + A - mean A``, Wang et al. 2016).

Actions inside the algorithms are *normalized*: Box actions live in ``[-1, 1]^d`` (mapped affinely to the
env's bounds only when stepping the env), Discrete actions are indices ``0..n-1`` (``start`` added for the env).
The torso reads the previous action as these normalized values (one-hot for Discrete), zeroed at episode starts.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from ..errors import ConfigError, UnsupportedSpaceError
from ..memory import MemoryCore, State, make_memory
from ..memory.base import Trace
from ..policies.encoders import ObservationEncoder, check_image_encoder, select_image_leaves
from ..policies.policy import PolicyConfig, raw_step_layout, reads_raw_steps

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
"""Clamp of the SAC actor's log standard deviation."""


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        layers += [nn.Linear(last, h), activation()]
        last = h
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class ActionCodec:
    """Normalized actions of an action space: shapes, dtypes, previous-action features and env conversion.

    Box(d): stored ``float32 [d]`` in ``[-1, 1]``; env action ``low + (a + 1) / 2 (high - low)``.
    Discrete(n): stored ``int64 []``; env action ``a + start``; features one-hot ``[n]``.
    """

    def __init__(self, space: gym.Space) -> None:
        self.space = space
        if isinstance(space, spaces.Box):
            if not space.is_bounded("both"):
                raise ConfigError(f"off-policy continuous control needs finite action bounds, got {space!r}")
            self.discrete = False
            self.dim = int(np.prod(space.shape))
            self.shape: tuple[int, ...] = (self.dim,)
            self.dtype = torch.float32
            self.feat_dim = self.dim
            self._low = np.asarray(space.low, np.float64).reshape(-1)
            self._high = np.asarray(space.high, np.float64).reshape(-1)
        elif isinstance(space, spaces.Discrete):
            self.discrete = True
            self.n = int(space.n)
            self.start = int(space.start)
            self.shape = ()
            self.dtype = torch.int64
            self.feat_dim = self.n
        else:
            raise UnsupportedSpaceError(f"off-policy algorithms act in Box or Discrete action spaces, got {space!r}")

    def features(self, a: Tensor) -> Tensor:
        """``[..., *shape]`` normalized actions -> float ``[..., feat_dim]``."""
        return F.one_hot(a.long(), self.n).to(torch.float32) if self.discrete else a.to(torch.float32)

    def to_env(self, a: Tensor | np.ndarray) -> np.ndarray:
        """Normalized actions ``[B, *shape]`` -> env actions ``[B, *space.shape]``."""
        x = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
        if self.discrete:
            return (x.astype(np.int64) + self.start).astype(self.space.dtype)
        x = np.clip(x.astype(np.float64), -1.0, 1.0)
        env = self._low + (x + 1.0) / 2.0 * (self._high - self._low)
        env = np.clip(env, self._low, self._high)
        return env.reshape(*env.shape[:-1], *self.space.shape).astype(self.space.dtype)

    def from_env(self, a: np.ndarray) -> np.ndarray:
        """Env actions ``[B, *space.shape]`` -> normalized ``[B, *shape]`` (inverse of :meth:`to_env`)."""
        x = np.asarray(a)
        if self.discrete:
            return x.astype(np.int64) - self.start
        x = x.reshape(x.shape[0], -1).astype(np.float64)
        return (2.0 * (x - self._low) / (self._high - self._low) - 1.0).astype(np.float32)


class RecurrentTorso(nn.Module):
    """``obs [T, N, obs_dim] -> encoder -> (+ prev action, prev reward) -> memory core -> [T, N, H]``.

    Args:
        obs_dim: width of the flat observation it reads.
        codec: the action codec (for previous-action features).
        config: :class:`~tracerl.policies.PolicyConfig` (``memory``, ``hidden_size``, ``num_layers``,
            ``encoder_hidden``, ``use_prev_action``, ``use_prev_reward``, ``memory_kwargs``).
        memory: a core object to use instead of ``config.memory`` (a projection is added if its input differs).
        input_index: the observation columns the torso reads (None: all ``obs_dim``), e.g. to hide HER's
            achieved goal from the networks.
        observation_space: the env's observation space. With image leaves that ``config.image_encoder`` selects,
            the encoder is PPO's :class:`~tracerl.policies.ObservationEncoder` (a CNN per image, then the MLP);
            otherwise (or without a space) it is the MLP below. ``image_encoder="cnn"`` needs the space.
    """

    def __init__(self, obs_dim: int, codec: ActionCodec, config: PolicyConfig, memory: MemoryCore | None = None,
                 input_index: list[int] | None = None, observation_space: gym.Space | None = None) -> None:
        super().__init__()
        self.codec = codec
        if input_index is not None:
            self.register_buffer("input_index", torch.as_tensor(list(input_index), dtype=torch.int64), persistent=False)
            obs_dim = len(input_index)
        else:
            self.input_index = None
        # A core that reads raw steps (MemoryCore.input_form, e.g. the strategic memory) gets them, as in PPO.
        raw = reads_raw_steps(config, memory)
        self._scalar_action = False
        if raw:
            config, self._scalar_action = raw_step_layout(config, memory, obs_dim, codec.space, lambda: codec.feat_dim)
        self.config = config
        self.encoder: nn.Module
        enc_dim = obs_dim
        if not raw and self._wants_cnn(config, observation_space, input_index):
            assert observation_space is not None
            self.encoder = ObservationEncoder(observation_space, config.encoder_hidden, image_encoder=config.image_encoder)
            if self.encoder.input_dim != obs_dim:
                raise ConfigError(f"obs_dim={obs_dim} differs from the flat width {self.encoder.input_dim} of "
                                  f"{observation_space!r}")
            enc_dim = self.encoder.output_dim
        else:
            layers: list[nn.Module] = []
            for width in config.encoder_hidden:  # Linear + tanh per entry; none: the flat observation goes straight in
                layers += [nn.Linear(enc_dim, width), nn.Tanh()]
                enc_dim = width
            self.encoder = nn.Sequential(*layers) if layers else nn.Identity()
        act_dim = 1 if self._scalar_action else codec.feat_dim
        feat = enc_dim + (act_dim if config.use_prev_action else 0) + (1 if config.use_prev_reward else 0)
        if memory is None:
            memory = make_memory(config.memory, input_dim=feat, hidden_size=config.hidden_size,
                                 num_layers=config.num_layers, **config.memory_kwargs)
        self.core = memory
        self.project = nn.Identity() if memory.input_dim == feat else nn.Linear(feat, memory.input_dim)
        if raw and not isinstance(self.project, nn.Identity):
            raise ConfigError(f"the memory takes inputs of width {memory.input_dim}, but it reads raw steps and a raw "
                              f"step here is {feat} wide (observation {enc_dim} + action {act_dim} + reward 1)")
        self.output_dim = memory.output_dim

    def action_features(self, action: Tensor) -> Tensor:
        """Normalized actions ``[..., *shape]`` -> the features the core reads as the previous action (the codec's,
        or a ``Discrete`` action's index for a raw-steps core sized so)."""
        if self._scalar_action:
            return action.float().unsqueeze(-1)
        return self.codec.features(action)

    @staticmethod
    def _wants_cnn(config: PolicyConfig, space: gym.Space | None, input_index: list[int] | None) -> bool:
        """Whether the torso's encoder needs CNNs (ConfigError where ``config.image_encoder`` cannot be honoured)."""
        check_image_encoder(config.image_encoder)
        if space is None:
            if config.image_encoder == "cnn":
                raise ConfigError("image_encoder='cnn': this off-policy network was built without the observation "
                                  "space, so it cannot place a CNN; use image_encoder='auto' or 'flat'")
            return False
        if not select_image_leaves(space, config.image_encoder):
            return False
        if input_index is not None:
            raise ConfigError("image observations with hidden observation columns (HER's achieved goal) are not "
                              "supported by the CNN encoder; use image_encoder='flat'")
        return True

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return self.core.initial_state(batch_size, device)

    def forward(self, obs: Tensor, state: State, episode_start: Tensor, prev_action: Tensor,
                prev_reward: Tensor) -> tuple[Tensor, State]:
        """Features ``[T, N, H]`` and the next state (``prev_action [T, N, *shape]``, ``prev_reward [T, N]``)."""
        return self.core(self.core_input(obs, episode_start, prev_action, prev_reward), state, episode_start)

    def forward_replay(self, obs: Tensor, state: State, episode_start: Tensor, prev_action: Tensor,
                       prev_reward: Tensor, replay: Mapping[str, Tensor] | None) -> tuple[Tensor, State, Trace]:
        """:meth:`forward` through the core's ``forward_replay``: also returns its trace (for its memory losses)."""
        x = self.core_input(obs, episode_start, prev_action, prev_reward)
        return self.core.forward_replay(x, state, episode_start, replay)

    def core_input(self, obs: Tensor, episode_start: Tensor, prev_action: Tensor, prev_reward: Tensor) -> Tensor:
        """The core's input ``[T, N, input_dim]``: encoded observation, previous action and reward, projected."""
        if self.input_index is not None:
            obs = obs.index_select(-1, self.input_index)
        parts = [self.encoder(obs)]
        keep = (~episode_start).unsqueeze(-1).to(obs.dtype)
        if self.config.use_prev_action:
            parts.append(self.action_features(prev_action) * keep)
        if self.config.use_prev_reward:
            parts.append(prev_reward.unsqueeze(-1).to(obs.dtype) * keep)
        return self.project(torch.cat(parts, -1) if len(parts) > 1 else parts[0])


class SquashedGaussianActor(nn.Module):
    """SAC's tanh-Gaussian policy head on features ``h [..., H]`` (actions in ``[-1, 1]^d``)."""

    def __init__(self, in_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = _mlp(in_dim, hidden, 2 * act_dim)

    def forward(self, h: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor]:
        """``(a, log pi(a|h))``: a reparameterized sample (or ``tanh(mu)``), ``[..., d]`` and ``[...]``."""
        mu, log_std = self.net(h).chunk(2, dim=-1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        u = mu if deterministic else mu + std * torch.randn_like(mu)
        logp = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), numerically stable
        logp = logp - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return torch.tanh(u), logp


class DeterministicActor(nn.Module):
    """TD3's deterministic policy head ``a = tanh(mu(h))`` in ``[-1, 1]^d``."""

    def __init__(self, in_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = _mlp(in_dim, hidden, act_dim)

    def forward(self, h: Tensor) -> Tensor:
        return torch.tanh(self.net(h))


class ContinuousQ(nn.Module):
    """``Q(h, a) = MLP([h, a])``: ``h [..., H]``, ``a [..., d]`` -> ``[...]``."""

    def __init__(self, in_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = _mlp(in_dim + act_dim, hidden, 1)

    def forward(self, h: Tensor, a: Tensor) -> Tensor:
        return self.net(torch.cat([h, a], -1)).squeeze(-1)


class DiscreteQ(nn.Module):
    """``Q(h, .) [..., n]``; dueling: ``V(h) + A(h, .) - mean_a A(h, a)``."""

    def __init__(self, in_dim: int, n_actions: int, hidden: tuple[int, ...], dueling: bool = True) -> None:
        super().__init__()
        self.dueling = dueling
        self.adv = _mlp(in_dim, hidden, n_actions)
        self.value = _mlp(in_dim, hidden, 1) if dueling else None

    def forward(self, h: Tensor) -> Tensor:
        a = self.adv(h)
        if self.value is None:
            return a
        return self.value(h) + a - a.mean(-1, keepdim=True)


class TorsoHead(nn.Module):
    """A torso and its head(s), kept together so targets are ``copy.deepcopy`` of one module."""

    def __init__(self, torso: RecurrentTorso, **heads: nn.Module) -> None:
        super().__init__()
        self.torso = torso
        self.heads = nn.ModuleDict(heads)

    def head(self, name: str) -> Any:
        return self.heads[name]


__all__ = ["ActionCodec", "ContinuousQ", "DeterministicActor", "DiscreteQ", "RecurrentTorso",
           "SquashedGaussianActor", "TorsoHead"]
