"""``tracerl bench [SUITE]``: run a benchmark suite (default ``quick``) and write its report.

    tracerl bench                          # the quick suite, results in runs/bench/quick
    tracerl bench --list                   # suites and agents
    tracerl bench popgym --agents sb3-recurrentppo --envs CountRecall,RepeatPrevious --seeds 0   # a part
    tracerl bench memory-length --agents tracerl-gru,sb3-ppo --delays 4,16,64 --seeds 0,1,2
    tracerl bench my_suite.toml --workers 2 --out runs/mine
    tracerl bench throughput --backend ray --ray-address auto
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional, Sequence

import tyro

from ..errors import ConfigError
from .backends import BACKENDS, default_workers


def parse_int_list(text: str, flag: str) -> list[int]:
    """``"0,1,2"`` or ``"0-2"`` (or a mix, ``"0-2,5"``) -> ``[0, 1, 2]``; anything else is a ConfigError."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        span = re.fullmatch(r"(\d+)-(\d+)", part)
        try:
            if span:
                lo, hi = int(span.group(1)), int(span.group(2))
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(f"{flag} {text!r} is invalid: expected integers like 0,1,2 or 0-2 "
                              f"(bad part {part!r})") from None
    return out


@dataclass
class BenchArgs:
    """Run a benchmark suite: agents x envs x seeds x budget x evaluation protocol. Finished runs are kept in
    OUT/runs.jsonl, so running the same command again resumes where it stopped; OUT also gets runs.csv, report.md
    and PNG figures."""

    suite: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="[SUITE]")] = "quick"
    """A built-in suite (see --list) or the path of a suite .toml file."""
    list: bool = False
    """List the built-in suites and the agents, then exit."""
    out: Optional[str] = None
    """Results folder (default: runs/bench/<suite name>)."""
    workers: Annotated[Optional[int], tyro.conf.arg(
        help=f"Runs in parallel (default: half the CPUs, here {default_workers()}).")] = None
    backend: Literal[BACKENDS] = "process"  # type: ignore[valid-type]
    """process: a pool of spawned workers; inline: this process; ray: one Ray task per run
    (pip install 'tracerl[ray]')."""
    ray_address: Optional[str] = None
    """With --backend ray: an existing cluster's address, e.g. auto or ray://host:10001 (its nodes need tracerl
    installed; default: start a local instance with --workers CPUs)."""
    seeds: Optional[str] = None
    """Training seeds, e.g. 0,1,2 or 0-4 (default: the suite's)."""
    budget: Optional[int] = None
    """Env steps per run, replacing every budget of the suite (default: the suite's)."""
    agents: Optional[str] = None
    """Comma-separated agent names (default: the suite's; see --list)."""
    envs: Optional[str] = None
    """Keep only the envs whose id or label contains one of these (comma-separated, any case), e.g.
    CountRecall,RepeatPrevious: run a suite in parts; finished runs are reused. A name that starts a part of some
    env's id selects only those (PositionOnlyCartPole is not also NoisyPositionOnlyCartPole)."""
    comparison: Optional[Literal["steps", "time", "both"]] = None
    """Run only the equal-env-steps or the equal-training-time comparison (default: the suite's)."""
    time_budget: Optional[float] = None
    """Seconds of training per run of the equal-time comparison (default: the suite's)."""
    time_clock: Optional[Literal["wall", "cpu"]] = None
    """How the equal-time runs count training seconds: wall (wall-clock) or cpu (the run process's own CPU time,
    what each agent would have had on a free core when other jobs share the machine; every run is single-threaded;
    give it again with --report-only) (default: the suite's, wall)."""
    delays: Optional[str] = None
    """Keep only the envs whose swept keyword (delay) is in this list, e.g. 4,8,16."""
    eval_episodes: Optional[int] = None
    """Episodes per periodic evaluation (default: the suite's)."""
    eval_every: Optional[int] = None
    """Env steps between periodic evaluations (0: final evaluation only; default: the suite's)."""
    final_episodes: Optional[int] = None
    """Episodes of the final evaluation (default: the suite's)."""
    escalate: bool = False
    """Run swept values (delays) in increasing order and stop an agent at its first unsolved one (default: the
    suite's; memory-length escalates)."""
    no_escalate: bool = False
    """Do not escalate: run every swept value (default: the suite's)."""
    report_only: bool = False
    """Run nothing: write the report of the runs already finished in OUT (e.g. of a suite run in parts with
    --agents / --envs / --comparison)."""
    fail_fast: bool = False
    """Stop at the first failed run (default: record it, go on)."""
    fresh: bool = False
    """Start afresh: move OUT/runs.jsonl aside instead of resuming from it."""
    retry_failed: bool = False
    """When resuming, run the failed runs again."""
    bootstrap_reps: int = 2000
    """Bootstrap replications of the report's CIs."""
    progress: bool = True
    """Show a progress bar; --no-progress: none."""
    verbose: bool = False
    """A progress bar per run (and Ray worker logs)."""


