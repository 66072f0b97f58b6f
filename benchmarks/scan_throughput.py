"""PPO training throughput of the parallel-scan cores as a fraction of the memoryless ``mlp`` agent's (issue 18).

    .venv/bin/python benchmarks/scan_throughput.py [--steps 16384] [--rounds 3] [--baseline COMMIT] [--out r.json]

One process, one torch thread. Every agent (tracerl's defaults: 16 envs x 64 steps, 4 epochs, minibatches of 256
steps; CueDelay delay 16, difficulty 1, seed 0) is built once, warmed up with one rollout, then trains ``--steps``
env steps per round; the rounds go round-robin over the agents (mlp, gru, the scan cores, then the baseline
versions of the scan cores), so slow phases of a shared machine hit every agent alike. Per agent the best round
counts, both in wall-clock env-steps/s and in process CPU time per env step (CPU time is much less disturbed
by other processes on the machine; the env runs in this process, so it is counted too). Ratios are to ``mlp``'s.

``--baseline COMMIT`` also loads the scan cores as they were at ``COMMIT`` (their source files and
``memory/scan.py``, read with ``git show``, registered as ``<core>@<commit>``), so old and new run in the same
process. ``--profile CORE`` instead prints torch.profiler's top ops (self CPU time) of one core's training;
``--breakdown`` the CPU time of each core's parts of a PPO iteration (minibatch forward+backward, its scan, an
acting step).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SCAN_CORES = ("mingru", "ffm", "lru", "gla")
ENV_ID, ENV_KWARGS = "tracerl/CueDelay-v0", {"delay": 16, "difficulty": 1}


def load_baseline(commit: str) -> list[str]:
    """Register the scan cores of ``commit`` as ``<core>@<commit>``; returns their names."""
    from tracerl.memory import registry

    def source(path: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], check=True,
                              capture_output=True, text=True).stdout

    def load(module: str, text: str) -> None:
        spec = importlib.util.spec_from_loader(f"tracerl.memory.{module}", loader=None)
        mod = importlib.util.module_from_spec(spec)
        mod.__package__ = "tracerl.memory"
        sys.modules[spec.name] = mod
        exec(compile(text, f"{commit}:{module}", "exec"), mod.__dict__)  # noqa: S102 (our own git history)

    tag = commit[:7]
    load(f"_scan_{tag}", source("src/tracerl/memory/scan.py"))
    names = []
    for core in SCAN_CORES:
        text = source(f"src/tracerl/memory/{core}.py").replace("from .scan import", f"from ._scan_{tag} import")
        text = text.replace(f'register_memory("{core}", ', f'register_memory("{core}@{tag}", ')
        load(f"_{core}_{tag}", text)
        names.append(f"{core}@{tag}")
    assert all(name in registry.available_memories() for name in names)
    return names


def make_agent(core: str):
    from tracerl import TraceRL

    return TraceRL(env=ENV_ID, env_kwargs=dict(ENV_KWARGS), memory=core, seed=0, verbose=0)


def measure(cores: list[str], steps: int, rounds: int) -> dict[str, dict[str, float]]:
    """Best-of-``rounds`` wall-clock env-steps/s and CPU microseconds per env step of each core."""
    agents = {core: make_agent(core) for core in cores}
    for agent in agents.values():
        agent.learn(agent.learner.config.n_steps * agent.learner.config.n_envs)  # one-rollout warm-up
    best = {core: {"steps_per_s": 0.0, "cpu_us_per_step": float("inf")} for core in cores}
    for r in range(rounds):
        for core, agent in agents.items():
            wall, cpu = time.perf_counter(), time.process_time()
            agent.learn(steps, reset_num_timesteps=False)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            b = best[core]
            b["steps_per_s"] = max(b["steps_per_s"], steps / wall)
            b["cpu_us_per_step"] = min(b["cpu_us_per_step"], cpu / steps * 1e6)
            print(f"round {r}: {core:14s} {steps / wall:8.0f} env-steps/s  {cpu / steps * 1e6:6.1f} CPU us/step",
                  flush=True)
    return best


def _cpu_us(fn, calls: int, repeats: int = 5) -> float:
    """Best of ``repeats`` of the mean process CPU microseconds of ``calls`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - start) / calls * 1e6)
    return best


def breakdown(cores: list[str]) -> None:
    """CPU microseconds of each core's parts of a PPO iteration at tracerl's defaults (input width 64, hidden 64):
    a minibatch forward+backward ``[T=64, B=4]`` (episode starts with p = 0.03), of it the scan alone (the core's
    ``a``/``b`` shapes, decays and inputs random), and an acting step ``[1, 16]`` without gradients. A rollout of
    1,024 env steps runs 16 minibatches (4 epochs x 4) and 64 acting steps."""
    from tracerl.memory import make_memory
    from tracerl.memory.scan import linear_scan

    scan_shapes = {"mingru": ((64, 4, 64), (64, 4, 64), torch.float32),
                   "lru": ((64, 4, 64), (64, 4, 64), torch.complex64),
                   "ffm": ((64, 4, 32, 4), (64, 4, 32, 4), torch.complex64),
                   "gla": ((64, 4, 4, 16, 1), (64, 4, 4, 16, 16), torch.float32)}
    print("| core | forward+backward [64, 4] (us) | of it the scan (us) | acting step [1, 16] (us) | "
          "per rollout: 16 x f+b + 64 x step (ms) |")
    print("|---|---|---|---|---|")
    for name in ["mlp", *cores]:
        torch.manual_seed(0)
        core = make_memory(name, input_dim=64, hidden_size=64)
        x = torch.randn(64, 4, 64, requires_grad=True)
        starts = torch.rand(64, 4) < 0.03
        starts[0] = True
        s0 = core.initial_state(4)

        def train_pass():
            y, _ = core(x, s0, starts)
            y.sum().backward()

        x1, s1, starts1 = torch.randn(1, 16, 64), core.initial_state(16), torch.rand(1, 16) < 0.1

        def act():
            with torch.no_grad():
                core(x1, s1, starts1)

        fb, step = _cpu_us(train_pass, 10), _cpu_us(act, 100)
        scan = "-"
        if name in scan_shapes:
            a_shape, b_shape, dtype = scan_shapes[name]
            a = (0.9 * torch.rand(a_shape, dtype=dtype)).requires_grad_()
            b = torch.randn(b_shape, dtype=dtype, requires_grad=True)
            h0 = torch.randn(b_shape[1:], dtype=dtype)

            def scan_pass():
                h = linear_scan(a, b, h0)
                h.backward(torch.ones_like(h))

            scan = f"{_cpu_us(scan_pass, 10):,.0f}"
        print(f"| {name} | {fb:,.0f} | {scan} | {step:,.0f} | {(16 * fb + 64 * step) / 1e3:.1f} |", flush=True)


def profile(core: str, steps: int) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    agent = make_agent(core)
    agent.learn(steps)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        agent.learn(steps, reset_num_timesteps=False)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=16_384, help="env steps per agent per round")
    p.add_argument("--rounds", type=int, default=3, help="round-robin rounds (the best one counts)")
    p.add_argument("--cores", default=",".join(("gru",) + SCAN_CORES), help="cores besides mlp")
    p.add_argument("--baseline", default=None, help="a git commit whose scan cores run too, as <core>@<commit>")
    p.add_argument("--profile", default=None, help="profile one core's training instead")
    p.add_argument("--breakdown", action="store_true",
                   help="instead: CPU time of each core's minibatch forward+backward, its scan, and an acting step")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.profile:
        profile(args.profile, args.steps)
        return
    if args.breakdown:
        print(f"load average {os.getloadavg()[0]:.1f} (1 min)")
        breakdown(args.cores.split(","))
        return
    cores = ["mlp", *args.cores.split(",")]
    if args.baseline:
        cores += load_baseline(args.baseline)
    load_before = os.getloadavg()
    best = measure(cores, args.steps, args.rounds)
    load_after = os.getloadavg()
    mlp = best["mlp"]
    print(f"\nload average before {load_before[0]:.1f}, after {load_after[0]:.1f} (1 min)")
    print("| core | env-steps/s (wall) | / mlp | CPU us per env step | mlp / core (CPU) |")
    print("|---|---|---|---|---|")
    for core, b in best.items():
        print(f"| {core} | {b['steps_per_s']:,.0f} | {b['steps_per_s'] / mlp['steps_per_s']:.0%} | "
              f"{b['cpu_us_per_step']:.1f} | {mlp['cpu_us_per_step'] / b['cpu_us_per_step']:.0%} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"load_before": load_before, "load_after": load_after,
                                              "steps": args.steps, "rounds": args.rounds, "best": best}, indent=2))


if __name__ == "__main__":
    main()
