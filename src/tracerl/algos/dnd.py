"""The Differentiable Neural Dictionary (Pritzel et al. 2017, "Neural Episodic Control"), one per action, and the
tables of Model-Free Episodic Control (Blundell et al. 2016) as the same store with other lookup and write rules.

A :class:`DND` holds, for each of ``A`` actions, up to ``capacity`` pairs (key ``h_i`` in ``R^D``, value ``Q_i``).
A lookup of a query ``h`` in action ``a``'s dictionary finds its ``p`` nearest keys (exact squared Euclidean
search, batched in torch) and returns::

    NEC ("inverse" kernel):  k(h, h_i) = 1 / (||h - h_i||^2 + delta),  w_i = k(h, h_i) / sum_j k(h, h_j),
                             Q(h, a) = sum_i w_i Q_i
    MFEC ("mean" kernel):    Q(h, a) = Q_i of a key within the exact-match threshold of h, else the mean of the
                             p nearest values

An empty dictionary answers 0. A write of ``(h, a, R)`` finds the nearest key ``h_i`` of ``a``'s dictionary; when
``||h - h_i||^2 <= match_threshold`` it updates that entry::

    NEC ("alpha" rule):  Q_i <- Q_i + alpha (R - Q_i)
    MFEC ("max" rule):   Q_i <- max(Q_i, R)

and otherwise appends ``(h, R)``, replacing the least recently used entry once the dictionary is full. Entries
are *used* when written and when they are among the neighbours of an acting lookup (``refresh=True``); each
lookup or write call is one tick of the dictionary's clock, and ``last_used`` holds every entry's last tick
(ties: the lowest slot is evicted first). Entries ``0 .. size[a] - 1`` of each action are filled.

The contents are plain tensors (``keys [A, C, D]``, ``values [A, C]``, ``last_used [A, C]`` int64,
``size [A]`` int64, ``clock []`` int64): :class:`DNDState` writes them into checkpoints (no pickle) and checks
them on load (:class:`~tracerl.errors.CheckpointError` naming the entry).

NEC trains the keys and values by gradient as well: :meth:`DND.q_values_grad` gathers the neighbours as leaf
tensors, and :meth:`DND.apply_gradients` adds ``-lr * grad`` to the rows that took part (plain SGD on the touched
entries: an optimizer with per-entry moments would double the dictionary's memory).

Cost: a lookup of ``M`` queries is one ``[M, D] x [D, size]`` product and a top-p per action, i.e. linear in
the number of stored keys (measured in ``benchmarks/episodic_control.py``).
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from ..io.restore_checks import check_tensor_like

Kernel = Literal["inverse", "mean"]
WriteRule = Literal["alpha", "max"]


class DND(nn.Module):
    """One dictionary of (key, value) pairs per action, with kNN lookups, tabular writes and LRU eviction.

    Args:
        n_actions: ``A``, one dictionary per action.
        capacity: ``C``, entries per action.
        key_dim: ``D``, the width of the keys.
        num_neighbours: ``p``, neighbours per lookup (fewer while a dictionary holds fewer entries).
        delta: ``delta`` of the inverse kernel.
        alpha: tabular learning rate of the ``"alpha"`` write rule.
        match_threshold: a written key within this squared distance of a stored one updates it (>= 0).
        kernel: ``"inverse"`` (NEC) or ``"mean"`` (MFEC; an exact match answers its own value).
        write_rule: ``"alpha"`` (NEC) or ``"max"`` (MFEC).
    """

    def __init__(self, n_actions: int, capacity: int, key_dim: int, num_neighbours: int = 50, delta: float = 1e-3,
                 alpha: float = 0.1, match_threshold: float = 0.0, kernel: Kernel = "inverse",
                 write_rule: WriteRule = "alpha") -> None:
        super().__init__()
        for name, v in (("n_actions", n_actions), ("capacity", capacity), ("key_dim", key_dim),
                        ("num_neighbours", num_neighbours)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"DND {name}={v!r} is invalid: must be an int >= 1")
        if not delta > 0:
            raise ConfigError(f"DND delta={delta!r} is invalid: must be > 0")
        if not match_threshold >= 0:
            raise ConfigError(f"DND match_threshold={match_threshold!r} is invalid: must be >= 0")
        if kernel not in ("inverse", "mean"):
            raise ConfigError(f"DND kernel={kernel!r} is invalid: must be 'inverse' or 'mean'")
        if write_rule not in ("alpha", "max"):
            raise ConfigError(f"DND write_rule={write_rule!r} is invalid: must be 'alpha' or 'max'")
        self.n_actions, self.capacity, self.key_dim = n_actions, capacity, key_dim
        self.num_neighbours, self.delta, self.alpha = num_neighbours, float(delta), float(alpha)
        self.match_threshold, self.kernel, self.write_rule = float(match_threshold), kernel, write_rule
        # not part of the module's state dict: DNDState saves and checks them
        self.register_buffer("keys", torch.zeros(n_actions, capacity, key_dim), persistent=False)
        self.register_buffer("values", torch.zeros(n_actions, capacity), persistent=False)
        self.register_buffer("last_used", torch.zeros(n_actions, capacity, dtype=torch.int64), persistent=False)
        self.register_buffer("size", torch.zeros(n_actions, dtype=torch.int64), persistent=False)
        self.register_buffer("clock", torch.zeros((), dtype=torch.int64), persistent=False)

    # -- search -------------------------------------------------------------------------------------------------
    def _neighbours(self, h: Tensor, a: int, n: int, k: int) -> Tensor:
        """Slots ``[M, k]`` of the ``k`` nearest of the first ``n`` keys of action ``a`` to queries ``h [M, D]``."""
        keys = self.keys[a, :n]
        d2 = (h * h).sum(-1, keepdim=True) - 2.0 * (h @ keys.T) + (keys * keys).sum(-1).unsqueeze(0)
        return d2.topk(k, dim=-1, largest=False).indices

    def _estimate(self, h: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        """Q of queries ``h [M, D]`` from their neighbours ``keys [M, k, D]``, ``values [M, k]`` -> ``[M]``."""
        d2 = ((h.unsqueeze(1) - keys) ** 2).sum(-1)
        if self.kernel == "inverse":
            w = 1.0 / (d2 + self.delta)
            return (w * values).sum(-1) / w.sum(-1)
        mean = values.mean(-1)
        exact = d2[:, 0] <= self.match_threshold  # neighbours are sorted nearest first
        return torch.where(exact, values[:, 0], mean)

    @torch.no_grad()
    def q_values(self, h: Tensor, refresh: bool = False) -> Tensor:
        """``Q(h, a)`` for every action: ``h [M, D]`` -> ``[M, A]`` (no gradient; 0 for an empty dictionary).
        ``refresh``: the neighbours count as used (acting lookups), and the clock ticks."""
        h = h.detach().to(self.keys.dtype)
        out = torch.zeros(h.shape[0], self.n_actions, device=h.device, dtype=h.dtype)
        for a in range(self.n_actions):
            n = int(self.size[a])
            if n == 0 or h.shape[0] == 0:
                continue
            idx = self._neighbours(h, a, n, min(self.num_neighbours, n))
            out[:, a] = self._estimate(h, self.keys[a][idx], self.values[a][idx])
            if refresh:
                self.last_used[a].index_fill_(0, idx.reshape(-1), int(self.clock))
        if refresh:
            self.clock += 1
        return out

    def q_values_grad(self, h: Tensor) -> tuple[Tensor, list[tuple[int, Tensor, Tensor, Tensor]]]:
        """``Q(h, a)`` ``[M, A]`` with gradient to ``h`` and to the neighbours' keys and values, and the handles
        :meth:`apply_gradients` needs after ``backward`` (the neighbours are chosen without gradient)."""
        M = h.shape[0]
        cols: list[Tensor] = []
        handles: list[tuple[int, Tensor, Tensor, Tensor]] = []
        for a in range(self.n_actions):
            n = int(self.size[a])
            if n == 0 or M == 0:
                cols.append(torch.zeros(M, device=h.device, dtype=h.dtype))
                continue
            k = min(self.num_neighbours, n)
            with torch.no_grad():
                flat = self._neighbours(h.detach(), a, n, k).reshape(-1)
            key_leaf = self.keys[a, flat].detach().requires_grad_(True)
            value_leaf = self.values[a, flat].detach().requires_grad_(True)
            cols.append(self._estimate(h, key_leaf.view(M, k, -1), value_leaf.view(M, k)))
            handles.append((a, flat, key_leaf, value_leaf))
        return torch.stack(cols, -1), handles

    @torch.no_grad()
    def apply_gradients(self, handles: list[tuple[int, Tensor, Tensor, Tensor]], lr: float) -> None:
        """One SGD step ``-lr * grad`` on the keys and values :meth:`q_values_grad` gathered (summed over
        repeats); NaN/inf gradients are refused (ValueError) before anything changes."""
        for _, _, key_leaf, value_leaf in handles:
            for leaf in (key_leaf, value_leaf):
                if leaf.grad is not None and not bool(torch.isfinite(leaf.grad).all()):
                    raise ValueError("DND.apply_gradients: non-finite gradient")
        for a, flat, key_leaf, value_leaf in handles:
            if key_leaf.grad is not None:
                self.keys[a].index_add_(0, flat, key_leaf.grad, alpha=-lr)
            if value_leaf.grad is not None:
                self.values[a].index_add_(0, flat, value_leaf.grad, alpha=-lr)

    # -- writes -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def write(self, keys: Tensor, actions: Tensor, returns: Tensor) -> None:
        """Write ``W`` pairs in order (``keys [W, D]``, ``actions [W]``, ``returns [W]``): update the matching
        entry by the write rule, or append (evicting the least recently used entry when full). One clock tick."""
        keys = keys.detach().to(self.keys.dtype).reshape(-1, self.key_dim)
        actions = actions.detach().reshape(-1).long().cpu()
        returns = returns.detach().to(self.values.dtype).reshape(-1)
        if not (keys.shape[0] == actions.shape[0] == returns.shape[0]):
            raise ValueError(f"DND.write: {keys.shape[0]} keys, {actions.shape[0]} actions, {returns.shape[0]} "
                             "returns")
        if keys.shape[0] and (int(actions.min()) < 0 or int(actions.max()) >= self.n_actions):
            raise ValueError(f"DND.write: actions must be in [0, {self.n_actions - 1}]")
        now = int(self.clock)
        for a in actions.unique().tolist():
            rows = torch.nonzero(actions == a).flatten().tolist()
            n0 = int(self.size[a])
            # exact distances to the entries present before this call, all of this action's writes at once
            # (no [n, D] temporary per write); entries (re)written during the call are compared one by one
            d2_start = (torch.cdist(keys[rows], self.keys[a, :n0], compute_mode="donot_use_mm_for_euclid_dist") ** 2
                        if n0 > 0 else None)
            written: list[int] = []  # slots whose key this call set, in order
            for r, i in enumerate(rows):
                key, ret = keys[i], returns[i]
                best_d, best_j = float("inf"), -1
                if d2_start is not None:
                    row = d2_start[r]
                    if written:
                        row = row.clone()
                        stale = [s for s in written if s < n0]
                        if stale:
                            row[stale] = float("inf")
                    j = int(row.argmin())
                    best_d, best_j = float(row[j]), j
                for s in written:
                    d = float(((self.keys[a, s] - key) ** 2).sum())
                    if d < best_d or (d == best_d and s < best_j):
                        best_d, best_j = d, s
                if best_j >= 0 and best_d <= self.match_threshold:
                    if self.write_rule == "alpha":
                        self.values[a, best_j] += self.alpha * (ret - self.values[a, best_j])
                    else:
                        self.values[a, best_j] = torch.maximum(self.values[a, best_j], ret)
                    self.last_used[a, best_j] = now
                    continue
                n = int(self.size[a])
                if n < self.capacity:
                    j = n
                    self.size[a] = n + 1
                else:
                    j = int(self.last_used[a].argmin())  # least recently used; ties: lowest slot
                self.keys[a, j] = key
                self.values[a, j] = ret
                self.last_used[a, j] = now
                if j not in written:
                    written.append(j)
        self.clock += 1

    # -- checkpoints --------------------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, Tensor]:
        """The contents by name (views, not copies)."""
        return {"keys": self.keys, "values": self.values, "last_used": self.last_used, "size": self.size,
                "clock": self.clock}

    def check_state(self, tensors: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Tensor]:
        """Stored contents (names as :meth:`state_tensors`, each behind ``prefix``) checked against this dictionary:
        shapes, dtypes, finite keys and values, ``0 <= size <= capacity``, ``0 <= last_used <= clock``;
        CheckpointError naming the entry. Returns them for :meth:`load_state`."""
        live = self.state_tensors()
        out: dict[str, Tensor] = {}
        for name, want in live.items():
            finite = name in ("keys", "values")
            low = 0 if name in ("size", "clock", "last_used") else None
            high = self.capacity if name == "size" else None
            out[name] = check_tensor_like(tensors.get(prefix + name), want.shape, want.dtype, where, prefix + name,
                                          finite=finite, low=low, high=high)
        if out["last_used"].numel() and int(out["last_used"].max()) > int(out["clock"]):
            raise CheckpointError(f"last_used holds ticks after the clock {int(out['clock'])}", path=where,
                                  entry=prefix + "last_used")
        return out

    @torch.no_grad()
    def load_state(self, tensors: Mapping[str, Tensor]) -> None:
        """Copy contents checked by :meth:`check_state`."""
        for name, live in self.state_tensors().items():
            live.copy_(tensors[name])

    def nbytes(self) -> int:
        """Bytes of the contents."""
        return sum(t.numel() * t.element_size() for t in self.state_tensors().values())


def dnd_bytes(n_actions: int, capacity: int, key_dim: int) -> int:
    """Bytes a :class:`DND` of these sizes holds (checked before a checkpoint's DND is allocated)."""
    return n_actions * capacity * (key_dim * 4 + 4 + 8) + n_actions * 8 + 8


class DNDState:
    """A :class:`DND`'s contents as a checkpoint component (``<prefix>keys``, ``values``, ``last_used``, ``size``,
    ``clock``), checked by :meth:`DND.check_state` before anything is copied."""

    def __init__(self, prefix: str, dnd: DND) -> None:
        self.prefixes = (prefix,)
        self.prefix = prefix
        self.dnd = dnd

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        tensors.update({self.prefix + k: v.detach().clone() for k, v in self.dnd.state_tensors().items()})

    def check(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], where: str) -> dict[str, Tensor]:
        return self.dnd.check_state(tensors, where, self.prefix)

    def load(self, staged: dict[str, Tensor], where: str) -> None:
        self.dnd.load_state(staged)


__all__ = ["DND", "DNDState", "dnd_bytes"]
