"""Hindsight Experience Replay (issue 16): success with and without HER, side by side, on the same budget and seed.

Tasks:

``bitflip``   the HER paper's bit flipping (``tracerl/BitFlip-v0``, ``--n-bits`` bits, episodes of n actions,
              reward -1 until the state equals the goal, terminated on success). A random policy almost never
              sees a reward for n >= 10, so R2D2 without HER has nothing to learn from; with HER every episode
              succeeds for some goal.
``goalline``  GoalLine (``--size`` cells, horizon 8), the R2D2 + HER slow test's setting: the agent does not see
              the achieved goal and integrates its own moves from the position shown on the first step.

Each run trains R2D2 (``--memory``, GRU by default) for ``--budget`` env steps without HER, then with HER (one
training at a time), and reports the success rate over 100 held-out episodes (evaluation seed 10_000 + seed,
greedy actions). Nothing is timed. ``--set key=value`` overrides a hyperparameter of both runs (e.g.
``--set n_step=1``). Results go to ``benchmarks/bench_results/her_<task>.json``. Usage::

    nice -n 5 .venv/bin/python benchmarks/her.py --task bitflip --n-bits 12 --budget 40000
    nice -n 5 .venv/bin/python benchmarks/her.py --task goalline --size 12 --budget 15000
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, configure_torch, log, machine_info, table, write_json  # noqa: E402

BITFLIP = dict(hidden_size=64, seq_len=16, batch_size=32, learning_starts=1_000, buffer_size=50_000, n_step=1,
               gamma=0.98, target_update_interval=100, learning_rate=1e-3)
"""R2D2 on BitFlip: windows of whole episodes (seq_len >= n_bits: every window starts at step 0, from the initial
memory state, so a relabelled window is exact), one-step targets as in the paper's DQN."""

GOALLINE = dict(observe_achieved_goal=False, use_prev_action=True, hidden_size=32, seq_len=9, batch_size=32,
                learning_starts=500, buffer_size=20_000, n_step=3, gamma=0.9, target_update_interval=50)
"""R2D2 on GoalLine: the settings of tests/algos/test_r2d2.py's HER test."""


def _parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def run(task: str, her: bool, seed: int, budget: int, memory: str, size: int, n_bits: int,
        overrides: dict[str, Any]) -> float:
    from tracerl import TraceRL
    from tracerl.evaluation import evaluate

    if task == "bitflip":
        from tracerl.envs.bitflip import BitFlip

        def make() -> Any:
            return BitFlip(n_bits)

        kw = dict(BITFLIP, seq_len=max(BITFLIP["seq_len"], n_bits))
    else:
        from tracerl.envs.goal_line import GoalLine

        def make() -> Any:
            return GoalLine(size=size, horizon=8)

        kw = dict(GOALLINE)
    kw.update(overrides)
    agent = TraceRL(env=make, algo="r2d2", memory=memory, her=her, seed=seed, verbose=0, n_envs=8, **kw)
    agent.learn(budget)
    return float(evaluate(agent, make, 100, seed=10_000 + seed).success_rate)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=("bitflip", "goalline"), default="bitflip")
    p.add_argument("--n-bits", type=int, default=12, help="bitflip: bits (and actions per episode)")
    p.add_argument("--size", type=int, default=12, help="goalline: cells")
    p.add_argument("--budget", type=int, default=40_000, help="env steps per training")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--memory", default="gru", help="R2D2's memory core (mlp: a memoryless DQN)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="hyperparameter overrides")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    configure_torch()
    overrides = _parse_sets(args.set)
    name = f"BitFlip({args.n_bits})" if args.task == "bitflip" else f"GoalLine({args.size})"
    rows, records = [], []
    for seed in args.seeds:
        result = {}
        for her in (False, True):
            log(f"{name}, R2D2-{args.memory}, her={her}, seed {seed}, {args.budget} steps ...")
            result[her] = run(args.task, her, seed, args.budget, args.memory, args.size, args.n_bits, overrides)
            log(f"  success {result[her]:.2f}")
        rows.append([name, args.memory, args.budget, seed, f"{result[False]:.2f}", f"{result[True]:.2f}"])
        records.append({"seed": seed, "success_without_her": result[False], "success_with_her": result[True]})
    print()
    print(table(rows, ["task", "memory", "env steps", "seed", "success without HER", "success with HER"]))
    out = args.out or RESULTS_DIR / f"her_{args.task}.json"
    write_json(out, {"task": name, "memory": args.memory, "budget": args.budget, "overrides": overrides,
                     "runs": records, "eval_episodes": 100, "command": " ".join(sys.argv),
                     "machine": machine_info()})
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
