"""Action sampling with one random stream per sub-env, so a rollout does not depend on how envs are grouped.

The usual collector samples a whole batch ``[1, B]`` from the agent's torch stream: which numbers a sub-env draws
depends on how many sub-envs sit before it in the batch. Env runners split the ``n_envs`` sub-envs of one agent
into groups, and a run with N runners must give exactly the rollouts of one runner with all the sub-envs. Here
sub-env ``g`` (its global index in ``0 .. n_envs - 1``) owns a ``torch.Generator`` seeded from ``(base_seed, g)``
and its action is drawn from that generator alone:

* Categorical / MultiCategorical: Gumbel-max, ``argmax(logits - log(-log(u)))`` with ``u ~ U[0, 1)`` per category
  (an exact sample; padding categories, logit ``-1e9``, never win);
* DiagGaussian: ``mean + std * n`` with ``n ~ N(0, 1)`` per action dim (the same formula as the distribution's);
* Bernoulli: ``u < sigmoid(logits)`` with ``u ~ U[0, 1)`` per dim.

Any other distribution raises ConfigError naming it. Log-probs, modes and entropies are the distribution's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..policies.distributions import ActionDist, BernoulliDist, CategoricalDist, DiagGaussianDist, MultiCategoricalDist


def env_stream_seed(base_seed: int, env_index: int, salt: int = 0) -> int:
    """The seed of sub-env ``env_index``'s sampling generator (``salt``: a runner's restart count)."""
    return int(np.random.SeedSequence([int(base_seed), int(env_index), int(salt)]).generate_state(1, np.uint64)[0])


def env_generators(base_seed: int, first_env: int, n_envs: int, salt: int = 0) -> list[torch.Generator]:
    """Generators of sub-envs ``first_env .. first_env + n_envs - 1`` (global indices)."""
    gens = []
    for g in range(first_env, first_env + n_envs):
        gen = torch.Generator()
        gen.manual_seed(env_stream_seed(base_seed, g, salt))
        gens.append(gen)
    return gens


def _per_row(gens: Sequence[torch.Generator], shape: tuple[int, ...], normal: bool) -> Tensor:
    """``[1, B, *shape]`` draws, row ``b`` from ``gens[b]`` (uniform in [0, 1) or standard normal)."""
    draw = torch.randn if normal else torch.rand
    return torch.stack([draw(shape, generator=g) for g in gens])[None]


def sample_per_env(dist: ActionDist, gens: Sequence[torch.Generator]) -> Tensor:
    """A raw action ``[1, B, *raw_shape]`` from ``dist`` (batch shape ``[1, B]``), row ``b`` drawn from ``gens[b]``."""
    with torch.no_grad():
        if isinstance(dist, (CategoricalDist, MultiCategoricalDist)):
            logits = dist.logits.detach()
            u = _per_row(gens, tuple(logits.shape[2:]), normal=False)
            return (logits - torch.log(-torch.log(u))).argmax(dim=-1)
        if isinstance(dist, DiagGaussianDist):
            return dist.mean + dist.std * _per_row(gens, tuple(dist.mean.shape[2:]), normal=True)
        if isinstance(dist, BernoulliDist):
            u = _per_row(gens, tuple(dist.logits.shape[2:]), normal=False)
            return (u < torch.sigmoid(dist.logits)).to(torch.float32)
    raise ConfigError(f"env runners cannot sample per sub-env from a {type(dist).__name__} action distribution "
                      "(supported: CategoricalDist, MultiCategoricalDist, DiagGaussianDist, BernoulliDist)")


class _PerEnvDist:
    """``dist`` with :meth:`sample` drawn per sub-env; everything else is the distribution's own."""

    def __init__(self, dist: ActionDist, gens: Sequence[torch.Generator]) -> None:
        self._dist = dist
        self._gens = gens

    def sample(self) -> Tensor:
        return sample_per_env(self._dist, self._gens)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dist, name)


class PerEnvSamplingPolicy:
    """An acting view of an actor-critic whose ``forward_full`` distributions sample per sub-env (for
    :class:`~tracerl.data.rollout.RolloutCollector`); every other attribute and call is the policy's."""

    def __init__(self, policy: Any, gens: list[torch.Generator]) -> None:
        self.policy = policy
        self.gens = gens

    def forward_full(self, *args: Any, **kwargs: Any) -> Any:
        out = self.policy.forward_full(*args, **kwargs)
        return dataclasses.replace(out, dist=_PerEnvDist(out.dist, self.gens))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.policy(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        policy = self.__dict__.get("policy")
        if policy is None:
            raise AttributeError(name)
        return getattr(policy, name)


__all__ = ["PerEnvSamplingPolicy", "env_generators", "env_stream_seed", "sample_per_env"]
