"""Hindsight credit: which earlier steps explain an outcome, as usefulness targets for the retention scorer.

Training passes that get each step's reward, action and episode end from the trainer (``training_inputs``) run a
pairwise predictor of each outcome from one earlier step of the pass's whole context and the action taken; the
steps that explain the outcome better than the step alone does become usefulness targets (:meth:`HindsightMixin.
_hindsight`). A replay of recent rewarded contexts (:class:`~tracerl.memory.hindsight.HindsightReplay`, the core's
extra state) tops every pass up; an optional loss predicts the outcome from the agent's own read
(:meth:`HindsightMixin._read_loss`).

A mixin of :class:`~tracerl.memory.strategic.StrategicMemoryCore`, which owns the parameters and settings it reads.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..base import Trace, TrainingInputs
from ..hindsight import HindsightContexts, HindsightReplay
from .features import time_features


class HindsightMixin:
    """The hindsight part of :class:`~tracerl.memory.strategic.StrategicMemoryCore`."""

    # set by StrategicMemoryCore.__init__
    hindsight_action_dim: int | None
    hindsight_max_steps: int
    hindsight_focus: float
    hindsight_replay: HindsightReplay
    embed: nn.Module
    scorer: nn.Module
    h_pred: nn.Module
    h_base: nn.Module
    h_read: nn.Module

    def get_extra_state(self) -> Tensor:
        """The hindsight replay, packed (saved with the state dict, so checkpoints resume it)."""
        return self.hindsight_replay.pack()

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, Tensor):
            raise ValueError(f"strategic memory: extra state must be a tensor, got {type(state).__name__}")
        self.hindsight_replay.unpack(state)

    @property
    def hindsight(self) -> bool:
        """True when the trainer should pass ``hindsight_reward`` and ``hindsight_action`` in ``replay``."""
        return self.hindsight_action_dim is not None

    def training_inputs(self) -> TrainingInputs:
        """Padded passes' ``step_mask`` always; with hindsight also each step's reward, action and episode end."""
        if not self.hindsight:
            return TrainingInputs(step_mask="step_mask")
        return TrainingInputs(reward="hindsight_reward", action="hindsight_action", episode_end="hindsight_end",
                              step_mask="step_mask")


    @staticmethod
    def _outcomes(replay: Mapping[str, Tensor]) -> Tensor:
        """``[T, B]`` bool: the steps with an outcome to explain, where a reward arrived or (``hindsight_end``,
        when the trainer marks it) an episode ended: an episode's outcome is worth explaining even when it is 0."""
        outcome = replay["hindsight_reward"] != 0
        if "hindsight_end" in replay:
            outcome = outcome | replay["hindsight_end"].bool()
        return outcome

    def _read_loss(self, y: Tensor, replay: Mapping[str, Tensor]) -> Tensor:
        """Outcome prediction from the read the agent acted on (``hindsight_read_coef > 0``)::

            L_read = mean_{t ∈ outcomes} (MLP([y_t; a_t]) - r_t)²

        over the steps where a reward arrived or an episode ended (the outcomes of :meth:`_hindsight`). Unlike
        an auxiliary loss averaged over every step, it is not diluted by the steps between outcomes (one in
        1,024 at CueDelay delay 1024): it trains the read (queries, keys, values, embeddings) to carry what
        explains the outcome of the action taken, a supervised signal where the policy gradient is noisy."""
        r = replay["hindsight_reward"].to(y.dtype)
        outcome = self._outcomes(replay)
        if not bool(outcome.any()):
            return y.new_zeros(())
        a = replay["hindsight_action"].to(y.dtype)
        pred = self.h_read(torch.cat([y[outcome], a[outcome]], dim=-1)).squeeze(-1)
        return (pred - r[outcome]).pow(2).mean()

    def _hindsight(self, raw: Tensor, times: Tensor, emb: Tensor, score: Tensor, valid0: Tensor, last_start: Tensor,
                   replay: Mapping[str, Tensor]) -> Trace:
        """Hindsight credit over the whole pool (training passes only).

        For every step ``t`` where a reward ``r_t != 0`` arrived or an episode ended (at most ``hindsight_max_steps`` of them,
        drawn at random), and every earlier step ``j`` of its episode held in the pool (the stored entries
        when the episode began before this call, and this call's steps), a pairwise predictor guesses the
        reward from that one past step, the current step and the action taken::

            r̂_tj = MLP([e_j; e_t; a_t]),    L_h = mean_{t, j} (r̂_tj - r_t)²

        A past step is useful for ``t`` as far as it explains the reward better than step ``t`` alone does: a
        second predictor ``r̂⁰_t = MLP([e_t; a_t])`` (its squared error added to ``L_h``; ``hindsight_pair_loss``
        is ``L_h`` without it) is the baseline, and
        with ``err_tj = (r̂_tj - r_t)²``, ``ē_t = (r̂⁰_t - r_t)²``, ``g_tj = max(ē_t - err_tj, 0)``;
        ``g_t / Σ_j g_tj`` is a usefulness target for the retention scorer's softmax over those steps
        (cross-entropy weighted by ``ē_t``, how much there was to explain; ``ē_t = r_t²`` when the baseline
        predicts 0, as it learns to for +-1 outcomes that the step alone cannot tell apart). The trainer may mark episode ends
        (``hindsight_end``): an outcome is worth explaining there even when the reward is 0 (a failed T-Maze
        episode scores 0, a success 1; without the failures the predictor could only learn "1"). The pool covers the whole
        context of the pass, not only the store, so the signal exists even in episodes where the store lost
        the step that mattered. Returns scalar ``hindsight_loss`` and ``hindsight_usefulness``.

        Averaged over every pair, the one pair that explains ``r_t`` carries ``1/P`` of the loss, so the
        predictor plateaus longer the longer the episode, and a pass with few rewarded steps gives a noisy
        gradient. The hindsight replay (:class:`HindsightReplay`) keeps recent rewarded contexts as raw inputs
        and tops every pass up to ``hindsight_max_steps`` of them, embedded again with the current parameters:
        on 1,024-step contexts the predictor singles out the cue after ~4x fewer gradient steps with 32-64
        contexts per step than with the 8 a PPO minibatch holds. With ``hindsight_focus = τ > 0`` the loss adds,
        per rewarded step, the error weighted by each pair's (detached) responsibility for the reward::

            L_h += mean_t Σ_j softmax_j(-err_tj / (τ r_t²)) err_tj

        which puts most of the gradient on the pairs that already explain the reward best (an EM-style
        assignment, as in multiple-instance learning); the plain mean keeps the other pairs calibrated.
        """
        B, P, E = emb.shape
        M = valid0.shape[1]
        T = P - M
        dev = emb.device
        a = replay["hindsight_action"].transpose(0, 1).to(emb.dtype)  # [B, T, A]
        r = replay["hindsight_reward"].transpose(0, 1).to(emb.dtype)  # [B, T]
        rows, steps = torch.nonzero(self._outcomes(replay).transpose(0, 1), as_tuple=True)
        if rows.numel() > self.hindsight_max_steps:
            pick = torch.randperm(rows.numel(), device=dev)[: self.hindsight_max_steps]
            rows, steps = rows[pick], steps[pick]
        ls = last_start.transpose(0, 1)[rows, steps]  # [K] start of each picked step's episode in this call
        j = torch.arange(T, device=dev)
        in_chunk = (j.unsqueeze(0) < steps.unsqueeze(1)) & (j.unsqueeze(0) >= ls.clamp_min(0).unsqueeze(1))
        in_store = (ls < 0).unsqueeze(1) & valid0[rows]
        past = torch.cat([in_store, in_chunk], dim=1)  # [K, P]
        cur = M + steps
        ctx = HindsightContexts(emb[rows], score[rows], past, emb[rows, cur], a[rows, steps], r[rows, steps])
        training = torch.is_grad_enabled()
        # Draw before adding: a pass never counts its own contexts twice.
        extra = self.hindsight_replay.sample(self.hindsight_max_steps - rows.numel(), dev) if training else None
        if training and rows.numel():
            self.hindsight_replay.add(raw[rows], times[rows], past, raw[rows, cur], times[rows, cur],
                                      ctx.action, ctx.reward)
        if extra is not None:
            e_past = self.embed(torch.cat([extra.raw, time_features(extra.times)], dim=-1))
            e_cur = self.embed(torch.cat([extra.cur_raw, time_features(extra.cur_time)], dim=-1))
            ctx = ctx.cat(HindsightContexts(e_past, self.scorer(e_past).squeeze(-1), extra.past, e_cur,
                                            extra.action.to(emb.dtype), extra.reward.to(emb.dtype)))
        if ctx.reward.numel() == 0:
            zero = emb.new_zeros(())
            return {"hindsight_loss": zero, "hindsight_pair_loss": zero, "hindsight_usefulness": zero}
        return self._hindsight_losses(ctx)

    def _hindsight_losses(self, ctx: "HindsightContexts") -> Trace:
        """The hindsight predictor's loss and the usefulness cross-entropy on ``K`` rewarded contexts."""
        K, P, E = ctx.e_past.shape
        past = ctx.past
        pair = torch.cat([ctx.e_past, ctx.e_cur.unsqueeze(1).expand(K, P, E), ctx.action.unsqueeze(1).expand(K, P, -1)], -1)
        r_t = ctx.reward.unsqueeze(1)  # [K, 1]
        err = (self.h_pred(pair).squeeze(-1) - r_t).pow(2)  # [K, P]
        pastf = past.to(err.dtype)
        loss = (err * pastf).sum() / pastf.sum().clamp_min(1.0)
        if self.hindsight_focus > 0:
            scale = self.hindsight_focus * r_t.pow(2).clamp_min(1e-6)  # [K, 1]; an outcome of 0 is sharpest
            resp = torch.softmax((-err.detach() / scale).masked_fill(~past, float("-inf")), dim=-1)
            resp = torch.nan_to_num(resp) * pastf  # rows with no past step: all zero
            loss = loss + (resp * err).sum(-1).mean()
        # A pair is useful as far as it explains the outcome better than the step alone does.
        base_err = (self.h_base(torch.cat([ctx.e_cur, ctx.action], -1)) - r_t).pow(2)  # [K, 1]
        n_past = pastf.sum(-1, keepdim=True)
        baseline = base_err.detach()
        gain = (baseline - err.detach()).clamp_min(0.0) * pastf
        total = gain.sum(-1)
        log_p = torch.log_softmax(ctx.score.masked_fill(~past, float("-inf")), dim=-1).masked_fill(~past, 0.0)
        ce = -(gain / total.unsqueeze(-1).clamp_min(1e-8) * log_p).sum(-1)
        useful = ((total > 0) & (n_past.squeeze(1) >= 2)).to(err.dtype) * baseline.squeeze(1)
        usefulness = (ce * useful).sum() / useful.sum().clamp_min(1e-8)
        return {"hindsight_loss": loss + base_err.mean(), "hindsight_pair_loss": loss, "hindsight_usefulness": usefulness}



__all__ = ["HindsightMixin"]
