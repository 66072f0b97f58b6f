"""Learning benchmark: tracerl PPO-GRU (defaults) on CueDelay difficulty 1, delay 64, to >= 99 % success.

For each seed, train up to ``--budget`` env steps (default 500k), evaluating every ``--every`` steps
on 200 fresh held-out episodes (deterministic actions, memory carried by ``predict``). A seed reaches
the 99 % target when an evaluation reaches it and a confirming evaluation on 1000 more held-out
episodes agrees; the steps and training seconds (evaluation excluded) to 95 % and to 99 % are reported.
``--with-recurrentppo`` also trains sb3-contrib RecurrentPPO (defaults, 8 envs) on the same budget
and protocol; it trains at ~100 env-steps/s at this delay, so 500k steps take well over an hour per seed.

    .venv/bin/python benchmarks/learning.py [--seeds 3] [--delay 64] [--budget 500000] [--with-recurrentppo]
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from typing import Any

from _common import (
    PausableClock,
    RESULTS_DIR,
    configure_torch,
    eval_seed,
    held_out_success,
    log,
    machine_info,
    make_recurrent_ppo,
    make_tracerl,
    table,
    write_json,
)

TARGETS = (0.95, 0.99)
CHECK_EPISODES, CONFIRM_EPISODES = 200, 1000


@dataclass
class Run:
    """One seed's learning run."""

    agent: str
    seed: int
    steps_to: dict[str, int | None] = field(default_factory=dict)
    seconds_to: dict[str, float | None] = field(default_factory=dict)
    final_success: float = 0.0
    train_steps: int = 0
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (steps, seconds, success)


class Tracker:
    """Evaluates with the training clock paused and records when each target is first reached."""

    def __init__(self, agent: str, seed: int, delay: int) -> None:
        self.run = Run(agent, seed, {f"{t:.0%}": None for t in TARGETS}, {f"{t:.0%}": None for t in TARGETS})
        self.delay, self.clock, self.n_evals = delay, PausableClock(), 0

    def _success(self, model: Any, episodes: int) -> float:
        self.n_evals += 1
        return held_out_success(model, self.delay, eval_seed(self.run.seed, self.n_evals), episodes)

    def evaluate(self, model: Any, steps: int) -> bool:
        """Record one evaluation; return True when the last target is reached (and confirmed)."""
        self.clock.pause()
        success = self._success(model, CHECK_EPISODES)
        self.run.curve.append((steps, self.clock.elapsed, success))
        for target in TARGETS:
            key = f"{target:.0%}"
            if success >= target and self.run.steps_to[key] is None:
                if target == TARGETS[-1]:
                    confirmed = self._success(model, CONFIRM_EPISODES)
                    self.run.curve.append((steps, self.clock.elapsed, confirmed))
                    if confirmed < target:
                        continue
                self.run.steps_to[key], self.run.seconds_to[key] = steps, self.clock.elapsed
        self.run.final_success = success
        self.run.train_steps = steps
        done = self.run.steps_to[f"{TARGETS[-1]:.0%}"] is not None
        if not done:
            self.clock.start()
        return done


def train_tracerl(seed: int, delay: int, budget: int, every: int) -> Run:
    agent = make_tracerl("gru", delay, seed)
    tracker = Tracker("tracerl-gru", seed, delay)
    next_due = [every]

    def callback(agent: Any, stats: dict[str, float]) -> bool:
        steps = agent.num_timesteps
        if steps >= next_due[0] or steps >= budget:
            next_due[0] += every
            return not tracker.evaluate(agent, steps)
        return True

    tracker.clock.start()
    agent.learn(budget, callback=callback)
    tracker.clock.pause()
    return tracker.run


def train_recurrent_ppo(seed: int, delay: int, budget: int, every: int) -> Run:
    from stable_baselines3.common.callbacks import BaseCallback

    model = make_recurrent_ppo(delay, seed)
    tracker = Tracker("sb3-recurrentppo", seed, delay)

    class Every(BaseCallback):
        next_due = every
        stop = False

        def _on_rollout_start(self) -> None:
            if self.model.num_timesteps >= self.next_due:
                self.next_due += every
                self.stop = tracker.evaluate(self.model, self.model.num_timesteps)

        def _on_step(self) -> bool:
            return not self.stop

    tracker.clock.start()
    model.learn(budget, callback=Every())
    tracker.clock.pause()
    if tracker.run.train_steps != model.num_timesteps and tracker.run.steps_to["99%"] is None:
        tracker.evaluate(model, model.num_timesteps)
        tracker.clock.pause()
    return tracker.run


def main() -> int:
    configure_torch()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--delay", type=int, default=64)
    parser.add_argument("--budget", type=int, default=500_000)
    parser.add_argument("--every", type=int, default=16_384, help="evaluate every this many env steps")
    parser.add_argument("--with-recurrentppo", action="store_true")
    args = parser.parse_args()
    runs: list[Run] = []
    for seed in range(args.seeds):
        run = train_tracerl(seed, args.delay, args.budget, args.every)
        log(f"tracerl-gru seed {seed}: {run.steps_to} steps, {run.seconds_to} s, final {run.final_success:.3f}")
        runs.append(run)
    if args.with_recurrentppo:
        for seed in range(args.seeds):
            run = train_recurrent_ppo(seed, args.delay, args.budget, args.every)
            log(f"sb3-recurrentppo seed {seed}: {run.steps_to} steps, final {run.final_success:.3f}")
            runs.append(run)
    rows = [[r.agent, r.seed, r.steps_to["95%"] or f"> {r.train_steps:,}", r.steps_to["99%"] or f"> {r.train_steps:,}",
             "" if r.seconds_to["99%"] is None else f"{r.seconds_to['99%']:.1f}", f"{r.final_success:.3f}"] for r in runs]
    print(f"\nCueDelay difficulty 1, delay {args.delay}, budget {args.budget:,} env steps")
    print(table(rows, ["agent", "seed", "steps to 95%", "steps to 99% (confirmed)", "train s to 99%",
                       "last success"]))
    out = RESULTS_DIR / f"learning-delay{args.delay}.json"
    write_json(out, {"machine": machine_info(), "settings": vars(args), "runs": [asdict(r) for r in runs]})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
