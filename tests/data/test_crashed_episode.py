"""An episode that ends in an env crash (ResilientVectorEnv restart) is dropped: valid = 0 on its steps in the
rollout, no bootstrap, GAE does not cross it, PPO's loss ignores it, EpisodeStats never records it."""

from __future__ import annotations

import copy
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "envs"))
from test_resilient import Counter, Faulty  # noqa: E402

from tracerl import TraceRL  # noqa: E402
from tracerl.data.rollout import RolloutBuffer  # noqa: E402
from tracerl.envs.resilient import ResilientVectorEnv  # noqa: E402


def _update(agent, buf, policy_state, optim_state):
    """One PPO update of a copy of ``buf`` from the given parameters and optimizer moments; the new parameters."""
    agent.policy.load_state_dict(policy_state)
    agent.ppo.optimizer.load_state_dict(optim_state)
    gen = torch.Generator()
    gen.manual_seed(0)
    agent.ppo.update(buf, gen)
    return [p.detach().clone() for p in agent.policy.parameters()]


@pytest.mark.faults("Sub-env raises mid-episode during PPO collection | its episode's steps in the rollout get "
                    "valid=0 (multiplied into every loss mask), no bootstrap, GAE cut there, not logged in episode "
                    "returns; the update is unchanged by whatever rewards those steps carry | that episode's steps "
                    "in the current rollout (steps of it from an earlier rollout were already trained on)")
def test_a_crashed_episode_is_masked_out_of_the_loss(tmp_path):
    # sub-env 1's first instance raises at its lifetime step 8, i.e. rollout step t=7, in its second episode (t=5..)
    env = ResilientVectorEnv([Counter, partial(Faulty, "raise", 8, str(tmp_path / "m"))], max_restarts=1)
    agent = TraceRL(env=env, memory="gru", seed=0, verbose=0, n_steps=12, bptt_len=4, batch_size=-1, n_epochs=2,
                    hidden_size=8, normalize_advantage=True)
    collector = agent._ensure_collector()
    buf = RolloutBuffer.allocate(agent.policy, 12, 2, agent.config.chunk_len, agent.device)
    collector.collect(buf)
    assert env.restarts.tolist() == [0, 1]
    assert buf.valid[:, 0].tolist() == [1.0] * 12
    assert buf.valid[:, 1].tolist() == [1.0] * 5 + [0.0] * 3 + [1.0] * 4
    assert bool(buf.done[7, 1]) and bool(buf.episode_start[8, 1])
    # Only whole episodes are logged: env 0 ends two (t=4, 9), env 1 one (t=4); the crashed one never appears.
    assert collector.stats.episodes == 3 and list(collector.stats.lengths) == [5, 5, 5]
    assert list(collector.stats.returns) == [15.0, 15.0, 15.0]
    agent.ppo.compute_advantages(buf)
    seqs = agent.ppo._sequences(buf)
    assert int(seqs["mask"].sum()) == 24 - 3
    # GAE does not leak from the crashed episode into the one before it (ended at t=4).
    before = buf.advantage[:5, 1].clone()

    policy_state = copy.deepcopy(agent.policy.state_dict())
    optim_state = copy.deepcopy(agent.ppo.optimizer.state_dict())
    reference = _update(agent, copy.deepcopy(buf), policy_state, optim_state)

    poisoned = copy.deepcopy(buf)  # huge rewards on the crashed steps: the update must not change
    poisoned.reward[5:8, 1] += 1000.0
    poisoned.env_reward[5:8, 1] += 1000.0
    agent.ppo.compute_advantages(poisoned)
    torch.testing.assert_close(poisoned.advantage[:5, 1], before, rtol=0, atol=0)
    assert all(torch.equal(a, b) for a, b in zip(reference, _update(agent, poisoned, policy_state, optim_state)))

    control = copy.deepcopy(buf)  # the same change on a valid step does change it (the check can fail)
    control.reward[2, 1] += 1000.0
    assert not all(torch.equal(a, b) for a, b in zip(reference, _update(agent, control, policy_state, optim_state)))

    collector.collect(buf)  # the next rollout starts clean: valid is reset
    assert bool(buf.valid.all())


@pytest.mark.faults("Every sub-env crashes every few steps during learn() (env_max_restarts=8) | training goes on; "
                    "each crash rebuilds the env and drops the episode; only whole episodes are logged | the "
                    "crashed episodes")
def test_training_continues_through_repeated_crashes():
    agent = TraceRL(env=partial(Faulty, "raise", 7), memory="gru", seed=0, verbose=0, n_envs=2, n_steps=12,
                    batch_size=-1, n_epochs=2, hidden_size=8, env_max_restarts=8)
    agent.learn(2 * 2 * 12)
    env = agent.env
    assert isinstance(env, ResilientVectorEnv)
    assert env.restarts.tolist() == [3, 3]  # 24 steps each: crashes at its steps 7, 14, 21
    assert agent.ppo.n_updates == 2 * 2
    assert all(bool(torch.isfinite(p).all()) for p in agent.policy.parameters())
    stats = agent.collector.stats
    assert list(stats.lengths) == [5] * stats.episodes and stats.episodes == 6  # the 2-step crashed pieces: never


