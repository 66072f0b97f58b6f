"""HER on whole windows: relabelled rewards equal compute_reward, one new goal per window taken from the same
episode (future / final), untouched windows stay untouched, and the goal layout of Dict observations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from tracerl import TraceRL
from tracerl.data.her import GoalLayout, HindsightRelabeler
from tracerl.envs.goal_line import GoalLine
from tracerl.errors import ConfigError, UnsupportedSpaceError


def _agent(**kw):
    base = dict(env=lambda: GoalLine(size=6, horizon=7), algo="r2d2", her=True, seed=0, verbose=0, n_envs=3,
                learning_starts=10**9, buffer_size=3000, seq_len=4, burn_in=2, state_stride=2, hidden_size=8)
    base.update(kw)
    agent = TraceRL(**base)
    agent.learn(300)  # random actions fill the replay
    return agent


def _relabelled(strategy):
    agent = _agent(her_strategy=strategy)
    rp, lay = agent.replay, agent.goal_layout
    batch = rp.sample(64)
    original = {k: v.clone() for k, v in batch.__dict__.items() if isinstance(v, torch.Tensor)}
    relabeler = HindsightRelabeler(rp, lay, GoalLine(6, 7).compute_reward, strategy, ratio=1.0, seed=1)
    chosen = relabeler.relabel(batch)
    assert chosen.all()
    return agent, batch, original


@pytest.mark.parametrize("strategy", ["future", "final"])
def test_relabelled_rewards_equal_compute_reward_on_the_new_goal(strategy):
    agent, batch, original = _relabelled(strategy)
    lay, env = agent.goal_layout, GoalLine(6, 7)
    goals = batch.obs[:, :, lay.desired_goal]  # [T, N, 1]
    n_checked = 0
    for i in range(batch.N):
        valid = batch.valid[:, i]
        g = goals[valid, i]
        assert torch.all(g == g[0]), "one goal for the whole window"
        for t in range(batch.T - 1):
            if batch.has_action[t, i] and batch.valid[t + 1, i]:
                ag_next = batch.obs[t + 1, i, lay.achieved_goal].numpy()
                expected = env.compute_reward(ag_next, g[0].numpy(), {})
                assert float(batch.reward[t, i]) == float(expected)
                assert float(batch.prev_reward[t + 1, i]) == float(expected)
                n_checked += 1
    assert n_checked > 100
    # only the desired goal and the rewards change
    keep = [c for c in range(lay.obs_dim) if c not in range(lay.desired_goal.start, lay.desired_goal.stop)]
    assert torch.equal(batch.obs[:, :, keep], original["obs"][:, :, keep])
    assert torch.equal(batch.action, original["action"]) and torch.equal(batch.terminal, original["terminal"])


def test_hindsight_goals_come_from_the_windows_own_episode():
    for strategy in ("future", "final"):
        agent, batch, _ = _relabelled(strategy)
        rp, lay = agent.replay, agent.goal_layout
        for i in range(batch.N):
            env, row = batch.index[i]
            goal = float(batch.obs[batch.burn_in, i, lay.desired_goal][0])
            last = rp.last_row_of_episode(np.array([env]), np.array([row]))[0]
            t_u, t_last = rp.step[env, row], rp.step[env, last]
            later = [(row + k) % rp.C for k in range(1, t_last - t_u + 1)]
            achieved = rp.obs[env, later, lay.achieved_goal.start]
            if strategy == "final":
                assert goal == float(rp.obs[env, last, lay.achieved_goal.start])
            else:
                assert goal in achieved.tolist()


def test_her_with_ratio_zero_leaves_the_batch_unchanged():
    agent = _agent()
    batch = agent.replay.sample(16)
    before = batch.obs.clone(), batch.reward.clone()
    HindsightRelabeler(agent.replay, agent.goal_layout, GoalLine().compute_reward, ratio=0.0).relabel(batch)
    assert torch.equal(batch.obs, before[0]) and torch.equal(batch.reward, before[1])


def test_goal_layout_finds_the_goal_columns_and_rejects_other_spaces():
    lay = GoalLayout.from_space(GoalLine().observation_space)  # keys sorted: achieved, desired, observation
    assert (lay.achieved_goal, lay.desired_goal, lay.observation, lay.obs_dim) == (slice(0, 1), slice(1, 2),
                                                                                   slice(2, 4), 4)
    assert lay.policy_columns(False) == [1, 2, 3] and lay.policy_columns(True) is None
    with pytest.raises(ConfigError, match="needs a Dict observation space"):
        GoalLayout.from_space(spaces.Box(0, 1, (3,)))
    bad = spaces.Dict({"observation": spaces.Box(0, 1, (1,)), "achieved_goal": spaces.Discrete(3),
                       "desired_goal": spaces.Discrete(3)})
    with pytest.raises(UnsupportedSpaceError, match="Box or MultiBinary goals"):
        GoalLayout.from_space(bad)


def test_networks_can_be_kept_from_reading_the_achieved_goal():
    agent = _agent(observe_achieved_goal=False)
    torso = agent.algorithm.q_torso
    assert torso.input_index.tolist() == [1, 2, 3]
    x = torch.zeros(1, 2, 4)
    x2 = x.clone()
    x2[..., 0] = 5.0  # only the achieved goal differs
    s = torso.initial_state(2)
    start = torch.ones(1, 2, dtype=torch.bool)
    a = torch.zeros(1, 2, dtype=torch.int64)
    r = torch.zeros(1, 2)
    assert torch.equal(torso(x, s, start, a, r)[0], torso(x2, s, start, a, r)[0])


def test_observe_achieved_goal_false_hides_the_achieved_goal_without_her_too():
    # The "HER lowers success on GoalLine" compared a HER agent that could not see its position with a
    # no-HER agent that could: observe_achieved_goal=False only took effect with her=True.
    agent = TraceRL(env=lambda: GoalLine(size=6, horizon=7), algo="r2d2", her=False, observe_achieved_goal=False,
                    seed=0, verbose=0, n_envs=2, learning_starts=10**9, buffer_size=200, hidden_size=8)
    assert agent.algorithm.q_torso.input_index.tolist() == [1, 2, 3]
    assert agent.relabeler is None
    with pytest.raises(ConfigError, match="so does observe_achieved_goal=False"):
        TraceRL(env="tracerl/CueDelay-v0", algo="r2d2", observe_achieved_goal=False, verbose=0, n_envs=2,
                buffer_size=200)
