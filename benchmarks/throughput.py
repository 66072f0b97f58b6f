"""Speed benchmark of tracerl against stable-baselines3 on the delayed-cue memory task.

    .venv/bin/python benchmarks/throughput.py [--quick] [--seeds N] [--out results.json]

Everything runs in one process with ``torch.set_num_threads(1)``. Three measurements:

(a) Time to solve. Training wall-clock seconds and env steps until a held-out evaluation (100
    deterministic episodes, fresh evaluation seeds, memory carried with ``episode_start``) reaches
    >= 95 % success on CueDelay difficulty 1, delay 16 and delay 64. Evaluation runs every
    ``eval_every`` env steps (tracerl: from the ``learn`` callback after an update; SB3: from an
    ``on_rollout_start`` callback, i.e. after the previous update) with the clock paused. Agents:
    tracerl PPO-GRU at its defaults; sb3-contrib ``RecurrentPPO("MlpLstmPolicy")`` at its defaults
    with 8 envs; SB3 ``PPO("MlpPolicy")`` at its defaults with 8 envs (memoryless: a control that
    cannot beat ~50 %). Evaluation does not touch the training RNGs, so the evaluation period only
    changes the granularity of the measurement, not the training run.
(b) Throughput. Training env-steps/s over a whole ``learn`` call (after an untimed one-rollout
    warm-up on the same model), on CueDelay delay 16, for tracerl-gru, tracerl-lstm,
    sb3-recurrentppo and sb3-ppo, each at its own defaults and at a shared setting (8 envs x 128
    steps per rollout, memory width 64). The shared setting equalises the rollout shape and memory
    width only; epochs, minibatch sizes and learning rates stay each library's defaults.
(c) Compute bound. For tracerl-gru (defaults and shared setting): the same network's work with no
    env and no Python around it beyond the loops -- ``n_steps`` T=1 forward passes on
    ``[1, n_envs, obs_dim]`` (collection), then ``n_epochs`` passes of forward + PPO loss + backward
    + gradient clipping + Adam step over the rollout's sequences in minibatches of the configured size,
    with the env's episode-start pattern. The best rollout's time gives an env-steps/s upper bound;
    the fraction of it that training reached in (b) is reported.

sb3-contrib RecurrentPPO dominates the run time, training at ~300 steps/s on delay 16 and ~100 steps/s
on delay 64 on one thread (its 150k-step delay-64 budget alone is ~25 minutes), so
``--baseline-seeds 1`` runs the SB3 baselines on one seed while tracerl runs on all. ``--quick`` cuts the budgets ~10x for a smoke run of about
five minutes, whose figures do not test the targets.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    EVAL_EPISODES,
    RESULTS_DIR,
    configure_torch,
    eval_seed,
    held_out_success,
    log,
    machine_info,
    make_recurrent_ppo,
    make_sb3_ppo,
    make_tracerl,
    median,
    PausableClock,
    section,
    spread,
    table,
    write_json,
)

SOLVE_THRESHOLD = 0.95
"""Held-out success rate that counts as solved."""

SPEEDUP_TARGET = 10.0
"""Target: tracerl solves >= this many times faster (wall clock) than RecurrentPPO."""

BOUND_FRACTION_TARGET = 0.5
"""Target: training reaches >= this fraction of its compute bound."""

DELAYS = (16, 64)
"""CueDelay delays of the time-to-solve benchmark."""

THROUGHPUT_DELAY = 16
"""CueDelay delay of the throughput and compute-bound benchmarks."""

AGENTS = ("tracerl-gru", "tracerl-lstm", "sb3-recurrentppo", "sb3-ppo")
SETTINGS = ("defaults", "shared")
SHARED_N_ENVS, SHARED_N_STEPS, SHARED_HIDDEN = 8, 128, 64


@dataclass(frozen=True)
class Budgets:
    """Env-step budgets of one run (the full run's, or ~1/10 of them with ``--quick``; RecurrentPPO's
    delay-64 quick budget is cut ~1/18 because it trains at only ~100 steps/s there)."""

    tracerl: int
    recurrent_ppo: dict[int, int]
    sb3_ppo: int
    eval_every: int
    throughput_steps: int
    bound_steps: int

    @classmethod
    def make(cls, quick: bool) -> "Budgets":
        if quick:
            return cls(tracerl=50_000, recurrent_ppo={16: 15_000, 64: 16_384}, sb3_ppo=10_000,
                       eval_every=4096, throughput_steps=4096, bound_steps=4096)
        return cls(tracerl=500_000, recurrent_ppo={16: 150_000, 64: 150_000}, sb3_ppo=100_000,
                   eval_every=8192, throughput_steps=32_768, bound_steps=32_768)


# ==================================================================================================
# (a) time to solve
# ==================================================================================================
@dataclass
class EvalPoint:
    """One held-out evaluation: env steps and training seconds at that point, and the success rate."""

    steps: int
    seconds: float
    success: float


@dataclass
class SolveRun:
    """Outcome of one training run of the time-to-solve benchmark."""

    agent: str
    delay: int
    seed: int
    budget: int
    solved: bool
    steps_to_solve: int | None
    seconds_to_solve: float | None
    train_steps: int
    train_seconds: float
    final_success: float
    curve: list[EvalPoint] = field(default_factory=list)

    @property
    def time_bound(self) -> float:
        """Seconds to solve, or (a lower bound) the whole training time when not solved."""
        return self.seconds_to_solve if self.seconds_to_solve is not None else self.train_seconds

    @property
    def steps_bound(self) -> int:
        """Steps to solve, or (a lower bound) all training steps when not solved."""
        return self.steps_to_solve if self.steps_to_solve is not None else self.train_steps


class SolveMonitor:
    """Times training with a pausable clock and evaluates every ``every`` env steps with it paused."""

    def __init__(self, delay: int, seed: int, every: int) -> None:
        self.delay, self.seed, self.every = delay, seed, every
        self.clock = PausableClock()
        self.points: list[EvalPoint] = []
        self.next_due = every
        self.solved_at: EvalPoint | None = None

    @property
    def solved(self) -> bool:
        return self.solved_at is not None

    def due(self, steps: int) -> bool:
        """Whether an evaluation is due at ``steps`` env steps."""
        return steps >= self.next_due

    def evaluate(self, model: Any, steps: int) -> bool:
        """Evaluate ``model`` on fresh held-out episodes (clock paused); return True once solved."""
        was_running = self.clock.running
        self.clock.pause()
        success = self.success(model)
        point = EvalPoint(steps, self.clock.elapsed, success)
        self.points.append(point)
        if success >= SOLVE_THRESHOLD and self.solved_at is None:
            self.solved_at = point
        self.on_point(point)
        while self.next_due <= steps:
            self.next_due += self.every
        if was_running:
            self.clock.start()
        return self.solved

    def success(self, model: Any) -> float:
        """Held-out success of ``model`` now (fresh episodes at every evaluation)."""
        return held_out_success(model, self.delay, eval_seed(self.seed, len(self.points)))

    def on_point(self, point: EvalPoint) -> None:
        """Hook for subclasses: called after each evaluation."""

    def result(self, agent: str, budget: int, train_steps: int) -> SolveRun:
        """The run's outcome (call after training, with the clock paused)."""
        hit = self.solved_at
        return SolveRun(
            agent=agent, delay=self.delay, seed=self.seed, budget=budget, solved=hit is not None,
            steps_to_solve=None if hit is None else hit.steps, seconds_to_solve=None if hit is None else hit.seconds,
            train_steps=train_steps, train_seconds=self.clock.elapsed,
            final_success=(hit or self.points[-1]).success, curve=list(self.points),
        )


