"""The off-policy algorithms' heads: plain MLPs on a torso's features ``h [..., H]``
(:class:`~tracerl.policies.torso.RecurrentTorso`), on normalized actions (:class:`~tracerl.policies.ActionCodec`).

* :class:`SquashedGaussianActor` (SAC): ``a = tanh(u)``, ``u ~ N(mu(h), sigma(h))`` with the log-density
  ``log pi(a|h) = log N(u; mu, sigma) - sum_i log(1 - tanh(u_i)^2)`` (Haarnoja et al. 2018, appendix C).
* :class:`DeterministicActor` (TD3): ``a = tanh(mu(h))``.
* :class:`ContinuousQ`: ``Q(h_t, a_t)`` from the critic torso's features and an action in ``[-1, 1]^d``.
* :class:`DiscreteQ` (R2D2): ``Q(h_t, .)`` for every discrete action, optionally dueling
  (``Q = V + A - mean A``, Wang et al. 2016).
* :func:`mlp`: the MLP they are made of (SAC's discrete actor is one: logits).

The PPO family's heads (an action distribution per action space, the critic) are in
:mod:`tracerl.policies.distributions`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
"""Clamp of the SAC actor's log standard deviation."""


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``Linear + activation`` per ``hidden`` width, then ``Linear(last, out_dim)`` (PyTorch's default init)."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        layers += [nn.Linear(last, h), activation()]
        last = h
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class SquashedGaussianActor(nn.Module):
    """SAC's tanh-Gaussian policy head on features ``h [..., H]`` (actions in ``[-1, 1]^d``)."""

    def __init__(self, in_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(in_dim, hidden, 2 * act_dim)

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
        self.net = mlp(in_dim, hidden, act_dim)

    def forward(self, h: Tensor) -> Tensor:
        return torch.tanh(self.net(h))


class ContinuousQ(nn.Module):
    """``Q(h, a) = MLP([h, a])``: ``h [..., H]``, ``a [..., d]`` -> ``[...]``."""

    def __init__(self, in_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(in_dim + act_dim, hidden, 1)

    def forward(self, h: Tensor, a: Tensor) -> Tensor:
        return self.net(torch.cat([h, a], -1)).squeeze(-1)


class DiscreteQ(nn.Module):
    """``Q(h, .) [..., n]``; dueling: ``V(h) + A(h, .) - mean_a A(h, a)``."""

    def __init__(self, in_dim: int, n_actions: int, hidden: tuple[int, ...], dueling: bool = True) -> None:
        super().__init__()
        self.dueling = dueling
        self.adv = mlp(in_dim, hidden, n_actions)
        self.value = mlp(in_dim, hidden, 1) if dueling else None

    def forward(self, h: Tensor) -> Tensor:
        a = self.adv(h)
        if self.value is None:
            return a
        return self.value(h) + a - a.mean(-1, keepdim=True)


__all__ = ["LOG_STD_MAX", "LOG_STD_MIN", "ContinuousQ", "DeterministicActor", "DiscreteQ", "SquashedGaussianActor", "mlp"]
