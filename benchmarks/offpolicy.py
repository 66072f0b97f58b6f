"""Off-policy memory benchmarks (issue 6): recurrent SAC on CountWindow and PendulumNoVel, R2D2 on CueDelay and
the Passive T-Maze. Prints a table and writes JSON to ``benchmarks/bench_results/offpolicy_<task>.json``.

Tasks (target, budget):

``countwindow``  SAC-GRU on CountWindow(horizon=10, p=0.2): >= 95 % of rounded predictions ``round(10 a)`` equal
                 the count, on held-out sequences; 200k env steps.
``pendulum``     PendulumNoVel: recurrent SAC (GRU) and memoryless SAC (``memory="mlp"``) beside it; mean return
                 >= -200 over 10 held-out episodes; 100k env steps.
``cue128``       R2D2-GRU on CueDelay difficulty 1 delay 128: >= 95 % held-out success (100 episodes); 300k steps;
                 tracerl's PPO-GRU beside it (variant ``ppo-gru (on-policy)``) for env-steps/s in the same run.
``tmaze200``     R2D2-GRU on the Passive T-Maze, corridor 200: >= 95 % held-out success; 2M steps.

Every run is evaluated every ``eval_every`` env steps with the training clock paused; env-steps/s is training
throughput (collection plus gradient steps). Usage::

    nice -n 5 .venv/bin/python benchmarks/offpolicy.py --task countwindow --seeds 3
    .venv/bin/python benchmarks/offpolicy.py --task cue128 --seeds 1 --budget 50000   # a shorter trial
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, PausableClock, configure_torch, log, machine_info, write_json  # noqa: E402


@dataclass
class Task:
    name: str
    variants: dict[str, Callable[[int], Any]]  # variant name -> seed -> agent
    metric: Callable[[Any, int], float]  # (agent, eval index) -> metric
    solved: Callable[[float], bool]
    budget: int
    eval_every: int
    metric_name: str


# -- CountWindow -----------------------------------------------------------------------------------------
CW_KW = {"horizon": 10}


def _countwindow_agent(seed: int) -> Any:
    from tracerl import TraceRL

    return TraceRL(env="tracerl/CountWindow-v0", env_kwargs=CW_KW, algo="sac", memory="gru", seed=seed, verbose=0,
                   n_envs=8, train_freq=2, hidden_size=64, burn_in=10, seq_len=20, state_stride=10, batch_size=16, gamma=0.0,
                   learning_rate=1e-3, learning_starts=2_000, buffer_size=200_000, head_hidden=(64,))


def countwindow_accuracy(agent: Any, index: int, n_envs: int = 16, steps: int = 300) -> float:
    """Fraction of held-out steps (after the first ``horizon``) where ``round(horizon * a)`` equals the count."""
    from tracerl.envs import make_vec_env

    H = CW_KW["horizon"]
    vec = make_vec_env("tracerl/CountWindow-v0", n_envs=n_envs, env_kwargs=CW_KW)
    obs, info = vec.reset(seed=1_000_000 + 16 * index)
    state, starts, ok = None, np.ones(n_envs, bool), []
    for t in range(steps):
        count = np.asarray(info["count"])
        a, state = agent.predict(obs, state, starts, deterministic=True)
        if t >= H:
            ok.append(np.rint(np.asarray(a)[:, 0] * H) == count)
        obs, _, term, trunc, info = vec.step(a)
        starts = term | trunc
    return float(np.mean(ok))


# -- PendulumNoVel ---------------------------------------------------------------------------------------
def _pendulum_agent(memory: str) -> Callable[[int], Any]:
    def make(seed: int) -> Any:
        from tracerl import TraceRL

        return TraceRL(env="tracerl/PendulumNoVel-v0", algo="sac", memory=memory, seed=seed, verbose=0,
                       n_envs=8, gradient_steps=1, hidden_size=64, burn_in=8, seq_len=16, state_stride=8,
                       batch_size=32, gamma=0.99, learning_rate=1e-3, learning_starts=2_000, buffer_size=100_000,
                       use_prev_action=True, head_hidden=(64, 64))
    return make


def pendulum_return(agent: Any, index: int) -> float:
    from tracerl.evaluation import evaluate

    return evaluate(agent, "tracerl/PendulumNoVel-v0", 10, seed=1_000_000 + 16 * index, n_envs=10).mean_return


# -- R2D2 tasks ------------------------------------------------------------------------------------------
CUE_KW = {"delay": 128, "difficulty": 1}
TMAZE_KW = {"corridor_length": 200}


def _r2d2_agent(env_id: str, kw: dict[str, Any], episode_rows: int, **overrides: Any) -> Callable[[int], Any]:
    def make(seed: int) -> Any:
        from tracerl import TraceRL

        hyper = dict(n_envs=16, hidden_size=64, seq_len=episode_rows, always_sample_from_initial_state=True,
                     batch_size=16, train_freq=4, gradient_steps=1, n_step=5, gamma=0.99, learning_rate=1e-3,
                     learning_starts=5_000, buffer_size=160_000, target_update_interval=100, epsilon=0.4,
                     epsilon_alpha=7.0, head_hidden=(64,), use_prev_action=False)
        hyper.update(overrides)
        return TraceRL(env=env_id, env_kwargs=kw, algo="r2d2", memory="gru", seed=seed, verbose=0, **hyper)
    return make


def _ppo_gru_agent(env_id: str, kw: dict[str, Any]) -> Callable[[int], Any]:
    """tracerl's on-policy PPO-GRU at its defaults, for env-steps/s (and success) beside R2D2 in the same run."""
    def make(seed: int) -> Any:
        from tracerl import TraceRL

        return TraceRL(env=env_id, env_kwargs=kw, memory="gru", seed=seed, verbose=0)
    return make


