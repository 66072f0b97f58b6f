"""R2D2: per-actor exploration, double-Q rescaled n-step targets against a hand computation, priorities, and
learning a memory task (CueDelay with distractors) in CI."""

from __future__ import annotations

import pytest
import torch

from tracerl import TraceRL
from tracerl.algos.offpolicy import batch_state, unroll
from tracerl.algos.r2d2 import actor_epsilons
from tracerl.algos.targets import inverse_value_rescale, value_rescale
from tracerl.evaluation import evaluate


def test_per_actor_epsilons_follow_the_ape_x_schedule():
    eps = actor_epsilons(4, 0.4, 7.0)
    expected = [0.4 ** (1 + 7.0 * i / 3) for i in range(4)]
    assert eps.tolist() == pytest.approx(expected)
    assert actor_epsilons(1, 0.3, 7.0).tolist() == pytest.approx([0.3])


def _agent(**kw):
    base = dict(env="tracerl/CueDelay-v0", env_kwargs={"delay": 6, "difficulty": 1}, algo="r2d2", seed=0, verbose=0,
                n_envs=4, hidden_size=16, seq_len=4, burn_in=2, state_stride=2, n_step=3, gamma=0.9,
                learning_starts=50, buffer_size=2000, batch_size=8)
    base.update(kw)
    return TraceRL(**base)


@pytest.mark.parametrize("cut", [False, True], ids=["plain", "cut_at_exploration"])
def test_targets_are_rescaled_double_q_n_step_returns(cut):
    agent = _agent(cut_at_exploration=cut)
    agent.learn(400)
    alg, cfg = agent.algorithm, agent.config
    batch = agent.replay.sample(8)
    b = batch.burn_in
    with torch.no_grad():
        q_online = alg.q_head(unroll(alg.q_torso, batch, batch_state(batch, "q"), grad=False))
        q_target = alg.target_head(unroll(alg.target_torso, batch, batch_state(batch, "q"), grad=False))
    y, ok = alg.targets(batch, q_online)
    steps, rows = batch.has_action[b:], batch.valid[b:]
    term, r = batch.terminal[b:], batch.reward[b:]
    greedy = batch.action[b:].long() == q_online.argmax(-1)
    checked = cuts = 0
    for i in range(batch.N):
        for t in range(y.shape[0]):
            if not steps[t, i]:
                continue
            g, m = 0.0, 0
            while m < cfg.n_step and t + m < y.shape[0] and steps[t + m, i]:
                if cut and m > 0 and not greedy[t + m, i]:  # Watkins's cut: bootstrap before an exploratory step
                    cuts += 1
                    break
                g += cfg.gamma**m * float(r[t + m, i])
                m += 1
            boot_row = t + m
            if boot_row >= y.shape[0] or not rows[boot_row, i]:
                assert not ok[t, i]
                continue
            if not term[boot_row, i]:
                a_star = int(q_online[boot_row, i].argmax())  # the online network picks, the target evaluates
                g += cfg.gamma**m * float(inverse_value_rescale(q_target[boot_row, i, a_star]))
            assert ok[t, i]
            assert float(y[t, i]) == pytest.approx(float(value_rescale(torch.tensor(g))), rel=1e-5, abs=1e-6)
            checked += 1
    assert checked > 10
    assert (cuts > 0) == cut


def test_prioritized_r2d2_writes_sequence_priorities():
    agent = _agent(prioritized=True)
    agent.learn(300)
    w = agent.replay.weight[agent.replay.weight > 0]
    assert len(set(w.round(8).tolist())) > 5  # priorities came from TD errors, not just the initial max


def test_r2d2_gru_learns_cue_delay_with_distractors():
    """A memoryless agent is at chance (50 %) on this task: success needs the cue remembered for 5 steps."""
    agent = _agent(n_envs=8, hidden_size=32, seq_len=8, burn_in=0, state_stride=8, batch_size=32, n_step=3,
                   gamma=0.99, learning_starts=500, buffer_size=20_000, target_update_interval=50)
    agent.learn(6000)
    res = evaluate(agent, "tracerl/CueDelay-v0", 200, env_kwargs={"delay": 6, "difficulty": 1}, seed=777)
    assert res.success_rate >= 0.9


@pytest.mark.slow
def test_r2d2_with_her_learns_the_goal_line_task_without_seeing_its_position():
    from tracerl.envs.goal_line import GoalLine

    agent = TraceRL(env=lambda: GoalLine(size=6, horizon=8), algo="r2d2", her=True, seed=0, verbose=0, n_envs=8,
                    observe_achieved_goal=False, use_prev_action=True, hidden_size=32, seq_len=9, batch_size=32,
                    learning_starts=500, buffer_size=20_000, n_step=3, gamma=0.9, target_update_interval=50)
    agent.learn(15_000)
    assert evaluate(agent, lambda: GoalLine(size=6, horizon=8), 100).success_rate >= 0.75


