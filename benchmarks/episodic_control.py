"""Episodic control (issue 19): sample efficiency of NEC and MFEC beside R2D2 and DRQN on CueDelay, and the cost of
a DND lookup as the dictionary grows. Prints tables and writes JSON to ``benchmarks/bench_results/``.

Parts:

``lookup``  DND cost per vector step (8 queries, 2 actions, 64-wide keys) at capacities 1e3, 1e4 and 1e5 per
            action: an acting lookup, the writes of one step, and a training lookup with its backward (32 windows
            x 8 steps), each as a ratio to one acting step of a GRU torso (8 envs, hidden 64), all measured back to
            back in this process (medians of repeated timings; the machine is shared, so only ratios are reported
            with the load average).
``learn``   CueDelay (difficulty 1) at ``--delay``, the Passive T-Maze with that corridor (``--task tmaze``), or the
            masked-velocity CartPole with that episode cap (``--task cartpole``): every agent trains for
            ``--budget`` env steps with the same
            replay settings (8 envs, whole-episode windows from the initial state, batch 16, a gradient step per
            vector step) and is evaluated on 100 held-out episodes every ``--every`` steps (training clock
            paused). Reports env steps to the first evaluation >= 95 % success, the success at the budget, and the
            IQM with a 95 % stratified-bootstrap CI (rliable) of the final successes over seeds.

Usage::

    nice -n 10 .venv/bin/python benchmarks/episodic_control.py --part lookup
    nice -n 10 .venv/bin/python benchmarks/episodic_control.py --part learn --delay 8 --seeds 3 --budget 20000 \
        --agents nec-gru r2d2-gru
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, PausableClock, configure_torch, log, machine_info, write_json  # noqa: E402

CUE = "tracerl/CueDelay-v0"
TMAZE = "tracerl/TMazePassive-v0"
CARTPOLE = "tracerl/MaskedCartPole-v0"
CARTPOLE_WINDOW = 8


def _whole_episodes(n: int) -> dict[str, Any]:
    return {"seq_len": n + 1, "always_sample_from_initial_state": True}  # an episode's steps and its final row


TASKS = {"cue": (CUE, lambda n: {"delay": n, "difficulty": 1}, _whole_episodes),
         "tmaze": (TMAZE, lambda n: {"corridor_length": n}, _whole_episodes),
         "cartpole": (CARTPOLE, lambda n: {"max_steps": n},
                      lambda n: {"seq_len": CARTPOLE_WINDOW, "always_sample_from_initial_state": False})}
"""``--task``: (env id, env kwargs for ``--delay`` n, replay windows). For the Passive T-Maze, n is the
corridor length (the cue is seen at the start, the junction n + 1 steps later); the memory tasks replay whole
episodes from the initial state. For the masked-velocity CartPole, n is the episode cap (success = reaching it)
and the replay holds windows of 8 steps from their stored memory state (DRQN: from zeros), since episodes run to
the cap (the velocities are recoverable from two successive observations)."""


# -- DND lookup cost ---------------------------------------------------------------------------------------------
def _median_seconds(fn: Callable[[], Any], repeats: int, inner: int) -> float:
    """Median over ``repeats`` of the mean time of ``inner`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def lookup_cost(capacities: list[int], key_dim: int = 64, n_envs: int = 8, n_actions: int = 2,
                repeats: int = 7) -> list[dict[str, Any]]:
    from tracerl.algos.dnd import DND
    from tracerl.memory import make_memory

    gen = torch.Generator().manual_seed(0)
    gru = make_memory("gru", input_dim=8, hidden_size=64)
    state = gru.initial_state(n_envs, "cpu")
    x = torch.randn(1, n_envs, 8, generator=gen)
    start = torch.zeros(1, n_envs, dtype=torch.bool)

    @torch.no_grad()
    def policy_step() -> None:
        gru(x, state, start)

    rows = []
    for cap in capacities:
        dnd = DND(n_actions, cap, key_dim, num_neighbours=50)
        fill = 10_000
        for i in range(0, cap * n_actions, fill):  # fill every action's dictionary to capacity
            w = min(fill, cap * n_actions - i)
            with torch.no_grad():
                k = torch.randn(w, key_dim, generator=gen)
                a = torch.arange(i, i + w) % n_actions
                for act in range(n_actions):
                    sel = a == act
                    n = int(sel.sum())
                    at = int(dnd.size[act])
                    dnd.keys[act, at:at + n] = k[sel]
                    dnd.values[act, at:at + n] = torch.randn(n, generator=gen)
                    dnd.size[act] = at + n
        q = torch.randn(n_envs, key_dim, generator=gen)
        h_train = torch.randn(32 * 8, key_dim, generator=gen, requires_grad=True)
        wk = torch.randn(n_envs, key_dim, generator=gen)
        wa = torch.arange(n_envs) % n_actions
        wr = torch.randn(n_envs, generator=gen)

        def acting() -> None:
            dnd.q_values(q, refresh=True)

        def writes() -> None:
            dnd.write(wk, wa, wr)  # the same keys again: updates after the first call (a match each)

        def train() -> None:
            out, handles = dnd.q_values_grad(h_train)
            out.sum().backward()
            h_train.grad = None

        inner_policy = 200
        base = _median_seconds(policy_step, repeats, inner_policy)
        t_act = _median_seconds(acting, repeats, max(2, 20_000 // cap))
        t_write = _median_seconds(writes, repeats, max(2, 10_000 // cap))
        t_train = _median_seconds(train, repeats, max(1, 2_000 // cap))
        base_after = _median_seconds(policy_step, repeats, inner_policy)
        policy = min(base, base_after)
        row = {"capacity": cap, "policy_step_s": policy, "acting_lookup_s": t_act, "writes_s": t_write,
               "train_lookup_s": t_train, "acting_ratio": t_act / policy, "writes_ratio": t_write / policy,
               "train_ratio": t_train / policy, "dnd_bytes": dnd.nbytes()}
        log(f"  capacity {cap:>7,}: acting lookup {row['acting_ratio']:.1f}x, writes {row['writes_ratio']:.1f}x, "
            f"training lookup+backward {row['train_ratio']:.1f}x of a GRU acting step")
        rows.append(row)
    return rows


# -- sample efficiency ---------------------------------------------------------------------------------------------
def _common(replay: dict[str, Any]) -> dict[str, Any]:
    return dict(n_envs=8, hidden_size=32, **replay, batch_size=16, train_freq=1, gradient_steps=1, gamma=0.99,
                learning_rate=1e-3, learning_starts=500, buffer_size=40_000, use_prev_action=False)


AGENTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "nec-gru": lambda d: dict(algo="nec", memory="gru", n_step=5, epsilon=0.1, dnd_capacity=20_000,
                              **_common(d)),
    "nec-mlp": lambda d: dict(algo="nec", memory="mlp", n_step=5, epsilon=0.1, dnd_capacity=20_000,
                              **_common(d)),
    "mfec-gru": lambda d: dict(algo="mfec", memory="gru", epsilon=0.1, dnd_capacity=20_000,
                               **{**_common(d), "buffer_size": 2_000}),
    "r2d2-gru": lambda d: dict(algo="r2d2", memory="gru", n_step=5, epsilon=0.4, epsilon_alpha=7.0,
                               target_update_interval=100, head_hidden=(64,), **_common(d)),
    "drqn-gru": lambda d: dict(algo="drqn", memory="gru", target_update_interval=100, head_hidden=(64,),
                               **_common(d)),
}


def learn_run(agent_name: str, delay: int, seed: int, budget: int, every: int, task: str = "cue",
              eval_episodes: int = 100) -> dict[str, Any]:
    from tracerl import TraceRL
    from tracerl.evaluation import evaluate

    env_id, make_kwargs, replay = TASKS[task]
    kw = make_kwargs(delay)
    agent = TraceRL(env=env_id, env_kwargs=kw, seed=seed, verbose=0, **AGENTS[agent_name](replay(delay)))
    clock = PausableClock()
    curve = []
    solved_at = None
    index = 0
    while agent.num_timesteps < budget:
        clock.start()
        agent.learn(every, reset_num_timesteps=False)
        clock.pause()
        index += 1
        result = evaluate(agent, env_id, eval_episodes, seed=1_000_000 + 16 * index, env_kwargs=kw)
        success = result.success_rate
        curve.append({"steps": agent.num_timesteps, "success": success, "mean_return": result.mean_return,
                      "train_seconds": clock.elapsed})
        log(f"  {agent_name} {task} {delay} seed {seed}: {agent.num_timesteps:>6,} steps  success {success:.2f}  "
            f"return {result.mean_return:7.2f}  {clock.elapsed:6.1f} s")
        if solved_at is None and success >= 0.95:
            solved_at = agent.num_timesteps
    return {"agent": agent_name, "task": task, "delay": delay, "seed": seed, "solved_at": solved_at,
            "final_success": curve[-1]["success"], "final_return": curve[-1]["mean_return"], "steps": agent.num_timesteps, "train_seconds": clock.elapsed,
            "steps_per_second": agent.num_timesteps / max(clock.elapsed, 1e-9), "curve": curve}


def summarize_learning(results: list[dict[str, Any]]) -> list[str]:
    from tracerl.bench.stats import interval_estimates

    lines = ["| agent | seeds | steps to 95 % (per seed) | IQM of steps to 95 % [95 % CI] | success at budget (per "
             "seed) | IQM of final success [95 % CI] | mean return at budget (per seed) | IQM of final return "
             "[95 % CI] | env-steps/s (median) |", "|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["agent"] for r in results):
        runs = [r for r in results if r["agent"] == name]
        scores = np.array([[r["final_success"]] for r in runs])
        iqm = interval_estimates({name: scores})[name]["IQM"]
        solved = ", ".join(f"{r['solved_at']:,}" if r["solved_at"] else f">{r['steps']:,}" for r in runs)
        finals = ", ".join(f"{r['final_success']:.2f}" for r in runs)
        returns = np.array([[r.get("final_return", float("nan"))] for r in runs])
        iqm_return = interval_estimates({name: returns})[name]["IQM"].fmt(1) if np.isfinite(returns).all() else "-"
        rets = ", ".join(f"{r.get('final_return', float('nan')):.1f}" for r in runs)
        sps = statistics.median(r["steps_per_second"] for r in runs)
        if all(r["solved_at"] for r in runs):
            steps = interval_estimates({name: np.array([[float(r["solved_at"])] for r in runs])})[name]["IQM"]
            iqm_steps = f"{steps.point:,.0f} [{steps.low:,.0f}, {steps.high:,.0f}]"
        else:
            iqm_steps = f"{sum(bool(r['solved_at']) for r in runs)} of {len(runs)} seeds solved"
        lines.append(f"| {name} | {len(runs)} | {solved} | {iqm_steps} | {finals} | {iqm.fmt(2)} | {rets} | "
                     f"{iqm_return} | {sps:.0f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["lookup", "learn", "summarize"], required=True,
                   help="summarize: one table from the JSON files of several learn runs (--inputs)")
    p.add_argument("--inputs", type=Path, nargs="+", default=[], help="--part summarize: learn results JSON files")
    p.add_argument("--eval-episodes", type=int, default=100, help="held-out episodes per evaluation")
    p.add_argument("--capacities", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--task", choices=list(TASKS), default="cue",
                   help="cue: CueDelay difficulty 1 at --delay; tmaze: the Passive T-Maze with corridor --delay; "
                        "cartpole: tracerl/MaskedCartPole-v0 with episode cap --delay")
    p.add_argument("--delay", type=int, default=8)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=10_000)
    p.add_argument("--every", type=int, default=1_000)
    p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    configure_torch()
    info = {**machine_info(), "load_average": os.getloadavg()}
    stamp = time.strftime("%Y%m%d_%H%M%S")
    if args.part == "lookup":
        rows = lookup_cost(args.capacities)
        info["load_average_after"] = os.getloadavg()
        print("| capacity per action | acting lookup (8 queries) | writes of one step (8) | training lookup + "
              "backward (256 queries) | DND MB |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['capacity']:,} | {r['acting_ratio']:.1f}x | {r['writes_ratio']:.1f}x | "
                  f"{r['train_ratio']:.1f}x | {r['dnd_bytes'] / 1e6:.1f} |")
        write_json(args.out or RESULTS_DIR / f"episodic_lookup_{stamp}.json", {"machine": info, "rows": rows})
        return 0
    if args.part == "summarize":
        import json

        merged = [r for f in args.inputs for r in json.loads(f.read_text())["results"]]
        merged.sort(key=lambda r: (args.agents.index(r["agent"]) if r["agent"] in args.agents else 99, r["seed"]))
        for line in summarize_learning(merged):
            print(line)
        return 0
    results = []
    out = args.out or RESULTS_DIR / f"episodic_learn_{args.task}{args.delay}_s{args.first_seed}_{stamp}.json"
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in args.agents:
            results.append(learn_run(name, args.delay, seed, args.budget, args.every, args.task, args.eval_episodes))
            info["load_average_after"] = os.getloadavg()
            write_json(out, {"machine": info, "budget": args.budget, "results": results})  # after every run
    for line in summarize_learning(results):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
