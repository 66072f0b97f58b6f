"""The strategic memory agent (issue 3): inference cost, time to solve, long delays and T-Mazes.

Parts (``--parts``, default ``csl``):
  c  inference cost: the policy's step time (16 envs, step mode, no training) on CueDelay at delay 64
     and at delay 4096, with the store full; the ratio must be <= 1.2 (cost O(max_entries), not O(delay)).
  s  time to solve CueDelay difficulty 1 delay 64 (>= 95 % held-out success, training seconds with the
     clock paused during evaluations): tracerl-strategic on ``--seeds`` seeds against sb3-contrib
     RecurrentPPO (defaults, 8 envs) on the first ``--baseline-seeds`` seeds, budget ``--rppo-budget``.
  l  long delays: success of tracerl-strategic within ``--long-budgets`` (default delay 256: 1M steps,
     delay 1024: 2M) for ``--seeds`` seeds; ``--with-baselines`` adds tracerl PPO-GRU and RecurrentPPO on
     the same budgets (RecurrentPPO runs at ~100-300 env-steps/s: hours per run).
  t  T-Mazes: Passive corridor 500 and Active corridor 100 (``--tmazes``, ``--tmaze-budget``), tracerl-strategic
     with PPO, or with ``--tmaze-algo r2d2`` the same memory trained by R2D2 (``strategic_r2d2_agent``; the
     Active T-Maze adds ``ACTIVE_R2D2_MEMORY`` and ``ACTIVE_R2D2_AGENT`` under ``--memory-kwargs``/``--agent-kwargs``);
     ``--with-baselines`` adds tracerl PPO-GRU, RecurrentPPO (capped at ``--rppo-budget``) and, with R2D2, a GRU
     trained by the same R2D2 settings, on the same budget.

The strategic agent is ``StrategicMemoryTransformerPolicy`` on ``StrategicMemoryBuffer`` (mem_dim 32, 16
entries, learned retention, hindsight reader), with PPO rollouts long enough to hold a whole episode
(``n_steps`` = the smallest power of two >= episode length, at least 64) so that the hindsight reader sees
the cue and the decision in one pass; see ``strategic_agent``.

    .venv/bin/python benchmarks/strategic.py [--parts csl] [--seeds 3] [--baseline-seeds 1]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tracerl.keyvalue import parse_kwargs
from _common import (
    RESULTS_DIR,
    configure_torch,
    eval_seed,
    log,
    machine_info,
    make_tracerl,
    table,
    write_json,
)
from throughput import EvalPoint, SolveMonitor

SOLVE = 0.95
CUE = "tracerl/CueDelay-v0"
PASSIVE, ACTIVE = "tracerl/TMazePassive-v0", "tracerl/TMazeActive-v0"


def rollout_len(episode_len: int) -> int:
    """The smallest power of two >= ``episode_len`` (at least 64)."""
    n = 64
    while n < episode_len:
        n *= 2
    return n


def strategic_agent(env_id: str, env_kwargs: dict[str, Any], episode_len: int, seed: int,
                    memory_overrides: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """tracerl-strategic on ``env_id``: a whole episode per rollout (see the module docstring);
    ``memory_overrides`` go to :class:`StrategicMemoryBuffer` (e.g. ``retention_explore_fraction``),
    ``overrides`` to :class:`TraceRL`."""
    import gymnasium as gym

    from tracerl import StrategicMemoryBuffer, StrategicMemoryTransformerPolicy, TraceRL

    env = gym.make(env_id, **env_kwargs)
    obs_dim = int(env.observation_space.shape[0])
    n_actions = int(env.action_space.n)
    env.close()
    n_steps = rollout_len(episode_len)
    torch.manual_seed(seed)  # the memory is built before TraceRL seeds torch: seed its initialization too
    mem = StrategicMemoryBuffer(obs_dim=obs_dim, action_dim=1 if n_actions == 2 else n_actions, mem_dim=32,
                                max_entries=16, **(memory_overrides or {}))
    kw: dict[str, Any] = dict(n_steps=n_steps, batch_size=4 * n_steps, memory_learn_retention=True, verbose=0)
    kw.update(overrides)
    return TraceRL(StrategicMemoryTransformerPolicy, env_id, memory=mem, env_kwargs=env_kwargs, seed=seed, **kw)


def strategic_r2d2_agent(env_id: str, env_kwargs: dict[str, Any], episode_len: int, seed: int,
                         memory_overrides: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """The strategic memory (16 entries, learned retention with hindsight credit) trained by R2D2 on whole
    episodes: the Passive T-Maze's settings of ``benchmarks/offpolicy.py`` (epsilon ~ 1/T for every actor, a
    gradient step per 256 env steps, n-step 10, target copies every 25 steps, the previous action as input) with
    UCB count exploration, whose bonus for the never-tried goal actions at the junction grows until they are
    tried. ``memory_overrides`` go to the strategic memory, ``overrides`` to :class:`TraceRL`."""
    import gymnasium as gym

    from tracerl import TraceRL

    env = gym.make(env_id, **env_kwargs)
    n_actions = int(env.action_space.n)
    env.close()
    torch.manual_seed(seed)
    hyper: dict[str, Any] = dict(
        algo="r2d2", memory="strategic", n_envs=16, seq_len=episode_len, always_sample_from_initial_state=True,
        memory_kwargs={"mem_dim": 32, "max_entries": 16, "n_heads": 4, "hindsight_action_dim": n_actions,
                       **(memory_overrides or {})},
        batch_size=16, train_freq=16, gradient_steps=1, n_step=10, gamma=0.99, learning_rate=1e-3,
        learning_starts=5_000, buffer_size=max(160_000, 800 * episode_len), target_update_interval=25,
        epsilon=1.0 / episode_len, epsilon_alpha=0.0, head_hidden=(64,), use_prev_action=True, count_bonus=0.02,
        count_bonus_form="ucb")
    hyper.update(overrides)
    hyper.setdefault("verbose", 0)
    return TraceRL(env=env_id, env_kwargs=env_kwargs, seed=seed, **hyper)


# -- (c) inference cost -------------------------------------------------------------------------------
@torch.no_grad()
def step_cost(delay: int, steps: int, n_envs: int = 16) -> float:
    """Seconds per env step of the strategic policy alone (batch of ``n_envs``), store full, after warm-up."""
    agent = strategic_agent(CUE, {"delay": delay, "difficulty": 1}, 64, seed=0, n_envs=n_envs)
    policy = agent.policy.eval()
    g = torch.Generator().manual_seed(0)
    state = policy.initial_state(n_envs)
    start = torch.zeros(1, n_envs, dtype=torch.bool)
    prev_a = torch.zeros(1, n_envs, dtype=torch.long)
    prev_r = torch.zeros(1, n_envs)
    # Fill the store and move the episode clock to ``delay``: cost must not depend on how long ago it began.
    for _ in range(policy.core.max_entries + 2):
        out = policy.forward_full(torch.randn(1, n_envs, 3, generator=g), state, start, prev_a, prev_r)
        state = out.state
    state["step"] = torch.full_like(state["step"], float(delay))
    obs = torch.randn(steps, 1, n_envs, 3, generator=g)
    t0 = time.perf_counter()
    for t in range(steps):
        out = policy.forward_full(obs[t], state, start, prev_a, prev_r)
        state = out.state
    return (time.perf_counter() - t0) / steps


def run_cost(steps: int, repeats: int = 3) -> dict[str, Any]:
    """Median over ``repeats`` interleaved measurements at delays 64 and 4096."""
    costs: dict[int, list[float]] = {64: [], 4096: []}
    for _ in range(repeats):
        for delay in costs:
            costs[delay].append(step_cost(delay, steps))
    med = {d: sorted(v)[len(v) // 2] for d, v in costs.items()}
    ratio = med[4096] / med[64]
    log(f"[c] step cost: delay 64 {med[64] * 1e6:.0f} us, delay 4096 {med[4096] * 1e6:.0f} us, ratio {ratio:.3f}")
    return {"us_per_step": {str(d): med[d] * 1e6 for d in med}, "ratio_4096_over_64": ratio,
            "raw_us": {str(d): [c * 1e6 for c in v] for d, v in costs.items()}}


# -- training runs with periodic held-out evaluation ------------------------------------------------------
@dataclass
class Run:
    agent: str
    task: str
    seed: int
    budget: int
    solved: bool
    steps_to_solve: int | None
    seconds_to_solve: float | None
    train_steps: int
    train_seconds: float
    final_success: float
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    steps_to_99: int | None = None
    last_success: float = float("nan")


class Monitor(SolveMonitor):
    """``throughput.SolveMonitor`` (pausable clock, periodic held-out evaluation) on any env, with a 99 % mark
    and an option to keep training after the 95 % mark."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], seed: int, every: int, stop_when_solved: bool,
                 episodes: int = 200) -> None:
        super().__init__(int(env_kwargs.get("delay", 0)), seed, every)
        self.env_id, self.env_kwargs = env_id, env_kwargs
        self.stop_when_solved, self.episodes = stop_when_solved, episodes
        self.at99: EvalPoint | None = None

    def success(self, model: Any) -> float:
        from tracerl.evaluation import evaluate

        return evaluate(model, self.env_id, self.episodes, deterministic=True,
                        seed=eval_seed(self.seed, len(self.points)), env_kwargs=self.env_kwargs).success_rate

    def on_point(self, point: EvalPoint) -> None:
        if point.success >= 0.99 and self.at99 is None:
            self.at99 = point
        log(f"    {self.env_id} {self.env_kwargs} seed {self.seed}: {point.steps:,} steps, success "
            f"{point.success:.1%}, {point.seconds:.0f} s of training")

    def tracerl_callback(self, budget: int) -> Any:
        def callback(agent: Any, stats: dict[str, float]) -> bool:
            steps = agent.num_timesteps
            if self.due(steps) or steps >= budget:
                self.evaluate(agent, steps)
            return not (self.stop_when_solved and self.solved)
        return callback

    def sb3_callback(self) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        mon = self

        class Cb(BaseCallback):
            def _on_rollout_start(self) -> None:
                steps = self.model.num_timesteps
                if steps > 0 and mon.due(steps):
                    mon.evaluate(self.model, steps)

            def _on_step(self) -> bool:
                return not (mon.stop_when_solved and mon.solved)

        return Cb()

    def finish(self, model: Any, name: str, task: str, budget: int) -> Run:
        """Evaluate once more if the last evaluation is stale, and return the run."""
        self.clock.pause()
        steps = model.num_timesteps
        if not self.points or self.points[-1].steps != steps:
            self.evaluate(model, steps)
        hit, last = self.solved_at, self.points[-1]
        return Run(name, task, self.seed, budget, hit is not None, None if hit is None else hit.steps,
                   None if hit is None else hit.seconds, steps, self.clock.elapsed, (hit or last).success,
                   [(p.steps, p.seconds, p.success) for p in self.points],
                   None if self.at99 is None else self.at99.steps, last.success)


