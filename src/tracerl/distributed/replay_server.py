"""``ReplayServer``: the off-policy learner's sequence replay when env runners fill it (in this process or as a
Ray actor of its own).

It holds one :class:`~tracerl.data.replay.SequenceReplay` *shard* per runner (``n_envs = k`` sub-envs of that
runner, ``buffer_size / runners`` rows), unchanged: a runner's chunk of ``T`` vector steps is written into its
shard step by step with ``SequenceReplay.add``, exactly as one process's collector writes its replay, so the
stored memory states, episode starts and final rows are those of one process. Runners push chunks whenever they
finish one; a shard never sees another runner's rows, so episodes are never mixed, and a runner restarted after
its process died starts new episodes (``episode_start`` on every sub-env), which the shard records by closing the
episodes it cut off (``SequenceReplay._close_abandoned``): its partial chunk, never pushed, is simply absent.

Sampling draws ``n`` windows over all shards with the probabilities of one replay holding them all: the batch is
split over the shards by a multinomial draw with each shard's total sampling weight (its window count when
uniform, its summed priorities when prioritized), then each shard samples its share; prioritized importance
weights ``(W P(i))^-beta / max_j w_j`` are computed over all shards (``W`` windows in total).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.replay import ReplayTooSmallError, SequenceBatch, SequenceReplay
from ..memory.base import TensorSpec

CHUNK_FIELDS = ("obs", "episode_start", "prev_action", "prev_reward", "action", "reward", "terminated", "truncated",
                "final_obs")
"""Arrays of a pushed chunk (each ``[T, k, ...]``) besides the stored states (``state.<torso>.<entry>``)."""


@dataclass
class ReplaySpec:
    """How to build the shards (shipped once, to the replay actor's constructor)."""

    n_shards: int
    """Shards, one per runner."""
    envs_per_shard: int
    """Sub-envs of each runner."""
    capacity: int
    """Rows of each shard (``buffer_size // runners``)."""
    obs_dim: int
    """Width of a flat observation."""
    action_shape: tuple[int, ...]
    """Shape of one stored action."""
    action_dtype: torch.dtype
    """dtype of one stored action."""
    state_spec: dict[str, TensorSpec]
    """Stored states (``<torso>.<entry>``; empty when the algorithm replays from the initial state)."""
    replay_kwargs: dict[str, Any] = field(default_factory=dict)
    """The other keyword arguments of :class:`~tracerl.data.replay.SequenceReplay` (burn_in, seq_len, ...)."""
    seed: int | None = None
    """Seed of the shard split and of every shard's sampling generator (shard ``i`` gets ``[seed, i]``)."""


class ReplayServer:
    """Sharded sequence replay (see the module docstring); the same class runs in this process or as a Ray actor."""

    def __init__(self, spec: ReplaySpec) -> None:
        self.spec = spec
        self.shards = [
            SequenceReplay(spec.capacity, spec.envs_per_shard, spec.obs_dim, spec.action_shape, spec.action_dtype,
                           spec.state_spec, seed=self._shard_seed(i), **spec.replay_kwargs)
            for i in range(spec.n_shards)
        ]
        self.rng = np.random.default_rng(None if spec.seed is None else [spec.seed, spec.n_shards])
        self.chunks_added = [0] * spec.n_shards

    def _shard_seed(self, i: int) -> Any:
        return None if self.spec.seed is None else int(np.random.SeedSequence([self.spec.seed, i]).generate_state(1)[0])

    # -- writing ------------------------------------------------------------------------------------------
    def add_chunk(self, shard: int, chunk: dict[str, np.ndarray]) -> int:
        """Write a runner's chunk (``[T, k, ...]`` arrays, :data:`CHUNK_FIELDS` and ``state.*``) into its shard,
        step by step; returns the rows now stored in that shard."""
        replay = self.shards[shard]
        T = int(chunk["obs"].shape[0])
        states = {k[len("state."):]: v for k, v in chunk.items() if k.startswith("state.")}
        for t in range(T):
            done = chunk["terminated"][t] | chunk["truncated"][t]
            replay.add(obs=chunk["obs"][t], state={k: v[t] for k, v in states.items()},
                       episode_start=chunk["episode_start"][t], prev_action=chunk["prev_action"][t],
                       prev_reward=chunk["prev_reward"][t], action=chunk["action"][t], reward=chunk["reward"][t],
                       terminated=chunk["terminated"][t], truncated=chunk["truncated"][t],
                       final_obs=chunk["final_obs"][t] if done.any() else None)
        self.chunks_added[shard] += 1
        return replay.size

    # -- sampling -----------------------------------------------------------------------------------------
    def size(self) -> int:
        """Rows stored in all shards."""
        return sum(r.size for r in self.shards)

    def num_windows(self) -> int:
        """Windows that can be sampled now, all shards together."""
        return sum(r.num_windows() for r in self.shards)

    def summary(self) -> dict[str, int]:
        """Rows stored, windows available and chunks added (for the log)."""
        return {"size": self.size(), "windows": self.num_windows(), "chunks": int(sum(self.chunks_added))}

    def sample(self, n: int, beta: float = 0.0) -> tuple[SequenceBatch, np.ndarray]:
        """``n`` windows from all shards (see the module docstring) and the shard of each window ``[n]``.

        Raises:
            ReplayTooSmallError: no shard can give a window yet.
        """
        totals = np.array([float(r._weights().sum()) for r in self.shards])
        grand = float(totals.sum())
        if grand <= 0.0:
            raise ReplayTooSmallError(
                f"the runners' replay holds {self.size()} rows in {len(self.shards)} shards but no window can be "
                "sampled yet: add more steps first")
        counts = self.rng.multinomial(n, totals / grand)
        parts: list[SequenceBatch] = []
        shard_of: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        for i, c in enumerate(counts.tolist()):
            if c == 0:
                continue
            replay = self.shards[i]
            batch = replay.sample(c, beta=0.0)
            parts.append(batch)
            shard_of.append(np.full(c, i))
            envs, rows = batch.index[:, 0], batch.index[:, 1]
            probs.append(replay.weight[envs, rows] / grand)
        batch = concat_batches(parts)
        shards = np.concatenate(shard_of)
        prioritized = self.shards[0].prioritized
        if prioritized and beta > 0.0:
            n_windows = self.num_windows()
            wts = (n_windows * np.concatenate(probs)) ** (-beta)
            batch.weight = torch.from_numpy((wts / wts.max()).astype(np.float32))
        return batch, shards

    def update_priorities(self, index: np.ndarray, shards: np.ndarray, td_abs: Tensor, train: Tensor) -> None:
        """R2D2 priorities of sampled windows (``index`` and ``shards`` from :meth:`sample`; ``td_abs`` and
        ``train`` ``[T', n]``), each in its shard."""
        for i in np.unique(shards).tolist():
            cols = np.flatnonzero(shards == i)
            sel = torch.from_numpy(cols)
            self.shards[i].update_priorities(index[cols], td_abs[:, sel], train[:, sel])

    # -- checkpoints --------------------------------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Every shard's arrays (``<shard>.<name>`` tensors) and counters, and the split generator's state."""
        from ..data.replay import _encode_rng

        tensors: dict[str, Tensor] = {}
        shards_meta = []
        for i, r in enumerate(self.shards):
            t, m = r.state_dict()
            tensors.update({f"{i}.{k}": v for k, v in t.items()})
            shards_meta.append(m)
        return tensors, {"shards": shards_meta, "rng": _encode_rng(self.rng.bit_generator.state),
                         "chunks_added": list(self.chunks_added)}

    def load_state_dict(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; every shard is checked before any changes (ValueError naming the
        shard and entry)."""
        from ..data.replay import _all_strings, _decode_rng

        if not isinstance(meta, dict) or not isinstance(meta.get("shards"), list):
            raise ValueError("the runners' replay metadata must be an object with a 'shards' list")
        if len(meta["shards"]) != len(self.shards):
            raise ValueError(f"the checkpoint's replay has {len(meta['shards'])} shards, this agent's runners "
                             f"{len(self.shards)}")
        unknown = sorted(k for k in tensors if k.split(".", 1)[0] not in {str(i) for i in range(len(self.shards))})
        if unknown:
            raise ValueError(f"unexpected replay entry {unknown[0]!r}")
        if not _all_strings(meta.get("rng")):
            raise ValueError("replay rng state must hold strings only")
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = _decode_rng(meta["rng"])
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise ValueError(f"replay rng state does not fit a {type(rng.bit_generator).__name__}: {exc}") from exc
        staged = []
        for i, m in enumerate(meta["shards"]):
            scratch = SequenceReplay(self.spec.capacity, self.spec.envs_per_shard, self.spec.obs_dim,
                                     self.spec.action_shape, self.spec.action_dtype, self.spec.state_spec,
                                     **self.spec.replay_kwargs)
            try:
                scratch.load_state_dict({k[len(f"{i}."):]: v for k, v in tensors.items() if k.startswith(f"{i}.")}, m)
            except ValueError as exc:
                raise ValueError(f"shard {i}: {exc}") from exc
            staged.append(scratch)
        self.shards = staged
        self.rng = rng
        added = meta.get("chunks_added")
        if isinstance(added, list) and len(added) == len(self.shards) and all(isinstance(a, int) for a in added):
            self.chunks_added = list(added)


def concat_batches(parts: list[SequenceBatch]) -> SequenceBatch:
    """Windows of several batches side by side (``[T, N1 + N2 + ...]``)."""
    if len(parts) == 1:
        return parts[0]
    rows = ("obs", "action", "reward", "prev_action", "prev_reward", "episode_start", "valid", "has_action",
            "terminal", "train")
    return SequenceBatch(
        **{name: torch.cat([getattr(p, name) for p in parts], 1) for name in rows},
        state={k: torch.cat([p.state[k] for p in parts], 0) for k in parts[0].state},
        weight=torch.cat([p.weight for p in parts]), index=np.concatenate([p.index for p in parts]),
        step0=torch.cat([p.step0 for p in parts]), burn_in=parts[0].burn_in)


__all__ = ["CHUNK_FIELDS", "ReplayServer", "ReplaySpec", "concat_batches"]
