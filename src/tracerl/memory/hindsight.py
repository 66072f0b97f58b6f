"""The strategic memory's hindsight replay: recent rewarded contexts that top every training pass up.

At long delays a PPO minibatch holds one rewarded step per episode, and the pairwise hindsight predictor of
:class:`~tracerl.memory.strategic.StrategicMemoryCore`, averaged over every earlier step, needs a batch of
rewarded contexts per gradient step to leave its plateau. :class:`HindsightReplay` keeps recent contexts as
raw inputs (re-embedded with the current parameters when drawn); :class:`HindsightContexts` is the batch the
predictor reads, embedded.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class HindsightContexts(NamedTuple):
    """``K`` rewarded steps with their episode's earlier steps, as the hindsight predictor reads them: the past
    steps' embeddings ``e_past [K, P, E]`` and retention logits ``score [K, P]``, ``past [K, P]`` (bool, marks
    real earlier steps), the rewarded step's embedding ``e_cur [K, E]``, the action taken ``action [K, A]`` and
    the reward ``reward [K]``."""

    e_past: Tensor
    score: Tensor
    past: Tensor
    e_cur: Tensor
    action: Tensor
    reward: Tensor

    def cat(self, other: "HindsightContexts") -> "HindsightContexts":
        """Both sets of contexts, the shorter one's past padded with masked-out steps."""
        P = max(self.past.shape[1], other.past.shape[1])

        def pad(x: Tensor, value: float | bool) -> Tensor:
            extra = P - x.shape[1]
            if extra == 0:
                return x
            return torch.cat([x, x.new_full((x.shape[0], extra, *x.shape[2:]), value)], dim=1)

        return HindsightContexts(
            torch.cat([pad(self.e_past, 0.0), pad(other.e_past, 0.0)]), torch.cat([pad(self.score, 0.0), pad(other.score, 0.0)]),
            torch.cat([pad(self.past, False), pad(other.past, False)]), torch.cat([self.e_cur, other.e_cur]),
            torch.cat([self.action, other.action]), torch.cat([self.reward, other.reward]))


class ReplayedContexts(NamedTuple):
    """Raw rewarded contexts drawn from a :class:`HindsightReplay`: ``raw [K, N, D]``, ``times [K, N]`` and
    ``past [K, N]`` (bool) of the earlier steps (padded to the longest), ``cur_raw [K, D]``, ``cur_time [K]``,
    ``action [K, A]``, ``reward [K]``."""

    raw: Tensor
    times: Tensor
    past: Tensor
    cur_raw: Tensor
    cur_time: Tensor
    action: Tensor
    reward: Tensor