def train_tracerl(name: str, agent: Any, task: str, env_id: str, env_kwargs: dict[str, Any], seed: int, budget: int,
                  every: int, stop_when_solved: bool = True) -> Run:
    mon = Monitor(env_id, env_kwargs, seed, every, stop_when_solved)
    mon.clock.start()
    agent.learn(budget, callback=mon.tracerl_callback(budget))
    return mon.finish(agent, name, task, budget)


def train_rppo(delay: int, seed: int, budget: int, every: int, env_id: str = CUE,
               env_kwargs: dict[str, Any] | None = None, task: str | None = None) -> Run:
    """sb3-contrib RecurrentPPO at its defaults (8 envs) on CueDelay ``delay``, or on ``env_id``/``env_kwargs``."""
    from tracerl.bench.agents import make_recurrent_ppo
    from tracerl.bench.envs import EnvSpec

    kw = {"delay": delay, "difficulty": 1} if env_kwargs is None else env_kwargs
    model = make_recurrent_ppo(EnvSpec(env_id, kw), seed)
    mon = Monitor(env_id, kw, seed, every, stop_when_solved=True)
    mon.clock.start()
    model.learn(budget, callback=mon.sb3_callback())
    return mon.finish(model, "sb3-recurrentppo", task or f"cue{delay}", budget)


