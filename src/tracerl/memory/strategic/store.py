"""The strategic memory's store and read: :class:`StrategicMemoryCore` (parameters, settings, state, the forward
pass), seed 001's :class:`StrategicMemoryBuffer`, and the registry entry ``"strategic"``.

A pass embeds the pool ``[stored entries; new steps]`` once with the current parameters, asks retention for every
step's slot map (:meth:`~.retention.RetentionMixin._slot_maps`), then gathers each step's slots and attends over
them and itself for all steps at once; training passes add hindsight credit (:mod:`.hindsight`). The equations
are in the package docstring (:mod:`tracerl.memory.strategic`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ..base import AddressableCore, State, StateSpec, TensorSpec, Trace, check_inputs
from ..hindsight import HindsightReplay
from ..registry import register_memory
from ..transformer import last_episode_start
from .features import TIME_FEATURES, _positive_int, time_features
from .hindsight import HindsightMixin
from .retention import EXPLORE_MODES, RetentionMixin


class StrategicMemoryCore(RetentionMixin, HindsightMixin, AddressableCore):
    """The strategic episodic memory (see :mod:`tracerl.memory.strategic` for the equations): the
    store and its read here, retention in :class:`~.retention.RetentionMixin`, hindsight credit in
    :class:`~.hindsight.HindsightMixin`.

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
