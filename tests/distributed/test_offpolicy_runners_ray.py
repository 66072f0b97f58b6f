"""Off-policy env runners as Ray actors with the replay in an actor of its own, on a local Ray instance (2 CPUs):
chunk states intact, a killed runner replaced, checkpoints with the replay actor's contents, and R2D2 with 2
runners learning a short CueDelay."""

import gc
import os
import signal

import pytest
import torch

from distributed.helpers import off_agent, replayed_greedy_actions

ray = pytest.importorskip("ray")

from tracerl.distributed import RunnerError  # noqa: E402

RAY = dict(runner_backend="ray", runner_num_cpus=0.5)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(autouse=True)
def release_actors():
    yield
    gc.collect()  # an agent and its runner group refer to each other: free the last test's actors (and CPUs) now


def test_chunks_pushed_by_ray_runners_replay_to_their_greedy_actions_from_the_stored_states():
    agent = off_agent(epsilon=0.0, use_prev_action=False, **RAY)  # see the local twin: a policy fed its own action
    taken, replayed, from_zero = replayed_greedy_actions(agent)
    assert taken.numel() > 100
    assert torch.equal(replayed, taken)  # stored states and episode starts survived the trip through the actors
    assert not torch.equal(from_zero, taken)
    pids = agent.collector.pids()
    assert len(set(pids)) == 2 and os.getpid() not in pids


@pytest.mark.faults("an off-policy env runner's process is killed (SIGKILL) while it collects | Ray restarts it, "
                    "its chunk in flight is dropped, its sub-envs start new episodes in its replay shard, training "
                    "continues | the killed runner's chunk and running episodes")
def test_a_killed_offpolicy_runner_is_replaced_and_training_continues():
    # episodes of 17 steps never end on a chunk boundary (8 steps per sub-env per chunk) in the few chunks before the
    # kill, so the killed runner always leaves open episodes in its shard, which the restart must cut
    agent = off_agent(learning_starts=32, runner_max_restarts=2, env_kwargs={"delay": 17}, **RAY).learn(4 * 16)
    group = agent.collector
    killed = group.pids()[1]
    os.kill(killed, signal.SIGKILL)
    chunks = 4
    while group.pool.restarts[1] == 0 and chunks < 400:  # runner 0 keeps delivering while runner 1 restarts
        agent.learn(16, reset_num_timesteps=False)
        chunks += 1
    assert group.pool.restarts == [0, 1]
    before = group.replay_summary()["chunks"]
    agent.learn(8 * 16, reset_num_timesteps=False)
    chunks += 8
    assert killed not in group.pids()
    assert agent.num_timesteps == chunks * 16 and group.total_steps == chunks * 16  # only chunks that arrived count
    assert group.replay_summary()["chunks"] == before + 8
    replay = ray.get(group.replay.state_dict.remote())[0]

    def cut_episodes(shard):  # episodes that end on a step instead of a final row: cut off by a reset
        end, has_action = replay[f"{shard}.end_row"], replay[f"{shard}.has_action"]
        return sum(int(has_action[b, end[b][end[b] >= 0].unique()].sum()) for b in range(end.shape[0]))

    assert cut_episodes(0) == 0 and cut_episodes(1) >= 1  # the restarted runner's sub-envs started new episodes
    assert agent.algorithm.n_updates > 0
    assert all(torch.isfinite(p).all() for m in agent.algorithm.modules().values() for p in m.parameters())


@pytest.mark.faults("an off-policy env runner dies more often than runner_max_restarts | RunnerError naming the "
                    "runner, its sub-envs and the restarts | the run's remaining steps")
@pytest.mark.slow  # ~45 s on a loaded 2-core machine; the PPO runners' twin runs in CI
def test_an_offpolicy_runner_that_dies_past_max_restarts_stops_training_by_name():
    agent = off_agent(runner_max_restarts=0, **RAY).learn(2 * 16)
    os.kill(agent.collector.pids()[0], signal.SIGKILL)
    with pytest.raises(RunnerError, match=r"env runner 0 \(sub-envs 0\.\.1\).*runner_max_restarts=0") as info:
        agent.learn(8 * 16, reset_num_timesteps=False)
    assert info.value.runner == 0 and info.value.envs == (0, 1)


@pytest.mark.slow  # ~75 s on a loaded 2-core machine (new actors at load); the local twin runs in CI
def test_a_checkpoint_holds_the_replay_actors_contents(tmp_path):
    from tracerl import TraceRL

    agent = off_agent(learning_starts=16, **RAY).learn(6 * 16)
    path = tmp_path / "a.tracerl"
    agent.save(path)
    saved = agent.collector.replay_summary()
    assert saved["size"] > 6 * 16
    resumed = TraceRL.load(path, env="tracerl/CueDelay-v0", verbose=0)
    assert resumed.collector.backend == "ray"
    assert resumed.collector.replay_summary() == saved
    resumed.learn(4 * 16, reset_num_timesteps=False)
    assert resumed.collector.replay_summary()["size"] > saved["size"]


@pytest.mark.slow  # ~60 s on a loaded 2-core machine
def test_r2d2_with_two_ray_runners_learns_a_short_cue_delay():
    """A memoryless agent is at chance (50 %): success needs the cue remembered for 4 steps."""
    from tracerl import TraceRL
    from tracerl.evaluation import evaluate

    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 4, "difficulty": 1}, algo="r2d2", memory="gru",
                    hidden_size=32, n_envs=8, seq_len=8, burn_in=0, state_stride=8, batch_size=32, n_step=3,
                    gamma=0.99, learning_starts=500, buffer_size=20_000, target_update_interval=50, runners=2,
                    runner_steps=8, verbose=0, seed=0, **RAY)
    agent.learn(4000)
    assert max(agent.collector.lag_history) > 0  # asynchronous: runners acted with weights behind the learner's
    res = evaluate(agent, "tracerl/CueDelay-v0", 200, env_kwargs={"delay": 4, "difficulty": 1}, seed=777)
    assert res.success_rate >= 0.9


def test_max_policy_lag_bounds_the_staleness_of_every_chunk():
    # 4 updates per arriving chunk: without a bound the other runner's chunk in flight falls 4+ updates behind
    agent = off_agent(learning_starts=16, weight_sync_interval=1, max_policy_lag=2, **RAY).learn(30 * 16)
    lags = list(agent.collector.lag_history)
    assert max(lags) <= 2 and agent.algorithm.n_updates >= 20  # updates past the bound wait, not vanish