def describe(run: Run) -> str:
    if run.solved:
        to99 = "" if run.steps_to_99 is None else f", 99 % at {run.steps_to_99:,}"
        return (f"solved at {run.steps_to_solve:,} steps, {run.seconds_to_solve:.1f} s{to99}; "
                f"last {run.last_success:.1%} at {run.train_steps:,}")
    return f"not solved: {run.final_success:.1%} after {run.train_steps:,} steps, {run.train_seconds:.1f} s"


def run_solve64(seeds: list[int], baseline_seeds: int, budget: int, rppo_budget: int, every: int) -> list[Run]:
    runs = []
    for seed in seeds:
        agent = strategic_agent(CUE, {"delay": 64, "difficulty": 1}, 65, seed)
        run = train_tracerl("tracerl-strategic", agent, "cue64", CUE, {"delay": 64, "difficulty": 1}, seed, budget, every)
        log(f"[s] delay 64 seed {seed} tracerl-strategic: {describe(run)}")
        runs.append(run)
    for seed in seeds[:baseline_seeds]:
        run = train_rppo(64, seed, rppo_budget, every)
        log(f"[s] delay 64 seed {seed} sb3-recurrentppo: {describe(run)}")
        runs.append(run)
    return runs


def run_long(seeds: list[int], budgets: dict[int, int], every: int, with_baselines: bool,
             rppo_budget: int | None = None, memory_overrides: dict[str, Any] | None = None,
             overrides: dict[str, Any] | None = None) -> list[Run]:
    """Strategic memory on long delays; with ``with_baselines`` also tracerl PPO-GRU on the same budget and
    RecurrentPPO on the same budget capped at ``rppo_budget`` (it trains at ~300 env-steps/s).
    ``memory_overrides``/``overrides`` go to :func:`strategic_agent`."""
    runs = []
    for delay, budget in budgets.items():
        kw = {"delay": delay, "difficulty": 1}
        for seed in seeds:
            agent = strategic_agent(CUE, kw, delay + 1, seed, memory_overrides, **(overrides or {}))
            run = train_tracerl("tracerl-strategic", agent, f"cue{delay}", CUE, kw, seed, budget, every,
                                stop_when_solved=False)
            log(f"[l] delay {delay} seed {seed} tracerl-strategic: {describe(run)}")
            runs.append(run)
            if with_baselines:
                gru = make_tracerl("gru", delay, seed)
                run = train_tracerl("tracerl-gru", gru, f"cue{delay}", CUE, kw, seed, budget, every, stop_when_solved=False)
                log(f"[l] delay {delay} seed {seed} tracerl-gru: {describe(run)}")
                runs.append(run)
                run = train_rppo(delay, seed, budget if rppo_budget is None else min(budget, rppo_budget), every)
                log(f"[l] delay {delay} seed {seed} sb3-recurrentppo: {describe(run)}")
                runs.append(run)
    return runs


