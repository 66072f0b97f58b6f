"""``ActionCodec``: the off-policy algorithms' normalized actions (what their replay stores, their heads output and
their torsos read as the previous action) and the conversion to and from the env's actions.

The PPO family keeps *raw* actions instead (its action heads' samples, :mod:`tracerl.policies.distributions`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor

from ..errors import ConfigError, UnsupportedSpaceError


class ActionCodec:
    """Normalized actions of an action space: shapes, dtypes, previous-action features and env conversion.

    Box(d): stored ``float32 [d]`` in ``[-1, 1]``; env action ``low + (a + 1) / 2 (high - low)``.
    Discrete(n): stored ``int64 []``; env action ``a + start``; features one-hot ``[n]``.
    """

    def __init__(self, space: gym.Space) -> None:
        self.space = space
        if isinstance(space, spaces.Box):
            if not space.is_bounded("both"):
                raise ConfigError(f"off-policy continuous control needs finite action bounds, got {space!r}")
            self.discrete = False
            self.dim = int(np.prod(space.shape))
            self.shape: tuple[int, ...] = (self.dim,)
            self.dtype = torch.float32
            self.feat_dim = self.dim
            self._low = np.asarray(space.low, np.float64).reshape(-1)
            self._high = np.asarray(space.high, np.float64).reshape(-1)
        elif isinstance(space, spaces.Discrete):
            self.discrete = True
            self.n = int(space.n)
            self.start = int(space.start)
            self.shape = ()
            self.dtype = torch.int64
            self.feat_dim = self.n
        else:
            raise UnsupportedSpaceError(f"off-policy algorithms act in Box or Discrete action spaces, got {space!r}")

    def features(self, a: Tensor) -> Tensor:
        """``[..., *shape]`` normalized actions -> float ``[..., feat_dim]``."""
        return F.one_hot(a.long(), self.n).to(torch.float32) if self.discrete else a.to(torch.float32)

    def to_env(self, a: Tensor | np.ndarray) -> np.ndarray:
        """Normalized actions ``[B, *shape]`` -> env actions ``[B, *space.shape]``."""
        x = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
        if self.discrete:
            return (x.astype(np.int64) + self.start).astype(self.space.dtype)
        x = np.clip(x.astype(np.float64), -1.0, 1.0)
        env = self._low + (x + 1.0) / 2.0 * (self._high - self._low)
        env = np.clip(env, self._low, self._high)
        return env.reshape(*env.shape[:-1], *self.space.shape).astype(self.space.dtype)

    def from_env(self, a: np.ndarray) -> np.ndarray:
        """Env actions ``[B, *space.shape]`` -> normalized ``[B, *shape]`` (inverse of :meth:`to_env`)."""
        x = np.asarray(a)
        if self.discrete:
            return x.astype(np.int64) - self.start
        x = x.reshape(x.shape[0], -1).astype(np.float64)
        return (2.0 * (x - self._low) / (self._high - self._low) - 1.0).astype(np.float32)


__all__ = ["ActionCodec"]
