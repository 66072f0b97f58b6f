"""Off-policy env runners in this process (runner_backend="local"): chunks with their stored states, the sharded
replay, per-runner exploration, bounded policy lag, the log, checkpoints and refused setups (the Ray twin of the
main behaviours is test_offpolicy_runners_ray.py)."""

import numpy as np
import pytest
import torch

from distributed.helpers import off_agent, replayed_greedy_actions
from tracerl import TraceRL
from tracerl.errors import ConfigError

LOCAL = dict(runner_backend="local")


def test_a_runners_chunk_replayed_by_the_learner_reproduces_its_greedy_actions():
    # without the previous action as input: at random weights a greedy policy fed its own last action locks onto one
    # action whatever its memory holds, and the replay from zeros could not be told apart
    taken, replayed, from_zero = replayed_greedy_actions(off_agent(epsilon=0.0, use_prev_action=False, **LOCAL))
    assert taken.numel() > 100
    assert torch.equal(replayed, taken)  # the stored state of every window is the runner's own
    assert not torch.equal(from_zero, taken)  # and it matters: the initial state acts otherwise


def test_a_runners_chunk_replays_to_its_greedy_actions_with_the_previous_actions_it_took():
    agent = off_agent(epsilon=0.0, **LOCAL)
    taken, replayed, _ = replayed_greedy_actions(agent)
    assert agent.policy_config.use_prev_action  # the default for a GRU
    assert taken.numel() > 100 and torch.equal(replayed, taken)


def test_every_runner_fills_its_own_shard_with_whole_episodes():
    agent = off_agent(**LOCAL).learn(4 * 16)
    shards = agent.collector.replay.shards
    assert len(shards) == 2 and all(s.n_envs == 2 for s in shards)
    assert [s.rows_written for s in shards] == [shards[0].rows_written] * 2 and shards[0].rows_written > 2 * 16
    for s in shards:  # rows of every episode are consecutive steps 0, 1, 2, ... with one final row
        for env in range(s.n_envs):
            n = int(s.pos[env])
            ep, step = s.episode[env, :n], s.step[env, :n]
            new = np.flatnonzero(np.diff(ep) != 0) + 1
            assert (step[new] == 0).all() and (np.diff(step)[np.diff(ep) == 0] == 1).all()


def test_r2d2_runners_explore_with_the_one_process_schedule_or_ape_x_rates_per_runner():
    from tracerl.algos.r2d2 import actor_epsilons

    per_env = off_agent(n_envs=8, runners=4, **LOCAL)
    per_env.learner.ensure_collector(per_env)
    got = torch.cat([r.algorithm.epsilons for r in per_env.collector.pool.runners])
    assert torch.equal(got, actor_epsilons(8, 0.4, 7.0))
    apex = off_agent(n_envs=8, runners=4, runner_epsilon="runner", **LOCAL)
    apex.learner.ensure_collector(apex)
    rates = [0.4 ** (1 + 7.0 * i / 3) for i in range(4)]
    for i, r in enumerate(apex.collector.pool.runners):
        assert r.algorithm.epsilons.tolist() == pytest.approx([rates[i]] * 2)


def test_runners_act_with_weights_at_most_weight_sync_interval_updates_old():
    agent = off_agent(weight_sync_interval=5, learning_starts=16, **LOCAL).learn(40 * 16)
    lags = list(agent.collector.lag_history)
    assert agent.algorithm.n_updates > 50 and len(lags) == 40
    # in this process a runner collects when its chunk is due: the weights are at most K - 1 = 4 updates old
    assert max(lags) == 4 and min(lags) == 0
    fresh = off_agent(weight_sync_interval=1, learning_starts=16, **LOCAL).learn(40 * 16)
    assert set(fresh.collector.lag_history) == {0}


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_sac_and_td3_train_from_runners_on_a_box_action_env(algo):
    agent = TraceRL(env="Pendulum-v1", algo=algo, memory="gru", hidden_size=16, n_envs=2, seq_len=4, batch_size=8,
                    learning_starts=32, buffer_size=2000, runners=2, runner_steps=8, verbose=0, seed=0, **LOCAL)
    agent.learn(12 * 8)
    assert agent.algorithm.n_updates > 0
    assert all(torch.isfinite(p).all() for m in agent.algorithm.modules().values() for p in m.parameters())
    states = agent.collector.replay.shards[0].states
    assert {k.split(".")[0] for k in states} == {"actor", "critic0", "critic1"}  # every online network's state


def test_the_log_shows_runner_rates_lag_learner_updates_and_replay_size(capsys):
    off_agent(verbose=1, **LOCAL).learn(8 * 16)
    out = capsys.readouterr().out
    for key in ("steps_per_s_0", "steps_per_s_1", "policy_lag_mean", "policy_lag_max", "updates_per_s",
                "replay/", "size", "windows", "restarts"):
        assert key in out


def test_train_command_takes_the_runner_flags_for_r2d2(tmp_path):
    from tracerl.cli import main

    out = tmp_path / "run"
    assert main(["train", "--algo", "r2d2", "--env", "tracerl/CueDelay-v0", "--env-kwargs", "delay=2", "--steps",
                 "128", "--seed", "0", "--out", str(out), "--n-envs", "4", "--hidden-size", "16", "--no-progress",
                 "--verbose", "0", "--eval-episodes", "0", "--learning-starts", "32", "--runners", "2",
                 "--runner-backend", "local", "--runner-steps", "4", "--weight-sync-interval", "3"]) == 0
    agent = TraceRL.load(out / "agent.tracerl")
    assert agent.learner.runners == 2 and agent.learner.runner_settings.runner_backend == "local"
    assert agent.config.weight_sync_interval == 3
    assert "runners/policy_lag_max" in (out / "progress.csv").read_text()