ACTIVE_R2D2_MEMORY: dict[str, Any] = {"retention_explore_mode": "novelty", "retention_explore_end": 1.0,
                                      "hindsight_read_coef": 0.5}
"""Strategic-memory settings of the Active T-Maze with R2D2: retention by surprise throughout (the cue is the one
unusual step) and the read loss, as at CueDelay delay 1024."""
ACTIVE_R2D2_AGENT: dict[str, Any] = {"start_epsilon": 1.0, "n_step": 103, "cut_at_exploration": True,
                                     "count_bonus": 0.0}
"""R2D2 settings of the Active T-Maze 100: every episode starts with a random action, so a quarter of them step
left to the cue (with ``start_epsilon=0.5``, an eighth: seed 1 then stayed at 43.5-58.5 % through 4M steps);
whole-episode returns (n = T = 103) that stop at the first exploratory step, so that the left start is credited
with what the greedy policy makes of the cue, not with the explorer's lapses (the detour leaves no spare step:
one epsilon step fails the episode); no count bonus (its choices are not greedy, so it would cut most returns
short)."""


def run_tmaze(seeds: list[int], budget: int, every: int, which: list[str], algo: str = "ppo",
              memory_overrides: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
              with_baselines: bool = False, rppo_budget: int | None = None) -> list[Run]:
    """The strategic memory on the T-Mazes (PPO or R2D2); with ``with_baselines`` also, on the same budget,
    a GRU trained by the same algorithm and settings (R2D2: ``overrides`` too, without the strategic memory's
    keyword arguments), tracerl PPO-GRU, and RecurrentPPO capped at ``rppo_budget``."""
    from tracerl import TraceRL

    runs = []
    name = "tracerl-strategic" if algo == "ppo" else "tracerl-strategic-r2d2"
    for env_id, length, task in ((PASSIVE, 500, "passive500"), (ACTIVE, 100, "active100"),
                                 (PASSIVE, 200, "passive200")):
        if task not in which:
            continue
        kw = {"corridor_length": length}
        episode = length + (1 if env_id == PASSIVE else 3)
        memory_kw, agent_kw = dict(memory_overrides or {}), dict(overrides or {})
        if algo == "r2d2" and task == "active100":  # the task's own settings, under the command line's
            memory_kw, agent_kw = {**ACTIVE_R2D2_MEMORY, **memory_kw}, {**ACTIVE_R2D2_AGENT, **agent_kw}
        for seed in seeds:
            agent = (strategic_agent(env_id, kw, episode, seed, memory_kw, **{"ent_coef": 0.01, **agent_kw})
                     if algo == "ppo" else strategic_r2d2_agent(env_id, kw, episode, seed, memory_kw, **agent_kw))
            run = train_tracerl(name, agent, task, env_id, kw, seed, budget, every)
            log(f"[t] {task} seed {seed} {name}: {describe(run)}")
            runs.append(run)
            if not with_baselines:
                continue
            peers: list[tuple[str, Any]] = [("tracerl-gru", TraceRL(env=env_id, env_kwargs=kw, memory="gru", seed=seed,
                                                                    verbose=0))]
            if algo == "r2d2":
                peers.insert(0, ("tracerl-gru-r2d2", strategic_r2d2_agent(env_id, kw, episode, seed, None,
                                                                          **{**agent_kw, "memory": "gru",
                                                                             "memory_kwargs": {}})))
            for peer_name, peer in peers:
                run = train_tracerl(peer_name, peer, task, env_id, kw, seed, budget, every)
                log(f"[t] {task} seed {seed} {peer_name}: {describe(run)}")
                runs.append(run)
            run = train_rppo(0, seed, budget if rppo_budget is None else min(budget, rppo_budget), every, env_id, kw,
                             task)
            log(f"[t] {task} seed {seed} sb3-recurrentppo: {describe(run)}")
            runs.append(run)
    return runs


