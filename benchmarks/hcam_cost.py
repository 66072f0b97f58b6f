"""Compute cost of HCAM against the windowed transformer and GTrXL at the same memory length.

For each memory length ``L`` (default 64, 256, 1024) the three cores are built with one layer, width 64
and 4 heads: ``transformer`` with ``window=L``, ``gtrxl`` with ``memory_len=L``, ``hcam`` with chunks of
``--chunk-len`` steps (default 8), ``num_chunks = L / chunk_len`` and ``top_k`` (default 4). Every core
starts from a *full* memory (random contents, every slot valid), as in the middle of a long episode.
Two measurements, on one torch thread:

(a) Step cost: ``--steps`` calls with ``T = 1`` on a batch of ``--batch`` rows (default 16), no gradient
    (acting); reported in milliseconds per step (median of ``--repeats`` timed blocks, after a warm-up).
(b) Training cost: forward and backward on ``[--seq-len, --batch]`` sequences (default 64 x 16, PPO's
    default rollout) from the full state, with an episode start in 1 % of the (step, row) pairs;
    milliseconds per sequence batch (median of ``--repeats``).

The three cores of one memory length are timed in the same process with their repeats interleaved (hcam,
transformer, gtrxl, hcam, ...), and the table gives HCAM's time divided by each core's: on a loaded machine
the ratios are the figures to quote: the median over the rounds of HCAM's time / the core's time in the same
round (the load average before and after is printed with them).

Also reported: parameters and the state's size in floats per row. Timing figures are machine
dependent; the script writes them with the machine description to ``bench_results/hcam_cost.json``.

    .venv/bin/python benchmarks/hcam_cost.py [--lengths 64,256,1024] [--batch 16] [--seq-len 64]
    .venv/bin/python benchmarks/hcam_cost.py --lengths 16 --steps 5 --repeats 1 --seq-len 8   # smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, configure_torch, log, machine_info, table, write_json  # noqa: E402

CORES = ("hcam", "transformer", "gtrxl")
WIDTH, HEADS, INPUT_DIM = 64, 4, 8


def build(core: str, length: int, chunk_len: int, top_k: int) -> Any:
    """The core ``core`` with memory length ``length`` (see the module docstring)."""
    from tracerl.memory import make_memory

    torch.manual_seed(0)
    kwargs: dict[str, Any] = {"hidden_size": WIDTH, "num_heads": HEADS, "num_layers": 1}
    if core == "hcam":
        if length % chunk_len:
            raise SystemExit(f"memory length {length} is not a multiple of --chunk-len {chunk_len}")
        kwargs.update(chunk_len=chunk_len, num_chunks=length // chunk_len,
                      top_k=min(top_k, length // chunk_len))
    elif core == "transformer":
        kwargs["window"] = length
    else:
        kwargs["memory_len"] = length
    return make_memory(core, input_dim=INPUT_DIM, **kwargs)


def full_state(core: Any, batch: int) -> dict[str, torch.Tensor]:
    """Random contents, every memory slot valid. HCAM's current chunk is left empty."""
    g = torch.Generator().manual_seed(1)
    state = {}
    for name, value in core.initial_state(batch).items():
        if "valid" in name:
            state[name] = torch.zeros_like(value) if name == "recent_valid" else torch.ones_like(value)
        else:
            state[name] = torch.randn(value.shape, generator=g)
    return state


def step_block_ms(core: Any, state: dict[str, torch.Tensor], batch: int, steps: int) -> float:
    """Milliseconds per ``T = 1`` call over ``steps`` calls from ``state`` (no gradient, as when acting)."""
    x = torch.randn(1, batch, INPUT_DIM)
    starts = torch.zeros(1, batch, dtype=torch.bool)
    with torch.no_grad():
        t = time.perf_counter()
        for _ in range(steps):
            _, state = core(x, state, starts)
        return (time.perf_counter() - t) / steps * 1e3


