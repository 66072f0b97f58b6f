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

from ..memory import MemoryCore
from .policy import PolicyConfig, RecurrentActorCritic


class StrategicMemoryTransformerPolicy(RecurrentActorCritic):
    """Raw steps -> strategic memory (attention recall over retained entries) -> action and value heads.

    Seed 001's name for :class:`RecurrentActorCritic` with raw steps forced (:func:`~.policy.raw_step_layout`) and
    the strategic memory as the default core. ``RecurrentActorCritic`` with ``memory="strategic"`` (or a
    ``StrategicMemoryBuffer``) builds the same network, since the strategic memory declares raw steps as its input.

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

    force_raw_steps = True

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
        super().__init__(observation_space, action_space, config, memory)


__all__ = ["StrategicMemoryTransformerPolicy"]
