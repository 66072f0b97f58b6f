"""MERLIN-style predictive memory (issue 20 item 4): ``aux=("predictive",)`` on vs off on a sparse-reward memory task.

Task: CueDelay difficulty 1 (random +-1 distractors after the cue), ``--delay`` (default 64): one reward, at the
last step of each episode. For every memory in ``--memories`` (``gru``: TraceRL's PPO-GRU at its defaults;
``strategic``: the strategic memory agent of ``benchmarks/strategic.py``) and every seed, two runs that differ
only in the auxiliary loss: ``off`` (none) and ``on`` (:class:`tracerl.algos.auxiliary.PredictiveAuxModule`
at its defaults, weight ``--coef``). Each run trains up to its budget and is evaluated every ``--every``
env steps on 200 held-out episodes (deterministic actions, memory carried by ``predict``, the training clock
paused); it stops at the first evaluation >= 95 %. Reported: steps to 95 % per seed (unsolved runs count as
their budget, a lower bound), their IQM with a 95 % stratified-bootstrap CI (rliable, through
``tracerl.bench.stats``), the last success, and the predictive loss's components at the end of the run.

    nice -n 10 .venv/bin/python benchmarks/predictive_memory.py [--memories gru,strategic] [--seeds 3]
        [--delay 64] [--budget 150000] [--strategic-budget 200000] [--every 8192]
    .venv/bin/python benchmarks/predictive_memory.py --memories gru --seeds 1 --delay 4 --budget 4096 --every 2048
    .venv/bin/python benchmarks/predictive_memory.py --overhead   # training time per env step, on / off

``--overhead`` measures the cost instead: training seconds per env step with the loss on over off, the two
agents' ``learn`` rounds interleaved in one process (a ratio, valid on a loaded machine).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (RESULTS_DIR, CUE_ENV_ID, PausableClock, configure_torch, cue_kwargs, eval_seed,  # noqa: E402
                     held_out_success, log, machine_info, make_tracerl, table, write_json)

TARGET = 0.95
CHECK_EPISODES = 200


def make_agent(memory: str, delay: int, seed: int, aux_on: bool, coef: float) -> Any:
    aux = {"aux": ("predictive",), "aux_predictive_coef": coef} if aux_on else {}
    if memory == "strategic":
        from strategic import strategic_agent

        return strategic_agent(CUE_ENV_ID, cue_kwargs(delay), delay + 1, seed, **aux)
    return make_tracerl(memory, delay, seed, **aux)


def train(memory: str, delay: int, seed: int, aux_on: bool, coef: float, budget: int, every: int) -> dict[str, Any]:
    agent = make_agent(memory, delay, seed, aux_on, coef)
    clock = PausableClock()
    run: dict[str, Any] = {"memory": memory, "aux": "on" if aux_on else "off", "seed": seed, "steps_to_95": None,
                           "curve": [], "aux_parts": {}}
    next_due = [every]
    n_evals = [0]

    def callback(agent: Any, stats: dict[str, float]) -> bool:
        run["aux_parts"] = {k: v for k, v in stats.items() if k.startswith("aux/") or k == "aux_loss"}
        steps = agent.num_timesteps
        if steps < next_due[0] and steps < budget:
            return True
        next_due[0] += every
        clock.pause()
        n_evals[0] += 1
        success = held_out_success(agent, delay, eval_seed(seed, n_evals[0]), CHECK_EPISODES)
        run["curve"].append((steps, round(clock.elapsed, 1), success))
        clock.start()
        if success >= TARGET:
            run["steps_to_95"] = steps
            return False
        return True

    clock.start()
    agent.learn(budget, callback=callback)
    clock.pause()
    run["train_steps"] = agent.num_timesteps
    run["train_seconds"] = round(clock.elapsed, 1)
    run["last_success"] = run["curve"][-1][2] if run["curve"] else float("nan")
    return run


def overhead(memory: str, delay: int, coef: float, rounds: int, steps: int) -> dict[str, Any]:
    """Training seconds per env step with the predictive loss over those without it: one agent per arm, then
    ``rounds`` interleaved rounds of ``learn(steps)`` (off, on, off, on, ...) in this process, after one warm-up
    round each; the figure is the median over rounds of on / off (each pair timed back to back)."""
    agents = {arm: make_agent(memory, delay, 0, arm == "on", coef) for arm in ("off", "on")}
    for agent in agents.values():
        agent.learn(steps)
    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(rounds):
        for arm, agent in agents.items():
            t = time.perf_counter()
            agent.learn(steps, reset_num_timesteps=False)
            times[arm].append(time.perf_counter() - t)
    ratios = sorted(on / off for on, off in zip(times["on"], times["off"]))
    return {"memory": memory, "steps_per_round": steps, "seconds": times, "ratio_on_off": ratios[len(ratios) // 2]}


def iqm_ci(values: list[float]) -> str:
    from tracerl.bench.stats import interval_estimates

    est = interval_estimates({"x": np.asarray(values, dtype=np.float64).reshape(-1, 1)})["x"]["IQM"]
    return f"{est.point:,.0f} [{est.low:,.0f}, {est.high:,.0f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memories", default="gru,strategic")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--delay", type=int, default=64)
    parser.add_argument("--budget", type=int, default=150_000, help="env steps per run (gru)")
    parser.add_argument("--strategic-budget", type=int, default=200_000, help="env steps per run (strategic)")
    parser.add_argument("--every", type=int, default=8192, help="evaluate every this many env steps")
    parser.add_argument("--coef", type=float, default=0.1, help="aux_predictive_coef of the 'on' runs")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "predictive_memory.json")
    parser.add_argument("--overhead", action="store_true",
                        help="only measure the training time per env step with the loss on / off (paired ratio)")
    parser.add_argument("--overhead-rounds", type=int, default=5)
    parser.add_argument("--overhead-steps", type=int, default=4096)
    args = parser.parse_args(argv)
    configure_torch()
    memories = [m for m in args.memories.split(",") if m]
    if args.overhead:
        load_before = os.getloadavg()
        results = [overhead(m, args.delay, args.coef, args.overhead_rounds, args.overhead_steps) for m in memories]
        load = f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}"
        for r in results:
            log(f"{r['memory']}: training time per env step, predictive loss on / off = {r['ratio_on_off']:.2f} "
                f"(median of {args.overhead_rounds} paired rounds of {r['steps_per_round']} steps; {load})")
        write_json(args.out.with_name(args.out.stem + "_overhead.json"),
                   {"settings": vars(args) | {"out": str(args.out)}, "machine": machine_info(), "load": load,
                    "results": results})
        return 0
    runs: list[dict[str, Any]] = []
    started = time.time()
    for memory in memories:
        budget = args.strategic_budget if memory == "strategic" else args.budget
        for seed in range(args.seeds):
            for aux_on in (False, True):  # interleaved: both arms see the same load
                run = train(memory, args.delay, seed, aux_on, args.coef, budget, args.every)
                run["budget"] = budget
                runs.append(run)
                log(f"{memory} aux {run['aux']} seed {seed}: steps to 95 % {run['steps_to_95']}, last "
                    f"{run['last_success']:.3f}, {run['train_seconds']} s, parts "
                    + ", ".join(f"{k}={v:.3f}" for k, v in run["aux_parts"].items()))
                write_json(args.out, {"settings": vars(args) | {"out": str(args.out)}, "machine": machine_info(),
                                      "runs": runs})
    rows, summary = [], []
    for r in runs:
        parts = r["aux_parts"]
        rows.append([r["memory"], r["aux"], str(r["seed"]),
                     f"{r['steps_to_95']:,}" if r["steps_to_95"] else f"> {r['train_steps']:,}",
                     f"{r['last_success']:.2f}", f"{r['train_seconds']:.0f}",
                     "" if "aux/predictive_obs" not in parts else
                     f"{parts['aux/predictive_obs']:.3f} / {parts['aux/predictive_kl']:.3f}"])
    for memory in memories:
        for arm in ("off", "on"):
            sel = [r for r in runs if r["memory"] == memory and r["aux"] == arm]
            steps = [float(r["steps_to_95"] or r["budget"]) for r in sel]
            summary.append([memory, arm, f"{sum(r['steps_to_95'] is not None for r in sel)}/{len(sel)}",
                            iqm_ci(steps)])
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nCueDelay difficulty 1, delay {args.delay}; load: {load}; wall {time.time() - started:.0f} s")
    print(table(rows, ["memory", "predictive aux", "seed", "steps to 95 %", "last success", "train s",
                       "obs recon / KL at end"]))
    print()
    print(table(summary, ["memory", "predictive aux", "solved", "steps to 95 %: IQM [95 % CI]"]))
    write_json(args.out, {"settings": vars(args) | {"out": str(args.out)}, "machine": machine_info(), "load": load,
                          "runs": runs})
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
