"""Per-step cost of the strategic memory on the Passive T-Maze at corridors 100, 1,000 and 10,000 (issue 23, item 2).

One process, one torch thread. For each corridor length an agent at tracerl's defaults
(``TraceRL(env="tracerl/TMazePassive-v0", env_kwargs={"corridor_length": L}, memory="strategic")``) is built and
warmed up (one ``learn`` call), then, interleaved over the lengths for ``--repeats`` rounds:

* acting: seconds per env step of the policy alone (``learner.act`` in step mode, no gradient, the agent's
  ``n_envs`` envs stepped together), over ``--act-steps`` vector steps taken after ``--act-skip`` steps into a
  fresh episode, so the store is full and (for L >= act-skip + act-steps) the episode is still in its corridor;
* acting + training: seconds per env step of ``agent.learn(--learn-steps)`` (collection and PPO updates).

The figures are the median over the rounds, and the ratios to corridor 100 are what to read: the machine is
shared, so absolute seconds depend on the load (printed with ``os.getloadavg``).

    .venv/bin/python benchmarks/tmaze_cost.py [--lengths 100,1000,10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np
import torch
from _common import configure_torch, git_commit, log, table

ENV_ID = "tracerl/TMazePassive-v0"


def make_agent(length: int, seed: int) -> Any:
    """The strategic memory at tracerl's defaults on the Passive T-Maze of corridor ``length``."""
    from tracerl import TraceRL

    return TraceRL(env=ENV_ID, env_kwargs={"corridor_length": length}, memory="strategic", seed=seed, verbose=0)


@torch.no_grad()
def act_seconds_per_step(agent: Any, length: int, skip: int, steps: int) -> float:
    """Seconds per env step of the policy alone, measured over ``steps`` vector steps after ``skip`` steps."""
    from tracerl.envs import make_vec_env
    from tracerl.policies.carry import ACTING, Carry

    learner = agent.learner
    n = agent.n_envs if hasattr(agent, "n_envs") else 16
    vec = make_vec_env(ENV_ID, n_envs=n, env_kwargs={"corridor_length": length})
    obs, _ = vec.reset(seed=123)
    carry = Carry.initial({ACTING: learner}, vec.num_envs, learner.action_shape, learner.action_dtype, agent.device)
    right = np.zeros(vec.num_envs, dtype=np.int64)  # walk the corridor, as the oracle does
    elapsed = 0.0
    for t in range(skip + steps):
        start = time.perf_counter()
        out = learner.act(learner.preprocess(obs, agent.device)[None], carry, True)
        if t >= skip:
            elapsed += time.perf_counter() - start
        obs, reward, term, trunc, _ = vec.step(right)
        carry = carry.advance({ACTING: out.state}, torch.as_tensor(right),
                              torch.as_tensor(np.asarray(reward, dtype=np.float32)), torch.as_tensor(term | trunc))
    vec.close()
    return elapsed / (steps * vec.num_envs)


def learn_seconds_per_step(agent: Any, steps: int) -> float:
    """Seconds per env step of ``agent.learn(steps)`` (acting and training)."""
    before = agent.num_timesteps
    start = time.perf_counter()
    agent.learn(steps, reset_num_timesteps=False)
    return (time.perf_counter() - start) / (agent.num_timesteps - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="100,1000,10000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--act-skip", type=int, default=40, help="vector steps into an episode before timing")
    parser.add_argument("--act-steps", type=int, default=50, help="vector steps timed per round")
    parser.add_argument("--learn-steps", type=int, default=2048, help="env steps of learn() timed per round")
    args = parser.parse_args()
    configure_torch()
    lengths = [int(x) for x in args.lengths.split(",")]
    load_before = os.getloadavg()
    agents = {length: make_agent(length, seed=0) for length in lengths}
    for length, agent in agents.items():  # warm-up: one rollout and update each
        agent.learn(1024)
    acting: dict[int, list[float]] = {length: [] for length in lengths}
    learning: dict[int, list[float]] = {length: [] for length in lengths}
    for rep in range(args.repeats):
        for length in lengths:
            acting[length].append(act_seconds_per_step(agents[length], length, args.act_skip, args.act_steps))
            learning[length].append(learn_seconds_per_step(agents[length], args.learn_steps))
            log(f"round {rep + 1} corridor {length:>6,}: acting {acting[length][-1] * 1e6:8.0f} us/step, "
                f"acting+training {learning[length][-1] * 1e6:8.0f} us/step")
    load_after = os.getloadavg()
    base_act = statistics.median(acting[lengths[0]])
    base_learn = statistics.median(learning[lengths[0]])
    rows = []
    for length in lengths:
        a, lrn = statistics.median(acting[length]), statistics.median(learning[length])
        rows.append([f"{length:,}", f"{a * 1e6:,.0f}", f"{a / base_act:.2f}", f"{lrn * 1e6:,.0f}",
                     f"{lrn / base_learn:.2f}"])
    print()
    print(f"commit {git_commit(short=True)}, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, "
          f"median of {args.repeats} interleaved rounds")
    print(table(rows, ["corridor", "acting us/env step", f"ratio to {lengths[0]:,}", "acting+training us/env step",
                       f"ratio to {lengths[0]:,}"]))


if __name__ == "__main__":
    main()