def success(env_id: str, kw: dict[str, Any]) -> Callable[[Any, int], float]:
    def metric(agent: Any, index: int) -> float:
        from tracerl.evaluation import evaluate

        return evaluate(agent, env_id, 100, seed=1_000_000 + 16 * index, env_kwargs=kw).success_rate
    return metric


TASKS: dict[str, Task] = {
    "countwindow": Task("countwindow", {"sac-gru": _countwindow_agent}, countwindow_accuracy,
                        lambda m: m >= 0.95, 200_000, 20_000, "rounded predictions correct"),
    "pendulum": Task("pendulum", {"sac-gru": _pendulum_agent("gru"), "sac-mlp (memoryless)": _pendulum_agent("mlp")},
                     pendulum_return, lambda m: m >= -200.0, 100_000, 10_000, "mean return"),
    "cue128": Task("cue128", {"r2d2-gru": _r2d2_agent("tracerl/CueDelay-v0", CUE_KW, 128),
                              "ppo-gru (on-policy)": _ppo_gru_agent("tracerl/CueDelay-v0", CUE_KW)},
                   success("tracerl/CueDelay-v0", CUE_KW), lambda m: m >= 0.95, 300_000, 10_000, "success"),
    # Every one of the 201 actions must be right: one epsilon ~ 1/T for every actor (Ni et al.'s DQN ends at
    # 1/T), the previous action as input (it tells an on-schedule step from a lagging one), a gradient step
    # per 256 env steps; faster target copies and a longer n-step carry the corridor's penalty back. The count
    # bonus tries up/down at the junction on its first visits (epsilon-greedy: ~once per 1,100 episodes); at
    # 0.02 it stays below the corridor's value gaps except in its last few cells.
    "tmaze200": Task("tmaze200", {"r2d2-gru": _r2d2_agent("tracerl/TMazePassive-v0", TMAZE_KW, 201,
                                                         target_update_interval=25, n_step=10, epsilon=0.005,
                                                         epsilon_alpha=0.0, use_prev_action=True, train_freq=16,
                                                         count_bonus=0.02)},
                     success("tracerl/TMazePassive-v0", TMAZE_KW), lambda m: m >= 0.95, 2_000_000, 50_000, "success"),
}


