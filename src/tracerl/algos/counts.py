"""Visit counts of (observation, action) pairs over SimHash codes, for count-based (UCB) exploration.

An observation ``o`` (flattened, ``[obs_dim]``) maps to a ``k``-bit code with a fixed Gaussian projection
``A`` (``[k, obs_dim]``; Charikar's SimHash, as in Tang et al. 2017, "#Exploration: A Study of Count-Based
Exploration for Deep Reinforcement Learning")::

    phi(o) = sum_i [ (A o)_i > 0 ] 2^i                 (nearby observations share a code)
    bonus(o, a) = c / sqrt(1 + N(phi(o), a))           (UCB-style optimism for rarely taken actions)

where ``N(phi, a)`` counts how often the actors took ``a`` in an observation with code ``phi``. Added to the
action values when an actor picks its action, the bonus makes an action that was never tried in a rarely
seen observation worth a try, and fades as the pair is visited. That is the exploration epsilon-greedy lacks
when reaching the observation already takes a long exact action sequence: at the junction of a Passive
T-Maze of corridor ``L``, epsilon-greedy with ``epsilon ~ 1/L`` tries up or down about once per ``2e L``
episodes, whereas the bonus tries each on the first visits.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError


class HashedActionCounts(nn.Module):
    """Counts ``N[code, action]`` (``[2^bits, n_actions]``, float64 buffer) and the UCB bonus from them.

    Args:
        obs_dim: width of the flattened observation.
        n_actions: number of discrete actions.
        bits: code length ``k`` (the table has ``2^k`` rows; 1..24).
        seed: seed of the projection ``A`` (fixed, so a reloaded agent hashes as before).
    """

    def __init__(self, obs_dim: int, n_actions: int, bits: int = 16, seed: int = 0) -> None:
        super().__init__()
        if not 1 <= bits <= 24:
            raise ConfigError(f"count_hash_bits={bits!r} must be in [1, 24]")
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("projection", torch.randn(bits, obs_dim, generator=g))
        self.register_buffer("weights", 2 ** torch.arange(bits, dtype=torch.int64))
        self.register_buffer("counts", torch.zeros(2**bits, n_actions, dtype=torch.float64))

    def codes(self, obs: Tensor) -> Tensor:
        """SimHash codes ``[B]`` (int64) of observations ``[B, obs_dim]``."""
        bits = (obs.to(self.projection.dtype) @ self.projection.T) > 0
        return (bits.to(torch.int64) * self.weights).sum(-1)

    def bonus(self, obs: Tensor, coef: float) -> Tensor:
        """``coef / sqrt(1 + N(phi(o), a))`` for every action: ``[B, n_actions]`` (float32)."""
        return (coef / torch.sqrt(1.0 + self.counts[self.codes(obs)])).to(torch.float32)

    def add(self, obs: Tensor, action: Tensor) -> None:
        """Count one visit of each ``(obs[b], action[b])`` (``obs`` ``[B, obs_dim]``, ``action`` ``[B]``)."""
        codes = self.codes(obs)
        self.counts.index_put_((codes, action.to(torch.int64)), torch.ones_like(codes, dtype=torch.float64),
                               accumulate=True)


__all__ = ["HashedActionCounts"]
