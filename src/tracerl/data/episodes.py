"""Whole episodes out of fixed-length rollouts, for Monte Carlo returns (REINFORCE).

A rollout of ``T`` steps cuts the episodes that are still running at its end. REINFORCE needs each step's return
to the end of its episode, so :class:`EpisodeStore` holds those running episodes' steps back: after every
rollout it joins each env's held-back steps with the new ones, hands out the steps of the episodes that have
ended (one sequence per env, from an episode start to the last episode end, zero-padded to a common length) and
keeps the rest for a later rollout.

Every handed-out sequence starts on an episode's first step (``episode_start = True``), where the memory resets
to its initial state, so replaying it from the initial state reproduces the memory states the policy had while
acting exactly (no stored mid-episode state is needed). The held-back steps are part of the collector's carry,
so a checkpoint keeps them and a resumed run trains on exactly the same episodes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError

STEP_FIELDS = ("obs", "episode_start", "prev_action", "prev_reward", "action", "log_prob", "value", "reward",
               "env_reward", "done", "valid")
"""Per-step ``[T, B, ...]`` fields of a :class:`~tracerl.data.rollout.RolloutBuffer` an episode keeps (plus the
core's recorded decisions as ``replay/<name>`` and the aux modules' infos as ``info/<name>``)."""


def rollout_steps(buf: Any) -> dict[str, Tensor]:
    """The per-step fields of a RolloutBuffer as one dict of ``[T, B, ...]`` tensors."""
    out: dict[str, Tensor] = {}
    for k in STEP_FIELDS:
        v = getattr(buf, k)
        if v is None:
            v = torch.ones_like(buf.reward) if k == "valid" else torch.zeros_like(buf.reward)
        out[k] = v
    out.update({f"replay/{k}": v for k, v in buf.replay.items()})
    out.update({f"info/{k}": v for k, v in buf.info.items()})
    return out


def _max0(x: Tensor) -> int:
    """The largest element as an int, 0 for an empty tensor."""
    return int(x.max()) if x.numel() else 0


class EpisodeStore:
    """Holds the steps of each env's running episode across rollouts; hands out whole episodes.

    Args:
        n_envs: envs of the vector env.
        max_steps: the most steps held back for one env; an episode still running after that many steps raises
            :class:`~tracerl.errors.ConfigError` (REINFORCE needs episodes that end: add a time limit).
    """

    def __init__(self, n_envs: int, max_steps: int) -> None:
        self.n_envs = int(n_envs)
        self.max_steps = int(max_steps)
        self.pending: dict[str, Tensor] = {}  # [P, B, ...], env b's held-back steps in rows [0, length[b])
        self.length = torch.zeros(self.n_envs, dtype=torch.int64)
        self.whole = torch.ones(self.n_envs, dtype=torch.bool)  # the held-back steps start on an episode start

    def clear(self) -> None:
        """Forget every held-back step (the envs were reset: every env starts a fresh episode)."""
        self.pending = {}
        self.length = torch.zeros(self.n_envs, dtype=torch.int64)
        self.whole = torch.ones(self.n_envs, dtype=torch.bool)

    def lose_heads(self) -> None:
        """The envs continue episodes whose first steps are not held here (e.g. a checkpoint written before the
        store existed): the rest of those episodes is masked out, the following ones are whole again."""
        self.clear()
        self.whole = torch.zeros(self.n_envs, dtype=torch.bool)

    # -- checkpoints ------------------------------------------------------------------------------
    def carry_tensors(self) -> dict[str, Tensor]:
        """Tensors that restore this store exactly (``length``, ``whole`` and the held-back rows)."""
        out = {"length": self.length.clone(), "whole": self.whole.clone()}
        if _max0(self.length) > 0:
            out.update({f"rows.{k}": v for k, v in self.pending.items()})
        return out

    def load_carry(self, tensors: dict[str, Tensor], device: torch.device | str = "cpu") -> None:
        """Restore :meth:`carry_tensors`' output (ValueError when it does not fit ``n_envs``)."""
        length, whole = tensors["length"].to(torch.int64).cpu(), tensors["whole"].to(torch.bool).cpu()
        if length.shape != (self.n_envs,) or whole.shape != (self.n_envs,):
            raise ValueError(f"held-back episode steps for {tuple(length.shape)} envs, {self.n_envs} here")
        rows = {k[len("rows."):]: v.to(device) for k, v in tensors.items() if k.startswith("rows.")}
        P = _max0(length)
        if P and (not rows or any(v.shape[:2] != (P, self.n_envs) for v in rows.values())):
            raise ValueError(f"held-back episode steps: expected [{P}, {self.n_envs}, ...] rows")
        if bool((length < 0).any()) or P > self.max_steps:
            raise ValueError(f"held-back episode lengths {length.tolist()} are outside [0, {self.max_steps}]")
        self.pending, self.length, self.whole = (rows if P else {}), length, whole

    # -- whole episodes ---------------------------------------------------------------------------
    def take(self, steps: dict[str, Tensor]) -> dict[str, Tensor]:
        """Join the held-back steps with a rollout's ``steps`` (``[T, B, ...]``, see :func:`rollout_steps`); return
        the whole episodes and hold back the steps of the episodes still running.

        Returns ``[L, B, ...]`` sequences: env ``b``'s column holds its held-back steps, then its new steps, up to and
        including its last episode end (``L`` = the longest such column; 0 when no episode ended). Rows after a
        column's end are padding: zero, with ``episode_start = True``. ``mask`` ``[L, B]`` is 1 on the steps that
        count: not padding, not in an episode that ended in an env crash (``valid = 0`` on any of its steps), and
        not in an episode whose first steps were lost (:meth:`lose_heads`).
        """
        done = steps["done"]
        T, B = done.shape
        if B != self.n_envs:
            raise ValueError(f"EpisodeStore for {self.n_envs} envs got a rollout of {B}")
        device = done.device
        if self.pending and set(self.pending) != set(steps):
            raise ValueError(f"held-back steps have fields {sorted(self.pending)}, the rollout {sorted(steps)}")
        P = _max0(self.length)
        length = self.length.to(device)
        J = P + T
        j = torch.arange(J, device=device)[:, None]  # [J, 1]
        n = length + T  # [B] steps per env
        src = torch.where(j < length, j, P + j - length).clamp(max=J - 1)  # row of the joined tensor
        col = torch.arange(B, device=device)[None, :]
        joined = {}
        for k, v in steps.items():
            both = torch.cat([self.pending[k][:P], v], dim=0) if P else v
            joined[k] = both[src, col]  # [J, B, ...]
        real = j < n  # [J, B]
        ended = joined["done"].bool() & real
        last = torch.where(ended, j.expand(J, B), torch.full_like(src, -1)).max(0).values  # [B]
        cut = last + 1  # whole-episode steps per env
        L = _max0(cut)
        keep = n - cut
        if _max0(keep) > self.max_steps:
            b = int(keep.argmax())
            raise ConfigError(
                f"env index {b} has run one episode for {int(keep[b])} steps without ending: REINFORCE "
                f"(returns='monte_carlo') learns from whole episodes only and holds at most "
                f"max_episode_steps={self.max_steps} steps of a running episode; give the env a time limit "
                "(gymnasium.wrappers.TimeLimit), raise max_episode_steps, or use algo='ppo' or 'a2c'")
        inside = j[:L] < cut  # [L, B]
        out: dict[str, Tensor] = {}
        for k, v in joined.items():
            part = v[:L]
            m = inside.reshape(L, B, *([1] * (part.dim() - 2)))
            out[k] = torch.where(m, part, torch.zeros((), dtype=part.dtype, device=device))
        out["episode_start"] = out["episode_start"].bool() | ~inside
        # one mask value per episode: the minimum of its steps' valid flags (a crash drops the whole episode)
        valid = out["valid"].float() * inside.float()
        ep_valid = torch.empty_like(valid)
        running = torch.ones(B, device=device)
        for t in range(L - 1, -1, -1):
            running = torch.where(out["done"][t].bool(), valid[t], torch.minimum(running, valid[t]))
            ep_valid[t] = running
        first_start = torch.where(out["episode_start"][:L] & inside, j[:L].expand(L, B),
                                  torch.full((L, B), L, device=device)).min(0).values if L else cut
        lost = (~self.whole.to(device))[None, :] & (j[:L] < first_start[None, :])
        out["mask"] = ep_valid * inside.float() * (~lost).float()
        # hold back the rest
        Pn = _max0(keep)
        jn = torch.arange(Pn, device=device)[:, None]
        src_n = (cut[None, :] + jn).clamp(max=max(J - 1, 0))
        held = jn < keep[None, :]
        self.pending = {}
        if Pn:
            for k, v in joined.items():
                part = v[src_n, col]
                m = held.reshape(Pn, B, *([1] * (part.dim() - 2)))
                self.pending[k] = torch.where(m, part, torch.zeros((), dtype=part.dtype, device=device))
        self.whole = (self.whole.to(device) | (cut > 0)).cpu()
        self.length = keep.cpu()
        return out


__all__ = ["EpisodeStore", "STEP_FIELDS", "rollout_steps"]
