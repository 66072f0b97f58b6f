"""The carry: what an agent keeps between the steps of ``B`` envs, as one object.

Between two steps an acting network needs its memory core's state after the previous step, the previous action
and reward it feeds back (``use_prev_action`` / ``use_prev_reward``, and the raw steps of the strategic memory), and
which rows start an episode at the next step. Both collectors (:mod:`tracerl.data.rollout`, the off-policy one in
:mod:`tracerl.algos.offpolicy`), ``TraceRL.predict``, evaluation (through ``predict``) and inspection keep it as a
:class:`Carry`::

    carry = Carry.initial({"policy": policy}, B, action_shape, action_dtype, device)   # every row starts an episode
    state, start, prev_action, prev_reward = carry.step_inputs("policy")               # [B, ...] and [1, B, ...]
    ... act, step the env ...
    carry = carry.advance({"policy": next_state}, action, reward, done)

Conventions (one for every user of the carry):

* the states are the cores' states *after* the previous step; a row whose ``episode_start`` is True is reset by
  the core itself when it consumes the next step (the library's one reset convention);
* ``prev_action`` / ``prev_reward`` are the previous step's values as they were, also on rows that start an
  episode: every network multiplies them by ``1 - episode_start`` (:meth:`Carry.masked_inputs` gives them
  zeroed there, the form the off-policy replay stores);
* the memory state a buffer or replay stores for a step is :meth:`Carry.stored_states`: each state with that
  step's episode starts applied (``MemoryCore.reset_where``), i.e. the state the core starts the step from, so a
  stored state never holds the previous episode's memory (both collectors; a PPO chunk and a replayed window
  start from it).

Several networks that act on the same steps (SAC's actor and critics) share one carry: ``states`` is keyed by
network name. The acting network of ``predict`` and ``inspect`` is ``"policy"`` (:data:`ACTING`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from ..memory import MemoryCore, State

ACTING = "policy"
"""The network name of the acting network's state in a carry built by ``predict`` and ``inspect``."""


def _rows(mask: Tensor, like: Tensor) -> Tensor:
    """``mask [B]`` broadcast over the trailing dimensions of ``like [B, ...]``."""
    return mask.view(-1, *([1] * (like.dim() - 1)))


