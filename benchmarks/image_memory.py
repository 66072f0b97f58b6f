"""Image memory benchmark: PPO with a memory (GRU) against PPO without one (the ``mlp`` core) on the delayed
cue seen through images (``tracerl/ImageCueDelay-v0``: 8x8 uint8 pictures, the cue only in the first one).

Both agents run at the library's defaults (the image observations select the CNN encoder automatically), on
the same seed and the same env-step budget. Every ``--every`` env steps each is evaluated on
``--episodes`` fresh held-out episodes (deterministic actions, memory carried by ``predict``); a run stops
early once it reaches ``--target``. The script prints, side by side, each agent's final success rate, its
best one, and the env steps it used (and when it first reached the target). The memoryless agent cannot
beat chance (0.5): the decision image is the same whatever the cue was.

    .venv/bin/python benchmarks/image_memory.py [--delay 8] [--difficulty 1] [--budget 200000] [--seed 0]
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from typing import Any

from _common import RESULTS_DIR, configure_torch, eval_seed, git_commit, log, machine_info, table, write_json

ENV_ID = "tracerl/ImageCueDelay-v0"
MEMORIES = ("gru", "mlp")


@dataclass
class Run:
    """One agent's training run: evaluations ``(env steps, success)`` and the outcome."""

    memory: str
    steps_used: int = 0
    final_success: float = 0.0
    best_success: float = 0.0
    steps_to_target: int | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)


def success_rate(agent: Any, env_kwargs: dict[str, int], seed: int, episodes: int) -> float:
    """Deterministic success rate over ``episodes`` held-out episodes."""
    from tracerl.evaluation import evaluate

    return evaluate(agent, ENV_ID, n_episodes=episodes, deterministic=True, seed=seed, env_kwargs=env_kwargs).success_rate


def train(memory: str, args: argparse.Namespace) -> Run:
    """Train one PPO agent at the defaults with ``memory``, evaluating every ``args.every`` env steps."""
    from tracerl import TraceRL

    env_kwargs = {"delay": args.delay, "difficulty": args.difficulty, "size": args.size}
    agent = TraceRL(env=ENV_ID, env_kwargs=env_kwargs, memory=memory, seed=args.seed, verbose=0)
    encoder = agent.policy.encoder
    log(f"[{memory}] encoder: CNN on {list(encoder.image_paths)}, features {encoder.output_dim}")
    run = Run(memory)
    next_due = [args.every]

    def callback(agent: Any, stats: dict[str, float]) -> bool:
        steps = agent.num_timesteps
        if steps < next_due[0] and steps < args.budget:
            return True
        next_due[0] += args.every
        success = success_rate(agent, env_kwargs, eval_seed(args.seed, len(run.curve) + 1), args.episodes)
        run.curve.append((steps, success))
        run.steps_used, run.final_success = steps, success
        run.best_success = max(run.best_success, success)
        log(f"[{memory}] {steps:>8,} env steps: success {success:.3f}")
        if success >= args.target and run.steps_to_target is None:
            run.steps_to_target = steps
            return False
        return True

    agent.learn(args.budget, callback=callback)
    run.steps_used = agent.num_timesteps
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=int, default=8, help="actions per episode (the cue is shown delay - 1 steps before the decision)")
    parser.add_argument("--difficulty", type=int, default=1, help="0 blank images after the cue, 1 +-1 distractor bars")
    parser.add_argument("--size", type=int, default=8, help="image side in pixels")
    parser.add_argument("--budget", type=int, default=200_000, help="env steps per agent at most")
    parser.add_argument("--every", type=int, default=8_192, help="env steps between evaluations")
    parser.add_argument("--episodes", type=int, default=200, help="held-out episodes per evaluation")
    parser.add_argument("--target", type=float, default=0.99, help="success rate at which a run stops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memories", nargs="+", default=list(MEMORIES), help="memory cores to compare")
    args = parser.parse_args()
    configure_torch()

    runs = [train(memory, args) for memory in args.memories]  # one training at a time
    rows = [[r.memory, f"{r.final_success:.3f}", f"{r.best_success:.3f}", f"{r.steps_used:,}",
             "-" if r.steps_to_target is None else f"{r.steps_to_target:,}"] for r in runs]
    print(f"\nImageCueDelay delay {args.delay}, difficulty {args.difficulty}, {args.size}x{args.size} images, "
          f"seed {args.seed}, PPO defaults; success on {args.episodes} held-out episodes (chance 0.5)\n")
    print(table(rows, ["memory", "final success", "best success", "env steps used", f"steps to {args.target:.0%}"]))
    write_json(RESULTS_DIR / f"image_memory_d{args.delay}_s{args.seed}.json",
               {"args": vars(args), "runs": [asdict(r) for r in runs], "commit": git_commit(),
                "machine": machine_info()})


if __name__ == "__main__":
    main()
