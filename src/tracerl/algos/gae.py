"""Generalized advantage estimation (Schulman et al. 2016).

    δ_t = r_t + γ V(s_{t+1}) (1 - done_t) - V(s_t)
    A_t = δ_t + γ λ (1 - done_t) A_{t+1}
    R_t = A_t + V(s_t)

``done_t`` is True when the episode ended at step t (terminated or truncated). Truncation is not
termination: the caller adds ``γ V(final observation)`` to ``r_t`` of truncated steps beforehand, so
the bootstrap survives the cut while the next episode's values never leak across it.

REINFORCE uses :func:`monte_carlo_returns` instead: the discounted sum of the rewards to the end of the episode,
with no bootstrap at all (a truncated episode's return simply ends at the truncation).
"""

from __future__ import annotations

import torch
from torch import Tensor


def compute_gae(
    rewards: Tensor, values: Tensor, dones: Tensor, last_value: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Advantages and returns, both ``[T, B]``.

    Args:
        rewards: ``[T, B]``, truncation bootstrap already folded in.
        values: ``[T, B]`` V(s_t).
        dones: ``[T, B]`` bool, the episode ended at step t.
        last_value: ``[B]`` V of the observation after the last step (ignored where ``dones[-1]``).
        gamma: discount γ.
        lam: GAE λ (1.0: Monte Carlo returns minus values; 0.0: one-step TD error).
    """
    T = rewards.shape[0]
    not_done = (~dones).to(rewards.dtype)
    next_values = torch.cat([values[1:], last_value.unsqueeze(0)], dim=0)
    deltas = rewards + gamma * next_values * not_done - values
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(last_value, dtype=rewards.dtype)
    decay = gamma * lam * not_done
    for t in range(T - 1, -1, -1):
        running = deltas[t] + decay[t] * running
        advantages[t] = running
    return advantages, advantages + values


def monte_carlo_returns(rewards: Tensor, dones: Tensor, gamma: float) -> Tensor:
    """Monte Carlo returns ``G_t = sum_{k>=0} γ^k r_{t+k}`` up to and including the step where the episode ends.

    ``G_t = r_t + γ (1 - done_t) G_{t+1}``, computed backwards; ``G`` after the last row counts as 0, so every
    sequence must end with ``dones[-1] = True`` (or padding) for the sums to be whole episodes. Nothing is
    bootstrapped: a truncated episode's return ends at the truncation like a terminated one's.

    Args:
        rewards: ``[T, B]``.
        dones: ``[T, B]`` bool, the episode ended at step t (terminated or truncated).
        gamma: discount γ.
    """
    not_done = (~dones).to(rewards.dtype)
    returns = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0]) if rewards.shape[0] else rewards.new_zeros(rewards.shape[1:])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * not_done[t] * running
        returns[t] = running
    return returns