class HindsightReplay:
    """A bounded store of recent rewarded contexts for the hindsight predictor (raw inputs, not embeddings).

    Each item is one rewarded step of a training pass: its episode's earlier steps (raw inputs and episode
    times), the step itself, the action taken and the reward. Training passes add the contexts they saw and
    draw earlier ones to top their batch up, so the predictor trains on a batch of rewarded contexts even
    when a minibatch holds few (one reward per 1,024-step episode). It keeps only contexts that hold their
    episode from its first step (episode time 0 among the earlier steps): a context whose episode began before
    the pass has only what the store kept of its start. A context already held (PPO's epochs pass
    over the same rollout again) is not added twice; once full, a new item replaces a random one, so the
    store spans many updates. It travels in checkpoints packed into one tensor (:meth:`pack`), so a resumed
    run draws what an uninterrupted one would.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: list[tuple[Tensor, ...]] = []
        self._keys: dict[tuple[float, ...], int] = {}

    def __len__(self) -> int:
        return len(self.items)

    @staticmethod
    def _key(item: tuple[Tensor, ...]) -> tuple[float, ...]:
        raw, times = item[0], item[1]
        pos = torch.arange(1, raw.shape[0] + 1, dtype=raw.dtype, device=raw.device).unsqueeze(1)
        return (float(raw.shape[0]), float(item[3]), float(item[5]), float(raw.sum()), float((raw * pos).sum()),
                float(times.sum()), float(item[2].sum()))

    @torch.no_grad()
    def add(self, raw: Tensor, times: Tensor, past: Tensor, cur_raw: Tensor, cur_time: Tensor, action: Tensor,
            reward: Tensor) -> None:
        """Store ``K`` contexts: ``raw [K, P, D]``, ``times [K, P]``, ``past [K, P]`` (the earlier steps to keep),
        ``cur_raw [K, D]``, ``cur_time [K]``, ``action [K, A]``, ``reward [K]``."""
        if self.capacity == 0:
            return
        for k in range(raw.shape[0]):
            keep = past[k]
            if not bool((times[k][keep] == 0).any()):
                continue  # its episode began before the pass: the step that explains the reward is likely gone
            item = (raw[k, keep].clone(), times[k, keep].clone(), cur_raw[k].clone(), cur_time[k].clone(),
                    action[k].clone(), reward[k].clone())
            key = self._key(item)
            if key in self._keys:
                continue
            if len(self.items) < self.capacity:
                slot = len(self.items)
                self.items.append(item)
            else:
                slot = int(torch.randint(self.capacity, ()))
                del self._keys[self._key(self.items[slot])]
                self.items[slot] = item
            self._keys[key] = slot

    @torch.no_grad()
    def sample(self, k: int, device: torch.device) -> ReplayedContexts | None:
        """``min(k, len(self))`` distinct stored contexts, drawn uniformly; None when there are none to draw."""
        k = min(k, len(self.items))
        if k <= 0:
            return None
        picked = [self.items[i] for i in torch.randperm(len(self.items))[:k].tolist()]
        n = max(1, max(it[0].shape[0] for it in picked))
        D = picked[0][0].shape[1]
        raw = torch.zeros(k, n, D, device=device)
        times = torch.zeros(k, n, device=device)
        past = torch.zeros(k, n, dtype=torch.bool, device=device)
        for i, it in enumerate(picked):
            m = it[0].shape[0]
            raw[i, :m], times[i, :m], past[i, :m] = it[0], it[1], True
        stack = [torch.stack([it[c] for it in picked]).to(device) for c in range(2, 6)]
        return ReplayedContexts(raw, times, past, *stack)

    def pack(self) -> Tensor:
        """Every item as one float32 vector: ``[N, D, A]``, then per item ``[n, cur_time, reward, raw (n*D),
        times (n), cur_raw (D), action (A)]``."""
        if not self.items:
            return torch.zeros(3)
        D, A = self.items[0][2].numel(), self.items[0][4].numel()
        parts = [torch.tensor([len(self.items), D, A], dtype=torch.float32)]
        for raw, times, cur_raw, cur_time, action, reward in self.items:
            head = torch.tensor([raw.shape[0], float(cur_time), float(reward)], dtype=torch.float32)
            parts += [head, raw.float().cpu().flatten(), times.float().cpu(), cur_raw.float().cpu(), action.float().cpu()]
        return torch.cat(parts)

    def unpack(self, packed: Tensor) -> None:
        """Replace the items by those of a :meth:`pack` vector; ``ValueError`` if it is malformed."""
        v = packed.detach().float().cpu().flatten()
        if v.numel() < 3:
            raise ValueError(f"hindsight replay: packed vector of {v.numel()} values, expected at least 3")
        N, D, A = (int(x) for x in v[:3].tolist())
        items: list[tuple[Tensor, ...]] = []
        i = 3
        try:
            for _ in range(N):
                n, cur_time, reward = v[i:i + 3].tolist()
                n, i = int(n), i + 3
                if n < 0 or i + n * D + n + D + A > v.numel():
                    raise ValueError
                raw = v[i:i + n * D].view(n, D).clone()
                i += n * D
                times = v[i:i + n].clone()
                i += n
                cur_raw = v[i:i + D].clone()
                i += D
                action = v[i:i + A].clone()
                i += A
                items.append((raw, times, cur_raw, torch.tensor(cur_time), action, torch.tensor(reward)))
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"hindsight replay: malformed packed vector ({N} items of width {D}, action {A})") from err
        if i != v.numel() or N > self.capacity:
            raise ValueError(f"hindsight replay: packed vector holds {N} items and {v.numel() - i} stray values "
                             f"(capacity {self.capacity})")
        self.items = items
        self._keys = {self._key(it): j for j, it in enumerate(items)}


__all__ = ["HindsightContexts", "HindsightReplay", "ReplayedContexts"]
