"""Every memory core side by side: CueDelay success by delay, training speed, copy-task bit error.

For each core (default: all registered), on one torch thread:
  (1) PPO on CueDelay difficulty 1 at each delay (default 16, 64, 256), ``--budget`` env steps per run
      (default 300k), evaluated on 200 held-out episodes at the end; stops early at >= 95 % success
      (checked every ``--every`` steps). Reported: success, steps to 95 %, training env-steps/s.
  (2) The copy task (Graves et al. 2014): train on lengths 1-20 (batches of 16, Adam lr 1e-3, gradient
      norm clipped at 10, no curriculum) for ``copy_settings(core)["steps"]`` batches (``--copy-steps``
      overrides it for every core), then bit error on 256 test sequences each of length 20, 40 and 80;
      the bit error at 20/40/80 on 64 sequences is also logged every ``--copy-test-every`` steps.

Per-core settings (``core_settings``): loop-over-time cores (NTM, DNC, slots) take one 1024-step minibatch
per epoch (NTM and DNC also a chrono-initialized controller, ``chrono_tmax=256``), attention cores a
window that covers the delay. Copy settings (``copy_settings``): every core 100 wide; the NTM with
Graves et al.'s 128 x 20 memory (a length-80 copy needs more than 80 slots, which the 16 x 8 memory of
the RL settings cannot give), 4000 batches; the DNC (one read head) trained 1500 batches with a
96 x 20 memory (its N x N link matrix makes 128 slots 1.7x slower per step; it learns the copy in
under 1000 batches) and tested with the same parameters in a 128 x 20 memory, like the NTM's (DNC
parameters do not depend on the number of slots; its bit error with the 96-slot training memory is
reported too). Both with the default controller (the chrono controller learns the copy task slower);
attention cores a window covering the longest test sequence (2 * 80 + 1 steps).
A full run of every core takes hours; choose with ``--cores``, ``--delays`` (empty: no CueDelay runs),
``--skip-copy``.

    .venv/bin/python benchmarks/cores.py [--cores gru,lstm,ntm] [--delays 16,64] [--budget 300000]
    .venv/bin/python benchmarks/cores.py --cores ntm,dnc --delays '' [--copy-steps 4000]
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
    """TraceRL keyword arguments for ``core`` at ``delay`` (documented in the module docstring); the same
    settings ``tracerl bench`` uses (:func:`tracerl.bench.agents.core_settings`)."""
    from tracerl.bench.agents import core_settings as bench_core_settings

    return bench_core_settings(core, {"delay": delay})


COPY_LENGTHS = (20, 40, 80)
COPY_WINDOW = 2 * max(COPY_LENGTHS) + 1


def copy_settings(core: str) -> dict[str, Any]:
    """``train_copy`` keyword arguments for ``core`` (documented in the module docstring)."""
    settings: dict[str, Any] = {"steps": 5000, "batch_size": 16, "lr": 1e-3, "grad_clip": 10.0,
                                "hidden_size": 100, "memory_kwargs": {}}
    if core == "ntm":
        settings.update(steps=4000, memory_kwargs={"memory_slots": 128, "memory_width": 20})
    elif core == "dnc":
        settings.update(steps=1500, memory_kwargs={"memory_slots": 96, "memory_width": 20, "num_read_heads": 1},
                        test_memory_kwargs={"memory_slots": 128})
    elif core == "transformer":
        settings["memory_kwargs"] = {"window": COPY_WINDOW}
    elif core == "gtrxl":
        settings["memory_kwargs"] = {"memory_len": COPY_WINDOW}
    return settings


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


def run_copy(core: str, steps: int | None, test_every: int) -> dict[str, Any]:
    """Train ``core`` on the copy task (lengths 1-20) and return the bit error at 20, 40, 80."""
    from tracerl.supervised.copy_task import train_copy

    settings = copy_settings(core)
    if steps is not None:
        settings["steps"] = steps

    def on_log(entry: dict[str, Any]) -> None:
        if "test_bit_error" in entry:
            errors = ", ".join(f"{n}: {100 * e:.2f}%" for n, e in entry["test_bit_error"].items())
            log(f"{core} copy step {entry['step']}: loss {entry['loss']:.4f}, bit error {errors}, "
                f"{entry['seconds']:.0f} s")

    res = train_copy(core, train_lengths=(1, 20), eval_lengths=COPY_LENGTHS, progress=False, seed=0,
                     test_every=test_every, on_log=on_log, **settings)
    out = {"core": core, "steps": settings["steps"], "settings": res.config, "seconds": res.seconds,
           "parameters": res.parameters, "history": res.history,
           "bit_error": {e.length: e.bit_error_rate for e in res.evaluation},
           "evaluation": [e.to_json() for e in res.evaluation]}
    if settings.get("test_memory_kwargs"):  # also the trained model in its training memory
        from tracerl.supervised.copy_task import bit_error_rate

        out["bit_error_training_memory"] = {n: bit_error_rate(res.model, n, 256).bit_error_rate
                                            for n in COPY_LENGTHS}
        log(f"{core} copy, training memory {settings['memory_kwargs']}: "
            + ", ".join(f"{n}: {100 * e:.2f}%" for n, e in out["bit_error_training_memory"].items()))
    return out


def main() -> int:
    configure_torch()
    from tracerl.memory import available_memories

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cores", default=",".join(available_memories()))
    p.add_argument("--delays", default="16,64,256")
    p.add_argument("--budget", type=int, default=300_000)
    p.add_argument("--every", type=int, default=16_384)
    p.add_argument("--copy-steps", type=int, default=None, help="copy-task batches for every core "
                   "(default: copy_settings, 4000 for NTM/DNC, 5000 for the others)")
    p.add_argument("--copy-test-every", type=int, default=500)
    p.add_argument("--out", default="cores.json", help="results file name in bench_results/")
    p.add_argument("--skip-copy", action="store_true")
    args = p.parse_args()
    cores = args.cores.split(",")
    unknown = sorted(set(cores) - set(available_memories()))
    if unknown:
        p.error(f"unknown cores {unknown}; valid: {available_memories()}")
    delays = [int(d) for d in args.delays.split(",") if d.strip()]
    cue, copy = [], []
    for core in cores:
        for delay in delays:
            r = run_cue(core, delay, args.budget, args.every)
            log(f"{core} delay {delay}: success {r['success']:.3f}, steps to 95% {r['steps_to_95']}, "
                f"{r['steps_per_s']:,.0f} steps/s")
            cue.append(r)
        if not args.skip_copy and core != "mlp":
            c = run_copy(core, args.copy_steps, args.copy_test_every)
            log(f"{core} copy: {c['bit_error']} in {c['seconds']:.0f} s")
            copy.append(c)
    if cue:
        print(table([[r["core"], r["delay"], f"{r['success']:.3f}", r["steps_to_95"] or f"> {r['train_steps']:,}",
                      f"{r['steps_per_s']:,.0f}"] for r in cue],
                    ["core", "delay", "success", "steps to 95%", "train steps/s"]))
    if copy:
        print(table([[c["core"], c["steps"]] + [f"{100 * c['bit_error'][n]:.2f}" for n in (20, 40, 80)] for c in copy],
                    ["core", "copy steps", "bit err % @20", "@40", "@80"]))
    write_json(RESULTS_DIR / args.out, {"machine": machine_info(), "settings": vars(args), "cue": cue,
                                            "copy": copy})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