def test_a_checkpoint_keeps_the_replay_shards_and_training_goes_on_after_loading(tmp_path):
    agent = off_agent(learning_starts=16, **LOCAL).learn(8 * 16)
    path = tmp_path / "a.tracerl"
    agent.save(path)
    before = [s.state_dict() for s in agent.collector.replay.shards]
    resumed = TraceRL.load(path, env="tracerl/CueDelay-v0", verbose=0)
    assert resumed.learner.runners == 2 and resumed.collector.n_runners == 2
    after = [s.state_dict() for s in resumed.collector.replay.shards]
    for (t0, m0), (t1, m1) in zip(before, after):
        assert m0 == m1 and t0.keys() == t1.keys() and all(torch.equal(t0[k], t1[k]) for k in t0)
    assert resumed.collector.total_steps == 8 * 16 and resumed.collector.stats.episodes == agent.collector.stats.episodes
    updates = resumed.algorithm.n_updates
    resumed.learn(4 * 16, reset_num_timesteps=False)
    assert resumed.num_timesteps == 12 * 16 and resumed.algorithm.n_updates > updates
    rows = resumed.collector.replay.shards[0].rows_written
    assert rows > before[0][1]["rows_written"]  # the runners' new episodes went into the restored shards


def test_a_checkpoint_without_the_replay_resumes_with_an_empty_one(tmp_path):
    agent = off_agent(learning_starts=16, **LOCAL).learn(4 * 16)
    path = tmp_path / "a.tracerl"
    agent.save(path, include_replay=False)
    resumed = TraceRL.load(path, env="tracerl/CueDelay-v0", verbose=0)
    assert resumed.collector.replay.size() == 0 and resumed.collector.total_steps == 4 * 16


@pytest.mark.faults("a checkpoint of an off-policy run with runners whose replay shard was altered | "
                    "CheckpointError naming the replay entry | none (the load is refused)")
def test_a_tampered_runner_replay_shard_is_refused_by_entry(tmp_path):
    from tracerl.errors import CheckpointError
    from tracerl.io.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "a.tracerl"
    off_agent(**LOCAL).learn(4 * 16).save(path)
    tensors, meta = load_checkpoint(path, kind="tracerl.OffPolicy")
    tensors["replay.1.pos"] = tensors["replay.1.pos"] * 0 - 5
    save_checkpoint(path, tensors, meta, kind="tracerl.OffPolicy")
    with pytest.raises(CheckpointError, match="replay"):
        TraceRL.load(path, env="tracerl/CueDelay-v0", verbose=0)


@pytest.mark.faults("off-policy runners asked for a setup they cannot serve (n_envs not divisible, count bonus, "
                    "reward_norm, RND) | ConfigError naming the field and value | none")
@pytest.mark.parametrize("kwargs, match", [
    (dict(n_envs=5), r"runners=2 does not divide n_envs=5"),
    (dict(count_bonus=0.5), r"count_bonus=0.5"),
    (dict(reward_norm=True), r"reward_norm=True is not supported with runners=2"),
    (dict(use_rnd=True), r"use_rnd=True is not supported with runners=2"),
])
def test_impossible_offpolicy_runner_setups_are_refused_by_name(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        off_agent(**LOCAL, **kwargs).learn(16)


@pytest.mark.parametrize("algo", ["nec", "mfec"])
def test_episodic_control_refuses_runners_by_name(algo):
    with pytest.raises(ConfigError, match=rf"runners=2 is not supported by algo='{algo}'"):
        TraceRL(env="tracerl/CueDelay-v0", algo=algo, runners=2, runner_backend="local", verbose=0)


def test_runner_settings_are_checked_by_name():
    with pytest.raises(ConfigError, match="runner_backend"):
        off_agent(runner_backend="threads")


def test_the_replay_samples_windows_across_shards_as_one_replay_would():
    agent = off_agent(learning_starts=10**6, **LOCAL).learn(2 * 16)  # one chunk per runner, no update
    group = agent.collector
    weights, version = group._current_weights()
    for _ in range(3):  # runner 1 pushes three more chunks: its shard holds most windows
        chunk, _ = group.pool.runners[1].collect(weights, version, True)
        group.replay.add_chunk(1, chunk)
    windows = [s.num_windows() for s in group.replay.shards]
    assert windows[1] > 2 * windows[0] > 0
    drawn = np.concatenate([group.sample(100, 0.0)[1] for _ in range(30)])
    assert abs(float(np.mean(drawn == 1)) - windows[1] / sum(windows)) < 0.04


def test_prioritized_r2d2_sends_sequence_priorities_back_to_every_shard():
    agent = off_agent(prioritized=True, learning_starts=16, **LOCAL).learn(20 * 16)
    for shard in agent.collector.replay.shards:
        live = shard.weight[shard.weight > 0]
        assert live.size and not np.allclose(live, live.max())  # priorities replaced the initial max priority
    batch, _ = agent.collector.sample(32, 0.6)
    assert float(batch.weight.max()) == 1.0 and float(batch.weight.min()) < 1.0  # importance weights over all shards


def test_a_policy_lag_bound_below_the_weight_sync_interval_is_refused():
    with pytest.raises(ConfigError, match=r"max_policy_lag=3 .* weight_sync_interval=5"):
        off_agent(weight_sync_interval=5, max_policy_lag=3, **LOCAL)