def train_pass_ms(core: Any, state: dict[str, torch.Tensor], batch: int, seq_len: int) -> float:
    """Milliseconds of one forward and backward pass over ``[seq_len, batch]`` from ``state``."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(seq_len, batch, INPUT_DIM, generator=g)
    starts = torch.rand(seq_len, batch, generator=g) < 0.01
    t = time.perf_counter()
    y, _ = core(x, state, starts)
    y.pow(2).mean().backward()
    elapsed = (time.perf_counter() - t) * 1e3
    core.zero_grad(set_to_none=True)
    return elapsed


def measure(cores: dict[str, Any], batch: int, steps: int, seq_len: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median step and training-pass milliseconds of every core. The repeats are interleaved (core A, B, C, A,
    B, C, ...) after one warm-up of each, so a change of the machine's load hits every core alike and the ratios
    between cores stay meaningful on a shared machine."""
    states = {name: full_state(core, batch) for name, core in cores.items()}
    for name, core in cores.items():  # warm-up
        step_block_ms(core, states[name], batch, max(1, steps // 5))
        train_pass_ms(core, states[name], batch, seq_len)
    step: dict[str, list[float]] = {name: [] for name in cores}
    train: dict[str, list[float]] = {name: [] for name in cores}
    for _ in range(repeats):
        for name, core in cores.items():
            step[name].append(step_block_ms(core, states[name], batch, steps))
            train[name].append(train_pass_ms(core, states[name], batch, seq_len))
    return {name: {"step_ms": statistics.median(step[name]), "train_ms": statistics.median(train[name]),
                   "step_ms_all": step[name], "train_ms_all": train[name]} for name in cores}


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over the interleaved rounds of ``a[i] / b[i]`` (each pair timed back to back, under the same load)."""
    return statistics.median(x / y for x, y in zip(a, b))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="64,256,1024", help="memory lengths, comma-separated")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200, help="T = 1 calls per timed block")
    parser.add_argument("--seq-len", type=int, default=64, help="T of the training sequences")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-len", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "hcam_cost.json")
    args = parser.parse_args(argv)
    configure_torch()
    lengths = [int(v) for v in args.lengths.split(",") if v]
    load_before = os.getloadavg()
    rows, records = [], []
    for length in lengths:
        cores = {name: build(name, length, args.chunk_len, args.top_k) for name in CORES}
        timed = measure(cores, args.batch, args.steps, args.seq_len, args.repeats)
        for name, core in cores.items():
            record = {
                "core": name, "memory_len": length, "batch": args.batch, "seq_len": args.seq_len,
                "params": sum(p.numel() for p in core.parameters()),
                "state_floats_per_row": sum(v[0].numel() for v in core.initial_state(1).values()),
                **timed[name],
                "hcam_step_ratio": paired_ratio(timed["hcam"]["step_ms_all"], timed[name]["step_ms_all"]),
                "hcam_train_ratio": paired_ratio(timed["hcam"]["train_ms_all"], timed[name]["train_ms_all"]),
            }
            if name == "hcam":
                record.update(chunk_len=core.chunk_len, num_chunks=core.num_chunks, top_k=core.top_k)
            records.append(record)
            rows.append([name, str(length), f"{record['step_ms']:.2f}", f"{record['hcam_step_ratio']:.2f}",
                         f"{record['train_ms']:.1f}", f"{record['hcam_train_ratio']:.2f}",
                         f"{record['params']:,}", f"{record['state_floats_per_row']:,}"])
            log(f"{name} L={length}: step {record['step_ms']:.2f} ms, train {record['train_ms']:.1f} ms")
    load_after = os.getloadavg()
    load = f"load average (1, 5, 15 min) {load_before[0]:.1f}, {load_before[1]:.1f}, {load_before[2]:.1f} before, " \
           f"{load_after[0]:.1f}, {load_after[1]:.1f}, {load_after[2]:.1f} after"
    print()
    print(table(rows, ["core", "memory length", f"step ms (B={args.batch})", "HCAM / this core (step)",
                       f"train ms ([{args.seq_len}, {args.batch}] fwd+bwd)", "HCAM / this core (train)", "params",
                       "state floats/row"]))
    print(load)
    write_json(args.out, {"settings": vars(args) | {"out": str(args.out)}, "machine": machine_info(),
                          "load": load, "results": records})
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
