"""Generalized advantage estimation (Schulman et al. 2016).

    δ_t = r_t + γ V(s_{t+1}) (1 - done_t) - V(s_t)
    A_t = δ_t + γ λ (1 - done_t) A_{t+1}
    R_t = A_t + V(s_t)

``done_t`` is True when the episode ended at step t (terminated or truncated). Truncation is not
termination: the caller adds ``γ V(final observation)`` to ``r_t`` of truncated steps beforehand, so
the bootstrap survives the cut while the next episode's values never leak across it.
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
