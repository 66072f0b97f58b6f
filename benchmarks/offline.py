"""Offline benchmark: Decision Transformer vs behaviour cloning on mixed-quality recorded datasets.

For every task and seed: record a dataset with ``tracerl.offline.record`` (scripted ``expert`` and ``wrong``
policies and uniform ``random`` actions, exact episode counts, the dataset seed = the run seed), train a Decision
Transformer and BC (the same causal transformer and context without the return tokens, same settings and seed) on
it, then evaluate both online on held-out episodes (seed 10,000 + run seed, deterministic actions, the context
carried by ``predict``): DT conditioned on every target return of the task's grid (the best return of the data is
the headline), BC once. Success is the env's ``info["success"]``. IQM over seeds with 95 % stratified-bootstrap CIs
(rliable, via ``tracerl.bench.stats``).

    .venv/bin/python benchmarks/offline.py [--tasks cue16 tmaze10 cue64] [--seeds 0 1 2] [--steps N] [--out FILE]

Tasks (K, the context, covers the whole episode in each):

* ``cue16``: CueDelay delay 16 with distractors; 100 expert, 400 wrong, 500 random episodes. The most common
  answer at the decision in the data is the wrong one (wrong 40 % + half of random 25 % vs expert 10 % + 25 %).
  The scripted policies take action 0 before the decision, so only recalling the cue's observation helps.
* ``cue16-er``: the same task, 100 expert and 900 random episodes (the correct answer is the majority only by
  5 points).
* ``cue64``: CueDelay delay 64, the ``cue16`` mixture; batches of 16 windows that end at episode ends
  (``window_ends="episode"``: each window is a whole episode, so the decision step is in every window, against
  1 in 64 with uniform ends).
* ``tmaze10``: Passive T-Maze, corridor 10 (11 steps); 100 expert, 400 wrong (reach the junction, turn the wrong
  way: return 0), 500 random (rarely reach the junction: return near -1).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, git_commit, machine_info  # noqa: E402

from tracerl.offline import experts, load_dataset, record  # noqa: E402
from tracerl.offline.bc import bc_config  # noqa: E402
from tracerl.offline.decision_transformer import DTConfig  # noqa: E402
from tracerl.offline.train import train_offline  # noqa: E402

CUE, TMAZE = "tracerl/CueDelay-v0", "tracerl/TMazePassive-v0"

SMALL = {"embed_dim": 32, "n_layers": 2, "n_heads": 2, "dropout": 0.0, "learning_rate": 1e-3, "warmup_steps": 20,
         "train_steps": 800}
"""Network and training settings of every task (a small model; 800 gradient steps of 64 windows)."""

TASKS: dict[str, dict[str, Any]] = {
    "cue16": {"env": CUE, "kwargs": {"delay": 16, "difficulty": 1},
              "mix": {"expert": (experts.cue_delay_expert, 100), "wrong": (experts.cue_delay_wrong, 400),
                      "random": ("random", 500)},
              "config": {"context_len": 16, **SMALL}, "targets": [-1.0, 0.0, 1.0]},
    "cue16-er": {"env": CUE, "kwargs": {"delay": 16, "difficulty": 1},
                 "mix": {"expert": (experts.cue_delay_expert, 100), "random": ("random", 900)},
                 "config": {"context_len": 16, **SMALL}, "targets": [-1.0, 0.0, 1.0]},
    "cue64": {"env": CUE, "kwargs": {"delay": 64, "difficulty": 1},
              "mix": {"expert": (experts.cue_delay_expert, 100), "wrong": (experts.cue_delay_wrong, 400),
                      "random": ("random", 500)},
              "config": {"context_len": 64, **SMALL, "batch_size": 16, "window_ends": "episode"},
              "targets": [-1.0, 0.0, 1.0]},
    "tmaze10": {"env": TMAZE, "kwargs": {"corridor_length": 10},
                "mix": {"expert": (experts.tmaze_passive_expert, 100), "wrong": (experts.tmaze_passive_wrong, 400),
                        "random": ("random", 500)},
                "config": {"context_len": 11, **SMALL}, "targets": [-1.0, 0.0, 0.5, 1.0]},
}


def run_one(task: str, seed: int, episodes: int, workdir: Path, steps: int | None = None) -> dict[str, Any]:
    spec = TASKS[task]
    t0 = time.time()
    summary = record(spec["env"], workdir / f"{task}-{seed}", spec["mix"], env_kwargs=spec["kwargs"], seed=seed,
                     n_envs=16, overwrite=True)
    ds = load_dataset(summary.path)
    config = DTConfig(**{**spec["config"], **({"train_steps": steps} if steps else {})})
    out: dict[str, Any] = {"task": task, "seed": seed, "dataset": summary.per_policy,
                           "dataset_steps": ds.total_steps, "best_return": float(ds.returns().max()),
                           "config": asdict(config)}
    for kind, cfg in (("dt", config), ("bc", bc_config(config))):
        t = time.time()
        res = train_offline(ds, cfg, seed=seed)
        train_s = time.time() - t
        evals = {}
        targets = spec["targets"] if kind == "dt" else [None]
        for target in targets:
            r = res.policy.evaluate(spec["env"], episodes, seed=10_000 + seed, env_kwargs=spec["kwargs"],
                                    target_return=target)
            evals["best" if target is None else str(target)] = {"success": r.success_rate,
                                                                  "mean_return": r.mean_return}
        out[kind] = {"train_seconds": train_s, "final_loss": float(np.mean(res.losses[-50:])), "eval": evals}
        print(f"{task} seed {seed} {kind}: train {train_s:.0f}s loss {out[kind]['final_loss']:.3f} "
              + " ".join(f"[{k}] {v['success']:.2f}" for k, v in evals.items()), flush=True)
    out["seconds"] = time.time() - t0
    return out


def report(results: list[dict[str, Any]]) -> str:
    from tracerl.bench.stats import interval_estimates

    lines = ["| task | agent | success (IQM [95 % CI]) | per seed |", "|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in results):
        rows = [r for r in results if r["task"] == task]
        best = str(max(float(k) for k in rows[0]["dt"]["eval"]))
        series = {f"DT (target {best})": [r["dt"]["eval"][best]["success"] for r in rows],
                  "BC": [r["bc"]["eval"]["best"]["success"] for r in rows]}
        est = interval_estimates({k: np.array(v, dtype=float)[:, None] for k, v in series.items()})
        for name, values in series.items():
            iqm = est[name]["IQM"]
            lines.append(f"| {task} | {name} | {iqm.point:.2f} [{iqm.low:.2f}, {iqm.high:.2f}] | "
                         + ", ".join(f"{v:.2f}" for v in values) + " |")
    lines += ["", "| task | DT target return | success (mean over seeds) | per seed |", "|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in results):
        rows = [r for r in results if r["task"] == task]
        for target in rows[0]["dt"]["eval"]:
            values = [r["dt"]["eval"][target]["success"] for r in rows]
            lines.append(f"| {task} | {target} | {np.mean(values):.2f} | " + ", ".join(f"{v:.2f}" for v in values) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["cue16", "tmaze10", "cue64"], choices=sorted(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=200, help="held-out evaluation episodes per measurement")
    parser.add_argument("--steps", type=int, default=None, help="gradient steps (default: the task's, 800)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default: bench_results/offline_*.json)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    out = args.out or RESULTS_DIR / f"offline_{time.strftime('%Y%m%d_%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    meta = {"commit": git_commit(), "machine": machine_info(), "argv": sys.argv[1:]}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            for seed in args.seeds:
                results.append(run_one(task, seed, args.episodes, Path(tmp), args.steps))
                out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(report(results))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
