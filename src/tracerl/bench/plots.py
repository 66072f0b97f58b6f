"""PNG figures of a suite (matplotlib, Agg backend): learning curves, aggregate intervals, performance
profiles and training throughput."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .stats import AGGREGATES, Interval


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(agents: Sequence[str]) -> dict[str, Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10" if len(agents) <= 10 else "tab20")
    return {a: cmap(i % cmap.N) for i, a in enumerate(agents)}


def learning_curves(records: Sequence[Mapping[str, Any]], agents: Sequence[str], tasks: Sequence[str],
                    threshold: float, path: Path) -> Path:
    """Held-out success against env steps, one panel per env, one thin line per seed."""
    plt = _plt()
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    colors = _colors(agents)
    for ax, task in zip(axes.flat, tasks):
        seen = set()
        for r in records:
            if r.get("status") != "ok" or r["env_label"] != task:
                continue
            curve = r["metrics"]["curve"]
            if not curve:
                continue
            label = None if r["agent"] in seen else r["agent"]
            seen.add(r["agent"])
            ax.plot([p["steps"] for p in curve], [p["success"] for p in curve], marker=".", lw=1, alpha=0.8,
                    color=colors[r["agent"]], label=label)
        ax.axhline(threshold, color="grey", ls=":", lw=1)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylabel("held-out success")
        ax.set_ylim(-0.02, 1.02)
        if seen:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def aggregate_intervals(estimates: Mapping[str, Mapping[str, Interval]], path: Path) -> Path:
    """IQM, mean and median of the final success with 95 % bootstrap CIs, one row per agent."""
    plt = _plt()
    agents = list(estimates)
    colors = _colors(agents)
    fig, axes = plt.subplots(1, len(AGGREGATES), figsize=(3.6 * len(AGGREGATES), 0.45 * len(agents) + 1.2),
                             squeeze=False)
    for ax, name in zip(axes[0], AGGREGATES):
        for i, agent in enumerate(agents):
            iv = estimates[agent][name]
            ax.barh(i, iv.high - iv.low, left=iv.low, height=0.6, color=colors[agent], alpha=0.6)
            ax.plot([iv.point, iv.point], [i - 0.3, i + 0.3], color="k", lw=1.5)
        ax.set_yticks(range(len(agents)))
        ax.set_yticklabels(agents if name == AGGREGATES[0] else [""] * len(agents), fontsize=8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("final success")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def performance_profile(taus: np.ndarray, profiles: Mapping[str, np.ndarray], cis: Mapping[str, np.ndarray],
                        path: Path) -> Path:
    """Fraction of runs whose final success exceeds tau, with bootstrap bands."""
    plt = _plt()
    agents = list(profiles)
    colors = _colors(agents)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for agent in agents:
        ax.plot(taus, profiles[agent], color=colors[agent], label=agent)
        ax.fill_between(taus, cis[agent][0], cis[agent][1], color=colors[agent], alpha=0.2)
    ax.set_xlabel("final success tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput(rates: Mapping[str, float], path: Path) -> Path:
    """Median training env-steps/s per agent."""
    plt = _plt()
    agents = sorted(rates, key=lambda a: rates[a])
    colors = _colors(agents)
    fig, ax = plt.subplots(figsize=(5.5, 0.4 * len(agents) + 1.2))
    ax.barh(range(len(agents)), [rates[a] for a in agents], color=[colors[a] for a in agents])
    ax.set_yticks(range(len(agents)))
    ax.set_yticklabels(agents, fontsize=8)
    ax.set_xlabel("training env-steps/s (median over runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