def solve_tracerl(delay: int, seed: int, budget: int, every: int) -> SolveRun:
    """Train tracerl PPO-GRU at its defaults until solved or ``budget`` env steps."""
    agent = make_tracerl("gru", delay, seed)
    monitor = SolveMonitor(delay, seed, every)

    def callback(agent: Any, stats: dict[str, float]) -> bool:
        steps = agent.num_timesteps
        if monitor.due(steps) or steps >= budget:
            return not monitor.evaluate(agent, steps)
        return True

    monitor.clock.start()
    agent.learn(budget, callback=callback)
    monitor.clock.pause()
    return monitor.result("tracerl-gru", budget, agent.num_timesteps)


def _sb3_callback(monitor: SolveMonitor) -> Any:
    """An SB3 callback that evaluates at the start of a rollout (after the previous update) when due,
    and stops training at the next env step once solved."""
    from stable_baselines3.common.callbacks import BaseCallback

    class SolveCallback(BaseCallback):
        def _on_rollout_start(self) -> None:
            steps = self.model.num_timesteps
            if steps > 0 and monitor.due(steps):
                monitor.evaluate(self.model, steps)

        def _on_step(self) -> bool:
            return not monitor.solved

    return SolveCallback()


def solve_sb3(name: str, factory: Callable[[int, int], Any], delay: int, seed: int, budget: int,
              every: int) -> SolveRun:
    """Train an SB3 model until solved or ``budget`` env steps; evaluate once more after the last update."""
    model = factory(delay, seed)
    monitor = SolveMonitor(delay, seed, every)
    monitor.clock.start()
    model.learn(budget, callback=_sb3_callback(monitor))
    monitor.clock.pause()
    if not monitor.solved and (not monitor.points or monitor.points[-1].steps != model.num_timesteps):
        monitor.evaluate(model, model.num_timesteps)
    return monitor.result(name, budget, model.num_timesteps)


