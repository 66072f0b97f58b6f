"""Env runners as Ray actors on a local Ray instance (2 CPUs): exact equality with one process, chunk states and
episode starts intact, a killed runner replaced, a runner that keeps dying stopping training by name."""

import os
import signal
from pathlib import Path

import pytest
import torch

from distributed.helpers import same_weights, small_agent

ray = pytest.importorskip("ray")

from tracerl.distributed import RunnerError  # noqa: E402

RAY = dict(runner_backend="ray", runner_num_cpus=0.5)
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    started = not ray.is_initialized()
    if started:  # the runners' processes import tests/distributed/dying_env.py by its env id
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), old) if p)
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        finally:
            if old is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = old
    yield
    if started:
        ray.shutdown()


def test_two_ray_runners_train_exactly_like_two_in_process_runners():
    # The same row blocks act in both, so the weights are bit-identical; against one process with all envs they
    # match up to rounding (test_runners_local.py).
    reference = small_agent(runners=2, runner_backend="local").learn(3 * 64)
    distributed = small_agent(runners=2, **RAY).learn(3 * 64)
    assert same_weights(reference, distributed)
    assert list(reference.collector.stats.returns) == list(distributed.collector.stats.returns)
    pids = distributed.collector.pids()
    assert len(set(pids)) == 2 and os.getpid() not in pids  # really two other processes


