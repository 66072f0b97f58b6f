"""Rewriting memory (issue 23, item 3): every memory core at tracerl's defaults on ``tracerl/RewriteMaze-v0``.

One episode holds ``--corridors`` corridors of ``--length`` observations; each corridor starts with a cue that
decides its own junction, so the memory has to replace what it holds at every cue (``tracerl.envs.rewrite_maze``).
Each agent is ``TraceRL(env=..., memory=<core>, seed=...)`` and nothing else: PPO and the core at the library's
defaults, no memory or agent overrides (the same call for every core). Every ``--every`` env steps it is evaluated
on ``--episodes`` held-out episodes (deterministic actions, memory carried by ``predict``, training clock paused):

* junction accuracy: the fraction of junctions answered right, ``(mean return / corridors + 1) / 2`` (chance 0.5;
  a memory that keeps only the first cue scores ``(1 + (corridors - 1) / 2) / corridors``);
* episode success: the fraction of episodes with every junction right (chance ``2 ** -corridors``).

A run stops at its first evaluation with junction accuracy >= ``--target``, at ``--budget`` env steps, or once its
training time passes ``--max-seconds``. With ``--inspect`` the strategic memory's last agent is inspected
(``agent.inspect``) and the one-line summary of what its store kept at the junctions is printed.

    .venv/bin/python benchmarks/rewrite_memory.py [--cores strategic,lstm,gru,gtrxl,mingru] [--seeds 1]
        [--corridors 4] [--length 8] [--difficulty 0] [--budget 300000] [--every 20480] [--inspect]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any

from _common import RESULTS_DIR, PausableClock, configure_torch, eval_seed, git_commit, log, machine_info, table, write_json

ENV_ID = "tracerl/RewriteMaze-v0"
CORES = ("strategic", "lstm", "gru", "gtrxl", "mingru")


@dataclass
class Point:
    """One held-out evaluation."""

    steps: int
    seconds: float
    junction_accuracy: float
    success: float


@dataclass
class Run:
    """One agent's training run."""

    core: str
    seed: int
    steps: int = 0
    seconds: float = 0.0
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    stopped_by: str = "budget"
    curve: list[Point] = field(default_factory=list)
    inspection: dict[str, float] | None = None

    @property
    def final(self) -> Point:
        return self.curve[-1]


def make_agent(core: str, env_kwargs: dict[str, int], seed: int) -> Any:
    """The agent of every run: ``TraceRL`` with ``memory=core`` at the library's defaults (no other argument)."""
    from tracerl import TraceRL

    return TraceRL(env=ENV_ID, env_kwargs=env_kwargs, memory=core, seed=seed, verbose=0)


def score(agent: Any, env_kwargs: dict[str, int], seed: int, episodes: int) -> tuple[float, float]:
    """(junction accuracy, episode success) over ``episodes`` held-out episodes."""
    from tracerl.evaluation import evaluate

    result = evaluate(agent, ENV_ID, n_episodes=episodes, deterministic=True, seed=seed, env_kwargs=env_kwargs)
    corridors = env_kwargs["n_corridors"]
    return (result.mean_return / corridors + 1.0) / 2.0, result.success_rate


def train(core: str, seed: int, env_kwargs: dict[str, int], args: argparse.Namespace) -> tuple[Run, Any]:
    """Train one agent, evaluating every ``args.every`` env steps (see the module docstring)."""
    agent = make_agent(core, env_kwargs, seed)
    run = Run(core, seed)
    clock = PausableClock()
    next_due = [args.every]

    def callback(agent: Any, stats: dict[str, float]) -> bool:
        steps = agent.num_timesteps
        over_time = clock.elapsed >= args.max_seconds
        if steps < next_due[0] and steps < args.budget and not over_time:
            return True
        next_due[0] = steps + args.every
        clock.pause()
        acc, success = score(agent, env_kwargs, eval_seed(seed, len(run.curve) + 1), args.episodes)
        run.curve.append(Point(steps, clock.elapsed, acc, success))
        log(f"[{core} seed {seed}] {steps:>9,} steps {clock.elapsed:7.1f} s: junction accuracy {acc:.3f}, "
            f"episode success {success:.3f}")
        if acc >= args.target and run.steps_to_target is None:
            run.steps_to_target, run.seconds_to_target = steps, clock.elapsed
            run.stopped_by = "target"
            return False
        if over_time:
            run.stopped_by = "time"
            return False
        clock.start()
        return True

    clock.start()
    agent.learn(args.budget, callback=callback)
    clock.pause()
    run.steps, run.seconds = agent.num_timesteps, clock.elapsed
    if not run.curve or run.curve[-1].steps != run.steps:
        acc, success = score(agent, env_kwargs, eval_seed(seed, len(run.curve) + 1), args.episodes)
        run.curve.append(Point(run.steps, run.seconds, acc, success))
    return run, agent