def run(task: Task, variant: str, seed: int, budget: int, stop_when_solved: bool) -> dict[str, Any]:
    agent = task.variants[variant](seed)
    clock = PausableClock()
    curve: list[dict[str, float]] = []
    solved_at: int | None = None
    seconds_at: float | None = None
    index = 0
    while agent.num_timesteps < budget:
        clock.start()
        agent.learn(task.eval_every, reset_num_timesteps=False)
        clock.pause()
        index += 1
        m = task.metric(agent, index)
        curve.append({"steps": agent.num_timesteps, "metric": m, "train_seconds": clock.elapsed})
        log(f"  {task.name} {variant} seed {seed}: {agent.num_timesteps:>7,} steps  {task.metric_name} {m:.3f}  "
            f"{clock.elapsed:7.1f} s  {agent.num_timesteps / max(clock.elapsed, 1e-9):6.0f} steps/s")
        if solved_at is None and task.solved(m):
            solved_at, seconds_at = agent.num_timesteps, clock.elapsed
            if stop_when_solved:
                break
    return {"variant": variant, "seed": seed, "solved_at": solved_at, "seconds_to_solve": seconds_at,
            "final_metric": curve[-1]["metric"], "best_metric": max(c["metric"] for c in curve),
            "steps": agent.num_timesteps, "train_seconds": clock.elapsed,
            "steps_per_second": agent.num_timesteps / max(clock.elapsed, 1e-9), "curve": curve}


def table_rows(results: list[dict[str, Any]], task: str, metric_name: str) -> list[str]:
    """Markdown rows (one per run) of the results table."""
    rows = []
    for r in results:
        at = f"{r['solved_at']:,}" if r["solved_at"] is not None else f"not within {r['steps']:,}"
        secs = f"{r['seconds_to_solve']:.0f}" if r["seconds_to_solve"] is not None else "-"
        rows.append(f"| {task} | {r['variant']} | {r['seed']} | {at} | {secs} | {r['best_metric']:.3f} | "
                    f"{r['final_metric']:.3f} | {r['steps_per_second']:.0f} |")
    return rows


def summarize(paths: list[Path]) -> int:
    """Print the markdown table of one or more result files (``--summarize a.json b.json``)."""
    import json

    print("| task | agent | seed | target met at (env steps) | train s to target | best metric | final | env-steps/s |")
    print("|---|---|---|---|---|---|---|---|")
    for path in paths:
        data = json.loads(path.read_text())
        for row in table_rows(data["results"], data["task"], TASKS[data["task"]].metric_name):
            print(row)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--summarize", type=Path, nargs="+", default=None, help="print the table of result JSON files")
    p.add_argument("--task", choices=sorted(TASKS), default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=None, help="env steps per run (default: the task's budget)")
    p.add_argument("--variants", nargs="*", default=None, help="subset of the task's variants")
    p.add_argument("--keep-going", action="store_true", help="train to the budget even after the target is met")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.summarize:
        return summarize(args.summarize)
    if args.task is None:
        p.error("--task is required (or --summarize FILES)")
    configure_torch()
    task = TASKS[args.task]
    budget = args.budget or task.budget
    variants = args.variants or list(task.variants)
    info = machine_info()
    log(f"offpolicy benchmark {task.name}: budget {budget:,} env steps, seeds {args.first_seed}.."
        f"{args.first_seed + args.seeds - 1}, commit {info['git_commit'][:7]}")
    results = []
    for variant in variants:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            results.append(run(task, variant, seed, budget, stop_when_solved=not args.keep_going))
            write_json(args.out or RESULTS_DIR / f"offpolicy_{task.name}.json",
                       {"task": task.name, "budget": budget, "machine": info, "results": results})
    log(f"\n| task | agent | seed | target met at (env steps) | train s to target | best {task.metric_name} | "
        f"final | env-steps/s |")
    log("|---|---|---|---|---|---|---|---|")
    for row in table_rows(results, task.name, task.metric_name):
        log(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