def test_boltzmann_exploration_samples_by_value_and_is_greedy_when_values_differ_widely():
    from tracerl.algos.r2d2 import R2D2Config

    agent = _agent(epsilon=0.0, boltzmann_temperature=0.5)
    algo = agent.algorithm
    feats = torch.zeros(4000, algo.q_torso.output_dim)
    q_close = algo.q_head(feats)  # the same features for every row: one Q vector
    counts = torch.bincount(algo.act({"q": feats}), minlength=q_close.shape[-1]).double() / 4000
    expected = torch.softmax(q_close[0].detach().double() / 0.5, -1)
    assert torch.allclose(counts, expected, atol=0.03)
    algo.config.boltzmann_temperature = 1e-6  # values far apart relative to the temperature: greedy
    assert torch.equal(algo.act({"q": feats}), q_close.argmax(-1))
    assert torch.equal(algo.act({"q": feats}, explore=False), q_close.argmax(-1))
    with pytest.raises(Exception, match="boltzmann_temperature"):
        R2D2Config(boltzmann_temperature=-1.0).validate()


def test_start_epsilon_explores_the_first_steps_of_each_episode_and_only_those():
    from tracerl.algos.r2d2 import R2D2Config

    agent = _agent(epsilon=0.0, start_epsilon=1.0, start_epsilon_steps=2)
    algo = agent.algorithm
    B = 2000
    feats = torch.zeros(B, algo.q_torso.output_dim)
    greedy = algo.q_head(feats).argmax(-1)
    start = torch.zeros(B, dtype=torch.bool)
    first = torch.arange(B) < B // 2  # half the actors begin an episode now, the rest are mid-episode
    algo.episode_step = torch.full((B,), 50, dtype=torch.long)
    off_greedy = []
    for t in range(4):
        action = algo.act({"q": feats}, episode_start=first if t == 0 else start)
        off_greedy.append(float((action[first] != greedy[first]).double().mean()))
        assert torch.equal(action[~first], greedy[~first])  # later in their episodes: epsilon 0
    n = algo.q_head(feats).shape[-1]
    assert off_greedy[0] == pytest.approx(1 - 1 / n, abs=0.05) and off_greedy[1] == pytest.approx(1 - 1 / n, abs=0.05)
    assert off_greedy[2:] == [0.0, 0.0]
    with pytest.raises(ValueError, match="episode_start"):
        algo.act({"q": feats})
    with pytest.raises(Exception, match="start_epsilon"):
        R2D2Config(start_epsilon=1.5).validate()
    with pytest.raises(Exception, match="start_epsilon_steps"):
        R2D2Config(start_epsilon_steps=0).validate()


def test_count_bonus_tries_every_action_of_a_new_observation_before_repeating_one(tmp_path):
    from tracerl.algos.r2d2 import R2D2Config

    agent = _agent(epsilon=0.0, count_bonus=10.0)  # bonus far above the untrained values
    algo = agent.algorithm
    feats = torch.zeros(1, algo.q_torso.output_dim)
    obs = torch.tensor([[0.5, -1.0, 0.25]])
    n = algo.q_head(feats).shape[-1]
    taken = [int(algo.act({"q": feats}, obs=obs)) for _ in range(n)]
    assert sorted(taken) == list(range(n))
    assert float(algo.counts.counts.sum()) == n
    assert int(algo.act({"q": feats}, explore=False)) == int(algo.q_head(feats).argmax(-1))  # greedy: no bonus
    assert float(algo.counts.counts.sum()) == n  # and no count
    with pytest.raises(ValueError, match="obs"):
        algo.act({"q": feats})
    with pytest.raises(Exception, match="count_bonus"):
        R2D2Config(count_bonus=-1.0).validate()


def test_visit_counts_survive_save_and_load(tmp_path):
    agent = _agent(count_bonus=0.1)
    agent.learn(200)
    counts = agent.algorithm.counts.counts.clone()
    assert float(counts.sum()) > 0
    agent.save(tmp_path / "c.tracerl")
    loaded = TraceRL.load(tmp_path / "c.tracerl")
    assert torch.equal(loaded.algorithm.counts.counts, counts)


def test_the_actors_exploration_draws_follow_the_agent_seed():
    same_a, same_b, other = _agent(seed=5), _agent(seed=5), _agent(seed=6)
    assert torch.equal(same_a.algorithm.rng.get_state(), same_b.algorithm.rng.get_state())
    assert not torch.equal(same_a.algorithm.rng.get_state(), other.algorithm.rng.get_state())
