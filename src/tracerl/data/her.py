"""Hindsight Experience Replay (Andrychowicz et al. 2017) for recurrent agents: relabel *whole* replayed windows.

Goal-conditioned envs have ``Dict`` observations with ``observation``, ``achieved_goal`` and ``desired_goal``
entries and a vectorized ``compute_reward(achieved_goal, desired_goal, info)``. The replay stores the flat
encoding of the whole Dict (:func:`tracerl.policies.preprocess`, children in the space's key order), so
:class:`GoalLayout` knows which columns hold each goal.

A relabelled window gets one new goal ``g'`` for all of its rows (a recurrent network must see one goal per
sequence; changing it mid-window would feed the memory an inconsistent history):

* ``final``: the achieved goal of the episode's last stored row;
* ``future``: the achieved goal of a uniformly random row of the episode after the window's first training
  step (``t_u < t <= t_last``), so the goal is reached at or after some trained step.

Then, on every row of the window (burn-in included, so the memory sees ``g'`` in every observation it replays),
``desired_goal <- g'``; the reward of each step ``t`` becomes ``compute_reward(achieved_goal_{t+1}, g', {})`` (the
achieved goal of the observation the action led to, i.e. the next row), and ``prev_reward`` follows (row 0's too,
from its own achieved goal).

Termination. When the env has the goal-env method ``compute_terminated(achieved_goal, desired_goal, info)`` (an env
that ends its episodes on success, e.g. :class:`~tracerl.envs.bitflip.BitFlip`), the relabelled episode ends where
``g'`` is first achieved after an action: that row becomes a terminal final row (no action, no bootstrap) and the
rows after it leave the window (``valid = False``); the episode's real end becomes a truncation (bootstrapped)
unless ``g'`` is achieved there; and a window whose ``g'`` was achieved before its first row (earlier in the
episode) trains on nothing, since under ``g'`` its steps never happened. Without ``compute_terminated`` the
termination flags are kept (termination must then not depend on the goal, as in
:class:`~tracerl.envs.goal_line.GoalLine`, which never terminates).

Multi-step returns. The replayed actions were chosen for the original goal, so for ``g'`` they are another
policy's, and R2D2's uncorrected n-step returns on a relabelled window are biased (the HER paper uses one-step
targets; SAC and TD3 here do too). R2D2 keeps them uncorrected: cutting them at the first action that is not
greedy for ``g'`` (Watkins) made GoalLine(6) worse at 15k steps (0.52 held-out success against 0.79, seed 0).
``n_step=1`` or ``cut_at_exploration=True`` remove the bias for every window.

The memory state a window starts from is the one stored while acting, under the original goal; it is exact for
windows that start at their episode's first step (``burn_in`` >= the episode length, or
``always_sample_from_initial_state``) and an approximation otherwise (the burn-in then replays the relabelled
goal on top of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from ..errors import ConfigError, UnsupportedSpaceError
from ..policies.encoders import flat_dim
from .replay import SequenceBatch, SequenceReplay

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")

RewardFn = Callable[[np.ndarray, np.ndarray, Any], np.ndarray]


@dataclass(frozen=True)
class GoalLayout:
    """Column slices of ``observation``, ``achieved_goal`` and ``desired_goal`` in the flat observation."""

    observation: slice
    achieved_goal: slice
    desired_goal: slice
    goal_shape: tuple[int, ...]
    obs_dim: int

    @classmethod
    def from_space(cls, space: gym.Space) -> "GoalLayout":
        """Raises ConfigError if ``space`` is not a goal Dict, UnsupportedSpaceError for non-Box/MultiBinary goals."""
        if not isinstance(space, spaces.Dict) or any(k not in space.spaces for k in GOAL_KEYS):
            raise ConfigError(f"her=True needs a Dict observation space with keys {GOAL_KEYS} (so does "
                              f"observe_achieved_goal=False), got {space!r}")
        offsets: dict[str, slice] = {}
        start = 0
        for key, sub in space.spaces.items():
            width = flat_dim(sub)
            offsets[key] = slice(start, start + width)
            start += width
        for key in ("achieved_goal", "desired_goal"):
            if not isinstance(space.spaces[key], (spaces.Box, spaces.MultiBinary)):
                raise UnsupportedSpaceError(f"HER relabels Box or MultiBinary goals, got {key}: {space.spaces[key]!r}")
        ag, dg = space.spaces["achieved_goal"], space.spaces["desired_goal"]
        if ag.shape != dg.shape:
            raise ConfigError(f"achieved_goal {ag.shape} and desired_goal {dg.shape} shapes differ")
        return cls(offsets["observation"], offsets["achieved_goal"], offsets["desired_goal"], tuple(ag.shape), start)

    def policy_columns(self, observe_achieved_goal: bool) -> list[int] | None:
        """Columns the networks read: all (None), or all but the achieved goal."""
        if observe_achieved_goal:
            return None
        ag = set(range(self.achieved_goal.start, self.achieved_goal.stop))
        return [c for c in range(self.obs_dim) if c not in ag]


def find_compute_terminated(env: Any) -> RewardFn | None:
    """The goal env's ``compute_terminated`` from a vector env (its own, or its first sub-env's), or None."""
    fn = getattr(env, "compute_terminated", None)
    if callable(fn):
        return fn
    envs = getattr(env, "envs", None)
    if envs:
        fn = getattr(envs[0].unwrapped, "compute_terminated", None)
        if callable(fn):
            return fn
    return None


def find_compute_reward(env: Any) -> RewardFn:
    """The goal env's ``compute_reward`` from a vector env (its own, or its first sub-env's)."""
    fn = getattr(env, "compute_reward", None)
    if callable(fn):
        return fn
    envs = getattr(env, "envs", None)
    if envs:
        fn = getattr(envs[0].unwrapped, "compute_reward", None)
        if callable(fn):
            return fn
    raise ConfigError(f"her=True needs an env with compute_reward(achieved_goal, desired_goal, info); {env!r} has none "
                      "(use a SyncVectorEnv of goal envs, or a vector env with its own compute_reward)")


class HindsightRelabeler:
    """Relabels a fraction of the windows of a :class:`SequenceBatch` with hindsight goals (in place).

    Args:
        replay: the replay the windows come from (for achieved goals beyond the window).
        layout: where the goals sit in the flat observation.
        compute_reward: the env's vectorized reward function.
        strategy: ``"future"`` or ``"final"``.
        ratio: fraction of windows relabelled.
        seed: seed of the relabelling generator.
        compute_terminated: the env's vectorized ``compute_terminated`` (None: termination does not depend on
            the goal and the stored flags are kept).
    """

    def __init__(self, replay: SequenceReplay, layout: GoalLayout, compute_reward: RewardFn,
                 strategy: str = "future", ratio: float = 0.8, seed: int | None = None,
                 compute_terminated: RewardFn | None = None) -> None:
        if strategy not in ("future", "final"):
            raise ConfigError(f"her_strategy={strategy!r} is invalid: must be 'future' or 'final'")
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError(f"her_ratio={ratio!r} is invalid: must be in [0, 1]")
        self.replay, self.layout, self.compute_reward = replay, layout, compute_reward
        self.strategy, self.ratio = strategy, float(ratio)
        self.compute_terminated = compute_terminated
        self.rng = np.random.default_rng(seed)

    def goal_rows(self, envs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The row whose achieved goal becomes each window's new goal (``[N]`` rows of env ``envs``)."""
        rp = self.replay
        last = rp.last_row_of_episode(envs, rows)
        t_u = rp.step[envs, rows]
        t_last = rp.step[envs, last]
        if self.strategy == "final":
            return last
        k = self.rng.integers(1, np.maximum(t_last - t_u, 1) + 1)  # steps after t_u, in [1, t_last - t_u]
        return (rows + np.minimum(k, t_last - t_u)) % rp.C

    def _goal_fn(self, fn: RewardFn, achieved: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """``fn(achieved [..., G], goal [G] per window)`` on ``[T, K, G]`` rows -> ``[T, K]``."""
        T, K, G = achieved.shape
        shape = self.layout.goal_shape
        rep = np.broadcast_to(goal[None], (T, K, G)).reshape(-1, *shape)
        info = [{} for _ in range(T * K)]
        out = np.asarray(fn(achieved.reshape(-1, *shape), rep, info))
        return np.broadcast_to(out, (T * K,)).reshape(T, K).copy()

    def _achieved_before(self, envs: np.ndarray, rows: np.ndarray, burn: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """``[K]`` bool: the new goal was achieved after an action at a step of the window's episode before the
        window's first row (the rows still stored in the replay)."""
        rp, lay = self.replay, self.layout
        t_u = rp.step[envs, rows]
        first = t_u - burn  # episode step of the window's row 0
        n_before = np.maximum(first - 1, 0)  # steps 1 .. first - 1
        M = int(n_before.max(initial=0))
        if M == 0:
            return np.zeros(len(envs), dtype=bool)
        s = 1 + np.arange(M)[None, :]  # [1, M] episode steps
        r = (rows[:, None] - t_u[:, None] + s) % rp.C  # [K, M]
        e = np.broadcast_to(envs[:, None], r.shape)
        stored = (s < first[:, None]) & (rp.episode[e, r] == rp.episode[envs, rows][:, None]) & (rp.step[e, r] == s)
        ag = rp.obs[e, r][..., lay.achieved_goal]  # [K, M, G]
        hit = self._goal_fn(self.compute_terminated, ag.transpose(1, 0, 2), goals).T.astype(bool)  # type: ignore[arg-type]
        return (hit & stored).any(axis=1)

    def relabel(self, batch: SequenceBatch) -> np.ndarray:
        """Relabel windows of ``batch`` in place; returns the bool mask ``[N]`` of relabelled windows."""
        N = batch.N
        chosen = self.rng.random(N) < self.ratio
        if not chosen.any():
            return chosen
        idx = np.flatnonzero(chosen)
        envs, rows = batch.index[idx, 0], batch.index[idx, 1]
        goals = self.replay.obs[envs, self.goal_rows(envs, rows), self.layout.achieved_goal]  # [K, G]
        lay = self.layout
        it = torch.as_tensor(idx)
        valid = batch.valid[:, it]  # [T, K]
        T, K = valid.shape
        g = torch.as_tensor(goals, dtype=batch.obs.dtype, device=batch.obs.device)
        obs = batch.obs[:, it]
        obs[:, :, lay.desired_goal] = torch.where(valid.unsqueeze(-1), g.unsqueeze(0).expand(T, -1, -1),
                                                  obs[:, :, lay.desired_goal])
        batch.obs[:, it] = obs
        ag = obs[:, :, lay.achieved_goal].cpu().numpy()  # [T, K, G]
        # the reward of the step into row j (j >= 1: step j - 1; row 0: the step before the window)
        dev = batch.obs.device
        r_into = torch.as_tensor(self._goal_fn(self.compute_reward, ag, goals), dtype=batch.reward.dtype, device=dev)
        step_of_row = (batch.step0[it].unsqueeze(0) - batch.burn_in
                       + torch.arange(T, device=batch.step0.device).unsqueeze(1)).to(dev)  # [T, K]
        step = batch.has_action[:-1, it] & valid[1:]
        new_reward = batch.reward[:, it].clone()
        new_reward[:-1] = torch.where(step, r_into[1:], new_reward[:-1])
        new_prev = batch.prev_reward[:, it].clone()
        new_prev[1:] = torch.where(step, r_into[1:], new_prev[1:])
        new_prev[0] = torch.where(valid[0] & (step_of_row[0] >= 1), r_into[0], new_prev[0])
        batch.reward[:, it] = new_reward
        batch.prev_reward[:, it] = new_prev
        if self.compute_terminated is not None:
            self._relabel_termination(batch, it, envs, rows, goals, ag, step_of_row)
        return chosen

    def _relabel_termination(self, batch: SequenceBatch, it: torch.Tensor, envs: np.ndarray, rows: np.ndarray,
                             goals: np.ndarray, ag: np.ndarray, step_of_row: torch.Tensor) -> None:
        """End each relabelled episode where its new goal is first achieved (see the module docstring)."""
        assert self.compute_terminated is not None
        valid = batch.valid[:, it]
        T, K = valid.shape
        dev = valid.device
        hit = torch.as_tensor(self._goal_fn(self.compute_terminated, ag, goals).astype(bool), device=dev)
        hit = hit & valid & (step_of_row >= 1)
        j = torch.arange(T, device=dev).unsqueeze(1).expand(T, K)
        end = torch.where(hit, j, torch.full_like(j, T)).min(0).values  # [K] first terminal row (T: none)
        after = j > end.unsqueeze(0)
        at = j == end.unsqueeze(0)
        burn = batch.step0[it] - step_of_row[0].clamp_min(0)  # burn-in rows inside the episode: min(burn_in, t_u)
        earlier = torch.as_tensor(self._achieved_before(envs, rows, burn.cpu().numpy(), goals), device=dev)
        keep = valid & ~after
        batch.valid[:, it] = keep
        batch.has_action[:, it] = batch.has_action[:, it] & keep & ~at
        batch.terminal[:, it] = keep & at
        batch.train[:, it] = batch.train[:, it] & keep & ~at & ~earlier.unsqueeze(0)
        batch.episode_start[:, it] = batch.episode_start[:, it] | after
        for name in ("obs", "action", "reward", "prev_action", "prev_reward"):
            x = getattr(batch, name)[:, it]
            gone = after.reshape(T, K, *([1] * (x.dim() - 2)))
            x = torch.where(gone, torch.zeros((), dtype=x.dtype), x)
            if name in ("action", "reward"):  # the terminal row has no action
                x = torch.where(at.reshape(T, K, *([1] * (x.dim() - 2))), torch.zeros((), dtype=x.dtype), x)
            getattr(batch, name)[:, it] = x


__all__ = ["GOAL_KEYS", "GoalLayout", "HindsightRelabeler", "find_compute_reward", "find_compute_terminated"]