def run_time_to_solve(budgets: Budgets, seeds: list[int], baseline_seeds: int) -> list[SolveRun]:
    """All runs of (a): every delay x seed x agent (the SB3 baselines on the first ``baseline_seeds`` seeds)."""
    runs: list[SolveRun] = []
    for delay in DELAYS:
        for seed in seeds:
            jobs: list[tuple[str, Callable[[], SolveRun]]] = [
                ("tracerl-gru", lambda: solve_tracerl(delay, seed, budgets.tracerl, budgets.eval_every)),
                ("sb3-recurrentppo", lambda: solve_sb3("sb3-recurrentppo", make_recurrent_ppo, delay, seed,
                                                       budgets.recurrent_ppo[delay], budgets.eval_every)),
                ("sb3-ppo", lambda: solve_sb3("sb3-ppo", make_sb3_ppo, delay, seed, budgets.sb3_ppo,
                                              budgets.eval_every)),
            ]
            if seed >= baseline_seeds:
                jobs = jobs[:1]
            for name, job in jobs:
                run = job()
                runs.append(run)
                outcome = (f"solved at {run.steps_to_solve:,} steps, {run.seconds_to_solve:.1f} s" if run.solved
                           else f"not solved: {run.final_success:.0%} after {run.train_steps:,} steps, "
                                f"{run.train_seconds:.1f} s")
                log(f"[a] delay {delay} seed {seed} {name}: {outcome}")
    return runs


def _censored_median(values: list[tuple[float, bool]]) -> tuple[float, bool]:
    """Median of (value, is_lower_bound) pairs and whether it is only a lower bound (any value is)."""
    return median(v for v, _ in values), any(c for _, c in values)


def aggregate_solves(runs: list[SolveRun]) -> list[dict[str, Any]]:
    """Per (delay, agent): seeds solved, median steps/seconds to solve (lower bounds where unsolved)."""
    rows = []
    for delay in DELAYS:
        for agent in ("tracerl-gru", "sb3-recurrentppo", "sb3-ppo"):
            group = [r for r in runs if r.delay == delay and r.agent == agent]
            if not group:
                continue
            secs, secs_lb = _censored_median([(r.time_bound, not r.solved) for r in group])
            steps, _ = _censored_median([(float(r.steps_bound), not r.solved) for r in group])
            rows.append({
                "delay": delay, "agent": agent, "budget": group[0].budget, "seeds": len(group),
                "solved": sum(r.solved for r in group), "median_steps": steps, "median_seconds": secs,
                "lower_bound": secs_lb, "median_final_success": median(r.final_success for r in group),
                "train_steps_per_s": median(r.train_steps / r.train_seconds for r in group),
            })
    return rows


