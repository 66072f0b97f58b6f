"""The recurrent actor-critic: observation encoder -> memory core -> action head and critic head.

The encoder is an MLP, with a small CNN in front of image observations (``PolicyConfig.image_encoder``).

Seed 000 writes the recurrent policy as ``h_{t+1} = f(h_t, s_t, a_t, r_t)``: with
``use_prev_action`` / ``use_prev_reward`` the memory also reads the previous action and reward,
both zeroed on the first step of every episode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Literal, Mapping

import gymnasium as gym
import torch
from torch import Tensor, nn

from ..config_checks import Range, validate_fields
from ..errors import ConfigError
from ..memory import MemoryCore, State, Trace, make_memory, memory_input_form
from .distributions import ActionDist, CriticHead, make_action_head
from .encoders import ObservationEncoder


@dataclass
class PolicyConfig:
    """How the actor-critic network is built."""

    memory: str = "gru"
    """Registered memory core name (``tracerl list`` shows them)."""
    hidden_size: int = 64
    """Width of the memory core's output (GRU/LSTM hidden size)."""
    num_layers: int = 1
    """Stacked layers inside the memory core."""
    encoder_hidden: tuple[int, ...] = (64,)
    """Hidden layer widths of the observation encoder MLP (empty: the flat observation goes straight in)."""
    use_prev_action: bool = False
    """Feed the previous action into the memory (zero at episode start)."""
    use_prev_reward: bool = False
    """Feed the previous reward into the memory (zero at episode start)."""
    squash: bool = False
    """Box actions: tanh-squash the Gaussian into the action bounds instead of clipping."""
    log_std_init: float = 0.0
    """Box actions: initial log standard deviation of the Gaussian."""
    memory_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for the memory core's constructor."""
    intrinsic_value: bool = False
    """Add a second critic head for an intrinsic return (RND; Burda et al. 2018 keep the two returns apart)."""
    image_encoder: Literal["auto", "cnn", "flat"] = "auto"
    """Image observations (uint8 Box 0-255, HWC or CHW, 1/3/4 channels; also inside Dict/Tuple; scaled to [0, 1]):
    "auto" a small CNN per image, "cnn" also for other 3-D Boxes with a channel axis, "flat" pixels into the MLP."""
    core_input: Literal["declared", "features"] = "declared"
    """What the memory core reads: what it declares (MemoryCore.input_form: encoded features for most cores, raw
    steps for the strategic memory), or encoded features whatever it declares (how agents were built before cores
    declared their input; checkpoints written then load with it)."""

    _field_ranges = {  # valid values per field, checked with the annotations by tracerl.config_checks
        "hidden_size": Range(1, 65536), "num_layers": Range(1, 64), "encoder_hidden": Range(1, 65536),
        "log_std_init": Range(-20, 20),
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field, its value and the valid range."""
        validate_fields(self)
        if self.hidden_size <= 0:
            raise ConfigError(f"hidden_size must be > 0, got {self.hidden_size}")
        if self.num_layers <= 0:
            raise ConfigError(f"num_layers must be > 0, got {self.num_layers}")
        if any(h <= 0 for h in self.encoder_hidden):
            raise ConfigError(f"encoder_hidden widths must be > 0, got {self.encoder_hidden}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["encoder_hidden"] = list(self.encoder_hidden)
        return d


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


def reads_raw_steps(config: PolicyConfig, memory: Any) -> bool:
    """Whether the core (``memory`` object, else ``config.memory`` by name) declares raw steps as its input and
    ``config.core_input`` follows the declaration."""
    if config.core_input == "features":
        return False
    if isinstance(memory, MemoryCore):
        return memory.input_form == "raw_steps"
    return memory is None and memory_input_form(config.memory) == "raw_steps"


class RecurrentActorCritic(nn.Module):
    """Policy = encoder -> memory core -> (action head, critic head), all time-major ``[T, B, ...]``.

    The core decides what it reads (:attr:`~tracerl.memory.MemoryCore.input_form`): encoded features by default;
    a ``"raw_steps"`` core (the strategic memory) gets the raw steps of :func:`raw_step_layout`.

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
        super().__init__()
        config = config or PolicyConfig()
        raw = self.force_raw_steps or reads_raw_steps(config, memory)
        self._scalar_action = False
        if raw:
            from .encoders import flat_dim

            config, self._scalar_action = raw_step_layout(
                config, memory, flat_dim(observation_space), action_space,
                lambda: make_action_head(action_space, 1).action_feat_dim)
        self.config = config
        config.validate()
        self.observation_space = observation_space
        self.action_space = action_space
        self.encoder = ObservationEncoder(observation_space, config.encoder_hidden, image_encoder=config.image_encoder)
        # The action head's width depends on the core's, so ask a throwaway head for the action encoding size.
        action_feat_dim = make_action_head(action_space, 1, squash=config.squash).action_feat_dim
        self.prev_action_dim = (1 if self._scalar_action else action_feat_dim) if config.use_prev_action else 0
        feat_dim = self.encoder.output_dim + self.prev_action_dim + (1 if config.use_prev_reward else 0)
        if memory is None:
            memory = make_memory(
                config.memory,
                input_dim=feat_dim,
                hidden_size=config.hidden_size,
                num_layers=config.num_layers,
                **config.memory_kwargs,
            )
        if not isinstance(memory, MemoryCore):
            raise ConfigError(f"memory must be a registered name or a MemoryCore, got {type(memory).__name__}")
        self.core = memory
        self.project = nn.Identity() if memory.input_dim == feat_dim else nn.Linear(feat_dim, memory.input_dim)
        if raw and not isinstance(self.project, nn.Identity):
            obs_dim, act = self.encoder.output_dim, self.prev_action_dim
            raise ConfigError(
                f"{type(self).__name__}: the memory takes inputs of width {memory.input_dim}, but it reads raw steps "
                f"and a raw step of this env is {obs_dim + act + 1} wide (observation {obs_dim} + action {act} + "
                f"reward 1); build StrategicMemoryBuffer(obs_dim={obs_dim}, action_dim={act}, ...)")
        self.actor = make_action_head(
            action_space, memory.output_dim, squash=config.squash, log_std_init=config.log_std_init
        )
        self.critic = CriticHead(memory.output_dim)
        self.critic_int = CriticHead(memory.output_dim) if config.intrinsic_value else None

    def prev_action_features(self, prev_action: Tensor) -> Tensor:
        """Raw previous actions ``[T, B, *action_shape]`` -> features ``[T, B, prev_action_dim]`` (a raw-steps core
        may take a ``Discrete`` action as its index, see :func:`raw_step_layout`)."""
        if self._scalar_action:
            return prev_action.float().unsqueeze(-1)
        return self.actor.action_features(prev_action)

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        """Width of a preprocessed (flat) observation."""
        return self.encoder.input_dim

    @property
    def action_shape(self) -> tuple[int, ...]:
        return tuple(self.actor.raw_shape)

    @property
    def action_dtype(self) -> torch.dtype:
        return self.actor.raw_dtype

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return self.core.initial_state(batch_size, device)

    def preprocess(self, obs: Any, device: torch.device | str | None = None) -> Tensor:
        """Raw batched observations -> flat float tensor ``[..., obs_dim]``."""
        return self.encoder.preprocess(obs, device)

    # -- forward --------------------------------------------------------------------------------
    def features(
        self,
        obs: Tensor,
        state: State,
        episode_start: Tensor,
        prev_action: Tensor | None = None,
        prev_reward: Tensor | None = None,
    ) -> tuple[Tensor, State]:
        """Memory features ``[T, B, H]`` and the next state.

        Args:
            obs: ``[T, B, obs_dim]`` preprocessed observations.
            state: the core's state at the first step.
            episode_start: ``[T, B]`` bool.
            prev_action: ``[T, B, *action_shape]`` raw previous actions (needed if ``use_prev_action``).
            prev_reward: ``[T, B]`` previous rewards (needed if ``use_prev_reward``).
        """
        return self.core(self.core_input(obs, episode_start, prev_action, prev_reward), state, episode_start)

    def core_input(
        self, obs: Tensor, episode_start: Tensor, prev_action: Tensor | None, prev_reward: Tensor | None
    ) -> Tensor:
        """The memory core's input ``[T, B, core.input_dim]``: encoded observation, previous action and reward."""
        parts = [self.encoder(obs)]
        keep = (~episode_start).unsqueeze(-1).to(obs.dtype)
        if self.config.use_prev_action:
            if prev_action is None:
                raise ValueError("use_prev_action=True: prev_action is required")
            parts.append(self.prev_action_features(prev_action) * keep)
        if self.config.use_prev_reward:
            if prev_reward is None:
                raise ValueError("use_prev_reward=True: prev_reward is required")
            parts.append(prev_reward.unsqueeze(-1).to(obs.dtype) * keep)
        return self.project(torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0])

    def forward(
        self,
        obs: Tensor,
        state: State,
        episode_start: Tensor,
        prev_action: Tensor | None = None,
        prev_reward: Tensor | None = None,
    ) -> tuple[ActionDist, Tensor, State]:
        """Action distribution, value ``[T, B]`` and next state (arguments as in :meth:`features`)."""
        h, state = self.features(obs, state, episode_start, prev_action, prev_reward)
        return self.actor(h), self.critic(h), state

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
        x = self.core_input(obs, episode_start, prev_action, prev_reward)
        h, state, trace = self.core.forward_replay(x, state, episode_start, replay)
        value_int = None if self.critic_int is None else self.critic_int(h)
        return PolicyOutput(self.actor(h), self.critic(h), state, h, trace, value_int)


def checkpoint_policy_settings(policy: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``policy`` settings as this version builds them: a file written before cores declared their
    input form (no ``core_input``) whose core declares raw steps but whose settings are not the raw-step layout
    was built with encoded features, so it gets ``core_input="features"`` (its tensors then fit)."""
    out = dict(policy)
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
