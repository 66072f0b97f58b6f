"""Sequence replay for recurrent off-policy RL: episodes in preallocated arrays, stored memory states,
windows of ``burn_in + seq_len`` steps that never cross an episode boundary.

Storage. Every env ``b`` of the vector env owns a ring of ``C = capacity // n_envs`` *rows* (numpy arrays
``[n_envs, C, ...]``, no Python object per step). A row is one observation with what followed it: the action,
reward and done flags of that step. When an episode ends, one extra *final row* holds the observation after the
last action (the terminal observation, or ``infos["final_obs"]`` on truncation) and no action, so a step's next
observation is always the next row of the same episode. Rows carry their episode id and the step index inside
the episode, so a window can tell exactly which of its rows belong to its episode.

Stored state (R2D2, Kapturowski et al. 2019). At every step whose index inside the episode is a multiple of
``state_stride`` (``k``) the recurrent state *before* that step (reset to the initial state at episode starts) is
copied into a ring of state slots. Any core's ``state_spec()`` works: the replay stores a dict name -> array
without knowing what the entries are.

Windows. A window is anchored at a training start ``u`` (a step whose index is a multiple of ``k``)::

    rows:  [ burn-in: min(burn_in, t_u) steps ][ seq_len training steps ][ lookahead rows ]
           ^ starts from the stored state       ^ index burn_in in the window

``burn_in`` must be a multiple of ``k`` so the burn-in start has a stored state. Near the start of an episode
the burn-in is shorter than ``burn_in``: it is *left-padded* with zero rows and the first real row has
``episode_start = True``, so the core resets exactly at the episode's first step and the padding never reaches
it. Rows after the episode's final row (or not yet written) are zero padding with ``valid = False``. The
``lookahead`` rows after the training steps (1 for one-step TD, ``n`` for n-step returns) are there for the
bootstrap targets only. A window never holds data from two episodes.

Sampling is uniform over windows whose first training step already has its next row, or prioritized
(R2D2: ``p = eta max_t |delta_t| + (1 - eta) mean_t |delta_t|`` over the window's training steps, sampled with
probability ``p^alpha / sum p^alpha`` and importance weights ``(N P(i))^{-beta} / max_j w_j``).
Seed 003's batch-sampling flags: ``always_from_initial_state`` (only windows that start at step 0),
``random_seq_len`` with ``nominal_seq_len_prob`` (train on a uniformly random number of the window's steps,
or on all ``seq_len`` with that probability).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, TraceRLError
from ..memory.base import TensorSpec


class ReplayTooSmallError(TraceRLError, ValueError):
    """The replay cannot give a window yet (empty, or no episode has a complete training step). Names the sizes."""


def _np_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty((), dtype=dtype).numpy().dtype


@dataclass
class SequenceBatch:
    """``N`` windows of ``T = burn_in + seq_len + lookahead`` rows, time-major.

    Row fields (``[T, N, ...]``; zero on padding rows): ``obs`` (flat observations), ``action``, ``reward``,
    ``prev_action`` / ``prev_reward`` (the previous step's, zero at episode starts), ``episode_start`` (bool;
    True on each episode's first row and on padding), ``valid`` (the row belongs to the window's episode),
    ``has_action`` (the row is a step, not a final row), ``terminal`` (a final row after termination),
    ``train`` (the row is one of the window's training steps: index in ``[burn_in, burn_in + L)`` with ``L`` the
    sampled length, and a step).

    ``state``: stored state at row 0 (name -> ``[N, ...]``); ``weight``: ``[N]`` importance weights (ones when
    uniform); ``index``: ``[N, 2]`` (env, row) of each window's training start, for priority updates;
    ``step0``: ``[N]`` the episode step index of row ``burn_in`` (``t_u``).
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    prev_action: Tensor
    prev_reward: Tensor
    episode_start: Tensor
    valid: Tensor
    has_action: Tensor
    terminal: Tensor
    train: Tensor
    state: dict[str, Tensor]
    weight: Tensor
    index: np.ndarray
    step0: Tensor
    burn_in: int

    @property
    def T(self) -> int:
        return int(self.obs.shape[0])

    @property
    def N(self) -> int:
        return int(self.obs.shape[1])

    def to(self, device: torch.device | str) -> "SequenceBatch":
        moved = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items() if k != "state"}
        return SequenceBatch(**moved, state={k: v.to(device) for k, v in self.state.items()})


