"""Strategic episodic memory: a bounded store of past steps, learned retention, soft-attention recall.

The memory of seed 001 (``StrategicMemoryBuffer``), under the memory contract. Each step ``t`` of an
episode arrives as a raw input ``x_t`` (for :class:`StrategicMemoryBuffer`: the observation, the
previous action and the previous reward) at episode time ``τ_t`` (steps since the episode started)::

    e_t  = MLP_w([x_t; φ(τ_t)])                                    write embedding, mem_dim wide
    φ(τ) = [log(1+τ)/8, sin(k·log(1+τ)), cos(k·log(1+τ))]_{k=1,2,4}  time features

Recall: the current step attends over the entries ``S_t`` of the store (at most ``M = max_entries``,
all from the current episode) and itself, with ``H`` heads of width ``d = mem_dim / H``::

    ℓ_hj = (W_q^h e_t)·(W_k^h e_j) / sqrt(d) - λ_h · log(1 + τ_t - τ_j)      j ∈ S_t ∪ {t}
    a_h  = softmax_j ℓ_hj,   r_t = W_o [Σ_j a_hj W_v^h e_j]_{h=1..H}
    y_t  = [e_t; r_t]                                               output, 2·mem_dim wide

Entries are stored raw (``x_j`` and ``τ_j``) and embedded again with the current parameters at every
read, so a training pass that replays the same store sends gradients into the write embedding of every
entry that was read, however long ago it was written.

Retention: after the read, step ``t`` is written. While the store has a free slot it takes it; when it
is full, the candidate with the lowest priority among the ``M`` entries and the new step is dropped
(if that is the new step, nothing is written)::

    π_j = (1 - ε) · σ(ρ(e_j)) + ε · u_j

``ρ`` is the retention scorer (an MLP on the write embedding), ``u_j`` a keep value drawn when ``j`` is
written (``retention_explore_mode``: ``U(0, 1)`` for "reservoir", along a random direction per episode for
"direction", surprise-weighted reservoir keys for "novelty"; see ``_keep_values``), and ``ε`` the exploration
weight: ``ε = 1`` with "reservoir" is reservoir sampling (the store holds a uniform random subset of the
episode), ``ε = 0`` trusts the scorer. ``set_training_progress``
anneals ``ε`` from 1 to ``retention_explore_end`` over the first ``retention_explore_fraction`` of
training when retention is learned, and keeps it at 1 (reservoir) when it is not.

Learned retention (``learn_retention=True``) trains ``ρ`` from how useful each entry turned out to be:
at every step the attention mass the entries received (averaged over heads, gradient stopped) is a
target distribution for the softmax of their retention scores::

    L_use = Σ_t m_t k_t · CE( ā_t / m_t , softmax_j ρ(e_j) ),   ā_tj = mean_h a_hj,  m_t = Σ_{j ∈ S_t} ā_tj

where ``k_t = 1 - H(ā_t / m_t) / log|S_t|`` is the read's sharpness (a focused read says which entry
mattered; a near-uniform one says little), weighted by ``retention_coef`` (logged as
``memory/usefulness_loss``). With ``hindsight_action_dim`` set (``StrategicMemoryBuffer`` does), training
passes also get each step's reward and action from the trainer and add *hindsight credit*: a pairwise
predictor of a reward from one earlier step of the pass's whole context (not only the store) and the
action taken; the steps that explain the reward become usefulness targets too (see ``_hindsight``).

Cost per step is O(M), independent of episode length. The eviction decisions and keep values are
returned in the trace (``write_slot``, ``keep_u``) and declared in :meth:`replay_spec`: the rollout
stores them and the PPO update passes them back (``forward_replay``) so training replays exactly the
store the agent acted with. With ``ε = 0`` (the default outside a training schedule) the core is
deterministic, and stepping one step at a time equals one call on the whole sequence.

State (batch-first): ``entries`` ``[M, D]`` raw inputs, ``times`` ``[M]`` their episode times,
``keep_u`` ``[M]``, ``valid`` ``[M]`` (``> 0.5`` marks a filled slot) and ``step`` ``[1]``, the episode time
of the next step. The retention scores are in the trace (``retention``), not the state: they are
recomputed from the entries with the current scorer at every step.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import AddressableCore, State, StateSpec, TensorSpec, Trace, TrainingInputs, check_inputs
from .hindsight import HindsightContexts, HindsightReplay
from .registry import register_memory
from .transformer import last_episode_start

_TIME_FREQS = (1.0, 2.0, 4.0)
EXPLORE_MODES = ("direction", "reservoir", "novelty")
"""Retention exploration modes (see :meth:`StrategicMemoryCore._keep_values`)."""
TIME_FEATURES = 1 + 2 * len(_TIME_FREQS)


def time_features(tau: Tensor) -> Tensor:
    """``φ(τ)``: ``[...] -> [..., TIME_FEATURES]`` smooth features of ``log(1 + τ)``."""
    lt = torch.log1p(tau.clamp_min(0.0)).unsqueeze(-1)
    parts = [lt / 8.0]
    for k in _TIME_FREQS:
        parts += [torch.sin(k * lt), torch.cos(k * lt)]
    return torch.cat(parts, dim=-1)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"strategic memory: {name} must be an int >= 1, got {value!r}")
    return value


class StrategicMemoryCore(AddressableCore):
    """The strategic episodic memory (see the module docstring for the equations).

    Args:
        input_dim: width ``D`` of a raw step input.
        mem_dim: width of the write embedding and of the read (the output is ``2 * mem_dim``).
        max_entries: ``M``, the store's capacity.
        n_heads: attention heads (must divide ``mem_dim``).
        embed_layers: hidden layers of the write-embedding MLP.
        learn_retention: train the retention scorer from usefulness (else reservoir sampling).
        retention_coef: weight of the usefulness loss.
        retention_explore_end: final exploration weight ``ε`` of the learned-retention schedule.
        retention_explore_fraction: fraction of training over which ``ε`` anneals from 1.
        hindsight_action_dim: width of the action the hindsight reward predictor reads (None: no hindsight).
        hindsight_coef: weight of the hindsight predictor's loss.
        hindsight_max_steps: rewarded steps per pass the hindsight predictor trains on (drawn at random).
        hindsight_focus: temperature of the focused hindsight loss (0: off); see ``_hindsight``.
        hindsight_replay: capacity (in rewarded steps) of the hindsight replay that tops every training pass up
            to ``hindsight_max_steps`` rewarded contexts (0: off); see :class:`HindsightReplay`.
        hindsight_read_coef: weight of the outcome prediction from the agent's read (0: off); see ``_read_loss``.
    """

    memory_name = "strategic"
    input_form = "raw_steps"  # entries are the steps the agent saw, re-embedded at every read
    training_options = frozenset({"learn_retention", "retention_coef"})

    def __init__(
        self,
        input_dim: int,
        mem_dim: int = 32,
        max_entries: int = 16,
        n_heads: int = 4,
        embed_layers: int = 1,
        learn_retention: bool = True,
        retention_coef: float = 0.01,
        retention_explore_end: float = 0.0,
        retention_explore_fraction: float = 0.1,
        retention_explore_mode: str = "direction",
        hindsight_action_dim: int | None = None,
        hindsight_coef: float = 0.5,
        hindsight_max_steps: int = 64,
        hindsight_focus: float = 0.0,
        hindsight_replay: int = 1024,
        hindsight_read_coef: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_dim = _positive_int("input_dim", input_dim)
        self.mem_dim = _positive_int("mem_dim", mem_dim)
        self.max_entries = _positive_int("max_entries", max_entries)
        self.n_heads = _positive_int("n_heads", n_heads)
        self.embed_layers = _positive_int("embed_layers", embed_layers)
        if mem_dim % n_heads:
            raise ConfigError(f"strategic memory: n_heads={n_heads} must divide mem_dim={mem_dim}")
        if not retention_coef >= 0:
            raise ConfigError(f"strategic memory: retention_coef must be >= 0, got {retention_coef!r}")
        if not 0.0 <= retention_explore_end <= 1.0:
            raise ConfigError(f"strategic memory: retention_explore_end must be in [0, 1], got {retention_explore_end!r}")
        if not 0.0 < retention_explore_fraction <= 1.0:
            raise ConfigError(
                f"strategic memory: retention_explore_fraction must be in (0, 1], got {retention_explore_fraction!r}")
        if retention_explore_mode not in EXPLORE_MODES:
            raise ConfigError(f"strategic memory: retention_explore_mode must be one of {EXPLORE_MODES}, "
                              f"got {retention_explore_mode!r}")
        self.retention_explore_mode = retention_explore_mode
        self.learn_retention = bool(learn_retention)
        self.retention_coef = float(retention_coef)
        self.retention_explore_end = float(retention_explore_end)
        self.retention_explore_fraction = float(retention_explore_fraction)
        self.retention_explore = 0.0 if self.learn_retention else 1.0
        """The exploration weight ``ε`` used now (set by :meth:`set_training_progress`; without learned retention
        always 1, reservoir-style, also before any trainer sets it)."""
        self.output_dim = 2 * mem_dim
        self.head_dim = mem_dim // n_heads

        layers: list[nn.Module] = []
        width = input_dim + TIME_FEATURES
        for _ in range(embed_layers):
            layers += [nn.Linear(width, mem_dim), nn.ReLU()]
            width = mem_dim
        layers.append(nn.Linear(width, mem_dim))
        self.embed = nn.Sequential(*layers)
        self.query = nn.Linear(mem_dim, mem_dim)
        self.key = nn.Linear(mem_dim, mem_dim)
        self.value = nn.Linear(mem_dim, mem_dim)
        self.out = nn.Linear(mem_dim, mem_dim)
        self.age_slope = nn.Parameter(torch.zeros(n_heads))
        self.scorer = nn.Sequential(nn.Linear(mem_dim, mem_dim), nn.Tanh(), nn.Linear(mem_dim, 1))
        # Running moments of the raw inputs of training passes ("novelty" exploration's measure of surprise).
        self.register_buffer("input_count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("input_mean", torch.zeros(input_dim, dtype=torch.float64))
        self.register_buffer("input_m2", torch.zeros(input_dim, dtype=torch.float64))
        # Hindsight reader: full-context attention that predicts each step's reward from the action taken.
        self.hindsight_action_dim = hindsight_action_dim
        self.hindsight_coef = float(hindsight_coef)
        self.hindsight_max_steps = _positive_int("hindsight_max_steps", hindsight_max_steps)
        if not hindsight_focus >= 0:
            raise ConfigError(f"strategic memory: hindsight_focus must be >= 0, got {hindsight_focus!r}")
        self.hindsight_focus = float(hindsight_focus)
        if isinstance(hindsight_replay, bool) or not isinstance(hindsight_replay, int) or hindsight_replay < 0:
            raise ConfigError(f"strategic memory: hindsight_replay must be an int >= 0, got {hindsight_replay!r}")
        self.hindsight_replay = HindsightReplay(hindsight_replay)
        if not hindsight_read_coef >= 0:
            raise ConfigError(f"strategic memory: hindsight_read_coef must be >= 0, got {hindsight_read_coef!r}")
        self.hindsight_read_coef = float(hindsight_read_coef)
        if self.hindsight_read_coef > 0 and hindsight_action_dim is None:
            raise ConfigError("strategic memory: hindsight_read_coef > 0 needs hindsight_action_dim (the read loss "
                              "predicts outcomes from the action taken)")
        if hindsight_action_dim is not None:
            A = _positive_int("hindsight_action_dim", hindsight_action_dim)
            self.h_pred = nn.Sequential(nn.Linear(2 * mem_dim + A, 2 * mem_dim), nn.ReLU(),
                                        nn.Linear(2 * mem_dim, mem_dim), nn.ReLU(), nn.Linear(mem_dim, 1))
            # The outcome predicted from the rewarded step alone: the baseline a past step must beat.
            self.h_base = nn.Sequential(nn.Linear(mem_dim + A, 2 * mem_dim), nn.ReLU(), nn.Linear(2 * mem_dim, 1))
            if self.hindsight_read_coef > 0:  # the outcome predicted from the read the agent acted on
                self.h_read = nn.Sequential(nn.Linear(2 * mem_dim + A, 2 * mem_dim), nn.ReLU(),
                                            nn.Linear(2 * mem_dim, 1))

    # -- configuration ----------------------------------------------------------------------------
    def memory_kwargs(self) -> dict[str, Any]:
        """Constructor arguments (besides ``input_dim``) that rebuild this core by name."""
        return {"mem_dim": self.mem_dim, "max_entries": self.max_entries, "n_heads": self.n_heads,
                "embed_layers": self.embed_layers, "learn_retention": self.learn_retention,
                "retention_coef": self.retention_coef, "retention_explore_end": self.retention_explore_end,
                "retention_explore_fraction": self.retention_explore_fraction,
                "retention_explore_mode": self.retention_explore_mode,
                "hindsight_action_dim": self.hindsight_action_dim, "hindsight_coef": self.hindsight_coef,
                "hindsight_max_steps": self.hindsight_max_steps, "hindsight_focus": self.hindsight_focus,
                "hindsight_replay": self.hindsight_replay.capacity, "hindsight_read_coef": self.hindsight_read_coef}

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

    def state_spec(self) -> StateSpec:
        M = self.max_entries
        return {"entries": TensorSpec((M, self.input_dim)), "times": TensorSpec((M,)), "keep_u": TensorSpec((M,)),
                "valid": TensorSpec((M,)), "step": TensorSpec((1,)), "explore_dir": TensorSpec((self.mem_dim,))}

    def replay_spec(self) -> Mapping[str, TensorSpec]:
        """Per-step decisions the trainer records while acting and passes back to :meth:`forward_replay`:
        ``write_slot`` (long, the slot step ``t`` was written to, ``M`` for not written) and ``keep_u``."""
        return {"write_slot": TensorSpec((), torch.long), "keep_u": TensorSpec(()),
                "explore_dir": TensorSpec((self.mem_dim,))}

    # -- forward ----------------------------------------------------------------------------------
    def forward_with_trace(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State, Trace]:
        return self.forward_replay(x, state, episode_start, None)

    def forward_replay(
        self, x: Tensor, state: State, episode_start: Tensor, replay: Mapping[str, Tensor] | None
    ) -> tuple[Tensor, State, Trace]:
        """:meth:`forward_with_trace`, taking the eviction decisions from ``replay`` (``[T, B]`` tensors named
        by :meth:`replay_spec`) instead of deciding them, when given. A ``replay`` without them (an off-policy
        learner re-running windows with the current parameters) decides afresh; its ``hindsight_reward`` and
        ``hindsight_action`` still feed the hindsight credit. A ``step_mask`` (``[T, B]`` bool, from trainers
        that pad sequences: see :meth:`training_inputs`) keeps padding rows out of the novelty moments.

        Returns ``y [T, B, 2*mem_dim]``, the next state and the trace: ``attention [T, B, M+1]`` (mean over
        heads; the last column is the current step), ``retention [T, B, M]`` (scorer logits of the slots),
        ``entry_time [T, B, M]`` (episode time each slot holds, -1 if empty), ``valid [T, B, M]``,
        ``write_slot [T, B]`` and ``keep_u [T, B]``. The slots are those step ``t`` read (before its write).
        """
        check_inputs(self, x, state, episode_start)
        T, B, _ = x.shape
        M, H, d = self.max_entries, self.n_heads, self.head_dim
        dev = x.device

        # Episode time of every new step: t - (last start) inside an episode that began in this call,
        # else the carried step counter plus t.
        t_idx = torch.arange(T, device=dev, dtype=x.dtype).unsqueeze(1)
        last = last_episode_start(episode_start, -1)
        tau = torch.where(last >= 0, t_idx - last.to(x.dtype), state["step"][:, 0].unsqueeze(0) + t_idx)  # [T, B]

        # The pool: M stored entries then the T new steps, embedded and scored once.
        raw = torch.cat([state["entries"], x.transpose(0, 1)], dim=1)  # [B, P, D], P = M + T
        times = torch.cat([state["times"], tau.transpose(0, 1)], dim=1)  # [B, P]
        emb = self.embed(torch.cat([raw, time_features(times)], dim=-1))  # [B, P, E]
        score = self.scorer(emb).squeeze(-1)  # [B, P]
        if self.retention_explore_mode == "novelty" and self.training and torch.is_grad_enabled():
            rows = x.detach()  # training data only, and only the rows the trainer marks as real (not padding)
            rows = rows[replay["step_mask"]] if replay is not None and "step_mask" in replay else rows
            self._update_input_moments(rows.reshape(-1, self.input_dim))
        new_u, z = self._keep_values(x, emb[:, M:].detach().transpose(0, 1), state["explore_dir"], last, replay)
        keep_u = torch.cat([state["keep_u"], new_u.transpose(0, 1)], dim=1)  # [B, P]
        eps = self.retention_explore
        priority = ((1.0 - eps) * torch.sigmoid(score) + eps * keep_u).detach()

        slots, valid, write = self._slot_maps(state["valid"] > 0.5, episode_start, priority,
                                              None if replay is None else replay.get("write_slot"))

        # Recall, vectorized over time: gather each step's stored slots from the pool.
        b_idx = torch.arange(B, device=dev).view(1, B, 1)
        q = self.query(emb[:, M:]).view(B, T, H, d).transpose(0, 1)  # [T, B, H, d]
        k_pool = self.key(emb).view(B, M + T, H, d)
        v_pool = self.value(emb).view(B, M + T, H, d)
        k_slot, v_slot = k_pool[b_idx, slots], v_pool[b_idx, slots]  # [T, B, M, H, d]
        k_cur, v_cur = k_pool[:, M:].transpose(0, 1), v_pool[:, M:].transpose(0, 1)  # [T, B, H, d]
        slot_time = times[b_idx, slots]  # [T, B, M]
        age = (tau.unsqueeze(-1) - slot_time).clamp_min(0.0)
        scale = 1.0 / math.sqrt(d)
        logit_slot = torch.einsum("tbhd,tbmhd->tbhm", q, k_slot) * scale
        logit_slot = logit_slot - self.age_slope.view(1, 1, H, 1) * torch.log1p(age).unsqueeze(2)
        logit_slot = logit_slot.masked_fill(~valid.unsqueeze(2), float("-inf"))
        logit_cur = (q * k_cur).sum(-1, keepdim=True) * scale  # [T, B, H, 1]
        att = torch.softmax(torch.cat([logit_slot, logit_cur], dim=-1), dim=-1)  # [T, B, H, M+1]
        read = torch.einsum("tbhm,tbmhd->tbhd", att[..., :M], v_slot) + att[..., M:] * v_cur
        r = self.out(read.reshape(T, B, H * d))
        e_cur = emb[:, M:].transpose(0, 1)
        y = torch.cat([e_cur, r], dim=-1)

        # The store after the last step.
        final_slots, final_valid = self._apply_write(slots[-1], valid[-1], write[-1], M + T - 1)
        fb = torch.arange(B, device=dev).unsqueeze(1)
        # Validity flags travel with their entries (the pool's flags: the stored ones, then 1 for new steps).
        pool_valid = torch.cat([state["valid"], torch.ones(B, T, device=dev, dtype=x.dtype)], dim=1)
        fvalid = pool_valid[fb, final_slots] * final_valid.to(x.dtype)
        keep = final_valid.to(x.dtype)
        new_state: State = {
            "entries": raw[fb, final_slots] * keep.unsqueeze(-1),
            "times": times[fb, final_slots] * keep,
            "keep_u": keep_u[fb, final_slots] * keep,
            "valid": fvalid,
            "step": (tau[-1] + 1.0).unsqueeze(1),
            "explore_dir": z[-1],
        }
        trace: Trace = {
            "attention": att.mean(dim=2),
            "retention": score[b_idx, slots] * valid.to(x.dtype),  # 0 on empty slots
            "entry_time": torch.where(valid, slot_time, torch.full_like(slot_time, -1.0)),
            "valid": valid.to(x.dtype),
            "write_slot": write,
            "keep_u": new_u,
            "explore_dir": z,
        }
        if self.hindsight and replay is not None and "hindsight_reward" in replay:
            trace.update(self._hindsight(raw, times, emb, score, state["valid"] > 0.5, last, replay))
            if self.hindsight_read_coef > 0:
                trace["hindsight_read_loss"] = self._read_loss(y, replay)
        return y, new_state, trace

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


class StrategicMemoryBuffer(StrategicMemoryCore):
    """Seed 001's name for the strategic memory, sized from the task: each entry is one step's observation
    (``obs_dim`` wide), previous action (``action_dim``: 1 stores a ``Discrete`` action as its index, else its
    one-hot or Box vector) and previous reward. Use it with :class:`~tracerl.policies.StrategicMemoryTransformerPolicy`,
    which feeds the core exactly these raw values::

        memory = StrategicMemoryBuffer(obs_dim=3, action_dim=1, mem_dim=32, max_entries=16, device="cpu")
        agent = TraceRL(StrategicMemoryTransformerPolicy, env, memory=memory, memory_learn_retention=True)
    """

    def __init__(self, obs_dim: int, action_dim: int, mem_dim: int = 32, max_entries: int = 16,
                 device: str | torch.device = "cpu", hindsight: bool = True, **kwargs: Any) -> None:
        self.obs_dim = _positive_int("obs_dim", obs_dim)
        self.action_dim = _positive_int("action_dim", action_dim)
        kwargs.pop("hindsight_action_dim", None)
        super().__init__(obs_dim + action_dim + 1, mem_dim=mem_dim, max_entries=max_entries,
                         hindsight_action_dim=action_dim if hindsight else None, **kwargs)
        self.to(device)

    def memory_kwargs(self) -> dict[str, Any]:
        kw = super().memory_kwargs()
        kw["hindsight"] = kw.pop("hindsight_action_dim") is not None
        return {**kw, "obs_dim": self.obs_dim, "action_dim": self.action_dim}


def _make_strategic(input_dim: int, hidden_size: int = 32, num_layers: int = 1, mem_dim: int | None = None,
                    obs_dim: int | None = None, action_dim: int | None = None, **kwargs: Any) -> StrategicMemoryCore:
    """Registry factory: ``hidden_size`` is ``mem_dim`` unless given, ``num_layers`` the embedding MLP depth;
    with ``obs_dim`` and ``action_dim`` it builds a :class:`StrategicMemoryBuffer` (checked against ``input_dim``)."""
    kwargs.setdefault("embed_layers", num_layers)
    mem_dim = hidden_size if mem_dim is None else mem_dim
    if obs_dim is not None and action_dim is not None:
        if obs_dim + action_dim + 1 != input_dim:
            raise ConfigError(f"strategic memory: obs_dim={obs_dim} + action_dim={action_dim} + 1 != input_dim={input_dim}")
        return StrategicMemoryBuffer(obs_dim, action_dim, mem_dim=mem_dim, **kwargs)
    kwargs.pop("hindsight", None)
    return StrategicMemoryCore(input_dim, mem_dim=mem_dim, **kwargs)


register_memory("strategic", _make_strategic, input_form="raw_steps")

__all__ = ["StrategicMemoryBuffer", "StrategicMemoryCore", "time_features"]
