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

Then, on every row of the window, ``desired_goal <- g'``; the reward of each step ``t`` becomes
``compute_reward(achieved_goal_{t+1}, g', {})`` (the achieved goal of the observation the action led to, i.e.
the next row), and ``prev_reward`` follows. Termination flags are not relabelled (use envs that do not
terminate on success, or whose termination does not depend on the goal).
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
            raise ConfigError(f"her=True needs a Dict observation space with keys {GOAL_KEYS}, got {space!r}")
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
    """

    def __init__(self, replay: SequenceReplay, layout: GoalLayout, compute_reward: RewardFn,
                 strategy: str = "future", ratio: float = 0.8, seed: int | None = None) -> None:
        if strategy not in ("future", "final"):
            raise ConfigError(f"her_strategy={strategy!r} is invalid: must be 'future' or 'final'")
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError(f"her_ratio={ratio!r} is invalid: must be in [0, 1]")
        self.replay, self.layout, self.compute_reward = replay, layout, compute_reward
        self.strategy, self.ratio = strategy, float(ratio)
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
        g = torch.as_tensor(goals, dtype=batch.obs.dtype)
        obs = batch.obs[:, it]
        obs[:, :, lay.desired_goal] = torch.where(valid.unsqueeze(-1), g.unsqueeze(0).expand(obs.shape[0], -1, -1),
                                                  obs[:, :, lay.desired_goal])
        batch.obs[:, it] = obs
        # reward of step t: the achieved goal of row t + 1 against the new goal
        T, K = valid.shape
        next_ag = obs[1:, :, lay.achieved_goal].reshape(-1, goals.shape[-1]).cpu().numpy()
        rep_goal = np.broadcast_to(goals[None], (T - 1, K, goals.shape[-1])).reshape(-1, goals.shape[-1])
        info = [{} for _ in range(next_ag.shape[0])]
        r = np.asarray(self.compute_reward(next_ag.reshape(-1, *lay.goal_shape), rep_goal.reshape(-1, *lay.goal_shape),
                                           info), dtype=np.float32).reshape(T - 1, K)
        r_t = torch.as_tensor(r, dtype=batch.reward.dtype)
        step = batch.has_action[:-1, it] & batch.valid[1:, it]
        new_reward = batch.reward[:, it].clone()
        new_reward[:-1] = torch.where(step, r_t, new_reward[:-1])
        batch.reward[:, it] = new_reward
        new_prev = batch.prev_reward[:, it].clone()
        new_prev[1:] = torch.where(step, r_t, new_prev[1:])
        batch.prev_reward[:, it] = new_prev
        return chosen


__all__ = ["GOAL_KEYS", "GoalLayout", "HindsightRelabeler", "find_compute_reward"]
