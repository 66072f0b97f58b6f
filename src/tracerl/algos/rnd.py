"""Random Network Distillation (Burda et al. 2018, "Exploration by Random Network Distillation").

A fixed, randomly initialized target network ``f`` and a trained predictor ``f̂`` map a normalized
observation to an embedding; the intrinsic reward of reaching ``s'`` is the prediction error::

    i_t = || f̂(ŝ') - f(ŝ') ||²,   ŝ = clip((s - μ_s) / σ_s, -5, 5)

States seen often are predicted well, so their bonus falls. As in the paper: observations are
normalized by running statistics, the bonus is divided by the running std of the *non-episodic*
discounted intrinsic return (``r_int / σ(R_int)``), and the intrinsic return gets its own value head
and advantage (no episode ends), combined with the extrinsic one as ``A = A_ext + η A_int``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .normalization import RunningMeanStd


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(),
                         nn.Linear(hidden, out_dim))


class RND(nn.Module):
    """Target and predictor networks, observation and intrinsic-return statistics, and the predictor's optimizer.

    Args:
        obs_dim: width of a flat observation.
        n_envs: parallel envs (one intrinsic-return accumulator each).
        emb_dim: embedding width of the target/predictor (``rnd_emb_dim``).
        lr: the predictor's Adam learning rate (``rnd_lr``).
        gamma_int: discount of the intrinsic return (0.99 in the paper).
        hidden: hidden width of both networks.
    """

    def __init__(self, obs_dim: int, n_envs: int, emb_dim: int = 32, lr: float = 1e-3, gamma_int: float = 0.99,
                 hidden: int = 64) -> None:
        super().__init__()
        self.gamma_int = gamma_int
        self.target = _mlp(obs_dim, hidden, emb_dim)
        self.predictor = _mlp(obs_dim, hidden, emb_dim)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.obs_rms = RunningMeanStd((obs_dim,))
        self.int_rms = RunningMeanStd()
        self.register_buffer("int_ret", torch.zeros(n_envs, dtype=torch.float64))
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=lr)

    def normalize(self, obs: Tensor) -> Tensor:
        """``[..., obs_dim]`` -> clipped standardized observations."""
        mean, std = self.obs_rms.mean.to(obs.dtype), self.obs_rms.std.to(obs.dtype)
        return ((obs - mean) / std).clamp(-5.0, 5.0)

    def error(self, obs: Tensor) -> Tensor:
        """Prediction error ``||f̂(ŝ) - f(ŝ)||²`` per observation: ``[..., obs_dim] -> [...]``."""
        x = self.normalize(obs)
        return (self.predictor(x) - self.target(x)).pow(2).mean(-1)

    @torch.no_grad()
    def intrinsic_reward(self, next_obs: Tensor) -> tuple[Tensor, Tensor]:
        """Bonus of one step for every env: ``next_obs [B, obs_dim]`` -> (normalized ``[B]``, raw ``[B]``).

        Updates the observation statistics and the running std of the non-episodic intrinsic return.
        """
        self.obs_rms.update(next_obs)
        raw = self.error(next_obs)
        self.int_ret.mul_(self.gamma_int).add_(raw.to(torch.float64))
        self.int_rms.update(self.int_ret)
        return raw / self.int_rms.std.squeeze().to(raw.dtype), raw

    def train_predictor(self, obs: Tensor, epochs: int, batch_size: int, generator: torch.Generator | None = None
                        ) -> float:
        """Fit the predictor on ``obs [N, obs_dim]`` for ``epochs`` passes; return the mean loss."""
        total, n = 0.0, 0
        for _ in range(epochs):
            perm = torch.randperm(obs.shape[0], generator=generator)
            for start in range(0, obs.shape[0], batch_size):
                loss = self.error(obs[perm[start:start + batch_size].to(obs.device)]).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total, n = total + float(loss.detach()), n + 1
        return total / max(n, 1)


__all__ = ["RND"]
