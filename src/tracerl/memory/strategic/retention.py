"""Retention: which steps the strategic memory's store keeps, and how it learns to keep the useful ones.

After its read, step ``t`` is written to a free slot, or, when the store is full, the candidate with the lowest
priority ``π_j = (1 - ε) σ(ρ(e_j)) + ε u_j`` among the ``M`` entries and the new step is dropped (see the package
docstring, :mod:`tracerl.memory.strategic`, for the equations). Here: the exploration keep values ``u`` and the
annealing of ``ε`` (:meth:`RetentionMixin.set_training_progress`), the slot map of every step of a pass (the one
short integer loop over time), the running input moments of "novelty" exploration, and the usefulness loss that
trains the scorer ``ρ`` (:meth:`RetentionMixin.memory_losses`, which also hands on the hindsight losses).

A mixin of :class:`~tracerl.memory.strategic.StrategicMemoryCore`, which owns the parameters and settings it reads.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import Trace

EXPLORE_MODES = ("direction", "reservoir", "novelty")
"""Retention exploration modes (see :meth:`RetentionMixin._keep_values`)."""


class RetentionMixin:
    """The retention part of :class:`~tracerl.memory.strategic.StrategicMemoryCore`."""

    # set by StrategicMemoryCore.__init__
    max_entries: int
    learn_retention: bool
    retention_coef: float
    retention_explore: float
    retention_explore_end: float
    retention_explore_fraction: float
    retention_explore_mode: str
    hindsight_coef: float
    hindsight_read_coef: float
    scorer: nn.Module
    input_count: Tensor
    input_mean: Tensor
    input_m2: Tensor

    def memory_losses_required(self) -> str | None:
        """A learned retention's scorer is trained only by the usefulness loss."""
        if not self.learn_retention:
            return None
        return ("the strategic memory learns its retention (learn_retention=True) from its own usefulness loss; "
                "pass memory_kwargs={'learn_retention': False} (random, reservoir-style retention)")

    def set_training_progress(self, progress: float) -> None:
        """Set ``ε`` for training progress ``progress`` in [0, 1] (called by the trainer every rollout)."""
        if not self.learn_retention:
            self.retention_explore = 1.0
            return
        frac = min(max(progress, 0.0) / self.retention_explore_fraction, 1.0)
        self.retention_explore = 1.0 + frac * (self.retention_explore_end - 1.0)


    def _keep_values(
        self, x: Tensor, e_new: Tensor, z0: Tensor, last_start: Tensor, replay: Mapping[str, Tensor] | None
    ) -> tuple[Tensor, Tensor]:
        """Exploration keep values ``u`` ``[T, B]`` of the new steps (raw inputs ``x [T, B, D]``, write embeddings
        ``e_new [T, B, E]``) and each step's exploration direction ``z`` ``[T, B, E]``.

        ``"reservoir"``: ``u ~ U(0, 1)``. ``"direction"``: every episode draws ``z ~ N(0, I)`` and
        ``u_j = σ(z · ê_j / sqrt(E))`` (``ê`` the standardized write embedding), so an episode keeps entries
        that stand out along one random direction: structured exploration that retains outliers of the stream
        (a rare cue) far more often than uniform sampling. ``"novelty"``: weighted reservoir sampling
        (Efraimidis and Spirakis, 2006) with the step's surprise as its weight::

            u_j = U_j^(1 / w_j),   w_j = 1 + min(Σ_k (x_jk - μ_k)² / (σ_k² + 10⁻⁴), 10⁴),   U_j ~ U(0, 1)

        (``μ``, ``σ²``: running moments of the raw inputs of the training passes, so acting and evaluation
        leave the module unchanged; before any training pass every weight is clipped alike: reservoir). The
        store then holds a sample of the episode drawn with probability growing with how unusual each step
        is: typical steps share the slots uniformly, as reservoir sampling would, while a step unlike the
        stream (a cue flag seen once per episode) is kept almost surely. Without exploration (``ε = 0``) all
        modes give zero.
        """
        T, B, E = e_new.shape
        if replay is not None and "keep_u" in replay:
            return replay["keep_u"].to(e_new.dtype), replay["explore_dir"].to(e_new.dtype)
        exploring = self.retention_explore > 0
        fresh = (torch.randn(T, B, E, device=e_new.device, dtype=e_new.dtype) if exploring
                 and self.retention_explore_mode == "direction" else e_new.new_zeros(T, B, E))
        rows = torch.arange(B, device=e_new.device).unsqueeze(0).expand(T, B)
        z = torch.where((last_start >= 0).unsqueeze(-1), fresh[last_start.clamp_min(0), rows], z0.unsqueeze(0))
        if not exploring:
            return e_new.new_zeros(T, B), z
        if self.retention_explore_mode == "reservoir":
            return torch.rand(T, B, device=e_new.device, dtype=e_new.dtype), z
        if self.retention_explore_mode == "novelty":
            return self.novelty_keep_values(x), z
        e_std = (e_new - e_new.mean(-1, keepdim=True)) / (e_new.std(-1, keepdim=True) + 1e-6)
        return torch.sigmoid((z * e_std).sum(-1) / math.sqrt(E)), z

    def surprise(self, x: Tensor) -> Tensor:
        """``[..., D] -> [...]``: squared standardized distance of raw inputs from the running input moments."""
        var = self.input_m2 / self.input_count.clamp_min(1.0)
        d = ((x.to(torch.float64) - self.input_mean).pow(2) / (var + 1e-4)).sum(-1)
        return d.clamp(max=1e4).to(x.dtype)

    def novelty_keep_values(self, x: Tensor) -> Tensor:
        """``[T, B, D] -> [T, B]``: weighted-reservoir keys ``U^(1/w)`` with weight ``w = 1 + surprise(x)``."""
        w = 1.0 + self.surprise(x)
        u = torch.rand(x.shape[:-1], device=x.device, dtype=x.dtype).clamp_min(1e-12)
        return u.pow(1.0 / w)

    @torch.no_grad()
    def _update_input_moments(self, x: Tensor) -> None:
        """Merge a batch ``[N, D]`` of raw inputs into the running mean and second moment (Chan et al.)."""
        n = float(x.shape[0])
        if n == 0:
            return
        xb = x.to(torch.float64)
        mean_b = xb.mean(0)
        m2_b = (xb - mean_b).pow(2).sum(0)
        total = self.input_count + n
        delta = mean_b - self.input_mean
        self.input_mean += delta * (n / total)
        self.input_m2 += m2_b + delta.pow(2) * (self.input_count * n / total)
        self.input_count += n

    @staticmethod
    def _apply_write(slots: Tensor, valid: Tensor, write: Tensor, new_index: int) -> tuple[Tensor, Tensor]:
        """Slots ``[B, M]`` (pool indices) and validity after writing pool item ``new_index`` to slot ``write``
        (``[B]``; ``M`` means not written)."""
        M = slots.shape[1]
        hit = F.one_hot(write, M + 1)[:, :M].bool()
        return torch.where(hit, torch.full_like(slots, new_index), slots), valid | hit

    def _slot_maps(
        self, valid0: Tensor, episode_start: Tensor, priority: Tensor, replay_write: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The store each step reads and where each step is written.

        Returns ``slots [T, B, M]`` (pool index held by each slot), ``valid [T, B, M]`` bool and
        ``write [T, B]`` long (slot written by step ``t``, ``M`` when the step was dropped).
        """
        T, B = episode_start.shape
        M = valid0.shape[1]
        dev = valid0.device
        cur = torch.arange(M, device=dev).expand(B, M)
        valid = valid0
        all_slots, all_valid, all_write = [], [], []
        rows = torch.arange(B, device=dev)
        for t in range(T):
            valid = valid & ~episode_start[t].unsqueeze(1)
            all_slots.append(cur)
            all_valid.append(valid)
            if replay_write is not None:
                w = replay_write[t].long()
            else:
                free = ~valid
                first_free = torch.argmax(free.to(torch.int8), dim=1)
                cand = torch.cat([priority[rows.unsqueeze(1), cur], priority[:, M + t].unsqueeze(1)], dim=1)
                w = torch.where(free.any(dim=1), first_free, torch.argmin(cand, dim=1))
            all_write.append(w)
            cur, valid = self._apply_write(cur, valid, w, M + t)
        return torch.stack(all_slots), torch.stack(all_valid), torch.stack(all_write)

    # -- learning signal --------------------------------------------------------------------------
    def memory_losses(self, trace: Trace, mask: Tensor) -> dict[str, tuple[Tensor, float]]:
        """``{"memory/usefulness_loss": (L_use, retention_coef)}`` from a training pass's trace (``mask`` [T, B]
        marks real steps); empty when retention is not learned."""
        read = ({"memory/read_loss": (trace["hindsight_read_loss"], self.hindsight_read_coef)}
                if "hindsight_read_loss" in trace else {})
        if not self.learn_retention or self.retention_coef == 0.0:
            if "hindsight_loss" in trace:
                return {"memory/hindsight_loss": (trace["hindsight_loss"], self.hindsight_coef), **read}
            return read
        M = self.max_entries
        valid = trace["valid"] > 0.5
        att = trace["attention"][..., :M].detach() * valid
        mass = att.sum(-1)  # [T, B]
        logits = trace["retention"].masked_fill(~valid, float("-inf"))
        log_p = torch.log_softmax(logits, dim=-1).masked_fill(~valid, 0.0)
        ce = -(att / mass.unsqueeze(-1).clamp_min(1e-8) * log_p).sum(-1)
        # Steps whose read is focused say which entries matter; diffuse (near-uniform) reads say little.
        n_valid = valid.sum(-1).to(mass.dtype)
        p = att / mass.unsqueeze(-1).clamp_min(1e-8)
        entropy = -(p * p.clamp_min(1e-12).log()).sum(-1)
        sharpness = (1.0 - entropy / n_valid.clamp_min(2.0).log()).clamp(0.0, 1.0).detach()
        weight = mask * mass * sharpness * (n_valid >= 2).to(mass.dtype)
        denom = mask.sum().clamp_min(1.0)
        loss = (weight * ce).sum() / denom
        out = {"memory/usefulness_loss": (loss, self.retention_coef)}
        if "hindsight_loss" in trace:
            out["memory/usefulness_loss"] = (loss + trace["hindsight_usefulness"], self.retention_coef)
            out["memory/hindsight_loss"] = (trace["hindsight_loss"], self.hindsight_coef)
        return {**out, **read}



__all__ = ["EXPLORE_MODES", "RetentionMixin"]
