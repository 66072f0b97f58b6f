"""Every memory core side by side: CueDelay success by delay, training speed, copy-task bit error.

For each core (default: all registered), on one torch thread:
  (1) PPO on CueDelay difficulty 1 at each delay (default 16, 64, 256), ``--budget`` env steps per run
      (default 300k), evaluated on 200 held-out episodes at the end; stops early at >= 95 % success
      (checked every ``--every`` steps). Reported: success, steps to 95 %, training env-steps/s.
  (2) The copy task: train on lengths 1-20 for ``--copy-steps`` batches, bit error at 20, 40, 80.

Per-core settings (``core_settings``): loop-over-time cores (NTM, DNC, slots) take one 1024-step minibatch
per epoch (NTM and DNC also a chrono-initialized controller, ``chrono_tmax=256``), attention cores a
window that covers the delay.
A full run of every core takes hours; choose with ``--cores``, ``--delays``, ``--skip-copy``.

    .venv/bin/python benchmarks/cores.py [--cores gru,lstm,ntm] [--delays 16,64] [--budget 300000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import (
    RESULTS_DIR,
    configure_torch,
    eval_seed,
    held_out_success,
    log,
    machine_info,
    make_tracerl,
    table,
    write_json,
)

SOLVE = 0.95


def core_settings(core: str, delay: int) -> dict[str, Any]:
    """TraceRL keyword arguments for ``core`` at ``delay`` (documented in the module docstring)."""
    if core in ("ntm", "dnc"):
        return {"hidden_size": 32, "batch_size": 1024,
                "memory_kwargs": {"memory_slots": 16, "memory_width": 8, "chrono_tmax": 256.0}}
    if core == "slots":
        return {"batch_size": 1024}
    if core == "transformer":
        return {"learning_rate": 1e-3, "memory_kwargs": {"window": delay}}
    if core == "gtrxl":
        return {"learning_rate": 1e-3, "memory_kwargs": {"memory_len": delay}}
    return {}


def run_cue(core: str, delay: int, budget: int, every: int, seed: int = 0) -> dict[str, Any]:
    """Train until >= 95 % held-out success or the budget; return success, steps to solve, steps/s."""
    agent = make_tracerl(core, delay, seed, **core_settings(core, delay))
    state: dict[str, Any] = {"solved_at": None, "evals": 0, "eval_s": 0.0, "next": every}

    def callback(agent: Any, stats: dict[str, float]) -> bool:
        if agent.num_timesteps < state["next"]:
            return True
        state["next"] += every
        t0 = time.perf_counter()
        state["evals"] += 1
        ok = held_out_success(agent, delay, eval_seed(seed, state["evals"])) >= SOLVE
        state["eval_s"] += time.perf_counter() - t0
        if ok:
            state["solved_at"] = agent.num_timesteps
        return not ok

    t0 = time.perf_counter()
    agent.learn(budget, callback=callback)
    train_s = time.perf_counter() - t0 - state["eval_s"]
    final = held_out_success(agent, delay, eval_seed(seed, 999), n_episodes=200)
    return {"core": core, "delay": delay, "budget": budget, "success": final, "steps_to_95": state["solved_at"],
            "train_steps": agent.num_timesteps, "steps_per_s": agent.num_timesteps / max(train_s, 1e-9)}


def run_copy(core: str, steps: int) -> dict[str, Any]:
    from tracerl.supervised.copy_task import train_copy

    kwargs = core_settings(core, 20).get("memory_kwargs", {})
    if core in ("transformer", "gtrxl"):
        kwargs = {("window" if core == "transformer" else "memory_len"): 161}
    res = train_copy(core, train_lengths=(1, 20), steps=steps, eval_lengths=(20, 40, 80), progress=False,
                     memory_kwargs=kwargs)
    return {"core": core, "steps": steps, "seconds": res.seconds,
            "bit_error": {e.length: e.bit_error_rate for e in res.evaluation}}


def main() -> int:
    configure_torch()
    from tracerl.memory import available_memories

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cores", default=",".join(available_memories()))
    p.add_argument("--delays", default="16,64,256")
    p.add_argument("--budget", type=int, default=300_000)
    p.add_argument("--every", type=int, default=16_384)
    p.add_argument("--copy-steps", type=int, default=5000)
    p.add_argument("--skip-copy", action="store_true")
    args = p.parse_args()
    cores = args.cores.split(",")
    unknown = sorted(set(cores) - set(available_memories()))
    if unknown:
        p.error(f"unknown cores {unknown}; valid: {available_memories()}")
    delays = [int(d) for d in args.delays.split(",")]
    cue, copy = [], []
    for core in cores:
        for delay in delays:
            r = run_cue(core, delay, args.budget, args.every)
            log(f"{core} delay {delay}: success {r['success']:.3f}, steps to 95% {r['steps_to_95']}, "
                f"{r['steps_per_s']:,.0f} steps/s")
            cue.append(r)
        if not args.skip_copy and core != "mlp":
            c = run_copy(core, args.copy_steps)
            log(f"{core} copy: {c['bit_error']} in {c['seconds']:.0f} s")
            copy.append(c)
    print(table([[r["core"], r["delay"], f"{r['success']:.3f}", r["steps_to_95"] or f"> {r['train_steps']:,}",
                  f"{r['steps_per_s']:,.0f}"] for r in cue],
                ["core", "delay", "success", "steps to 95%", "train steps/s"]))
    if copy:
        print(table([[c["core"], c["steps"]] + [f"{100 * c['bit_error'][n]:.2f}" for n in (20, 40, 80)] for c in copy],
                    ["core", "copy steps", "bit err % @20", "@40", "@80"]))
    write_json(RESULTS_DIR / "cores.json", {"machine": machine_info(), "settings": vars(args), "cue": cue,
                                            "copy": copy})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
