"""Recurrent Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications") on
replayed windows, for Box actions (and Discrete ones, below).

Separate memories for the actor and for each of the twin critics (Ni et al. 2022 found shared ones unstable).
With ``h`` each network's memory features at a step (replayed from the stored state after the burn-in)::

    target    y_t = r_t + gamma (1 - d_t) [ min_i Qbar_i(hbar_{t+1}, a') - alpha log pi(a'|h_{t+1}) ],  a' ~ pi(.|h_{t+1})
    critics   L_Q = sum_i mean_t w (Q_i(h_t, a_t) - y_t)^2
    actor     L_pi = mean_t [ alpha log pi(a~_t|h_t) - min_i Q_i(h_t, a~_t) ],  a~_t = tanh(mu + sigma eps) (reparameterized)
    alpha     L_alpha = -mean_t log(alpha) (log pi(a~_t|h_t) + Hbar),   Hbar = target entropy (default -dim A)
    targets   theta_bar <- (1 - tau) theta_bar + tau theta

Means are masked means over the windows' training steps (the actor's, over the last one only with
``mask_non_terminal``); ``w`` are prioritized replay's importance weights (1 otherwise). Truncated episodes
bootstrap on their final observation, terminated ones do not.

Discrete actions (Christodoulou 2019, "Soft Actor-Critic for Discrete Action Settings"): the actor outputs a
categorical ``pi(.|h)``, the critics ``Q(h, .)`` for every action, and expectations replace samples::

    y_t   = r_t + gamma (1 - d_t) sum_a pi(a|h_{t+1}) [ min_i Qbar_i(hbar_{t+1}, a) - alpha log pi(a|h_{t+1}) ]
    L_pi  = mean_t sum_a pi(a|h_t) [ alpha log pi(a|h_t) - min_i Q_i(h_t, a) ]
    L_alpha = -mean_t log(alpha) (sum_a pi(a|h_t) log pi(a|h_t) + Hbar),   Hbar default 0.5 log|A|
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from ..config_checks import ANY, POSITIVE, POSITIVE_INT
from ..data.replay import SequenceBatch
from ..policies import ActionCodec, ContinuousQ, DiscreteQ, SquashedGaussianActor
from ..policies.heads import mlp
from ..policies.policy import PolicyConfig
from .critics import TwinCriticAlgorithm, torso_factory
from .offpolicy import OffPolicyConfig, actor_mask, batch_state, unroll
from .targets import masked_mean, nstep_targets


@dataclass
class SACConfig(OffPolicyConfig):
    """Hyperparameters of recurrent SAC (fields of OffPolicyConfig plus these)."""

    ent_coef_init: float = 1.0
    """Initial entropy temperature alpha."""
    learn_ent_coef: bool = True
    """Adapt alpha to the target entropy (False keeps ent_coef_init)."""
    target_entropy: float | None = None
    """Target entropy of the adaptive temperature (None: -action_dim; Discrete: 0.5 log n)."""
    actor_update_interval: int = 1
    """Critic gradient steps per actor (and temperature) gradient step."""

    _field_ranges = {"ent_coef_init": POSITIVE, "target_entropy": ANY, "actor_update_interval": POSITIVE_INT}

    def validate(self) -> None:
        super().validate()
        if not (self.ent_coef_init > 0 and math.isfinite(self.ent_coef_init)):
            raise self._bad("ent_coef_init", "> 0 and finite")
        if self.actor_update_interval < 1:
            raise self._bad("actor_update_interval", ">= 1")


class SAC(TwinCriticAlgorithm):
    """Recurrent SAC's networks, optimizers and update (see the module docstring for the losses).

    Args:
        obs_dim: width of the flat observation.
        codec: action codec of a ``Box`` (or ``Discrete``) action space.
        config: :class:`SACConfig`.
        policy_config: memory and torso settings (:class:`~tracerl.policies.PolicyConfig`).
        memory_factory: None, or a callable returning a fresh :class:`MemoryCore` per network.
        input_index: observation columns the networks read (None: all).
        device: where the networks live.
        observation_space: the env's observation space, so that image leaves get a CNN encoder (see
            :class:`~tracerl.policies.RecurrentTorso`); None: the flat MLP encoder.
    """

    name = "sac"
    trains_memory_losses = False
    """Whether its updates train a memory core's own losses (``MemoryCore.memory_losses``)."""

    def __init__(self, obs_dim: int, codec: ActionCodec, config: SACConfig, policy_config: PolicyConfig,
                 memory_factory: Any = None, input_index: list[int] | None = None,
                 device: torch.device | str = "cpu", observation_space: gym.Space | None = None) -> None:
        config.validate()
        self.discrete = codec.discrete
        self.config, self.codec, self.device = config, codec, torch.device(device)
        torso = torso_factory(obs_dim, codec, policy_config, memory_factory, input_index, observation_space)
        hid = tuple(config.head_hidden)
        self.actor_torso = torso().to(self.device)
        self.critic_torsos = nn.ModuleList([torso() for _ in range(2)]).to(self.device)
        if self.discrete:
            d = codec.n
            self.actor: nn.Module = mlp(self.actor_torso.output_dim, hid, d).to(self.device)  # logits
            self.critics = nn.ModuleList([DiscreteQ(t.output_dim, d, hid, dueling=False)
                                          for t in self.critic_torsos]).to(self.device)
            default_entropy = 0.5 * math.log(d)
        else:
            d = codec.dim
            self.actor = SquashedGaussianActor(self.actor_torso.output_dim, d, hid).to(self.device)
            self.critics = nn.ModuleList([ContinuousQ(t.output_dim, d, hid) for t in self.critic_torsos]).to(self.device)
            default_entropy = -float(d)
        self.init_targets_and_optimizers()
        self.log_alpha = torch.tensor(math.log(config.ent_coef_init), device=self.device, requires_grad=True)
        self.target_entropy = float(default_entropy if config.target_entropy is None else config.target_entropy)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.learning_rate)

    # -- interface (torsos, acting_torso, modules: TwinCriticAlgorithm) -----------------------------------
    @torch.no_grad()
    def act(self, features: dict[str, Tensor], explore: bool = True, obs: Tensor | None = None,
            episode_start: Tensor | None = None, record: bool = True) -> Tensor:
        """Normalized actions ``[B, d]``: a sample of pi (explore) or ``tanh(mu)``; Discrete: ``[B]`` indices
        sampled from pi or its argmax. ``obs``, ``episode_start`` and ``record`` are unused (R2D2's exploration
        reads them)."""
        if self.discrete:
            logits = self.actor(features["actor"])
            if not explore:
                return logits.argmax(-1)
            return torch.multinomial(torch.softmax(logits, -1), 1).squeeze(-1)
        a, _ = self.actor(features["actor"], deterministic=not explore)
        return a

    def extra_tensors(self) -> dict[str, Tensor]:
        return {"log_alpha": self.log_alpha}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_opt, "critic": self.critic_opt, "alpha": self.alpha_opt}

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.detach().exp()

    # -- update ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def soft_targets(self, batch: SequenceBatch, a_next: Tensor, logp_next: Tensor) -> tuple[Tensor, Tensor]:
        """``y_t = r_t + gamma (1 - d_t) [min_i Qbar_i(hbar_{t+1}, a_{t+1}) - alpha log pi(a_{t+1}|h_{t+1})]`` for rows
        ``burn_in ..`` (``[T', N]``), given the actor's actions ``a_next [T', N, d]`` and log-densities at every row;
        also whether each target exists."""
        cfg, b = self.config, batch.burn_in
        boot = self.target_q_min(batch, a_next) - self.alpha * logp_next
        y, ok, _ = nstep_targets(batch.reward[b:], batch.has_action[b:], batch.valid[b:], boot, batch.terminal[b:],
                                 cfg.gamma, 1)
        return y, ok

    def update(self, batch: SequenceBatch) -> tuple[dict[str, float], Tensor]:
        """One gradient step on a batch of windows; returns statistics and ``|TD|`` ``[T', N]`` of critic 0."""
        if self.discrete:
            return self._update_discrete(batch)
        cfg, b = self.config, batch.burn_in
        train, act = batch.train[b:], batch.action[b:]
        w = batch.weight.unsqueeze(0)
        alpha = self.alpha

        h_pi = unroll(self.actor_torso, batch, batch_state(batch, "actor"), grad=True)
        a_pi, logp = self.actor(h_pi)
        y, y_ok = self.soft_targets(batch, a_pi.detach(), logp.detach())
        mask = train & y_ok
        h_q = self.critic_features(batch)
        stats, td = self.critic_step([c(h, act) for c, h in zip(self.critics, h_q)], y, mask, w)

        if self.n_updates % cfg.actor_update_interval == 0:
            amask = actor_mask(train, cfg.mask_non_terminal)
            q_pi = torch.min(*[c(h.detach(), a_pi) for c, h in zip(self.critics, h_q)])
            actor_loss = masked_mean(alpha * logp - q_pi, amask)
            self.descend(self.actor_opt, actor_loss, "actor")
            stats["actor_loss"] = float(actor_loss.detach())
            stats["entropy"] = float(-masked_mean(logp.detach(), amask))
            if cfg.learn_ent_coef:
                alpha_loss = -masked_mean(self.log_alpha * (logp.detach() + self.target_entropy), amask)
                self.alpha_opt.zero_grad(set_to_none=True)
                alpha_loss.backward()
                self.alpha_opt.step()
        for c in self.critics:
            c.zero_grad(set_to_none=True)
        self.n_updates += 1
        if self.n_updates % cfg.target_update_interval == 0:
            self.update_critic_targets()
        stats["alpha"] = float(self.alpha)
        return stats, td

    def _update_discrete(self, batch: SequenceBatch) -> tuple[dict[str, float], Tensor]:
        """Discrete SAC: expectations over the categorical policy replace sampled actions."""
        cfg, b = self.config, batch.burn_in
        reward, train = batch.reward[b:], batch.train[b:]
        act = batch.action[b:].long().unsqueeze(-1)
        w = batch.weight.unsqueeze(0)
        alpha = self.alpha
        logp_all = torch.log_softmax(self.actor(unroll(self.actor_torso, batch, batch_state(batch, "actor"), grad=True)),
                                     -1)  # [T', N, n]
        p_all = logp_all.exp()
        with torch.no_grad():
            boot = (p_all.detach() * (self.target_q_min(batch) - alpha * logp_all.detach())).sum(-1)
            y, y_ok, _ = nstep_targets(reward, batch.has_action[b:], batch.valid[b:], boot, batch.terminal[b:],
                                       cfg.gamma, 1)
        mask = train & y_ok
        q_all = [c(h) for c, h in zip(self.critics, self.critic_features(batch))]
        stats, td = self.critic_step([qa.gather(-1, act).squeeze(-1) for qa in q_all], y, mask, w)
        if self.n_updates % cfg.actor_update_interval == 0:
            amask = actor_mask(train, cfg.mask_non_terminal)
            q_min = torch.min(q_all[0].detach(), q_all[1].detach())
            actor_loss = masked_mean((p_all * (alpha * logp_all - q_min)).sum(-1), amask)
            self.descend(self.actor_opt, actor_loss, "actor")
            neg_entropy = (p_all.detach() * logp_all.detach()).sum(-1)
            stats["actor_loss"] = float(actor_loss.detach())
            stats["entropy"] = float(-masked_mean(neg_entropy, amask))
            if cfg.learn_ent_coef:
                alpha_loss = -masked_mean(self.log_alpha * (neg_entropy + self.target_entropy), amask)
                self.alpha_opt.zero_grad(set_to_none=True)
                alpha_loss.backward()
                self.alpha_opt.step()
        self.n_updates += 1
        if self.n_updates % cfg.target_update_interval == 0:
            self.update_critic_targets()
        stats["alpha"] = float(self.alpha)
        return stats, td


__all__ = ["SAC", "SACConfig"]
