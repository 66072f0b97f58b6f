"""The Passive T-Maze's per-step memory cost does not depend on the corridor length (issue 23, item 2).

The strategic memory at tracerl's defaults walks a whole oracle episode of corridor 100, 1,000 and 10,000; at the
junction (the decision, ``corridor_length`` steps after the cue) the store, the state it carries and the work of one
step are counted: entries held, state bytes, attention width and floating-point operations (counted by
``torch.utils.flop_counter``, not timed).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from tracerl import TraceRL
from tracerl.envs import TMazeVectorEnv
from tracerl.envs.tmaze import RIGHT

CHUNK = 2_000


def _junction_cost(corridor_length: int) -> dict[str, float]:
    """Counts of the strategic memory's step at the junction of an oracle episode of ``corridor_length``."""
    agent = TraceRL(env="tracerl/TMazePassive-v0", env_kwargs={"corridor_length": corridor_length}, memory="strategic",
                    seed=0, verbose=0, n_envs=1)
    policy = agent.policy.eval()
    vec = TMazeVectorEnv(1, corridor_length=corridor_length)
    obs, _ = vec.reset(seed=0)
    observations, actions, rewards = [obs], [], []
    for _ in range(corridor_length):  # the oracle walks right to the junction
        obs, reward, *_ = vec.step(np.array([RIGHT]))
        observations.append(obs)
        actions.append(RIGHT)
        rewards.append(float(reward[0]))
    steps = corridor_length + 1  # the junction is the observation at index corridor_length
    obs_t = torch.as_tensor(np.stack(observations))  # [T, 1, 2]
    prev_action = torch.as_tensor([0] + actions).view(steps, 1)
    prev_reward = torch.as_tensor([0.0] + rewards, dtype=torch.float32).view(steps, 1)
    start = torch.zeros(steps, 1, dtype=torch.bool)
    start[0] = True
    with torch.no_grad():
        x = policy.core_input(obs_t, start, prev_action, prev_reward)  # [T, 1, D]
        state = policy.initial_state(1)
        for s in range(0, corridor_length, CHUNK):  # every step before the junction
            end = min(s + CHUNK, corridor_length)
            _, state = policy.core(x[s:end], state, start[s:end])
        assert float(state["step"][0, 0]) == corridor_length  # the core saw the whole corridor
        with FlopCounterMode(display=False) as flops:
            out = policy.forward_full(obs_t[-1:], state, start[-1:], prev_action[-1:], prev_reward[-1:])
    return {
        "entries_held": float((state["valid"] > 0.5).sum()),
        "state_bytes": float(sum(v.numel() * v.element_size() for v in state.values())),
        "attention_width": float(out.trace["attention"].shape[-1]),
        "oldest_entry_age": float(corridor_length - out.trace["entry_time"][0, 0][out.trace["valid"][0, 0] > 0.5].min()),
        "flops": float(flops.get_total_flops()),
    }


def test_the_strategic_memorys_per_step_cost_at_the_junction_does_not_depend_on_the_corridor_length():
    costs = {length: _junction_cost(length) for length in (100, 1_000, 10_000)}
    short = costs[100]
    max_entries = TraceRL(env="tracerl/TMazePassive-v0", memory="strategic", verbose=0).policy.core.max_entries
    assert short["entries_held"] == max_entries  # the store is full at the junction, ...
    assert short["attention_width"] == max_entries + 1  # ... and the read weighs every entry and the step itself
    assert short["flops"] > 0
    for length in (1_000, 10_000):
        cost = costs[length]
        assert cost["entries_held"] == short["entries_held"], (length, costs)
        assert cost["state_bytes"] == short["state_bytes"], (length, costs)
        assert cost["attention_width"] == short["attention_width"], (length, costs)
        assert cost["flops"] == short["flops"], (length, costs)
        assert cost["oldest_entry_age"] <= length  # the entries are steps of this corridor (a real 10k-step episode)