def test_a_runners_chunk_replayed_by_the_learner_reproduces_its_log_probs():
    agent = small_agent(runners=2, env_kwargs={"delay": 3}, **RAY)  # 5-step episodes across 8-step chunks
    learner = agent.learner
    group = learner.ensure_collector(agent)
    learner.begin(agent, True)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # large random weights: the actions' probabilities depend on the memory
        for p in agent.policy.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    buf = learner.buf
    group.collect(buf)  # no update: the learner's weights are the ones the runners acted with
    L = buf.chunk_len
    inside = buf.episode_start.clone()
    inside[::L] = False
    assert bool(inside.any())  # episodes start inside chunks: their starts must survive the trip
    assert not bool(buf.episode_start[::L].all())  # and chunks start inside episodes: their states must too
    policy = agent.policy.eval()
    replayed, from_zero = [], []
    with torch.no_grad():
        for c in range(buf.n_steps // L):
            t = slice(c * L, (c + 1) * L)
            state = {k: v[c] for k, v in buf.chunk_states.items()}
            for start_state, out in ((state, replayed), ({k: torch.zeros_like(v) for k, v in state.items()}, from_zero)):
                res = policy.forward_full(buf.obs[t], start_state, buf.episode_start[t], buf.prev_action[t],
                                          buf.prev_reward[t])
                out.append(res.dist.log_prob(buf.action[t]))
    assert torch.allclose(torch.cat(replayed), buf.log_prob, atol=1e-5, rtol=0)
    assert not torch.allclose(torch.cat(from_zero), buf.log_prob, atol=1e-5, rtol=0)  # the stored states matter


@pytest.mark.faults("more runner CPUs asked for than the local Ray instance has | ConfigError naming runners, "
                    "runner_num_cpus and the CPUs there are, at learn() instead of actors waiting for ever | none")
def test_runners_that_cannot_all_be_placed_are_refused_instead_of_waiting_for_ever():
    from tracerl.errors import ConfigError

    agent = small_agent(runners=2, runner_backend="ray", runner_num_cpus=1.5)
    with pytest.raises(ConfigError, match=r"runners=2 x runner_num_cpus=1.5 needs 3 CPUs .* has 2"):
        agent.learn(64)


def _kill_runner(index):
    killed = []

    def callback(agent, stats):
        if not killed:
            pid = agent.collector.pids()[index]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return callback, killed


@pytest.mark.faults("an env runner's process is killed (SIGKILL) between updates | Ray restarts it, its sub-envs "
                    "start new episodes, training continues | the killed runner's running episodes")
def test_a_killed_runner_is_replaced_and_training_continues():
    agent = small_agent(runners=2, runner_max_restarts=2, **RAY)
    callback, killed = _kill_runner(1)
    agent.learn(4 * 64, callback=callback)
    group = agent.collector
    assert agent.num_timesteps == 4 * 64 and group.total_steps == 4 * 64
    assert group.pool.restarts == [0, 1]
    assert killed and killed[0] not in group.pids()
    assert all(torch.isfinite(p).all() for p in agent.policy.parameters())


@pytest.mark.faults("an env runner dies more often than runner_max_restarts | RunnerError naming the runner, its "
                    "sub-envs and the restarts | the run's remaining steps")
def test_a_runner_that_dies_past_max_restarts_stops_training_by_name():
    agent = small_agent(runners=2, runner_max_restarts=0, **RAY)
    callback, _ = _kill_runner(0)
    with pytest.raises(RunnerError, match=r"env runner 0 \(sub-envs 0\.\.1\).*runner_max_restarts=0") as info:
        agent.learn(4 * 64, callback=callback)
    assert info.value.runner == 0 and info.value.envs == (0, 1)


@pytest.mark.faults("an env runner's process dies in the middle of a rollout | Ray restarts it; its partial rollout "
                    "is dropped and collected again from new episodes (initial memory state); training continues | "
                    "the partial rollout and the killed runner's running episodes")
@pytest.mark.slow  # ~40 s on a loaded 2-core machine (a Ray worker process restarts)
def test_a_runner_dying_mid_rollout_is_collected_again_from_new_episodes(tmp_path):
    import distributed.dying_env  # noqa: F401  (registers DyingCue-v0 here too)

    agent = small_agent(env="distributed.dying_env:DyingCue-v0", env_vectorization="sync", runners=2,
                        env_kwargs={"delay": 3, "marker": str(tmp_path / "died"), "spare_pid": os.getpid(),
                                    "die_at": 24}, **RAY)  # the 2nd rollout (16 steps each), mid-way
    seen = []

    def callback(a, stats):
        buf, group = a.learner.buf, a.collector
        seen.append((list(group.pool.restarts), buf.episode_start[0].clone(),
                     {k: v[0].clone() for k, v in buf.chunk_states.items()}))

    agent.learn(4 * 64, callback=callback)
    assert (tmp_path / "died").exists()
    restarts = [r for r, _, _ in seen]
    assert restarts[0] == [0, 0] and sum(restarts[-1]) == 1
    hit = next(i for i, r in enumerate(restarts) if sum(r) == 1)
    runner = restarts[hit].index(1)
    cols = slice(2 * runner, 2 * runner + 2)
    _, starts, states = seen[hit]
    assert bool(starts[cols].all())  # the rollout collected again starts new episodes in the restarted runner
    initial = agent.policy.initial_state(4, "cpu")
    assert all(torch.equal(states[k][cols], initial[k][cols]) for k in states)
    other = slice(2 * (1 - runner), 2 * (1 - runner) + 2)
    assert hit >= 1 and not bool(starts[other].any())  # the other runner's episodes (5 steps) run on across rollouts
    assert agent.num_timesteps == 4 * 64


@pytest.mark.slow  # ~50 s on a loaded 2-core machine (new runner processes at load); the local twin runs in CI
def test_a_ray_run_resumed_from_a_checkpoint_equals_an_uninterrupted_in_process_run(tmp_path):
    from tracerl import TraceRL

    # two in-process runners act in the same 2 x 2 row blocks as two Ray runners, so the weights match bit for bit
    # (one runner with all 4 envs rounds differently: helpers.matching_weights)
    uninterrupted = small_agent(runners=2, runner_backend="local").learn(4 * 64)
    first = small_agent(runners=2, **RAY).learn(2 * 64)
    first.save(tmp_path / "a.tracerl")
    del first
    resumed = TraceRL.load(tmp_path / "a.tracerl", env="tracerl/CueDelay-v0", verbose=0)
    assert resumed.collector.backend == "ray"
    resumed.learn(2 * 64, reset_num_timesteps=False)
    assert same_weights(uninterrupted, resumed)