def list_suites() -> str:
    """The built-in suites and the agents, as text."""
    from .agents import agent_specs
    from .suites import SUITES

    lines = ["suites:"]
    for name, factory in SUITES.items():
        suite = factory()
        lines.append(f"  {name:<14} {len(suite.runs()):>4} runs  {suite.description}")
    lines.append("agents:")
    for name, spec in agent_specs().items():
        lines.append(f"  {name:<20} {spec.description}")
    return "\n".join(lines)


def bench_main(argv: Sequence[str]) -> int:
    """Entry point of ``tracerl bench``; returns the exit code (0 ok, 1 some run failed, 2 bad input)."""
    args = tyro.cli(BenchArgs, args=list(argv), prog="tracerl bench", config=(tyro.conf.FlagCreatePairsOff,))
    try:
        return _bench(args)
    except ConfigError as exc:
        print(f"tracerl bench: error: {exc}", file=sys.stderr)
        return 2


def _bench(args: BenchArgs) -> int:
    from .backends import make_backend
    from .runner import run_suite
    from .suites import load_suite

    if args.list:
        print(list_suites())
        return 0
    for flag, value, low in (("--workers", args.workers, 1), ("--eval-episodes", args.eval_episodes, 1),
                             ("--eval-every", args.eval_every, 0), ("--final-episodes", args.final_episodes, 1),
                             ("--bootstrap-reps", args.bootstrap_reps, 1)):
        if value is not None and value < low:
            raise ConfigError(f"{flag} {value} is invalid: must be >= {low}")
    if args.escalate and args.no_escalate:
        raise ConfigError("--escalate and --no-escalate contradict each other: give one of them")
    if args.report_only and args.fresh:
        raise ConfigError("--report-only reports the finished runs; --fresh would move them aside: give one of them")
    suite = load_suite(args.suite)
    protocol = {k: v for k, v in (("episodes", args.eval_episodes), ("every", args.eval_every),
                                  ("final_episodes", args.final_episodes)) if v is not None}
    suite = suite.restrict(
        agents=[a.strip() for a in args.agents.split(",") if a.strip()] if args.agents else None,
        seeds=parse_int_list(args.seeds, "--seeds") if args.seeds else None,
        budget=args.budget,
        sweep_values=parse_int_list(args.delays, "--delays") if args.delays else None,
        protocol=protocol or None,
        escalate=True if args.escalate else False if args.no_escalate else None,
        envs=[e.strip() for e in args.envs.split(",") if e.strip()] if args.envs else None,
        time_budget=args.time_budget,
        time_clock=args.time_clock,
        comparisons=None if args.comparison in (None, "both") else [args.comparison],
    )
    suite.validate()
    backend = make_backend(args.backend, args.workers, args.ray_address)
    out = Path(args.out) if args.out else Path("runs") / "bench" / suite.name
    n = len(suite.runs())
    unit = "s" if suite.time_clock == "wall" else "CPU-s"
    timed = f", {suite.time_budget:g} {unit} of training each" if suite.time_budget is not None else ""
    print(f"tracerl bench {suite.name}: {n} runs ({len(suite.agents)} agents x {len(suite.envs)} envs x "
          f"{len(suite.seeds)} seeds x {len(suite.comparisons)} comparison(s){timed}), backend {args.backend}, "
          f"results in {out}", flush=True)
    t0 = time.perf_counter()
    outcome = run_suite(suite, out, backend=backend, fail_fast=args.fail_fast, resume=not args.fresh,
                        retry_failed=args.retry_failed, verbose=args.verbose,
                        progress=args.progress and not args.report_only,
                        bootstrap_reps=args.bootstrap_reps, execute=not args.report_only)
    elapsed = time.perf_counter() - t0
    if outcome.tables is not None:
        from .report import COMPARISON_TITLES

        tables = outcome.tables
        print("\n" + "\n".join(tables["headline"]))
        for comparison, t in tables["comparisons"].items():
            if len(tables["comparisons"]) > 1:
                print(f"\n{COMPARISON_TITLES[comparison]}:")
            print("\n" + t["summary"]["markdown"])
            for group in t["groups"]:
                print(f"\nAggregate final {group['score']} over seeds and envs ({', '.join(group['tasks'])}):\n")
                print(group["aggregate"]["markdown"])
        if "env_rate" in tables:
            print("\nTraining throughput against the env's own random-action stepping rate (same vector env class "
                  "and sub-envs, measured in the same runs):\n")
            print(tables["env_rate"]["markdown"])
        if "sweep" in tables:
            print("\n" + tables["sweep"]["markdown"])
    print(f"\n{len(outcome.ran)} runs ran, {len(outcome.skipped)} already finished (resumed), "
          + (f"{len(outcome.not_run)} not run (escalation stopped their agent), " if outcome.not_run else "")
          + f"{len(outcome.failed)} failed; {elapsed:.1f} s; report: {outcome.report}")
    if outcome.stopped_early:
        print(f"stopped at the first failure (--fail-fast): {outcome.failed[-1] if outcome.failed else ''}",
              file=sys.stderr)
    return 1 if outcome.failed else 0
