"""HER on a goal env that terminates on success (BitFlip): a relabelled window's rewards and termination equal
compute_reward / compute_terminated for its new goal, the goal is replaced in every row of the window (burn-in
included), and nothing of the relabelled episode is kept after its new end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracerl import TraceRL
from tracerl.data.her import HindsightRelabeler, find_compute_terminated
from tracerl.envs.bitflip import BitFlip


def _replay(burn_in=4, seq_len=4):
    # 4 bits and 10 actions: random actions reach both the real goal and many relabelled goals
    agent = TraceRL(env=lambda: BitFlip(4, horizon=10), algo="r2d2", her=True, seed=0, verbose=0, n_envs=3,
                    learning_starts=10**9, buffer_size=3000, seq_len=seq_len, burn_in=burn_in, state_stride=4,
                    hidden_size=8)
    agent.learn(900)  # random actions fill the replay
    return agent


def _relabel(agent, strategy="future", seed=1):
    env = BitFlip(4)
    batch = agent.replay.sample(96)
    original = {k: v.clone() for k, v in batch.__dict__.items() if isinstance(v, torch.Tensor)}
    relabeler = HindsightRelabeler(agent.replay, agent.goal_layout, env.compute_reward, strategy, ratio=1.0,
                                   seed=seed, compute_terminated=env.compute_terminated)
    assert relabeler.relabel(batch).all()
    return batch, original


@pytest.mark.parametrize("strategy", ["future", "final"])
def test_relabelled_rewards_and_termination_follow_the_new_goal(strategy):
    agent = _replay()
    batch, original = _relabel(agent, strategy)
    lay, env = agent.goal_layout, BitFlip(4)
    steps_of_row = batch.step0.unsqueeze(0) - batch.burn_in + torch.arange(batch.T).unsqueeze(1)
    n_rewards = n_ends = n_cut = n_untouched_ends = 0
    for i in range(batch.N):
        ov = original["valid"][:, i]
        goal = batch.obs[ov, i, lay.desired_goal][0].numpy()
        achieved = [bool(env.compute_terminated(batch.obs[t, i, lay.achieved_goal].numpy(), goal, {}))
                    and int(steps_of_row[t, i]) >= 1 for t in range(batch.T)]
        real = [t for t in range(batch.T) if ov[t]]
        first = next((t for t in real if achieved[t]), None)
        for t in real:
            if first is not None and t > first:  # after the new end: not part of the relabelled episode
                assert not batch.valid[t, i] and not batch.has_action[t, i] and not batch.train[t, i]
                n_cut += 1
                continue
            assert batch.valid[t, i]
            assert torch.equal(batch.obs[t, i, lay.desired_goal], torch.as_tensor(goal, dtype=batch.obs.dtype))
            assert bool(batch.terminal[t, i]) == (t == first)
            if t == first:
                assert not batch.has_action[t, i] and not batch.train[t, i]
                n_ends += 1
            elif batch.has_action[t, i] and t + 1 < batch.T and batch.valid[t + 1, i]:
                expected = float(env.compute_reward(batch.obs[t + 1, i, lay.achieved_goal].numpy(), goal, {}))
                assert float(batch.reward[t, i]) == expected
                assert float(batch.prev_reward[t + 1, i]) == expected
                n_rewards += 1
        if first is None and bool(original["terminal"][:, i].any()):
            assert not bool(batch.terminal[:, i].any())  # the real end is a truncation for the new goal
            n_untouched_ends += 1
    assert n_rewards > 100 and n_ends > 20 and n_cut > 10
    if strategy == "future":
        assert n_untouched_ends + n_ends > 0


def test_the_goal_is_replaced_in_every_row_of_the_window_including_the_burn_in():
    agent = _replay(burn_in=4, seq_len=4)
    batch, original = _relabel(agent)
    lay = agent.goal_layout
    mid = (batch.step0 >= 4).numpy()  # windows that start mid-episode have a real burn-in
    assert mid.sum() > 10
    n = 0
    for i in np.flatnonzero(mid):
        rows = torch.nonzero(original["valid"][:, i]).flatten()
        rows = rows[batch.valid[rows, i]]
        goals = batch.obs[rows, i, lay.desired_goal]
        assert torch.equal(goals, goals[:1].expand_as(goals))
        assert int(rows[0]) == 0  # row 0 is a burn-in row of the episode and carries the new goal too
        n += int((rows < batch.burn_in).sum())
    assert n >= 4 * 10


def test_a_window_whose_new_goal_was_reached_before_it_trains_on_nothing():
    agent = _replay(burn_in=0, seq_len=4)
    rp, lay, env = agent.replay, agent.goal_layout, BitFlip(4)
    batch, _ = _relabel(agent)
    n_dropped = n_kept = 0
    for i in range(batch.N):
        e, row = batch.index[i]
        t_u = int(rp.step[e, row])
        goal = batch.obs[0, i, lay.desired_goal].numpy()
        before = [(row - t_u + s) % rp.C for s in range(1, t_u)]  # the episode's rows after an action, before it
        reached = any(bool(env.compute_terminated(rp.obs[e, r, lay.achieved_goal], goal, {})) for r in before)
        if reached:
            assert not bool(batch.train[:, i].any())
            n_dropped += 1
        elif bool(batch.train[:, i].any()):
            n_kept += 1
    assert n_dropped > 3 and n_kept > 3


def test_relabelled_prev_reward_of_the_first_row_follows_the_new_goal():
    agent = _replay()
    batch, original = _relabel(agent)
    lay, env = agent.goal_layout, BitFlip(4)
    n = 0
    for i in torch.nonzero(batch.step0 >= 5).flatten().tolist():  # row 0 is a step >= 1 of the episode
        goal = batch.obs[0, i, lay.desired_goal].numpy()
        expected = float(env.compute_reward(batch.obs[0, i, lay.achieved_goal].numpy(), goal, {}))
        assert float(batch.prev_reward[0, i]) == expected
        n += 1
    assert n > 5


def test_the_off_policy_agent_finds_compute_terminated_only_where_the_env_has_it():
    from tracerl.envs.goal_line import GoalLine

    agent = _replay()
    assert agent.relabeler is not None and agent.relabeler.compute_terminated is not None
    goal_line = TraceRL(env=lambda: GoalLine(), algo="r2d2", her=True, seed=0, verbose=0, n_envs=2,
                        learning_starts=10**9, buffer_size=200, hidden_size=8)
    assert find_compute_terminated(goal_line.env) is None