def summarize(runs: list[Run]) -> str:
    rows = [[r.task, r.agent, str(r.seed), f"{r.budget:,}", "yes" if r.solved else "no",
             "" if r.steps_to_solve is None else f"{r.steps_to_solve:,}",
             "" if r.seconds_to_solve is None else f"{r.seconds_to_solve:.1f}",
             "" if r.steps_to_99 is None else f"{r.steps_to_99:,}", f"{r.last_success:.1%}",
             f"{r.train_steps / max(r.train_seconds, 1e-9):,.0f}"] for r in runs]
    return table(rows, ["task", "agent", "seed", "budget", "solved", "steps to 95 %", "seconds to 95 %",
                        "steps to 99 %", "last success", "env-steps/s"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="csl", help="c cost, s solve delay 64, l long delays, t T-Mazes")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed + seeds - 1")
    p.add_argument("--tmazes", default="passive500,active100",
                   help="which T-Mazes part t runs (passive500, active100, passive200)")
    p.add_argument("--tmaze-algo", choices=("ppo", "r2d2"), default="ppo",
                   help="part t: the strategic agent with PPO (its flagship settings) or trained by R2D2")
    p.add_argument("--baseline-seeds", type=int, default=1)
    p.add_argument("--solve-budget", type=int, default=500_000)
    p.add_argument("--rppo-budget", type=int, default=150_000,
                   help="RecurrentPPO's budget in part s, and its cap in parts l and t with --with-baselines")
    p.add_argument("--long-budgets", default="256:1000000,1024:2000000", help="delay:budget,...")
    p.add_argument("--with-baselines", action="store_true",
                   help="parts l and t: also tracerl PPO-GRU and RecurrentPPO on the same budgets (part t with "
                        "--tmaze-algo r2d2: and a GRU trained by the same R2D2 settings)")
    p.add_argument("--tmaze-budget", type=int, default=1_000_000)
    p.add_argument("--every", type=int, default=16_384, help="env steps between held-out evaluations")
    p.add_argument("--cost-steps", type=int, default=2_000)
    p.add_argument("--memory-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="parts l and t: strategic memory keyword arguments (e.g. retention_explore_mode=novelty)")
    p.add_argument("--agent-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="parts l and t: TraceRL keyword arguments of the strategic agent (e.g. count_split_start=True)")
    args = p.parse_args()
    memory_overrides = parse_kwargs(args.memory_kwargs, "--memory-kwargs")
    overrides = parse_kwargs(args.agent_kwargs, "--agent-kwargs")
    configure_torch()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    out: dict[str, Any] = {"machine": machine_info(), "args": vars(args)}
    runs: list[Run] = []
    if "c" in args.parts:
        out["cost"] = run_cost(args.cost_steps)
    if "s" in args.parts:
        runs += run_solve64(seeds, args.baseline_seeds, args.solve_budget, args.rppo_budget, args.every)
    if "l" in args.parts:
        budgets = {int(a): int(b) for a, b in (item.split(":") for item in args.long_budgets.split(","))}
        runs += run_long(seeds, budgets, args.every, args.with_baselines, args.rppo_budget, memory_overrides, overrides)
    if "t" in args.parts:
        runs += run_tmaze(seeds, args.tmaze_budget, args.every, args.tmazes.split(","), args.tmaze_algo,
                          memory_overrides, overrides, args.with_baselines, args.rppo_budget)
    out["runs"] = [asdict(r) for r in runs]
    if runs:
        print(summarize(runs))
    path = RESULTS_DIR / f"strategic_{time.strftime('%Y%m%d_%H%M%S')}.json"
    write_json(path, out)
    log(f"results: {path}")


if __name__ == "__main__":
    main()
