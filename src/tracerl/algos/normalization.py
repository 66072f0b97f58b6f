"""Running statistics and reward normalization.

``RunningMeanStd`` merges batch moments with the parallel algorithm of Chan et al. (1979).
``ReturnNormalizer`` divides rewards by the running standard deviation of the discounted return
``R_t = γ R_{t-1} (1 - done_{t-1}) + r_t`` (the reward scaling of Engstrom et al. 2020, as in
SB3's ``VecNormalize(norm_reward=True)``); its statistics are buffers, so they live in checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class RunningMeanStd(nn.Module):
    """Mean and variance of a stream of ``[N, *shape]`` batches (buffers: ``mean``, ``var``, ``count``)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: Tensor) -> None:
        """Fold ``batch`` ``[N, *shape]`` into the statistics."""
        batch = batch.detach().to(torch.float64)
        n = batch.shape[0]
        if n == 0:
            return
        b_mean = batch.mean(0)
        b_var = batch.var(0, unbiased=False)
        delta = b_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        m2 = self.var * self.count + b_var * n + delta.pow(2) * self.count * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    @property
    def std(self) -> Tensor:
        return (self.var + 1e-8).sqrt()


class ReturnNormalizer(nn.Module):
    """Scale rewards by the running std of the discounted return (per-env return accumulators in ``ret``).

    Args:
        n_envs: number of parallel envs.
        gamma: the discount of the return whose std is tracked.
        clip: rewards are clipped to ``[-clip, clip]`` after scaling.
    """

    def __init__(self, n_envs: int, gamma: float, clip: float = 10.0) -> None:
        super().__init__()
        self.gamma = gamma
        self.clip = clip
        self.rms = RunningMeanStd()
        self.register_buffer("ret", torch.zeros(n_envs, dtype=torch.float64))

    @torch.no_grad()
    def __call__(self, reward: Tensor, done: Tensor) -> Tensor:  # type: ignore[override]
        """Normalize one step's rewards ``[n_envs]`` and update the statistics; ``done`` [n_envs] ends returns.

        Called once per vector step: on CPU the same float64 update runs in numpy on views of the buffers
        (:meth:`step_tensors` is the tensor form, used on other devices)."""
        if self.ret.device.type != "cpu" or reward.device.type != "cpu":
            return self.step_tensors(reward, done)
        r = reward.numpy().astype(np.float64)
        ret, mean, var, count = (t.numpy() for t in (self.ret, self.rms.mean, self.rms.var, self.rms.count))
        ret *= self.gamma
        ret += r
        n = ret.shape[0]  # RunningMeanStd.update on the batch ret (Chan et al.), in place
        b_mean, b_var = ret.mean(), ret.var()
        delta = b_mean - mean
        total = count + n
        m2 = var * count + b_var * n + delta**2 * count * n / total
        mean += delta * n / total
        var[...] = m2 / total
        count[...] = total
        ret[done.numpy()] = 0.0
        reward32 = reward.numpy()  # divided in float32 by the float32 std, as the tensor form does
        scaled = np.clip(reward32 / np.float32(np.sqrt(var + 1e-8)), -self.clip, self.clip)
        return torch.from_numpy(np.asarray(scaled, dtype=reward32.dtype))

    @torch.no_grad()
    def step_tensors(self, reward: Tensor, done: Tensor) -> Tensor:
        """:meth:`__call__` with tensor ops (any device)."""
        self.ret.mul_(self.gamma).add_(reward.to(torch.float64))
        self.rms.update(self.ret)
        self.ret.masked_fill_(done.to(self.ret.device), 0.0)
        scaled = reward / self.rms.std.squeeze().to(reward.dtype)
        return scaled.clamp(-self.clip, self.clip)

    def resize(self, n_envs: int) -> None:
        """Track ``n_envs`` envs from now on (a new vector env): the return statistics are kept, every env's
        running return restarts at 0."""
        if n_envs != self.ret.shape[0]:
            self.ret = torch.zeros(n_envs, dtype=self.ret.dtype, device=self.ret.device)


__all__ = ["ReturnNormalizer", "RunningMeanStd"]
