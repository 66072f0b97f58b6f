"""The GRU core's training pass: the hand-written kernel (``memory/gru_kernel.py``) against torch's packed GRU.

Two measurements, both in CPU time of this process (``time.process_time``, one torch thread) with the two paths
interleaved, so other jobs on the machine disturb the ratio less than they disturb wall-clock:

* ``core``: a minibatch captured exactly as PPO feeds it to the core (CueDelay delay 16, default agent, 64-step
  sequences with episode starts inside); forward + backward of both paths on it, microseconds per time step.
* ``ppo``: PPO training throughput of the default agent on CueDelay delay 16 (env steps per CPU second and per
  wall second), the old path patched back in for the comparison.

    .venv/bin/python benchmarks/gru_kernel_speed.py            # both
    .venv/bin/python benchmarks/gru_kernel_speed.py --part core
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import torch

from tracerl import TraceRL
from tracerl.memory import rnn

ENV, ENV_KW = "tracerl/CueDelay-v0", {"delay": 16, "difficulty": 1}
KERNEL_FORWARD = rnn.GRUCore.forward


def torch_forward(core: rnn.GRUCore, *args: Any) -> Any:
    """The path before the kernel: torch's GRU on the episode pieces, packed."""
    return rnn._FusedRNNCore.forward(core, *args)


def core_part(rounds: int) -> None:
    agent = TraceRL(env=ENV, env_kwargs=ENV_KW, memory="gru", seed=0, verbose=0)
    captured: list[tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]] = []

    def spy(core: rnn.GRUCore, x: torch.Tensor, state: dict[str, torch.Tensor], starts: torch.Tensor) -> Any:
        if x.shape[0] > 1:
            captured.append((x.detach().clone(), {k: v.detach().clone() for k, v in state.items()}, starts.clone()))
        return KERNEL_FORWARD(core, x, state, starts)

    rnn.GRUCore.forward = spy  # type: ignore[method-assign]
    try:
        agent.learn(total_timesteps=2048)
    finally:
        rnn.GRUCore.forward = KERNEL_FORWARD  # type: ignore[method-assign]
    core = agent.policy.core
    x, state, starts = captured[-1]
    print(f"minibatch: x {tuple(x.shape)}, episode starts {float(starts.float().mean()):.3f} of steps")

    def run(forward: Callable[..., Any]) -> None:
        xi = x.clone().requires_grad_(True)
        y, _ = forward(xi, state, starts)
        y.sum().backward()

    def per_step(forward: Callable[..., Any], n: int = 60) -> float:
        start = time.process_time()
        for _ in range(n):
            run(forward)
        return (time.process_time() - start) / n / x.shape[0] * 1e6

    paths = {"torch GRU, packed": lambda *a: torch_forward(core, *a), "kernel": core.forward}
    for forward in paths.values():
        run(forward)  # warm up (TorchScript compiles on the first calls)
    for r in range(rounds):
        print(f"round {r}: " + ", ".join(f"{name} {per_step(f):.1f} us/step" for name, f in paths.items()))


def ppo_part(rounds: int, steps: int) -> None:
    results: dict[str, list[tuple[float, float]]] = {"torch GRU, packed": [], "kernel": []}
    forwards = {"torch GRU, packed": torch_forward, "kernel": KERNEL_FORWARD}
    for r in range(rounds):
        for name, forward in forwards.items():
            rnn.GRUCore.forward = forward  # type: ignore[method-assign]
            try:
                agent = TraceRL(env=ENV, env_kwargs=ENV_KW, memory="gru", seed=0, verbose=0)
                agent.learn(total_timesteps=2048)
                wall, cpu = time.perf_counter(), time.process_time()
                agent.learn(total_timesteps=steps, reset_num_timesteps=False)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            finally:
                rnn.GRUCore.forward = KERNEL_FORWARD  # type: ignore[method-assign]
            results[name].append((steps / cpu, steps / wall))
            print(f"round {r}: {name}: {steps / cpu:,.0f} env-steps per CPU second, {steps / wall:,.0f} per wall second")
    for name, rows in results.items():
        print(f"median {name}: {statistics.median(c for c, _ in rows):,.0f} per CPU s, "
              f"{statistics.median(w for _, w in rows):,.0f} per wall s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("core", "ppo", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=16_384, help="ppo: env steps timed per run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part in ("core", "both"):
        core_part(args.rounds)
    if args.part in ("ppo", "both"):
        ppo_part(args.rounds, args.steps)


if __name__ == "__main__":
    main()
