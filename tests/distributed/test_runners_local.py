"""Env runners in this process (runner_backend='local'): the split does not change the run; bad setups refused."""

import pytest
import torch

from tracerl import TraceRL
from tracerl.envs import CueDelay
from tracerl.errors import ConfigError

from distributed.helpers import matching_weights, same_weights, small_agent


def test_two_local_runners_train_exactly_like_one_with_all_envs():
    one = small_agent(runners=1, runner_backend="local").learn(3 * 64)
    two = small_agent(runners=2, runner_backend="local").learn(3 * 64)
    assert matching_weights(one, two)
    assert list(one.collector.stats.returns) == list(two.collector.stats.returns)
    assert one.collector.stats.episodes == two.collector.stats.episodes > 0
    other_seed = small_agent(runners=1, runner_backend="local", seed=4).learn(3 * 64)
    assert not matching_weights(one, other_seed)


def test_runners_fill_every_column_of_the_rollout():
    agent = small_agent(runners=2, runner_backend="local").learn(64)
    buf = agent.learner.buf
    assert bool(buf.episode_start[0].all())  # the first step of every sub-env starts an episode
    assert bool((buf.log_prob < 0).all()) and bool((buf.value != 0).all())
    assert agent.collector.total_steps == 64 and agent.num_timesteps == 64


def test_with_runners_the_learner_process_builds_one_sub_env_only():
    agent = small_agent(runners=2, runner_backend="local")
    assert agent.env.num_envs == 1 and agent.config.n_envs == 4
    agent.learn(64)
    assert agent.learner.buf.n_envs == 4 and agent.config.n_envs == 4


def test_runners_follow_the_reward_normalizer_over_all_envs():
    on = small_agent(runners=2, runner_backend="local", reward_norm=True).learn(64)
    off = small_agent(runners=2, runner_backend="local", reward_norm=False).learn(64)
    assert torch.equal(on.learner.buf.env_reward, off.learner.buf.env_reward)  # same first rollout, raw rewards
    assert not torch.equal(on.learner.buf.reward, off.learner.buf.reward)
    assert torch.equal(off.learner.buf.reward, off.learner.buf.env_reward)  # CueDelay never truncates


@pytest.mark.faults("runners that do not divide n_envs, or with an off-policy algo, RND or Monte Carlo returns, or "
                    "an unknown backend | ConfigError naming the field and value, before anything runs | none")
@pytest.mark.parametrize("kwargs, match", [
    (dict(runners=3), "runners=3 does not divide n_envs=4"),
    (dict(runners=2, use_rnd=True), "use_rnd"),
    (dict(runners=2, algo="reinforce"), "monte_carlo"),
    (dict(runners=-1), "runners"),
    (dict(runners=2, runner_backend="threads"), "runner_backend"),
    (dict(runners=2, runner_num_cpus=0.0), "runner_num_cpus"),
])
def test_impossible_runner_setups_are_refused_by_name(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        small_agent(**kwargs)


@pytest.mark.faults("runners asked for an env object the runners cannot rebuild | ConfigError at learn() saying "
                    "what they need | none")
def test_runners_need_an_env_they_can_rebuild():
    import gymnasium as gym

    env = gym.vector.SyncVectorEnv([lambda: CueDelay(delay=2)] * 4,
                                   autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    agent = TraceRL(env=env, memory="gru", hidden_size=16, n_steps=16, runners=2, runner_backend="local", verbose=0)
    assert agent.env_id is None  # a vector env of lambdas records no recipe to rebuild it from
    with pytest.raises(ConfigError, match="rebuild"):
        agent.learn(64)


def test_the_log_shows_per_runner_env_steps_per_second(capsys):
    small_agent(runners=2, runner_backend="local", verbose=1).learn(64)
    out = capsys.readouterr().out
    assert "steps_per_s_0" in out and "steps_per_s_1" in out and "restarts" in out


def test_train_command_takes_the_runner_flags(tmp_path):
    from tracerl.cli import main

    out = tmp_path / "run"
    assert main(["train", "--env", "tracerl/CueDelay-v0", "--env-kwargs", "delay=2", "--steps", "128", "--seed", "0",
                 "--out", str(out), "--n-envs", "4", "--n-steps", "16", "--hidden-size", "16", "--no-progress",
                 "--verbose", "0", "--eval-episodes", "0", "--runners", "2", "--runner-backend", "local"]) == 0
    extras = TraceRL.load(out / "agent.tracerl").learner.extras
    assert extras.runners == 2 and extras.runner_backend == "local"
    csv = (out / "progress.csv").read_text()
    assert "runners/steps_per_s_1" in csv


def test_a_run_with_runners_resumed_from_a_checkpoint_equals_an_uninterrupted_one(tmp_path):
    uninterrupted = small_agent(runners=2, runner_backend="local").learn(256)
    first = small_agent(runners=2, runner_backend="local").learn(128)
    first.save(tmp_path / "a.tracerl")
    resumed = TraceRL.load(tmp_path / "a.tracerl", env="tracerl/CueDelay-v0", verbose=0)
    assert resumed.learner.extras.runners == 2 and resumed.collector.n_runners == 2
    resumed.learn(128, reset_num_timesteps=False)
    assert same_weights(uninterrupted, resumed)
    assert list(uninterrupted.collector.stats.returns) == list(resumed.collector.stats.returns)
    assert resumed.collector.total_steps == 256


@pytest.mark.faults("a checkpoint of a run with runners whose runner sampler state or env state was altered | "
                    "CheckpointError naming the file and the runner's entry | none (the load is refused)")
@pytest.mark.parametrize("edit, entry", [
    (lambda t, m: t.__setitem__("runners.1.sampler", t["runners.1.sampler"][:1]), "runners.1.sampler"),
    (lambda t, m: t.__setitem__("runners.0.carry.obs", t["runners.0.carry.obs"][:, :1]), "runners.0.carry.obs"),
    (lambda t, m: m["runners"]["per_runner"][1]["env_state"].pop(next(iter(m["runners"]["per_runner"][1][
        "env_state"]))), "env_state"),
])
def test_a_tampered_runner_checkpoint_is_refused_by_entry(tmp_path, edit, entry):
    from tracerl.errors import CheckpointError
    from tracerl.io.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "a.tracerl"
    small_agent(runners=2, runner_backend="local").learn(64).save(path)
    tensors, meta = load_checkpoint(path, kind="tracerl.TraceRL")
    edit(tensors, meta)
    save_checkpoint(path, tensors, meta, kind="tracerl.TraceRL")
    with pytest.raises(CheckpointError, match=entry):
        TraceRL.load(path, env="tracerl/CueDelay-v0", verbose=0)
