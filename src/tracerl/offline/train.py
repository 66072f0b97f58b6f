"""Offline training of Decision Transformer and behaviour cloning on a trajectory dataset.

Every episode's steps become rows of flat arrays (observation encoded with
:func:`tracerl.policies.encoders.preprocess`, action, return-to-go, timestep, the row of its episode's first step).
A batch is ``batch_size`` windows, each ending at a uniformly drawn step and reaching back ``K`` steps within its
episode (left-padded, padding masked in the attention and the loss), time-major ``[K, B]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from tracerl.errors import ConfigError, DatasetError

from .dataset import TrajectoryDataset, returns_to_go, slice_leaves
from .decision_transformer import ActionCodec, DecisionTransformer, DTConfig, SequencePolicy


@dataclass
class StepTable:
    """A dataset's steps as flat arrays (row ``i`` = one step), ready for window sampling."""

    states: np.ndarray
    """float32 ``[N, obs_dim]``."""
    actions: np.ndarray
    """int64 ``[N]`` or float32 ``[N, A]`` (network action values)."""
    returns_to_go: np.ndarray
    """float32 ``[N]`` (unscaled)."""
    timesteps: np.ndarray
    """int64 ``[N]``."""
    episode_first: np.ndarray
    """int64 ``[N]``: the row of the step's episode's first step."""
    episode_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """float64 ``[E]``."""
    longest: int = 0
    """Steps of the longest episode."""


def build_table(dataset: TrajectoryDataset, gamma: float = 1.0, top_fraction: float = 1.0) -> StepTable:
    """Flatten ``dataset`` (keeping the episodes whose return is in the top ``top_fraction``) into a :class:`StepTable`."""
    from tracerl.policies.encoders import preprocess

    codec = ActionCodec(dataset.action_space)
    episodes = list(dataset.episodes)
    if not episodes:
        raise DatasetError("the dataset has no episodes", path=str(dataset.path))
    if top_fraction < 1.0:
        returns = np.array([ep.total_return for ep in episodes])
        keep = max(1, int(math.ceil(top_fraction * len(episodes))))
        order = np.argsort(-returns, kind="stable")[:keep]
        episodes = [episodes[i] for i in sorted(order)]
    states, actions, rtgs, ts, first = [], [], [], [], []
    row = 0
    for ep in episodes:
        T = len(ep)
        obs = slice_leaves(ep.observations, slice(0, T))
        states.append(preprocess(dataset.observation_space, obs).numpy().reshape(T, -1))
        actions.append(codec.encode(ep.actions))
        rtgs.append(returns_to_go(ep.rewards, gamma).astype(np.float32))
        ts.append(np.arange(T, dtype=np.int64))
        first.append(np.full(T, row, dtype=np.int64))
        row += T
    return StepTable(np.concatenate(states).astype(np.float32), np.concatenate(actions), np.concatenate(rtgs),
                     np.concatenate(ts), np.concatenate(first),
                     np.array([ep.total_return for ep in episodes]), max(len(ep) for ep in episodes))


def sample_windows(table: StepTable, batch_size: int, K: int, rng: np.random.Generator,
                   window_ends: str = "uniform") -> dict[str, torch.Tensor]:
    """``batch_size`` windows of ``K`` steps, each ending at a uniformly drawn row (``window_ends="uniform"``) or at
    the last row of a uniformly drawn episode (``"episode"``, see :attr:`DTConfig.window_ends`), time-major ``[K, B]``.

    Returns a dict with ``states [K, B, D]``, ``actions [K, B(, A)]``, ``returns_to_go [K, B]`` (unscaled),
    ``timesteps [K, B]``, ``valid [K, B]`` (False for the left padding before the episode's first step).
    """
    if window_ends == "episode":
        firsts = np.flatnonzero(np.diff(table.episode_first, prepend=-1))  # each episode's first row
        lasts = np.append(firsts[1:] - 1, len(table.timesteps) - 1)
        end = lasts[rng.integers(0, len(lasts), size=batch_size)]
    elif window_ends == "uniform":
        end = rng.integers(0, len(table.timesteps), size=batch_size)
    else:
        raise ConfigError(f"sample_windows: window_ends={window_ends!r} is invalid; it must be 'uniform' or 'episode'.")
    rows = end[None, :] - (K - 1) + np.arange(K)[:, None]  # [K, B]
    valid = rows >= table.episode_first[end][None, :]
    rows = np.where(valid, rows, end[None, :])
    return {"states": torch.from_numpy(table.states[rows]), "actions": torch.from_numpy(table.actions[rows]),
            "returns_to_go": torch.from_numpy(table.returns_to_go[rows]),
            "timesteps": torch.from_numpy(table.timesteps[rows]), "valid": torch.from_numpy(valid)}


@dataclass
class TrainResult:
    """What :func:`train_offline` returns."""

    policy: SequencePolicy
    losses: list[float]
    """Action loss of every gradient step."""


def train_offline(dataset: TrajectoryDataset, config: DTConfig | None = None, seed: int = 0,
                  callback: Callable[[int, float], Any] | None = None) -> TrainResult:
    """Train a Decision Transformer (``config.condition_on_return``) or BC on ``dataset``.

    Runs inside its own torch RNG fork (seeded with ``seed``) with ``config.threads`` threads, so it neither
    depends on nor moves the caller's global generator. ``callback(step, loss)`` is called after every step.
    """
    from tracerl.policies.encoders import flat_dim
    from tracerl.threads import torch_threads

    config = config or DTConfig()
    config.validate()
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"train_offline: seed={seed!r} is invalid; it must be an int.")
    table = build_table(dataset, config.gamma, config.top_fraction)
    returns = table.episode_returns
    scale = config.return_scale or max(1.0, float(np.max(np.abs(returns))))
    max_t = config.max_timestep or table.longest
    obs_dim = flat_dim(dataset.observation_space)
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]), torch_threads(config.threads):
        torch.manual_seed(seed)
        model = DecisionTransformer(obs_dim, dataset.action_space, config, max_t)
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed_timestep" not in n]
        no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed_timestep" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate)
        warm = config.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        model.train()
        for step in range(config.train_steps):
            batch = sample_windows(table, config.batch_size, config.context_len, rng, config.window_ends)
            out = model(batch["states"], batch["actions"], batch["returns_to_go"] / scale, batch["timesteps"],
                        batch["valid"])
            loss = model.loss(out, batch["actions"], batch["valid"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if callback is not None:
                callback(step, losses[-1])
        model.eval()
    policy = SequencePolicy(model, dataset.observation_space, dataset.action_space, scale, float(np.max(returns)),
                            seed=seed)
    return TrainResult(policy, losses)


__all__ = ["StepTable", "TrainResult", "build_table", "sample_windows", "train_offline"]
