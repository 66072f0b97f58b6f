"""PNG figures of a suite (matplotlib, Agg backend): learning curves (against env steps and against
training wall-clock), aggregate intervals, performance profiles and training throughput."""

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


def learning_curves(records: Sequence[Mapping[str, Any]], agents: Sequence[str],
                    panels: Sequence[tuple[str, str, str, str]], threshold: float, path: Path,
                    x: str = "steps") -> Path:
    """Held-out score against env steps (``x="steps"``) or training seconds (``x="train_seconds"``), one panel
    per ``(title, env label, comparison, score)`` (score ``"success"`` or ``"return"``), one line per seed."""
    from .report import record_comparison

    plt = _plt()
    cols = max(1, min(3, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    colors = _colors(agents)
    for ax, (title, task, comparison, score) in zip(axes.flat, panels):
        seen = set()
        key = "mean_return" if score == "return" else "success"
        for r in records:
            if r.get("status") != "ok" or r["env_label"] != task or record_comparison(r) != comparison:
                continue
            curve = r["metrics"]["curve"]
            if not curve or r["agent"] not in colors:
                continue
            label = None if r["agent"] in seen else r["agent"]
            seen.add(r["agent"])
            ax.plot([p[x] for p in curve], [p[key] for p in curve], marker=".", lw=1, alpha=0.8,
                    color=colors[r["agent"]], label=label)
        if score == "success":
            ax.axhline(threshold, color="grey", ls=":", lw=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("env steps" if x == "steps" else "training seconds (evaluation excluded)")
        ax.set_ylabel("held-out " + ("return" if score == "return" else "success"))
        ax.set_ylim(*((-1.05, 1.05) if score == "return" else (-0.02, 1.02)))
        if seen:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def aggregate_intervals(estimates: Mapping[str, Mapping[str, Interval]], path: Path,
                        lim: tuple[float, float] = (0.0, 1.0), xlabel: str = "final success") -> Path:
    """IQM, mean and median of the final score with 95 % bootstrap CIs, one row per agent."""
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
        pad = 0.02 * (lim[1] - lim[0])
        ax.set_xlim(lim[0] - pad, lim[1] + pad)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def performance_profile(taus: np.ndarray, profiles: Mapping[str, np.ndarray], cis: Mapping[str, np.ndarray],
                        path: Path, xlabel: str = "final success tau") -> Path:
    """Fraction of runs whose final score exceeds tau, with bootstrap bands."""
    plt = _plt()
    agents = list(profiles)
    colors = _colors(agents)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for agent in agents:
        ax.plot(taus, profiles[agent], color=colors[agent], label=agent)
        ax.fill_between(taus, cis[agent][0], cis[agent][1], color=colors[agent], alpha=0.2)
    ax.set_xlabel(xlabel)
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
