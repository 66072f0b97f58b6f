"""Recurrent TD3 (Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods") on
replayed windows, for Box actions.

Separate memories for the actor and the twin critics; target copies of all three. With ``h`` each network's
memory features (replayed from the stored state after the burn-in)::

    target smoothing  a' = clip(mubar(hbar_{t+1}) + clip(N(0, sigma~), -c, c), -1, 1)
    target            y_t = r_t + gamma (1 - d_t) min_i Qbar_i(hbar_{t+1}, a')
    critics           L_Q = sum_i mean_t w (Q_i(h_t, a_t) - y_t)^2
    actor (delayed)   L_mu = -mean_t Q_1(h_t, mu(h_t))       every policy_delay critic steps,
                      followed by the Polyak update of every target network
    exploration       a_t = clip(mu(h_t) + N(0, sigma), -1, 1)

Actions are normalized to ``[-1, 1]^d``; means are masked means over the windows' training steps.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from ..config_checks import NON_NEGATIVE, POSITIVE_INT
from ..data.replay import SequenceBatch
from ..errors import ConfigError
from ..policies import ActionCodec, ContinuousQ, DeterministicActor
from ..policies.policy import PolicyConfig
from .critics import TwinCriticAlgorithm, torso_factory
from .offpolicy import OffPolicyConfig, actor_mask, batch_state, unroll, unroll_target
from .targets import masked_mean, nstep_targets, polyak_update


@dataclass
class TD3Config(OffPolicyConfig):
    """Hyperparameters of recurrent TD3 (fields of OffPolicyConfig plus these)."""

    policy_delay: int = 2
    """Critic gradient steps per actor step (and per target update)."""
    target_noise: float = 0.2
    """Std of the target policy smoothing noise (normalized action units)."""
    noise_clip: float = 0.5
    """Clip of the target policy smoothing noise."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise added to the actor's action while collecting."""

    _field_ranges = {"policy_delay": POSITIVE_INT, "target_noise": NON_NEGATIVE, "noise_clip": NON_NEGATIVE,
                     "exploration_noise": NON_NEGATIVE}

    def validate(self) -> None:
        super().validate()
        if self.policy_delay < 1:
            raise self._bad("policy_delay", ">= 1")
        for name in ("target_noise", "noise_clip", "exploration_noise"):
            if not getattr(self, name) >= 0:
                raise self._bad(name, ">= 0")


class TD3(TwinCriticAlgorithm):
    """Recurrent TD3's networks, optimizers and update (arguments as :class:`~tracerl.algos.sac.SAC`)."""

    name = "td3"
    trains_memory_losses = False
    """Whether its updates train a memory core's own losses (``MemoryCore.memory_losses``)."""

    def __init__(self, obs_dim: int, codec: ActionCodec, config: TD3Config, policy_config: PolicyConfig,
                 memory_factory: Any = None, input_index: list[int] | None = None,
                 device: torch.device | str = "cpu", observation_space: gym.Space | None = None) -> None:
        if codec.discrete:
            raise ConfigError("algo='td3' acts in Box action spaces; use algo='r2d2' for Discrete actions")
        config.validate()
        self.config, self.codec, self.device = config, codec, torch.device(device)
        torso = torso_factory(obs_dim, codec, policy_config, memory_factory, input_index, observation_space)
        d, hid = codec.dim, tuple(config.head_hidden)
        self.actor_torso = torso().to(self.device)
        self.actor = DeterministicActor(self.actor_torso.output_dim, d, hid).to(self.device)
        self.critic_torsos = nn.ModuleList([torso() for _ in range(2)]).to(self.device)
        self.critics = nn.ModuleList([ContinuousQ(t.output_dim, d, hid) for t in self.critic_torsos]).to(self.device)
        self.target_actor_torso = copy.deepcopy(self.actor_torso).requires_grad_(False)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.init_targets_and_optimizers()

    # -- interface (torsos, acting_torso: TwinCriticAlgorithm) ------------------------------------------
    @torch.no_grad()
    def act(self, features: dict[str, Tensor], explore: bool = True, obs: Tensor | None = None,
            episode_start: Tensor | None = None, record: bool = True) -> Tensor:
        """``mu(h)``, plus clipped Gaussian noise when exploring: ``[B, d]`` in ``[-1, 1]``. ``obs``,
        ``episode_start`` and ``record`` are unused (R2D2's exploration reads them)."""
        a = self.actor(features["actor"])
        if explore and self.config.exploration_noise > 0:
            a = (a + self.config.exploration_noise * torch.randn_like(a)).clamp(-1.0, 1.0)
        return a

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "target_actor_torso": self.target_actor_torso, "target_actor": self.target_actor}

    def extra_tensors(self) -> dict[str, Tensor]:
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_opt, "critic": self.critic_opt}

    def update(self, batch: SequenceBatch) -> tuple[dict[str, float], Tensor]:
        """One critic gradient step (and, every ``policy_delay``, an actor step and target update)."""
        cfg, b = self.config, batch.burn_in
        reward, train = batch.reward[b:], batch.train[b:]
        act = batch.action[b:]
        w = batch.weight.unsqueeze(0)
        with torch.no_grad():
            hb_pi = unroll_target(self.target_actor_torso, batch, batch_state(batch, "actor"),
                                  cfg.include_first_step_in_targets)
            a_next = self.target_actor(hb_pi)
            noise = (cfg.target_noise * torch.randn_like(a_next)).clamp(-cfg.noise_clip, cfg.noise_clip)
            a_next = (a_next + noise).clamp(-1.0, 1.0)
            y, y_ok, _ = nstep_targets(reward, batch.has_action[b:], batch.valid[b:], self.target_q_min(batch, a_next),
                                       batch.terminal[b:], cfg.gamma, 1)
        mask = train & y_ok
        h_q = self.critic_features(batch)
        stats, td = self.critic_step([c(h, act) for c, h in zip(self.critics, h_q)], y, mask, w)
        self.n_updates += 1
        if self.n_updates % cfg.policy_delay == 0:
            h_pi = unroll(self.actor_torso, batch, batch_state(batch, "actor"), grad=True)
            actor_loss = -masked_mean(self.critics[0](h_q[0].detach(), self.actor(h_pi)),
                                      actor_mask(train, cfg.mask_non_terminal))
            self.descend(self.actor_opt, actor_loss, "actor")
            self.critics.zero_grad(set_to_none=True)
            stats["actor_loss"] = float(actor_loss.detach())
            if (self.n_updates // cfg.policy_delay) % cfg.target_update_interval == 0:
                polyak_update(self.target_actor_torso, self.actor_torso, cfg.tau)
                polyak_update(self.target_actor, self.actor, cfg.tau)
                self.update_critic_targets()
        return stats, td


__all__ = ["TD3", "TD3Config"]
