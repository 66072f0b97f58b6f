"""``StrategicMemoryTransformerPolicy``: seed 001's policy class, the actor-critic for the strategic memory.

It feeds the strategic memory raw steps: the flat observation (no encoder MLP), the previous action and
the previous reward, so every stored entry is exactly what the agent saw and is embedded with the
current parameters whenever it is read (see :mod:`tracerl.memory.strategic`). A ``Discrete`` previous
action enters as its index when the memory was built with ``action_dim=1`` (seed 001's convention for
``Discrete(2)``), else one-hot.
"""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
from torch import Tensor, nn

from ..errors import ConfigError
from ..memory import MemoryCore
from ..memory.strategic import StrategicMemoryCore
from .distributions import make_action_head
from .policy import PolicyConfig, RecurrentActorCritic


class StrategicMemoryTransformerPolicy(RecurrentActorCritic):
    """Raw steps -> strategic memory (attention recall over retained entries) -> action and value heads.

    Args:
        observation_space, action_space: the single-env spaces.
        config: network settings; ``encoder_hidden`` is forced to ``()`` and ``use_prev_action`` /
            ``use_prev_reward`` to True (the memory stores raw steps). With no ``memory`` object the core is
            ``config.memory`` (default ``"strategic"``) built from ``config.memory_kwargs``.
        memory: a :class:`~tracerl.memory.strategic.StrategicMemoryBuffer` (or any core whose ``input_dim``
            equals observation + action + reward width).

    Raises:
        ConfigError: the memory's input width does not match this env's raw step (the generic actor-critic
            would insert a projection; here it would defeat storing raw steps).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: PolicyConfig | None = None,
        memory: MemoryCore | None = None,
    ) -> None:
        config = config or PolicyConfig(memory="strategic")
        if config.memory in ("gru", "") and memory is None:
            config = replace(config, memory="strategic")
        if memory is None and config.memory == "strategic" and "obs_dim" not in config.memory_kwargs:
            # Size a StrategicMemoryBuffer from the spaces (a Discrete(2) action enters as its index).
            from .encoders import flat_dim

            act = make_action_head(action_space, 1).action_feat_dim
            sized = {"obs_dim": flat_dim(observation_space),
                     "action_dim": 1 if isinstance(action_space, gym.spaces.Discrete) and action_space.n == 2 else act}
            config = replace(config, memory_kwargs={**config.memory_kwargs, **sized})
        self._scalar_action = isinstance(action_space, gym.spaces.Discrete) and (
            getattr(memory, "action_dim", None) == 1 or config.memory_kwargs.get("action_dim") == 1)
        config = replace(config, encoder_hidden=(), use_prev_action=True, use_prev_reward=True)
        super().__init__(observation_space, action_space, config, memory)
        if not isinstance(self.project, nn.Identity):
            obs_dim, act = self.encoder.output_dim, self.prev_action_dim
            raise ConfigError(
                f"StrategicMemoryTransformerPolicy: the memory takes inputs of width {self.core.input_dim}, but a raw "
                f"step of this env is {obs_dim + act + 1} wide (observation {obs_dim} + action {act} + reward 1); "
                f"build StrategicMemoryBuffer(obs_dim={obs_dim}, action_dim={act if not self._scalar_action else 1}, ...)")

    def _prev_action_width(self, action_feat_dim: int, memory: MemoryCore | None) -> int:
        return 1 if self._scalar_action else action_feat_dim

    def prev_action_features(self, prev_action: Tensor) -> Tensor:
        if self._scalar_action:
            return prev_action.float().unsqueeze(-1)
        return super().prev_action_features(prev_action)


__all__ = ["StrategicMemoryTransformerPolicy", "StrategicMemoryCore"]