def speedup_ratios(aggregate: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RecurrentPPO time (and steps) to solve / tracerl's, per delay, with the bound's direction."""
    out = []
    for delay in DELAYS:
        by_agent = {row["agent"]: row for row in aggregate if row["delay"] == delay}
        tr, rp = by_agent.get("tracerl-gru"), by_agent.get("sb3-recurrentppo")
        if tr is None or rp is None:
            continue
        if not tr["lower_bound"]:
            qualifier = ">=" if rp["lower_bound"] else "="
        else:
            qualifier = "?" if rp["lower_bound"] else "<="
        out.append({
            "delay": delay, "qualifier": qualifier,
            "time_ratio": rp["median_seconds"] / tr["median_seconds"],
            "steps_ratio": rp["median_steps"] / tr["median_steps"],
            "tracerl_seconds": tr["median_seconds"], "recurrentppo_seconds": rp["median_seconds"],
        })
    return out


def print_time_to_solve(aggregate: list[dict[str, Any]], ratios: list[dict[str, Any]]) -> None:
    """Tables of (a)."""
    rows = []
    for row in aggregate:
        lb = ">= " if row["lower_bound"] else ""
        unsolved = row["solved"] == 0
        rows.append([
            row["delay"], row["agent"], f"{row['budget']:,}", f"{row['solved']}/{row['seeds']}",
            "not solved" if unsolved else f"{lb}{row['median_steps']:,.0f}",
            "not solved" if unsolved else f"{lb}{row['median_seconds']:.1f}",
            f"{row['median_final_success']:.0%}", f"{row['train_steps_per_s']:,.0f}",
        ])
    section("(a) Time to solve: held-out success >= 95 %, CueDelay difficulty 1 (training time only)")
    print(table(rows, ["delay", "agent", "budget", "solved", "steps to 95%", "train s to 95%",
                       "success at stop", "steps/s"]))
    print("Medians over seeds; '>=' marks medians that include unsolved runs counted at their budget.")
    ratio_rows = [[r["delay"], f"{r['tracerl_seconds']:.1f}", f"{r['recurrentppo_seconds']:.1f}",
                   fmt_ratio(r["qualifier"], r["time_ratio"]), fmt_ratio(r["qualifier"], r["steps_ratio"])]
                  for r in ratios]
    print()
    print(table(ratio_rows, ["delay", "tracerl s", "RecurrentPPO s", "time ratio RPPO/tracerl",
                             "steps ratio RPPO/tracerl"]))


# ==================================================================================================
# (b) throughput
# ==================================================================================================
def build_agent(agent: str, setting: str, seed: int, delay: int = THROUGHPUT_DELAY) -> Any:
    """One of AGENTS at its defaults or at the shared setting (8 envs x 128 steps, memory width 64)."""
    shared = setting == "shared"
    if agent.startswith("tracerl-"):
        kwargs = {"n_envs": SHARED_N_ENVS, "n_steps": SHARED_N_STEPS, "hidden_size": SHARED_HIDDEN} if shared else {}
        return make_tracerl(agent.removeprefix("tracerl-"), delay, seed, **kwargs)
    if agent == "sb3-recurrentppo":
        kwargs = {"n_steps": SHARED_N_STEPS, "policy_kwargs": {"lstm_hidden_size": SHARED_HIDDEN}} if shared else {}
        return make_recurrent_ppo(delay, seed, **kwargs)
    if agent == "sb3-ppo":
        return make_sb3_ppo(delay, seed, **({"n_steps": SHARED_N_STEPS} if shared else {}))
    raise ValueError(f"unknown agent {agent!r}; valid: {', '.join(AGENTS)}")


def rollout_shape(model: Any) -> tuple[int, int]:
    """(n_envs, n_steps) of one rollout of a tracerl or SB3 model."""
    if hasattr(model, "config"):  # TraceRL
        return model.env.num_envs, model.config.n_steps
    return model.n_envs, model.n_steps


def memory_width(model: Any) -> int | None:
    """The recurrent memory's hidden size (None for memoryless models)."""
    if hasattr(model, "policy_config"):  # TraceRL
        return model.policy_config.hidden_size
    shape = getattr(model.policy, "lstm_hidden_state_shape", None)  # RecurrentPPO: (layers, 1, hidden)
    return None if shape is None else int(shape[-1])


def measure_throughput(agent: str, setting: str, seed: int, steps: int) -> dict[str, Any]:
    """Training env-steps/s over one ``learn(steps)`` call after an untimed one-rollout warm-up."""
    model = build_agent(agent, setting, seed)
    n_envs, n_steps = rollout_shape(model)
    model.learn(n_envs * n_steps)  # warm-up, not timed
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    return {"agent": agent, "setting": setting, "seed": seed, "n_envs": n_envs, "n_steps": n_steps,
            "hidden": memory_width(model), "steps": int(model.num_timesteps), "seconds": seconds,
            "steps_per_s": model.num_timesteps / seconds}


def run_throughput(budgets: Budgets, seeds: list[int], baseline_seeds: int) -> list[dict[str, Any]]:
    """All measurements of (b): every agent x setting x seed (SB3 agents on the first ``baseline_seeds``)."""
    out = []
    for setting in SETTINGS:
        for agent in AGENTS:
            for seed in seeds:
                if agent.startswith("sb3-") and seed >= baseline_seeds:
                    continue
                m = measure_throughput(agent, setting, seed, budgets.throughput_steps)
                log(f"[b] {agent} {setting} seed {seed}: {m['steps_per_s']:,.0f} steps/s "
                    f"({m['steps']:,} steps in {m['seconds']:.1f} s)")
                out.append(m)
    return out


def aggregate_throughput(measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median steps/s per (agent, setting)."""
    rows = []
    for setting in SETTINGS:
        for agent in AGENTS:
            group = [m for m in measurements if m["agent"] == agent and m["setting"] == setting]
            if group:
                rates = [m["steps_per_s"] for m in group]
                rows.append({"agent": agent, "setting": setting, "n_envs": group[0]["n_envs"],
                             "n_steps": group[0]["n_steps"], "hidden": group[0]["hidden"],
                             "median_steps_per_s": median(rates), "min": min(rates), "max": max(rates),
                             "repeats": len(rates)})
    return rows


def print_throughput(rows: list[dict[str, Any]]) -> None:
    """Table of (b)."""
    section(f"(b) Training throughput, CueDelay delay {THROUGHPUT_DELAY} difficulty 1 (env steps/s, whole learn call)")
    ref = {r["setting"]: r["median_steps_per_s"] for r in rows if r["agent"] == "sb3-recurrentppo"}
    table_rows = [[r["agent"], r["setting"], f"{r['n_envs']} x {r['n_steps']}", r["hidden"] or "-",
                   f"{r['median_steps_per_s']:,.0f}", spread([r["min"], r["max"]]) if r["repeats"] > 1 else "",
                   f"{r['median_steps_per_s'] / ref[r['setting']]:.1f}x" if r["setting"] in ref else ""]
                  for r in rows]
    print(table(table_rows, ["agent", "setting", "envs x steps", "memory", "steps/s", "range",
                             "vs RecurrentPPO"]))
    print("Shared setting: 8 envs x 128 steps, memory width 64; epochs/minibatches stay each library's defaults.")


# ==================================================================================================
# (c) compute bound
# ==================================================================================================
def synthetic_rollout(agent: Any, delay: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A ``[T, B]`` rollout with CueDelay's layout and episode-start pattern (all envs reset together,
    every ``delay`` steps; the rollout is the second one, i.e. in steady state) and random contents."""
    policy, cfg = agent.policy, agent.config
    T, B = cfg.n_steps, agent.env.num_envs
    t = torch.arange(T, T + T)  # global step index of the second rollout
    starts = (t % delay == 0).unsqueeze(1).expand(T, B).contiguous()
    signal = torch.randint(0, 2, (T, B), generator=generator).float() * 2 - 1
    decision = (t % delay == delay - 1).unsqueeze(1).expand(T, B).float()
    action = torch.randint(0, 2, (T, B, *policy.action_shape), generator=generator).to(policy.action_dtype)
    return {
        "obs": torch.stack([signal, starts.float(), decision], dim=-1),
        "episode_start": starts,
        "prev_action": torch.zeros_like(action),
        "prev_reward": torch.zeros(T, B),
        "action": action,
        "log_prob": torch.full((T, B), math.log(0.5)),
        "value": torch.randn(T, B, generator=generator),
        "advantage": torch.randn(T, B, generator=generator),
        "returns": torch.randn(T, B, generator=generator),
        "mask": torch.ones(T, B),
    }


def to_sequences(rollout: dict[str, torch.Tensor], chunk_len: int) -> dict[str, torch.Tensor]:
    """``[T, B, ...]`` -> ``[L, C*B, ...]`` sequences as the PPO update cuts them (padding masked out)."""
    T = rollout["obs"].shape[0]
    n_chunks = -(-T // chunk_len)
    pad = n_chunks * chunk_len - T

    def cut(name: str, x: torch.Tensor) -> torch.Tensor:
        if pad:
            fill = True if name == "episode_start" else 0
            x = torch.cat([x, x.new_full((pad, *x.shape[1:]), fill)], dim=0)
        x = x.view(n_chunks, chunk_len, *x.shape[1:]).transpose(0, 1)
        return x.reshape(chunk_len, -1, *x.shape[3:])

    return {name: cut(name, x) for name, x in rollout.items()}


def ppo_loss(agent: Any, mb: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> torch.Tensor:
    """tracerl's clipped PPO loss on one minibatch of sequences (the same operations as its update)."""
    cfg = agent.config
    dist, values, _ = agent.policy(mb["obs"], state, mb["episode_start"], mb["prev_action"], mb["prev_reward"])
    mask = mb["mask"]
    denom = mask.sum().clamp_min(1.0)
    log_ratio = dist.log_prob(mb["action"]) - mb["log_prob"]
    ratio = log_ratio.exp()
    adv = mb["advantage"]
    if cfg.normalize_advantage:
        mean = (adv * mask).sum() / denom
        std = (((adv - mean) ** 2 * mask).sum() / denom).sqrt()
        adv = (adv - mean) / (std + 1e-8)
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range) * adv)
    policy_loss = -(surrogate * mask).sum() / denom
    entropy = (dist.entropy() * mask).sum() / denom
    value_loss = 0.5 * (((values - mb["returns"]) ** 2) * mask).sum() / denom
    return policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss


@torch.no_grad()
def collection_forwards(agent: Any, rollout: dict[str, torch.Tensor]) -> None:
    """The collector's network work: ``T`` forward passes on ``[1, B, obs_dim]`` (sample, log-prob),
    carrying the memory state, plus the bootstrap value of the last observation."""
    policy = agent.policy
    policy.eval()
    T, B = rollout["obs"].shape[:2]
    state = policy.initial_state(B)
    for t in range(T):
        dist, _, state = policy(rollout["obs"][t : t + 1], state, rollout["episode_start"][t : t + 1],
                                rollout["prev_action"][t : t + 1], rollout["prev_reward"][t : t + 1])
        dist.log_prob(dist.sample())
    policy(rollout["obs"][-1:], state, rollout["episode_start"][-1:], rollout["prev_action"][-1:],
           rollout["prev_reward"][-1:])


def update_passes(agent: Any, seqs: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    """The update's network work: ``n_epochs`` passes over the sequences in minibatches of
    ``batch_size // chunk_len`` sequences: forward, PPO loss, backward, gradient clip, Adam step."""
    policy, cfg, optimizer = agent.policy, agent.config, agent.ppo.optimizer
    policy.train()
    n_seq = seqs["obs"].shape[1]
    per_mb = n_seq if cfg.batch_size == -1 else max(1, cfg.batch_size // cfg.chunk_len)
    states = policy.initial_state(n_seq)
    params = list(policy.parameters())
    for _ in range(cfg.n_epochs):
        perm = torch.randperm(n_seq, generator=generator)
        for start in range(0, n_seq, per_mb):
            idx = perm[start : start + per_mb]
            loss = ppo_loss(agent, {k: v[:, idx] for k, v in seqs.items()}, {k: v[idx] for k, v in states.items()})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()


def measure_compute_bound(setting: str, seed: int, steps: int) -> dict[str, Any]:
    """Per-rollout seconds of the network work alone for tracerl-gru, and the env-steps/s bound it implies."""
    agent = build_agent("tracerl-gru", setting, seed)
    generator = torch.Generator().manual_seed(seed)
    rollout = synthetic_rollout(agent, THROUGHPUT_DELAY, generator)
    seqs = to_sequences(rollout, agent.config.chunk_len)
    T, B = rollout["obs"].shape[:2]
    n_rollouts = max(3, math.ceil(steps / (T * B)))
    timings = []
    for i in range(n_rollouts + 1):  # the first rollout is a warm-up
        t0 = time.perf_counter()
        collection_forwards(agent, rollout)
        t1 = time.perf_counter()
        update_passes(agent, seqs, generator)
        t2 = time.perf_counter()
        if i:
            timings.append((t1 - t0, t2 - t1))
    collect_s, update_s = min(timings, key=sum)
    cfg = agent.config
    return {"setting": setting, "n_envs": B, "n_steps": T, "chunk_len": cfg.chunk_len, "n_epochs": cfg.n_epochs,
            "batch_size": cfg.batch_size, "rollouts_timed": n_rollouts,
            "best_collect_s": collect_s, "best_update_s": update_s,
            "median_rollout_s": median(sum(x) for x in timings),
            "bound_steps_per_s": T * B / (collect_s + update_s)}


def run_compute_bound(budgets: Budgets, throughput: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(c) for both settings, joined with the training throughput of (b)."""
    real = {r["setting"]: r["median_steps_per_s"] for r in throughput if r["agent"] == "tracerl-gru"}
    out = []
    for setting in SETTINGS:
        bound = measure_compute_bound(setting, seed=0, steps=budgets.bound_steps)
        bound["train_steps_per_s"] = real.get(setting)
        bound["fraction"] = None if setting not in real else real[setting] / bound["bound_steps_per_s"]
        log(f"[c] tracerl-gru {setting}: bound {bound['bound_steps_per_s']:,.0f} steps/s")
        out.append(bound)
    return out


def print_compute_bound(rows: list[dict[str, Any]]) -> None:
    """Table of (c)."""
    section("(c) Compute bound of tracerl-gru: network forward/backward alone vs real training")
    table_rows = []
    for r in rows:
        per_step_us = None
        if r["train_steps_per_s"]:
            per_step_us = 1e6 / r["train_steps_per_s"] - 1e6 / r["bound_steps_per_s"]
        table_rows.append([
            r["setting"], f"{r['n_envs']} x {r['n_steps']}", f"{r['n_epochs']} x bs {r['batch_size']}",
            f"{1e3 * r['best_collect_s']:.1f}", f"{1e3 * r['best_update_s']:.1f}",
            f"{r['bound_steps_per_s']:,.0f}",
            "-" if r["train_steps_per_s"] is None else f"{r['train_steps_per_s']:,.0f}",
            "-" if r["fraction"] is None else f"{r['fraction']:.0%}",
            "-" if per_step_us is None else f"{per_step_us:.0f}",
        ])
    print(table(table_rows, ["setting", "envs x steps", "epochs x minibatch", "collect fwd ms",
                             "update ms", "bound steps/s", "training steps/s", "fraction",
                             "overhead us/step"]))
    print("Per rollout, best of the timed rollouts. Overhead = time per env step outside the network "
          "(env, buffers, GAE, logging, Python).")


# ==================================================================================================
# summary
# ==================================================================================================
def summary_rows(ratios: list[dict[str, Any]], bounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets, each with its measured value and PASS / FAIL / INCONCLUSIVE."""
    rows = []
    for r in ratios:
        value, q = r["time_ratio"], r["qualifier"]
        if q in ("=", ">=") and value >= SPEEDUP_TARGET:
            status = "PASS"
        elif q in ("=", "<=") and value < SPEEDUP_TARGET:
            status = "FAIL"
        else:
            status = "INCONCLUSIVE"
        rows.append({"target": "time to solve, RecurrentPPO / tracerl", "case": f"delay {r['delay']}",
                     "measured": fmt_ratio(q, value), "goal": f">= {SPEEDUP_TARGET:.0f}x", "status": status})
    for b in bounds:
        frac = b["fraction"]
        rows.append({"target": "training steps/s / compute bound", "case": f"tracerl-gru {b['setting']}",
                     "measured": "-" if frac is None else f"{frac:.0%}", "goal": f">= {BOUND_FRACTION_TARGET:.0%}",
                     "status": "INCONCLUSIVE" if frac is None else ("PASS" if frac >= BOUND_FRACTION_TARGET else "FAIL")})
    return rows


def print_summary(rows: list[dict[str, Any]], quick: bool) -> None:
    """The final table of targets."""
    section("Summary: targets")
    print(table([[r["target"], r["case"], r["measured"], r["goal"], r["status"]] for r in rows],
                ["target", "case", "measured", "goal", "status"]))
    if quick:
        print("--quick: budgets are cut ~10x, so these statuses only show that the benchmark runs.")


# ==================================================================================================
# output helpers and main
# ==================================================================================================
def fmt_ratio(qualifier: str, value: float) -> str:
    """``"12.3x"`` with its bound's direction (``>=``, ``<=``, ``~`` when both runs were censored)."""
    prefix = {"=": "", ">=": ">= ", "<=": "<= ", "?": "~"}[qualifier]
    return f"{prefix}{value:.1f}x"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options, with the defaults that depend on ``--quick`` filled in."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="cut every budget ~10x (a smoke run of a few minutes)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="training seeds 0..N-1 for (a) and repeats for (b) (default 3, or 1 with --quick)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"JSON output (default {RESULTS_DIR}/throughput[-quick].json)")
    parser.add_argument("--baseline-seeds", type=int, default=None,
                        help="seeds for the SB3 baselines, which are slow (default: all of --seeds)")
    parser.add_argument("--parts", default="abc",
                        help="which parts to run: a (time to solve), b (throughput), c (compute bound; needs b)")
    args = parser.parse_args(argv)
    if not set(args.parts) <= set("abc") or not args.parts:
        parser.error(f"--parts takes letters from 'abc', got {args.parts!r}")
    if "c" in args.parts and "b" not in args.parts:
        parser.error("--parts c needs b (the fraction of the bound is computed from the measured throughput)")
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if args.baseline_seeds is None:
        args.baseline_seeds = args.seeds
    if not 1 <= args.baseline_seeds <= args.seeds:
        parser.error("--baseline-seeds must be between 1 and --seeds")
    if args.out is None:
        args.out = RESULTS_DIR / f"throughput{'-quick' if args.quick else ''}-{args.parts}.json"
    return args


def main(argv: list[str] | None = None) -> int:
    """Run (a), (b) and (c), print their tables and the summary, and write the JSON file."""
    configure_torch()
    args = parse_args(argv)
    started = time.perf_counter()
    budgets = Budgets.make(args.quick)
    seeds = list(range(args.seeds))
    info = machine_info()
    log(f"tracerl throughput benchmark ({'quick' if args.quick else 'full'}, seeds {seeds}) on "
        f"{info['cpu_model']}, torch {info['versions']['torch']}, {info['torch_threads']} thread")

    parts = set(args.parts)
    runs = run_time_to_solve(budgets, seeds, args.baseline_seeds) if "a" in parts else []
    solve_aggregate = aggregate_solves(runs)
    ratios = speedup_ratios(solve_aggregate)
    throughput_runs = run_throughput(budgets, seeds, args.baseline_seeds) if "b" in parts else []
    throughput = aggregate_throughput(throughput_runs)
    bounds = run_compute_bound(budgets, throughput) if "c" in parts else []
    summary = summary_rows(ratios, bounds)

    if "a" in parts:
        print_time_to_solve(solve_aggregate, ratios)
    if "b" in parts:
        print_throughput(throughput)
    if "c" in parts:
        print_compute_bound(bounds)
    print_summary(summary, args.quick)

    info["loadavg_at_end"] = list(os.getloadavg())
    payload = {
        "machine": info,
        "settings": {"quick": args.quick, "parts": args.parts, "seeds": seeds, "baseline_seeds": args.baseline_seeds, "budgets": asdict(budgets),
                     "solve_threshold": SOLVE_THRESHOLD, "eval_episodes": EVAL_EPISODES, "delays": list(DELAYS),
                     "throughput_delay": THROUGHPUT_DELAY,
                     "shared": {"n_envs": SHARED_N_ENVS, "n_steps": SHARED_N_STEPS, "hidden": SHARED_HIDDEN}},
        "time_to_solve": {"runs": [asdict(r) for r in runs], "aggregate": solve_aggregate, "ratios": ratios},
        "throughput": {"runs": throughput_runs, "aggregate": throughput},
        "compute_bound": bounds,
        "summary": summary,
        "total_wall_seconds": time.perf_counter() - started,
    }
    write_json(args.out, payload)
    print(f"\nWrote {args.out} ({payload['total_wall_seconds']:.0f} s in total)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
