"""Visit counts of (observation, action) pairs over SimHash codes, for count-based (UCB) exploration.

An observation ``o`` (flattened, ``[obs_dim]``) maps to a ``k``-bit code with a fixed Gaussian projection
``A`` (``[k, obs_dim]``; Charikar's SimHash, as in Tang et al. 2017, "#Exploration: A Study of Count-Based
Exploration for Deep Reinforcement Learning")::

    phi(o) = sum_i [ (A o)_i > 0 ] 2^i                 (nearby observations share a code)
    bonus(o, a) = c / sqrt(1 + N(phi(o), a))           ("count": optimism for rarely taken actions)
    bonus(o, a) = c sqrt(ln(1 + N(phi(o))) / (1 + N(phi(o), a)))   ("ucb": UCB1, Auer et al. 2002)

where ``N(phi, a)`` counts how often the actors took ``a`` in an observation with code ``phi``. Added to the
action values when an actor picks its action, the bonus makes an action that was never tried in a rarely
seen observation worth a try, and fades as the pair is visited. That is the exploration epsilon-greedy lacks
when reaching the observation already takes a long exact action sequence: at the junction of a Passive
T-Maze of corridor ``L``, epsilon-greedy with ``epsilon ~ 1/L`` tries up or down about once per ``2e L``
episodes, whereas the bonus tries each on the first visits. The "count" bonus of an untried action stays
``c``, so a value gap wider than ``c`` hides it for ever; the "ucb" bonus grows with the log of the
observation's visits ``N(phi) = sum_a N(phi, a)``, so every action of an observation seen often enough is tried
(logarithmically often: the corridor of a T-Maze, seen at every step, keeps a bounded number of tries).
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
        split_start: count the first step of an episode apart from later steps with the same observation
            (the table doubles: code ``phi(o) + 2^k`` at an episode start). Where the start looks like
            later steps (the Active T-Maze's start cell is a corridor cell), only this makes the actions
            never tried at the start worth a try.
    """

    def __init__(self, obs_dim: int, n_actions: int, bits: int = 16, seed: int = 0, split_start: bool = False) -> None:
        super().__init__()
        if not 1 <= bits <= 24:
            raise ConfigError(f"count_hash_bits={bits!r} must be in [1, 24]")
        self.bits, self.split_start = bits, bool(split_start)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("projection", torch.randn(bits, obs_dim, generator=g))
        self.register_buffer("weights", 2 ** torch.arange(bits, dtype=torch.int64))
        rows = 2 ** (bits + 1) if self.split_start else 2**bits
        self.register_buffer("counts", torch.zeros(rows, n_actions, dtype=torch.float64))

    def codes(self, obs: Tensor, episode_start: Tensor | None = None) -> Tensor:
        """Table rows ``[B]`` (int64) of observations ``[B, obs_dim]``: their SimHash codes, plus ``2^k`` where
        ``episode_start`` ``[B]`` is set when the table splits episode starts (``episode_start`` is then
        required)."""
        bits = (obs.to(self.projection.dtype) @ self.projection.T) > 0
        code = (bits.to(torch.int64) * self.weights).sum(-1)
        if self.split_start:
            if episode_start is None:
                raise ValueError("HashedActionCounts: split_start=True needs episode_start")
            code = code + episode_start.to(code.device, torch.int64) * (2**self.bits)
        return code

    def bonus(self, obs: Tensor, coef: float, form: str = "count", episode_start: Tensor | None = None) -> Tensor:
        """The bonus of every action, ``[B, n_actions]`` (float32): ``form="count"``:
        ``coef / sqrt(1 + N(phi(o), a))``; ``"ucb"``: ``coef sqrt(ln(1 + N(phi(o))) / (1 + N(phi(o), a)))``."""
        n = self.counts[self.codes(obs, episode_start)]  # [B, n_actions]
        if form == "count":
            return (coef / torch.sqrt(1.0 + n)).to(torch.float32)
        if form == "ucb":
            return (coef * torch.sqrt(torch.log1p(n.sum(-1, keepdim=True)) / (1.0 + n))).to(torch.float32)
        raise ConfigError(f"count_bonus_form={form!r} must be 'count' or 'ucb'")

    def add(self, obs: Tensor, action: Tensor, episode_start: Tensor | None = None) -> None:
        """Count one visit of each ``(obs[b], action[b])`` (``obs`` ``[B, obs_dim]``, ``action`` ``[B]``)."""
        codes = self.codes(obs, episode_start)
        self.counts.index_put_((codes, action.to(torch.int64)), torch.ones_like(codes, dtype=torch.float64),
                               accumulate=True)


__all__ = ["HashedActionCounts"]
