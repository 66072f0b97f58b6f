"""HCAM vs the windowed transformer vs GTrXL on CueDelay (issue 20 item 3): success within one budget, and cost.

For every delay in ``--delays`` and every seed in ``--seeds``, one process trains three PPO agents that differ only
in their core, each with ``tracerl.bench.agents.core_settings`` (lr 1e-3; transformer ``window = delay``, GTrXL
``memory_len = delay``, HCAM chunks of 8 steps, ``num_chunks = delay / 8``, top-4; one layer, width 64, 4 heads,
tracerl's PPO defaults otherwise), on CueDelay difficulty 1 (random +-1 distractors; one reward, at the last step).
The three agents train in interleaved rounds of ``--every`` env steps (hcam, transformer, gtrxl, hcam, ...), so
they see the same machine load; after each round an agent is evaluated on ``--episodes`` held-out episodes
(deterministic actions, the memory carried by ``predict``, not timed) and stops once it reaches 95 %.

Reported per core: steps to 95 % (unsolved runs count as the steps they trained, a lower bound), the last success,
and the cost: training seconds per env step divided by HCAM's, the median over the rounds that both trained in (a
ratio of wall-clock times measured back to back, valid on a loaded machine as long as the load is steady). Across seeds: IQM of steps to 95 % and of the last
success with 95 % stratified-bootstrap CIs (rliable, through ``tracerl.bench.stats``).

    nice -n 10 .venv/bin/python benchmarks/hcam_learning.py [--delays 64] [--seeds 0 1 2] [--budget 100000]
    .venv/bin/python benchmarks/hcam_learning.py --delays 8 --seeds 0 --budget 4096 --every 2048   # smoke run
    .venv/bin/python benchmarks/hcam_learning.py --report bench_results/hcam_learning_*.json    # tables only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (RESULTS_DIR, configure_torch, cue_kwargs, eval_seed, held_out_success, log,  # noqa: E402
                     machine_info, table, write_json)

CORES = ("hcam", "transformer", "gtrxl")
TARGET = 0.95


def make_agent(core: str, delay: int, seed: int) -> Any:
    from tracerl.bench.agents import make_tracerl_agent
    from tracerl.bench.envs import CUE_ENV_ID, EnvSpec

    return make_tracerl_agent(core, EnvSpec(CUE_ENV_ID, cue_kwargs(delay)), seed)


def run(delay: int, seed: int, budget: int, every: int, episodes: int,
        on_round: Any = None) -> dict[str, Any]:
    """Train the three cores interleaved (see the module docstring); one result dict per core. ``on_round(result)``
    is called after every round with the result so far (the script saves it: a stopped run keeps its rounds)."""
    agents = {core: make_agent(core, delay, seed) for core in CORES}
    runs = {core: {"core": core, "delay": delay, "seed": seed, "budget": budget, "steps_to_95": None,
                   "curve": [], "round_seconds": [], "train_steps": 0} for core in CORES}
    n_round = 0
    while any(r["steps_to_95"] is None and r["train_steps"] < budget for r in runs.values()):
        n_round += 1
        for core, agent in agents.items():
            r = runs[core]
            if r["steps_to_95"] is not None or r["train_steps"] >= budget:
                r["round_seconds"].append(None)
                continue
            t = time.perf_counter()
            agent.learn(min(every, budget - r["train_steps"]), reset_num_timesteps=r["train_steps"] == 0)
            seconds = time.perf_counter() - t
            steps = int(agent.num_timesteps)
            r["round_seconds"].append(seconds / max(1, steps - r["train_steps"]))  # seconds per env step
            r["train_steps"] = steps
            success = held_out_success(agent, delay, eval_seed(seed, n_round), episodes)
            r["curve"].append((steps, round(seconds, 1), success))
            if success >= TARGET:
                r["steps_to_95"] = steps
            log(f"delay {delay} seed {seed} {core}: {steps:,} steps, success {success:.2f}, "
                f"{seconds:.0f} s this round")
        if on_round is not None:
            on_round(_summarize(delay, seed, runs))
    return _summarize(delay, seed, runs)


def _summarize(delay: int, seed: int, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    for core, r in runs.items():
        r["last_success"] = r["curve"][-1][2] if r["curve"] else float("nan")
        if core != "hcam":
            pairs = [o / h for o, h in zip(r["round_seconds"], runs["hcam"]["round_seconds"])
                     if o is not None and h is not None]
            r["cost_over_hcam"] = statistics.median(pairs) if pairs else None
            r["cost_rounds"] = len(pairs)
    return {"delay": delay, "seed": seed, "load": os.getloadavg(), "runs": [dict(r) for r in runs.values()]}


def iqm_ci(values: list[float], fmt: str) -> str:
    from tracerl.bench.stats import interval_estimates

    est = interval_estimates({"x": np.asarray(values, dtype=np.float64).reshape(-1, 1)})["x"]["IQM"]
    return f"{est.point:{fmt}} [{est.low:{fmt}}, {est.high:{fmt}}]"


def report(results: list[dict[str, Any]]) -> str:
    """Per-seed and summary tables of ``results`` (the ``results`` lists of one or more JSON files)."""
    rows, summary = [], []
    for res in sorted(results, key=lambda x: (x["delay"], x["seed"])):
        for r in res["runs"]:
            rows.append([str(r["delay"]), r["core"], str(r["seed"]),
                         f"{r['steps_to_95']:,}" if r["steps_to_95"] else f"> {r['train_steps']:,}",
                         f"{r['last_success']:.2f}",
                         "1" if r["core"] == "hcam" else
                         ("" if r.get("cost_over_hcam") is None else f"{1 / r['cost_over_hcam']:.2f}")])
    for delay in sorted({res["delay"] for res in results}):
        sel = [r for res in results if res["delay"] == delay for r in res["runs"]]
        for core in CORES:
            cr = [r for r in sel if r["core"] == core]
            steps = [float(r["steps_to_95"] or r["train_steps"]) for r in cr]  # unsolved: a lower bound
            last = [r["last_success"] for r in cr]
            cost = [1 / r["cost_over_hcam"] for r in cr if r.get("cost_over_hcam")]
            summary.append([str(delay), core, f"{sum(r['steps_to_95'] is not None for r in cr)}/{len(cr)}",
                            iqm_ci(steps, ",.0f"), iqm_ci(last, ".2f"),
                            "1" if core == "hcam" else (f"{statistics.median(cost):.2f}" if cost else "")])
    head = ["delay", "core", "seed", "steps to 95 %", "last success", "HCAM time per step / this core's"]
    return (table(rows, head) + "\n\n"
            + table(summary, ["delay", "core", "solved", "steps to 95 %: IQM [95 % CI]",
                              "last success: IQM [95 % CI]", "HCAM time per step / this core's (median)"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delays", nargs="+", type=int, default=[64])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=100_000, help="env steps per core and run")
    parser.add_argument("--every", type=int, default=8192, help="env steps per round (evaluation after each)")
    parser.add_argument("--episodes", type=int, default=100, help="held-out episodes per evaluation")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default: bench_results/hcam_learning_*)")
    parser.add_argument("--report", nargs="+", type=Path, default=None, help="only print the tables of these files")
    args = parser.parse_args(argv)
    if args.report:
        print(report([res for p in args.report for res in json.loads(p.read_text())["results"]]))
        return 0
    configure_torch()
    out = args.out or RESULTS_DIR / f"hcam_learning_{time.strftime('%Y%m%d_%H%M%S')}.json"
    results: list[dict[str, Any]] = []
    settings = vars(args) | {"out": str(out), "report": None}

    def save(partial: dict[str, Any] | None = None) -> None:
        write_json(out, {"settings": settings, "machine": machine_info(),
                         "results": results + ([partial] if partial else [])})

    for delay in args.delays:
        for seed in args.seeds:
            results.append(run(delay, seed, args.budget, args.every, args.episodes, on_round=save))
            save()
    print(report(results))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