class SequenceReplay:
    """Ring storage of episodes from ``n_envs`` parallel envs, sampled as fixed-length windows.

    Args:
        capacity: total rows (all envs); each env gets ``capacity // n_envs``.
        n_envs: number of parallel envs writing one row each per step.
        obs_dim: width of a flat observation.
        action_shape / action_dtype: one stored action (e.g. ``()`` int64 for Discrete, ``(d,)`` float32 for Box).
        state_spec: name -> :class:`TensorSpec` of the states to store (e.g. ``{"actor.h": ..., "critic0.h": ...}``).
        burn_in: steps that only warm the state (a multiple of ``state_stride``).
        seq_len: training steps per window.
        lookahead: rows after the training steps for bootstrap targets (>= 1).
        state_stride: store the state every this many steps (default ``gcd(burn_in, seq_len)``, or ``seq_len``).
        state_capacity: state slots per env (default ``2 * ceil(C / state_stride) + 1``; a slot overwritten before
            its rows makes those windows unavailable, never wrong).
        prioritized / priority_alpha / priority_eta / priority_eps: R2D2 prioritized sequence replay.
        always_from_initial_state / random_seq_len / nominal_seq_len_prob: seed 003's sampling flags.
        seed: seed of the sampling generator.
    """

    def __init__(
        self,
        capacity: int,
        n_envs: int,
        obs_dim: int,
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        state_spec: Mapping[str, TensorSpec],
        *,
        burn_in: int = 0,
        seq_len: int = 16,
        lookahead: int = 1,
        state_stride: int | None = None,
        state_capacity: int | None = None,
        prioritized: bool = False,
        priority_alpha: float = 0.9,
        priority_eta: float = 0.9,
        priority_eps: float = 1e-6,
        always_from_initial_state: bool = False,
        random_seq_len: bool = False,
        nominal_seq_len_prob: float = 0.5,
        seed: int | None = None,
    ) -> None:
        for name, value, low in (("n_envs", n_envs, 1), ("obs_dim", obs_dim, 1), ("seq_len", seq_len, 1),
                                 ("lookahead", lookahead, 1), ("burn_in", burn_in, 0), ("capacity", capacity, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"SequenceReplay: {name}={value!r} is invalid: must be an int >= {low}")
        if state_stride is None:
            state_stride = math.gcd(burn_in, seq_len) if burn_in > 0 else seq_len
        if isinstance(state_stride, bool) or not isinstance(state_stride, (int, np.integer)) or state_stride < 1:
            raise ConfigError(f"SequenceReplay: state_stride={state_stride!r} is invalid: must be an int >= 1")
        if burn_in % state_stride:
            raise ConfigError(
                f"SequenceReplay: burn_in={burn_in} is not a multiple of state_stride={state_stride}; the burn-in "
                f"must start on a stored state (use state_stride={math.gcd(burn_in, seq_len)})")
        window = burn_in + seq_len + lookahead
        C = capacity // n_envs
        if C < window:
            raise ConfigError(
                f"SequenceReplay: capacity={capacity} gives {C} rows per env for n_envs={n_envs}, fewer than one "
                f"window (burn_in + seq_len + lookahead = {burn_in} + {seq_len} + {lookahead} = {window}); "
                f"capacity must be >= {window * n_envs}")
        if not 0.0 <= nominal_seq_len_prob <= 1.0:
            raise ConfigError(f"SequenceReplay: nominal_seq_len_prob={nominal_seq_len_prob!r} must be in [0, 1]")
        if not 0.0 <= priority_eta <= 1.0:
            raise ConfigError(f"SequenceReplay: priority_eta={priority_eta!r} must be in [0, 1]")
        if not priority_alpha >= 0.0:
            raise ConfigError(f"SequenceReplay: priority_alpha={priority_alpha!r} must be >= 0")
        self.n_envs, self.C, self.obs_dim = int(n_envs), int(C), int(obs_dim)
        self.burn_in, self.seq_len, self.lookahead, self.k = int(burn_in), int(seq_len), int(lookahead), int(state_stride)
        self.window = window
        self.action_shape = tuple(action_shape)
        self.action_dtype = action_dtype
        self.state_spec = dict(state_spec)
        self.prioritized = bool(prioritized)
        self.alpha, self.eta, self.priority_eps = float(priority_alpha), float(priority_eta), float(priority_eps)
        self.always_from_initial_state = bool(always_from_initial_state)
        self.random_seq_len = bool(random_seq_len)
        self.nominal_seq_len_prob = float(nominal_seq_len_prob)
        S = state_capacity if state_capacity is not None else 2 * math.ceil(C / self.k) + 1
        if S < 1:
            raise ConfigError(f"SequenceReplay: state_capacity={state_capacity!r} must be >= 1")
        self.S = int(S)
        B, a_np = self.n_envs, _np_dtype(action_dtype)
        # rows
        self.obs = np.zeros((B, C, obs_dim), np.float32)
        self.action = np.zeros((B, C, *self.action_shape), a_np)
        self.prev_action = np.zeros((B, C, *self.action_shape), a_np)
        self.reward = np.zeros((B, C), np.float32)
        self.prev_reward = np.zeros((B, C), np.float32)
        self.has_action = np.zeros((B, C), np.bool_)
        self.terminal = np.zeros((B, C), np.bool_)  # final row of a terminated episode
        self.episode = np.full((B, C), -1, np.int64)  # episode id (-1: never written)
        self.step = np.zeros((B, C), np.int64)  # index of the row inside its episode
        self.row_slot = np.full((B, C), -1, np.int64)  # state slot of the row (-1: none)
        self.weight = np.zeros((B, C), np.float64)  # sampling weight of windows that start here (0: not a start)
        self.end_row = np.full((B, C), -1, np.int64)  # final row of the row's episode (-1: not ended yet)
        # state slots
        self.states = {name: np.zeros((B, self.S, *spec.shape), _np_dtype(spec.dtype))
                       for name, spec in self.state_spec.items()}
        self.slot_row = np.full((B, self.S), -1, np.int64)
        self.slot_episode = np.full((B, self.S), -1, np.int64)
        # write heads
        self.pos = np.zeros(B, np.int64)  # next row to write
        self.next_slot = np.zeros(B, np.int64)
        self.cur_episode = np.full(B, -1, np.int64)
        self.cur_step = np.zeros(B, np.int64)
        self.start_row = np.zeros(B, np.int64)  # row of the current episode's first step
        self.next_episode_id = 0
        self.rows_written = 0
        self.max_priority = 1.0
        self.rng = np.random.default_rng(seed)
        self._envs = np.arange(B)

    # -- writing ------------------------------------------------------------------------------------
    def _claim_rows(self, envs: np.ndarray) -> np.ndarray:
        """Advance the write heads of ``envs``; return their rows, cleared of what was there."""
        rows = self.pos[envs] % self.C
        self.pos[envs] += 1
        self.weight[envs, rows] = 0.0
        self.row_slot[envs, rows] = -1
        self.end_row[envs, rows] = -1
        self.rows_written += len(envs)
        return rows

    def add(
        self,
        obs: np.ndarray,
        state: Mapping[str, Tensor | np.ndarray],
        episode_start: np.ndarray,
        prev_action: np.ndarray,
        prev_reward: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_obs: np.ndarray | None = None,
        crashed: np.ndarray | None = None,
    ) -> None:
        """Write one step of every env (all arrays batch-first ``[n_envs, ...]``).

        Args:
            obs: ``[B, obs_dim]`` the observation the action answered.
            state: the recurrent state before this step (already reset where ``episode_start``), ``[B, ...]``.
            episode_start: ``[B]`` bool, this observation is its episode's first.
            prev_action / prev_reward: the previous step's action and reward (zero at episode starts).
            action / reward / terminated / truncated: the step's outcome.
            final_obs: ``[B, obs_dim]`` the observation after the action where the episode ended (rows where
                ``terminated | truncated``); a final row is written for those envs.
            crashed: ``[B]`` bool, the env crashed during this step and was rebuilt
                (:class:`~tracerl.envs.resilient.ResilientVectorEnv`): the step has no outcome, so ``obs`` becomes its
                episode's final row (a truncation at the last observation the env gave: no action, no reward,
                not terminal) and the next ``add`` starts a new episode there. ``terminated`` / ``truncated`` /
                ``final_obs`` are ignored on those rows.
        """
        B = self.n_envs
        start = np.asarray(episode_start, np.bool_).reshape(B)
        cut = np.zeros(B, np.bool_) if crashed is None else np.asarray(crashed, np.bool_).reshape(B)
        done = (np.asarray(terminated, np.bool_).reshape(B) | np.asarray(truncated, np.bool_).reshape(B)) & ~cut
        term = np.asarray(terminated, np.bool_).reshape(B)
        if start.any():
            self._close_abandoned(np.flatnonzero(start & (self.pos > 0) & (self.cur_episode >= 0)))
            n_new = int(start.sum())
            self.cur_episode[start] = np.arange(self.next_episode_id, self.next_episode_id + n_new)
            self.next_episode_id += n_new
            self.cur_step[start] = 0
        if (self.cur_episode < 0).any():
            bad = np.flatnonzero(self.cur_episode < 0).tolist()
            raise ValueError(f"SequenceReplay.add: env index {bad} has no episode yet; the first add() must have "
                             "episode_start=True for every env")
        envs = self._envs
        # the previous row of each env gets a next row: it becomes a window start if it is on the grid
        prev_rows = (self.pos - 1) % self.C
        cont = ~start & (self.pos > 0)
        rows = self._claim_rows(envs)
        self.obs[envs, rows] = obs
        self.action[envs, rows] = action
        self.prev_action[envs, rows] = prev_action
        self.reward[envs, rows] = reward
        self.prev_reward[envs, rows] = prev_reward
        self.has_action[envs, rows] = True
        self.terminal[envs, rows] = False
        self.episode[envs, rows] = self.cur_episode
        self.step[envs, rows] = self.cur_step
        self._activate(envs[cont], prev_rows[cont])
        self.start_row[start] = rows[start]
        grid = self.cur_step % self.k == 0
        if grid.any():
            g = envs[grid]
            slots = self.next_slot[g] % self.S
            self.next_slot[g] += 1
            for name, arr in self.states.items():
                value = state[name]
                value = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
                arr[g, slots] = value[g]
            self.slot_row[g, slots] = rows[grid]
            self.slot_episode[g, slots] = self.cur_episode[g]
            self.row_slot[g, rows[grid]] = slots
        self.cur_step += 1
        if cut.any():  # the crashed step's row becomes its episode's final row (truncated at that observation)
            c = envs[cut]
            crows = rows[cut]
            self.action[c, crows] = 0
            self.reward[c, crows] = 0.0
            self.has_action[c, crows] = False
            for b, crow in zip(c.tolist(), crows.tolist()):
                n_rows = min(int(self.cur_step[b]), self.C)
                self.end_row[b, (crow - np.arange(n_rows)) % self.C] = crow
        if done.any():
            if final_obs is None:
                raise ValueError("SequenceReplay.add: an episode ended but final_obs was not given")
            d = envs[done]
            frows = self._claim_rows(d)
            self.obs[d, frows] = np.asarray(final_obs)[done]
            self.action[d, frows] = 0
            self.prev_action[d, frows] = np.asarray(action)[done]
            self.reward[d, frows] = 0.0
            self.prev_reward[d, frows] = np.asarray(reward, np.float32).reshape(B)[done]
            self.has_action[d, frows] = False
            self.terminal[d, frows] = term[done]
            self.episode[d, frows] = self.cur_episode[d]
            self.step[d, frows] = self.cur_step[d]
            self._activate(d, rows[done])
            for b, frow in zip(d.tolist(), frows.tolist()):  # once per episode: every row learns its episode's end
                n_rows = min(int(self.cur_step[b]) + 1, self.C)
                self.end_row[b, (frow - np.arange(n_rows)) % self.C] = frow

    def _close_abandoned(self, envs: np.ndarray) -> None:
        """Episodes cut off without a final row (e.g. the envs were reset on resume) end at their newest row."""
        for b in envs.tolist():
            prow = int(self.pos[b] - 1) % self.C
            if self.end_row[b, prow] < 0 and self.episode[b, prow] == self.cur_episode[b]:
                n_rows = min(int(self.cur_step[b]), self.C)
                self.end_row[b, (prow - np.arange(n_rows)) % self.C] = prow

    def last_row_of_episode(self, envs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The last stored row of each row's episode: its final row, or the newest row while it is running."""
        end = self.end_row[envs, rows]
        return np.where(end >= 0, end, (self.pos[envs] - 1) % self.C)

    def _activate(self, envs: np.ndarray, rows: np.ndarray) -> None:
        """Rows whose next row now exists become window starts (if they are steps on the stride grid)."""
        if len(envs) == 0:
            return
        ok = self.has_action[envs, rows] & (self.step[envs, rows] % self.k == 0)
        if ok.any():
            p = self.max_priority**self.alpha if self.prioritized else 1.0
            self.weight[envs[ok], rows[ok]] = p

    # -- sampling -----------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Rows currently stored (all envs)."""
        return int(np.minimum(self.pos, self.C).sum())

    def num_windows(self) -> int:
        """Window starts that can be sampled now (before lazily dropping ones whose burn-in was overwritten)."""
        return int(np.count_nonzero(self._weights()))

    def _weights(self) -> np.ndarray:
        w = self.weight
        if self.always_from_initial_state:
            w = np.where(self.step == 0, w, 0.0)
        return w

    def _burn_start(self, envs: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Burn-in length, burn-in start row and whether that row still holds the episode and its stored state."""
        t_u = self.step[envs, rows]
        burn = np.minimum(self.burn_in, t_u)
        brow = (rows - burn) % self.C
        slot = self.row_slot[envs, brow]
        ep = self.episode[envs, rows]
        ok = (self.episode[envs, brow] == ep) & (self.step[envs, brow] == t_u - burn) & (slot >= 0)
        slot_c = np.maximum(slot, 0)
        ok &= (self.slot_row[envs, slot_c] == brow) & (self.slot_episode[envs, slot_c] == ep)
        return burn, brow, ok

    def sample(self, n: int, beta: float = 0.0, device: torch.device | str = "cpu") -> SequenceBatch:
        """Draw ``n`` windows (with replacement). ``beta``: importance-weight exponent (prioritized only).

        Raises:
            ReplayTooSmallError: no window can be sampled yet (naming rows stored, episodes and window size).
        """
        if n < 1:
            raise ConfigError(f"SequenceReplay.sample: n={n!r} is invalid: must be >= 1")
        for _attempt in range(64):
            w = self._weights().ravel()
            total = float(w.sum())
            if total <= 0.0:
                raise ReplayTooSmallError(
                    f"SequenceReplay holds {self.size} rows from {self.next_episode_id} episodes (capacity "
                    f"{self.C} rows per env x {self.n_envs} envs) but no window can be sampled yet: a window needs a "
                    f"training step whose next row is stored (window = burn_in {self.burn_in} + seq_len "
                    f"{self.seq_len} + lookahead {self.lookahead} rows"
                    f"{', starting at step 0' if self.always_from_initial_state else ''}); add more steps first")
            cdf = np.cumsum(w)
            flat = np.searchsorted(cdf, self.rng.random(n) * total, side="right")
            flat = np.minimum(flat, len(w) - 1)
            envs, rows = np.divmod(flat, self.C)
            burn, brow, ok = self._burn_start(envs, rows)
            if ok.all():
                probs = w[flat] / total
                return self._gather(envs, rows, burn, brow, probs, int(np.count_nonzero(w)), beta, device)
            self.weight[envs[~ok], rows[~ok]] = 0.0  # the burn-in start was overwritten: never valid again
        raise ReplayTooSmallError(f"SequenceReplay: could not find {n} windows with intact burn-in (rows {self.size})")

    def _gather(self, envs: np.ndarray, rows: np.ndarray, burn: np.ndarray, brow: np.ndarray, probs: np.ndarray,
                n_windows: int, beta: float, device: torch.device | str) -> SequenceBatch:
        N, T, Bi = len(envs), self.window, self.burn_in
        j = np.arange(T)[:, None]  # [T, 1]
        offset = (Bi - burn)[None, :]  # left padding of each window
        r = (brow[None, :] + j - offset) % self.C  # [T, N]
        e = np.broadcast_to(envs[None, :], (T, N))
        ep = self.episode[envs, rows][None, :]
        expected_step = (self.step[envs, rows] - burn)[None, :] + j - offset
        valid = (j >= offset) & (self.episode[e, r] == ep) & (self.step[e, r] == expected_step)
        has_action = valid & self.has_action[e, r]
        L = np.full(N, self.seq_len)
        if self.random_seq_len:
            short = self.rng.random(N) >= self.nominal_seq_len_prob
            L = np.where(short, self.rng.integers(1, self.seq_len + 1, size=N), L)
        train = has_action & (j >= Bi) & (j < Bi + L[None, :])

        def take(arr: np.ndarray) -> Tensor:
            x = arr[e, r]
            m = valid.reshape(T, N, *([1] * (x.ndim - 2)))
            return torch.from_numpy(np.where(m, x, np.zeros((), x.dtype)))

        slot = self.row_slot[envs, brow]
        state = {name: torch.from_numpy(arr[envs, slot].copy()) for name, arr in self.states.items()}
        if self.prioritized and beta > 0.0:
            wts = (n_windows * probs) ** (-beta)
            wts = wts / wts.max()
        else:
            wts = np.ones(N)
        start = ~valid | (self.step[e, r] == 0)
        batch = SequenceBatch(
            obs=take(self.obs), action=take(self.action), reward=take(self.reward),
            prev_action=take(self.prev_action), prev_reward=take(self.prev_reward),
            episode_start=torch.from_numpy(start), valid=torch.from_numpy(valid),
            has_action=torch.from_numpy(has_action), terminal=torch.from_numpy(valid & self.terminal[e, r]),
            train=torch.from_numpy(train), state=state, weight=torch.from_numpy(wts.astype(np.float32)),
            index=np.stack([envs, rows], axis=1), step0=torch.from_numpy(self.step[envs, rows].copy()), burn_in=Bi,
        )
        return batch.to(device) if torch.device(device).type != "cpu" else batch

    def update_priorities(self, index: np.ndarray, td_abs: Tensor, train: Tensor) -> None:
        """R2D2 priorities ``eta max_t |delta_t| + (1 - eta) mean_t |delta_t|`` over each window's training steps.

        Args:
            index: ``[N, 2]`` (env, row) from :attr:`SequenceBatch.index`.
            td_abs: ``[T, N]`` absolute TD errors.
            train: ``[T, N]`` bool, the steps that count.
        """
        if not self.prioritized:
            return
        m = train.to(td_abs.dtype)
        d = (td_abs.detach() * m)
        cnt = m.sum(0).clamp_min(1.0)
        p = self.eta * d.max(0).values + (1.0 - self.eta) * d.sum(0) / cnt + self.priority_eps
        p_np = p.cpu().numpy().astype(np.float64)
        envs, rows = index[:, 0], index[:, 1]
        live = self.weight[envs, rows] > 0  # untouched if the window was overwritten meanwhile
        self.weight[envs[live], rows[live]] = p_np[live] ** self.alpha
        self.max_priority = max(self.max_priority, float(p_np.max()))

    # -- checkpoints --------------------------------------------------------------------------------
    _ARRAYS = ("obs", "action", "prev_action", "reward", "prev_reward", "has_action", "terminal", "episode", "step",
               "row_slot", "weight", "end_row", "slot_row", "slot_episode", "pos", "next_slot", "cur_episode", "cur_step",
               "start_row")

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Tensors (every array, including the stored states) and JSON (counters, sampler RNG) to restore exactly."""
        tensors = {f"{k}": torch.from_numpy(np.ascontiguousarray(getattr(self, k))) for k in self._ARRAYS}
        tensors.update({f"state.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.states.items()})
        meta = {"next_episode_id": self.next_episode_id, "rows_written": self.rows_written,
                "max_priority": self.max_priority, "rng": _encode_rng(self.rng.bit_generator.state),
                "C": self.C, "S": self.S, "n_envs": self.n_envs}
        return tensors, meta

    # value ranges of the index arrays, as (low, high) with the bounds in terms of C and S: a checkpoint whose
    # indices point outside the arrays would fail later, inside sampling
    _RANGES = {"episode": ("-1", None), "step": ("0", None), "row_slot": ("-1", "S-1"), "end_row": ("-1", "C-1"),
               "slot_row": ("-1", "C-1"), "slot_episode": ("-1", None), "pos": ("0", None), "next_slot": ("0", None),
               "cur_episode": ("-1", None), "cur_step": ("0", None), "start_row": ("0", "C-1")}

    def load_state_dict(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output. Everything is checked before anything changes: exactly the arrays and
        states of this replay with their shapes and dtypes, indices inside the arrays, finite rewards and observations,
        non-negative weights, typed counters and a valid sampler RNG state.

        Raises:
            ValueError: naming the entry that does not fit this replay.
        """
        if not isinstance(meta, Mapping):
            raise ValueError(f"replay metadata must be a mapping, got {type(meta).__name__}")
        for key in ("C", "S", "n_envs", "next_episode_id", "rows_written", "max_priority", "rng"):
            if key not in meta:
                raise ValueError(f"replay metadata lacks {key!r}")
        for key in ("C", "S", "n_envs", "next_episode_id", "rows_written"):
            value = meta[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"replay {key}={value!r} must be an integer >= 0")
        for key in ("C", "S", "n_envs"):
            if meta[key] != getattr(self, key):
                raise ValueError(f"replay {key}={meta[key]} in the checkpoint, {getattr(self, key)} here")
        max_priority = meta["max_priority"]
        if isinstance(max_priority, bool) or not isinstance(max_priority, (int, float)) or not (
                math.isfinite(max_priority) and max_priority > 0):
            raise ValueError(f"replay max_priority={max_priority!r} must be a finite number > 0")
        expected = {k: getattr(self, k) for k in self._ARRAYS}
        expected.update({f"state.{k}": v for k, v in self.states.items()})
        for name in tensors:
            if name not in expected:
                raise ValueError(f"unexpected replay entry {name!r}")
        arrays: dict[str, np.ndarray] = {}
        for name, cur in expected.items():
            if name not in tensors:
                raise ValueError(f"replay entry {name!r} is missing")
            t = tensors[name]
            if not isinstance(t, Tensor):
                raise ValueError(f"replay entry {name!r} is not a tensor")
            new = t.detach().cpu().numpy()
            if new.shape != cur.shape or new.dtype != cur.dtype:
                raise ValueError(f"replay entry {name!r} is {list(new.shape)} {new.dtype} in the checkpoint, "
                                 f"{list(cur.shape)} {cur.dtype} here")
            if new.dtype.kind == "f" and not np.isfinite(new).all():
                raise ValueError(f"replay entry {name!r} holds non-finite values")
            arrays[name] = new
        bounds = {"C-1": self.C - 1, "S-1": self.S - 1, "-1": -1, "0": 0}
        for name, (low, high) in self._RANGES.items():
            a = arrays[name]
            if a.size and (a.min() < bounds[low] or (high is not None and a.max() > bounds[high])):
                raise ValueError(f"replay entry {name!r} holds indices outside [{bounds[low]}, "
                                 f"{bounds[high] if high is not None else 'inf'}]")
        if arrays["weight"].size and arrays["weight"].min() < 0:
            raise ValueError("replay entry 'weight' holds negative sampling weights")
        if not _all_strings(meta["rng"]):
            raise ValueError("replay rng state must hold strings only (as state_dict writes it)")
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = _decode_rng(meta["rng"])
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise ValueError(f"replay rng state does not fit a {type(rng.bit_generator).__name__}: {exc}") from exc
        for k in self._ARRAYS:
            setattr(self, k, arrays[k].copy())
        for k in self.states:
            self.states[k] = arrays[f"state.{k}"].copy()
        self.next_episode_id = int(meta["next_episode_id"])
        self.rows_written = int(meta["rows_written"])
        self.max_priority = float(max_priority)
        self.rng = rng


def _encode_rng(state: Mapping[str, Any]) -> dict[str, Any]:
    """numpy PCG64 state -> JSON (its 128-bit integers as strings)."""
    return {k: (_encode_rng(v) if isinstance(v, Mapping) else (str(v) if isinstance(v, int) else v))
            for k, v in state.items()}


def _all_strings(value: Any) -> bool:
    if isinstance(value, Mapping):
        return bool(value) and all(isinstance(k, str) and _all_strings(v) for k, v in value.items())
    return isinstance(value, str)


def _decode_rng(state: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in state.items():
        if isinstance(v, Mapping):
            out[k] = _decode_rng(v)
        elif isinstance(v, str) and v.lstrip("-").isdigit():
            out[k] = int(v)
        else:
            out[k] = v
    return out


__all__ = ["ReplayTooSmallError", "SequenceBatch", "SequenceReplay"]
