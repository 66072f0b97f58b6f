"""What recurrent SAC and TD3 share: an actor torso and twin critic torsos (separate memories), frozen target
copies of the critics, and the twin-critic steps of their updates.

With ``h`` each network's memory features at a step (replayed from the stored state after the burn-in)::

    target value  min_i Qbar_i(hbar_t, a_t)     (discrete critics: min_i Qbar_i(hbar_t, .) for every action)
    critics       L_Q = sum_i mean_t w (Q_i(h_t, a_t) - y_t)^2,   |TD_t| = |Q_1(h_t, a_t) - y_t|
    targets       theta_bar <- (1 - tau) theta_bar + tau theta    (critic torsos and heads)

Means are masked means over the windows' training steps; ``w`` are prioritized replay's importance weights.
A subclass builds ``actor_torso``, ``actor``, ``critic_torsos`` and ``critics`` in its own order (which fixes
their random initialization), then calls :meth:`TwinCriticAlgorithm.init_targets_and_optimizers`.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import gymnasium as gym
import torch
from torch import Tensor, nn

from ..data.replay import SequenceBatch
from ..memory import MemoryCore
from ..policies import ActionCodec, RecurrentTorso
from ..policies.policy import PolicyConfig
from .offpolicy import OffPolicyConfig, batch_state, clip_and_step, unroll, unroll_target
from .targets import masked_mean, polyak_update


def torso_factory(obs_dim: int, codec: ActionCodec, policy_config: PolicyConfig, memory_factory: Any = None,
                  input_index: list[int] | None = None,
                  observation_space: gym.Space | None = None) -> Callable[[], RecurrentTorso]:
    """A callable returning a fresh :class:`RecurrentTorso` per call (its core from ``memory_factory``, if any;
    with ``observation_space``, image leaves get the CNN encoder that ``policy_config.image_encoder`` selects)."""

    def torso() -> RecurrentTorso:
        core: MemoryCore | None = memory_factory() if memory_factory is not None else None
        return RecurrentTorso(obs_dim, codec, policy_config, core, input_index, observation_space)

    return torso


class TwinCriticAlgorithm:
    """Base of :class:`~tracerl.algos.sac.SAC` and :class:`~tracerl.algos.td3.TD3`: the twin critics' targets,
    optimizers, loss step and Polyak update, and the torso/module bookkeeping of the off-policy interface."""

    name: str
    config: OffPolicyConfig
    actor_torso: RecurrentTorso
    actor: nn.Module
    critic_torsos: nn.ModuleList
    critics: nn.ModuleList

    def init_targets_and_optimizers(self) -> None:
        """Frozen copies of both critics (torsos and heads), Adam on the actor (torso and head) and on both
        critics at ``config.learning_rate``, and the update counter."""
        self.target_torsos = copy.deepcopy(self.critic_torsos).requires_grad_(False)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        lr = self.config.learning_rate
        self.actor_opt = torch.optim.Adam([*self.actor_torso.parameters(), *self.actor.parameters()], lr=lr)
        self.critic_opt = torch.optim.Adam([*self.critic_torsos.parameters(), *self.critics.parameters()], lr=lr)
        self.n_updates = 0

    # -- interface ------------------------------------------------------------------------------------
    def torsos(self) -> dict[str, RecurrentTorso]:
        return {"actor": self.actor_torso, "critic0": self.critic_torsos[0], "critic1": self.critic_torsos[1]}

    def acting_torso(self) -> str:
        return "actor"

    def modules(self) -> dict[str, nn.Module]:
        return {"actor_torso": self.actor_torso, "actor": self.actor, "critic_torsos": self.critic_torsos,
                "critics": self.critics, "target_torsos": self.target_torsos, "target_critics": self.target_critics}

    # -- update steps ---------------------------------------------------------------------------------
    @torch.no_grad()
    def target_q_min(self, batch: SequenceBatch, action: Tensor | None = None) -> Tensor:
        """``min_i Qbar_i(hbar_t, a_t)`` ``[T', N]`` of the target critics at rows ``burn_in ..`` for actions
        ``a [T', N, d]``; with ``action=None`` (discrete critics) ``min_i Qbar_i(hbar_t, .)`` ``[T', N, n]``."""
        v = []
        for i, (tt, tq) in enumerate(zip(self.target_torsos, self.target_critics)):
            h = unroll_target(tt, batch, batch_state(batch, f"critic{i}"), self.config.include_first_step_in_targets)
            v.append(tq(h) if action is None else tq(h, action))
        return torch.min(v[0], v[1])

    def critic_features(self, batch: SequenceBatch) -> list[Tensor]:
        """Each online critic torso's features ``[T', N, H]`` at rows ``burn_in ..`` (with gradient)."""
        return [unroll(t, batch, batch_state(batch, f"critic{i}"), grad=True) for i, t in enumerate(self.critic_torsos)]

    def critic_step(self, q: list[Tensor], y: Tensor, mask: Tensor, weight: Tensor) -> tuple[dict[str, float], Tensor]:
        """One gradient step on ``L_Q`` given both critics' values ``q`` (each ``[T', N]``) at the replayed actions,
        the targets ``y [T', N]``, the steps in the loss ``mask [T', N]`` and the importance weights ``[1, N]``.

        Returns:
            statistics (``critic_loss``, ``q_mean``, ``critic_grad_norm``) and ``|TD|`` ``[T', N]`` of critic 0
            (0 outside ``mask``).
        """
        critic_loss = sum(masked_mean(weight * (qi - y) ** 2, mask) for qi in q)
        norm = self.descend(self.critic_opt, critic_loss, "critic")
        stats = {"critic_loss": float(critic_loss.detach()), "q_mean": float(masked_mean(q[0].detach(), mask)),
                 "critic_grad_norm": norm}
        return stats, (q[0].detach() - y).abs() * mask

    def descend(self, optimizer: torch.optim.Optimizer, loss: Tensor, what: str) -> float:
        """Backpropagate ``loss`` into ``optimizer``'s (cleared) gradients, clip them and step; the gradient norm."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return clip_and_step(optimizer, [p for g in optimizer.param_groups for p in g["params"]],
                             self.config.max_grad_norm, f"{self.name.upper()} {what}")

    def update_critic_targets(self) -> None:
        """Polyak-average both critics (torsos and heads) into their targets with ``config.tau``."""
        polyak_update(self.target_torsos, self.critic_torsos, self.config.tau)
        polyak_update(self.target_critics, self.critics, self.config.tau)


__all__ = ["TwinCriticAlgorithm", "torso_factory"]