def inspect_line(agent: Any, env_kwargs: dict[str, int], episodes: int) -> tuple[str, dict[str, float]]:
    """Inspect ``agent`` on held-out episodes; its one-line decision summary and the summary figures."""
    from tracerl.inspection import decision_summary_line

    report = agent.inspect(episodes=episodes, env_kwargs=env_kwargs)
    return decision_summary_line(report.summary), report.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", default=",".join(CORES), help="comma-separated memory cores")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--corridors", type=int, default=4, help="corridors per episode (rewrites + 1)")
    parser.add_argument("--length", type=int, default=8, help="observations per corridor, cue to junction")
    parser.add_argument("--difficulty", type=int, default=0, help="0 blank corridor, 1 +-1 distractors")
    parser.add_argument("--budget", type=int, default=300_000, help="env steps per run")
    parser.add_argument("--every", type=int, default=20_480, help="env steps between evaluations")
    parser.add_argument("--episodes", type=int, default=100, help="held-out episodes per evaluation")
    parser.add_argument("--target", type=float, default=0.95, help="junction accuracy that stops a run")
    parser.add_argument("--max-seconds", type=float, default=540.0, help="training seconds per run")
    parser.add_argument("--inspect", action="store_true", help="inspect the strategic agents at the end")
    parser.add_argument("--save-dir", default=None, help="save every trained agent here (<core>_seed<s>.tracerl)")
    parser.add_argument("--out", default=None, help="results JSON (default: bench_results/rewrite_<time>.json)")
    args = parser.parse_args()
    configure_torch()
    env_kwargs = {"n_corridors": args.corridors, "corridor_length": args.length, "difficulty": args.difficulty}
    runs: list[Run] = []
    for core in [c for c in args.cores.split(",") if c]:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            run, agent = train(core, seed, env_kwargs, args)
            if args.save_dir:
                agent.save(Path(args.save_dir) / f"{core}_seed{seed}.tracerl")
            if args.inspect and core == "strategic":
                line, summary = inspect_line(agent, env_kwargs, 32)
                run.inspection = summary
                log(f"[{core} seed {seed}] inspection: {line}")
            runs.append(run)
    rows = []
    for r in runs:
        reached = "no" if r.steps_to_target is None else f"{r.steps_to_target:,} ({r.seconds_to_target:.0f} s)"
        best = max(p.junction_accuracy for p in r.curve)
        rows.append([f"tracerl-{r.core}", str(r.seed), f"{r.final.junction_accuracy:.3f}", f"{best:.3f}",
                     f"{r.final.success:.3f}", reached, f"{r.steps:,}", f"{r.seconds:.0f}",
                     f"{r.steps / max(r.seconds, 1e-9):,.0f}", r.stopped_by])
    print()
    print(f"RewriteMaze {env_kwargs}, target junction accuracy {args.target}")
    print(table(rows, ["agent", "seed", "junction acc. (final)", "best", "episode success (final)",
                       f"steps to {args.target:.0%}", "steps", "train s", "env-steps/s", "stopped by"]))
    out = args.out or str(RESULTS_DIR / f"rewrite_{time.strftime('%Y%m%d_%H%M%S')}.json")
    write_json(Path(out), {"env": ENV_ID, "env_kwargs": env_kwargs, "args": vars(args), "commit": git_commit(),
                           "machine": machine_info(), "runs": [asdict(r) for r in runs]})
    log(f"results: {out}")


if __name__ == "__main__":
    main()