# -- the off-policy collector (SAC / TD3 / R2D2 / DRQN): issue 17 item 5c ------------------------------------------
def _r2d2(env, **kw):
    small = dict(n_envs=2, hidden_size=8, seq_len=2, burn_in=0, batch_size=4, buffer_size=200, learning_starts=10**6)
    return TraceRL(env=env, algo="r2d2", memory="gru", seed=0, verbose=0, **{**small, **kw})


@pytest.mark.faults("Sub-env raises mid-episode during off-policy collection | the crashed step is not stored as a "
                    "step: its row becomes the episode's final row (truncation at the last real observation, no "
                    "action or reward), the next row starts a new episode, no replayed window crosses the restart, "
                    "the crashed episode is not logged | the crashed step (the env's reply to it never came)")
def test_an_off_policy_episode_cut_by_a_crash_ends_at_its_last_real_observation(tmp_path):
    # sub-env 1's first instance raises at its lifetime step 8: step t=2 of its second episode (obs 0, 1, 2)
    env = ResilientVectorEnv([Counter, partial(Faulty, "raise", 8, str(tmp_path / "m"))], max_restarts=1)
    agent = _r2d2(env)
    agent.learn(2 * 12)
    assert env.restarts.tolist() == [0, 1]
    replay = agent.replay
    rows = np.arange(replay.pos[1])
    obs, has_action, episode = replay.obs[1, rows, 0], replay.has_action[1, rows], replay.episode[1, rows]
    # episode 1: obs 0..4 then its final row (obs 5); episode 2: obs 0, 1 and the crashed step's row, now a final
    # row holding obs 2 (the last observation the env gave) without an action; episode 3 starts at the restart
    assert obs[:6].tolist() == [0, 1, 2, 3, 4, 5] and has_action[:6].tolist() == [True] * 5 + [False]
    assert obs[6:9].tolist() == [0, 1, 2] and has_action[6:9].tolist() == [True, True, False]
    assert not replay.terminal[1, 8] and replay.reward[1, 8] == 0.0 and replay.end_row[1, 6] == 8
    assert len(set(episode[6:9].tolist())) == 1 and episode[9] != episode[8] and obs[9] == 0.0
    assert replay.weight[1, 8] == 0.0  # the final row never starts a window
    # windows never cross the restart, and no window trains on the crashed step
    for _ in range(20):
        batch = replay.sample(16)
        for n in np.flatnonzero(batch.index[:, 0] == 1):
            ep = replay.episode[1, batch.index[n, 1]]
            assert (replay.episode[1, (batch.index[n, 1] + np.flatnonzero(batch.valid[:, n].numpy())
                                       - batch.burn_in) % replay.C] == ep).all()
        assert not bool((batch.train & ~batch.has_action).any())
    # only whole episodes are logged: sub-env 0 ends 2 (t=4, 9), sub-env 1 one before the crash
    assert list(agent.collector.stats.lengths) == [5, 5, 5]


@pytest.mark.faults("Every sub-env of an off-policy agent crashes every few steps during learn() (env_max_restarts=8) "
                    "| training goes on, each crash rebuilds the env; only whole episodes are logged | the crashed "
                    "steps")
@pytest.mark.parametrize("algo", ["r2d2", "sac"])
def test_off_policy_training_continues_through_repeated_crashes(algo):
    env = partial(Faulty if algo == "r2d2" else _BoxFaulty, "raise", 7)
    agent = TraceRL(env=env, algo=algo, memory="gru", seed=0, verbose=0, n_envs=2, hidden_size=8, seq_len=2,
                    batch_size=4, buffer_size=200, learning_starts=4, env_max_restarts=8)
    agent.learn(2 * 24)
    assert isinstance(agent.env, ResilientVectorEnv)
    assert agent.env.restarts.tolist() == [3, 3]  # 24 steps each: crashes at its steps 7, 14, 21
    assert agent.algorithm.n_updates > 0
    assert all(bool(torch.isfinite(p).all()) for m in agent.learner.modules().values() for p in m.parameters())
    stats = agent.collector.stats
    assert list(stats.lengths) == [5] * stats.episodes and stats.episodes == 6


@pytest.mark.faults("Subprocess sub-env of an off-policy agent hangs in step past env_step_timeout | killed, rebuilt "
                    "and treated as a crash; training goes on | the hung step")
def test_a_hanging_off_policy_env_is_killed_and_restarted(tmp_path):
    agent = _r2d2(partial(Faulty, "hang", 3, str(tmp_path / "hang")), n_envs=1, buffer_size=100,
                  env_max_restarts=1, env_subprocess=True, env_step_timeout=1.0)
    try:
        agent.learn(8)
        assert agent.env.restarts.tolist() == [1]
        assert agent.replay.obs[0, :3, 0].tolist() == [0, 1, 2] and agent.replay.has_action[0, :3].tolist() == [
            True, True, False]
    finally:
        agent.env.close()


class _BoxFaulty(Faulty):
    """Faulty with a Box action space (SAC / TD3)."""

    action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