@dataclass(frozen=True)
class Carry:
    """The state between steps of ``B`` envs (see the module docstring for the conventions)."""

    states: dict[str, State]
    """Network name -> its memory core's state after the previous step (``{entry: [B, ...]}``)."""
    prev_action: Tensor
    """``[B, *action_shape]`` the previous action (the networks ignore it where an episode starts)."""
    prev_reward: Tensor
    """``[B]`` the previous reward (the networks ignore it where an episode starts)."""
    episode_start: Tensor
    """``[B]`` bool: the next observation starts an episode."""

    @classmethod
    def initial(cls, networks: Mapping[str, Any], batch_size: int, action_shape: tuple[int, ...],
                action_dtype: torch.dtype, device: torch.device | str | None) -> "Carry":
        """Every row at an episode start: each network's initial state (``networks[name].initial_state(B, device)``,
        a core, a policy, a torso or a learner), zero previous action and reward."""
        B = batch_size
        return cls(states={name: net.initial_state(B, device) for name, net in networks.items()},
                   prev_action=torch.zeros(B, *action_shape, dtype=action_dtype, device=device),
                   prev_reward=torch.zeros(B, device=device),
                   episode_start=torch.ones(B, dtype=torch.bool, device=device))

    @property
    def batch_size(self) -> int:
        return int(self.episode_start.shape[0])

    def reset_where(self, mask: Tensor) -> "Carry":
        """Rows where ``mask`` ([B] bool) is True start a new episode at the next step (the cores reset those rows'
        states, and the networks ignore their previous action and reward, when they consume that step)."""
        mask = mask.to(device=self.episode_start.device, dtype=torch.bool)
        return replace(self, episode_start=self.episode_start | mask)

    def advance(self, states: Mapping[str, State], action: Tensor, reward: Tensor, done: Tensor) -> "Carry":
        """The carry after a step: the networks' new ``states``, the ``action`` taken and ``reward`` received as the
        next step's previous action and reward, and ``done`` ([B] bool: the episode ended) as the next episode
        starts."""
        done = done.to(device=self.episode_start.device, dtype=torch.bool)
        reward = reward.to(device=self.prev_reward.device, dtype=self.prev_reward.dtype)
        return Carry(states=dict(states), prev_action=action, prev_reward=reward, episode_start=done)

    def masked_inputs(self) -> tuple[Tensor, Tensor]:
        """``(prev_action, prev_reward)`` zeroed where an episode starts (what the networks read of them)."""
        start = self.episode_start
        return (torch.where(_rows(start, self.prev_action), torch.zeros_like(self.prev_action), self.prev_action),
                torch.where(start, torch.zeros_like(self.prev_reward), self.prev_reward))

    def step_inputs(self, name: str = ACTING) -> tuple[State, Tensor, Tensor, Tensor]:
        """What network ``name`` reads for one step in step mode: its state and ``episode_start [1, B]``,
        ``prev_action [1, B, ...]``, ``prev_reward [1, B]``."""
        return self.states[name], self.episode_start[None], self.prev_action[None], self.prev_reward[None]

    def stored_states(self, cores: Mapping[str, MemoryCore]) -> dict[str, State]:
        """The stored-state convention of both collectors: each network's state with the next step's episode starts
        applied (``cores[name].reset_where``), the state its core starts that step from."""
        return {name: cores[name].reset_where(self.states[name], self.episode_start) for name in self.states}

    # -- predict's public form -------------------------------------------------------------------------------
    def public(self, name: str = ACTING) -> dict[str, Tensor]:
        """The state ``TraceRL.predict`` returns: ``memory.<entry>`` for the network's core state and
        ``prev_action`` (the caller passes ``episode_start`` and ``prev_reward`` with the next observation)."""
        out = {f"memory.{k}": v for k, v in self.states[name].items()}
        out["prev_action"] = self.prev_action
        return out

    @classmethod
    def from_public(cls, state: Mapping[str, Tensor], episode_start: Any, prev_reward: Any,
                    device: torch.device | str | None, name: str = ACTING) -> "Carry":
        """The carry a ``predict`` state describes, with the caller's ``episode_start`` ([B] bool) and
        ``prev_reward`` ([B], None: zeros)."""
        prev_action = state["prev_action"]
        B = int(prev_action.shape[0])
        starts = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(B), device=device)
        reward = (torch.zeros(B, device=device) if prev_reward is None
                  else torch.as_tensor(np.asarray(prev_reward, dtype=np.float32).reshape(B), device=device))
        core_state = {k[len("memory."):]: v for k, v in state.items() if k.startswith("memory.")}
        carry = cls(states={name: core_state}, prev_action=prev_action, prev_reward=reward,
                    episode_start=torch.zeros(B, dtype=torch.bool, device=device))
        return carry.reset_where(starts)

    # -- checkpoints ------------------------------------------------------------------------------------------
    def tensors(self, single: str | None = None) -> dict[str, Tensor]:
        """Checkpoint entries: ``episode_start``, ``prev_action``, ``prev_reward`` and ``state.<net>.<entry>``
        (``state.<entry>`` for the network named ``single``, the format of the PPO family's collector)."""
        out = {"episode_start": self.episode_start, "prev_action": self.prev_action, "prev_reward": self.prev_reward}
        for name, state in self.states.items():
            prefix = "state." if name == single else f"state.{name}."
            out.update({f"{prefix}{k}": v for k, v in state.items()})
        return out

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, Tensor], names: list[str], device: torch.device | str | None,
                     single: str | None = None) -> "Carry":
        """Inverse of :meth:`tensors` for the networks ``names``."""
        states: dict[str, State] = {}
        for name in names:
            prefix = "state." if name == single else f"state.{name}."
            states[name] = {k[len(prefix):]: v.to(device) for k, v in tensors.items() if k.startswith(prefix)}
        return cls(states=states, prev_action=tensors["prev_action"].to(device),
                   prev_reward=tensors["prev_reward"].to(device), episode_start=tensors["episode_start"].to(device))


__all__ = ["ACTING", "Carry"]
