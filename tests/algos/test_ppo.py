"""Recurrent PPO: stored chunk states reproduce collection, truncation handling, validation, learning."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from helpers import ConstantRewardEnv
from tracerl import TraceRL
from tracerl.algos.ppo import PPOConfig
from tracerl.data.rollout import RolloutBuffer
from tracerl.errors import ConfigError, NonFiniteError
from tracerl.evaluation import evaluate


def _collect(memory: str, n_steps: int, bptt_len: int, **policy_kw):
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 3, "difficulty": 1}, memory=memory,
                    seed=0, verbose=0, n_envs=5, n_steps=n_steps, bptt_len=bptt_len, batch_size=-1,
                    hidden_size=16, **policy_kw)
    collector = agent._ensure_collector()
    buf = RolloutBuffer.allocate(agent.policy, n_steps, 5, agent.config.chunk_len, agent.device)
    collector.collect(buf)
    collector.collect(buf)  # the second rollout starts mid-episode, from a carried state
    agent.ppo.compute_advantages(buf)
    return agent, buf


@pytest.mark.parametrize("memory", ["gru", "lstm", "mlp"])
@pytest.mark.parametrize("n_steps,bptt_len", [(12, -1), (12, 4), (10, 4), (11, 1)])
@pytest.mark.parametrize("prev", [False, True])
def test_update_replays_the_rollout_exactly_from_stored_chunk_states(memory, n_steps, bptt_len, prev):
    """Before any optimizer step, re-running every BPTT chunk from its stored start state reproduces the
    log-probabilities and values computed while acting (so the PPO ratio starts at exactly 1)."""
    agent, buf = _collect(memory, n_steps, bptt_len, use_prev_action=prev, use_prev_reward=prev)
    seqs = agent.ppo._sequences(buf)
    states = {k: v.reshape(-1, *v.shape[2:]) for k, v in buf.chunk_states.items()}
    with torch.no_grad():
        dist, values, _ = agent.policy(seqs["obs"], states, seqs["episode_start"], seqs["prev_action"],
                                       seqs["prev_reward"])
        logp = dist.log_prob(seqs["action"])
    mask = seqs["mask"].bool()
    torch.testing.assert_close(logp[mask], seqs["log_prob"][mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(values[mask], seqs["value"][mask], atol=1e-5, rtol=1e-5)
    assert int(mask.sum()) == n_steps * 5  # padding is masked, nothing else


def test_padding_never_enters_the_loss():
    agent, buf = _collect("gru", 10, 4)
    seqs = agent.ppo._sequences(buf)
    assert seqs["mask"].shape == (4, 3 * 5)
    assert seqs["mask"].sum() == 50
    # Padded steps are the last two steps of the third chunk of every env.
    assert seqs["mask"][2:, 10:].sum() == 0


def _value_after_training(bootstrap: bool) -> float:
    env = lambda: gym.wrappers.TimeLimit(ConstantRewardEnv(), max_episode_steps=10)  # noqa: E731
    agent = TraceRL(env=env, memory="mlp", seed=0, verbose=0, n_envs=4, n_steps=32, gamma=0.9, lam=0.95,
                    learning_rate=3e-3, n_epochs=4, batch_size=32, bootstrap_on_truncation=bootstrap,
                    reward_norm=False)  # V is checked in the env's own reward units
    agent.learn(12_000)
    obs = agent.policy.preprocess(np.zeros((1, 1, 2), dtype=np.float32))
    with torch.no_grad():
        _, v, _ = agent.policy(obs, agent.policy.initial_state(1), torch.ones(1, 1, dtype=torch.bool))
    return float(v)


def test_truncation_bootstraps_with_the_final_observation_value():
    """An infinite-horizon env cut by TimeLimit: V = 1/(1-gamma) = 10 only when truncation bootstraps."""
    with_handling = _value_after_training(True)
    without = _value_after_training(False)
    assert abs(with_handling - 10.0) < 1.0, with_handling
    assert abs(without - 10.0) > 1.0, without


@pytest.mark.parametrize(
    "field,value",
    [("n_steps", 0), ("n_envs", 0), ("bptt_len", 0), ("bptt_len", 65), ("batch_size", 3), ("n_epochs", 0),
     ("learning_rate", -1.0), ("learning_rate", float("nan")), ("gamma", 1.5), ("lam", -0.1),
     ("clip_range", 0.0), ("clip_range_vf", -1.0), ("ent_coef", -1.0), ("vf_coef", -0.5), ("target_kl", 0.0),
     ("nan_policy", "ignore"), ("max_consecutive_skips", 0),
     ("lr_schedule", "cosine")],
)
@pytest.mark.faults("18 invalid hyperparameters (sizes, bptt_len > n_steps, lr NaN, gamma > 1, nan_policy, ...) | ConfigError naming field, value and valid range, before training | none")
def test_invalid_hyperparameters_name_the_field(field, value):
    kwargs = {"bptt_len": 8} if field == "batch_size" else {}
    kwargs[field] = value
    with pytest.raises(ConfigError, match=field):
        PPOConfig(**kwargs).validate()


def _success(agent, delay: int) -> float:
    return evaluate(agent, "tracerl/CueDelay-v0", 200, env_kwargs={"delay": delay, "difficulty": 1}).success_rate


def test_ppo_gru_solves_cue_delay_8_while_the_memoryless_control_cannot():
    kw = dict(env="tracerl/CueDelay-v0", env_kwargs={"delay": 8, "difficulty": 1}, seed=0, verbose=0)
    gru = TraceRL(memory="gru", **kw).learn(40_000)
    mlp = TraceRL(memory="mlp", **kw).learn(40_000)
    assert _success(gru, 8) >= 0.95
    assert 0.35 <= _success(mlp, 8) <= 0.65


def test_a2c_configuration_learns_cue_delay():
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 4, "difficulty": 1}, memory="gru",
                    algo="a2c", seed=0, verbose=0)
    assert agent.config.n_epochs == 1 and agent.config.batch_size == -1
    agent.learn(40_000)
    assert _success(agent, 4) >= 0.95


def test_reinforce_configuration_learns_cue_delay():
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 4, "difficulty": 1}, memory="gru",
                    algo="reinforce", seed=0, verbose=0)
    assert not agent.config.use_critic
    agent.learn(40_000)
    assert _success(agent, 4) >= 0.95


@pytest.mark.faults("NaN loss in one minibatch | that update skipped, counted, warned; parameters stay finite; training goes on | one minibatch update")
def test_a_non_finite_loss_skips_that_update_and_training_goes_on():
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 4}, seed=0, verbose=0, n_envs=4, n_steps=16,
                    batch_size=16, n_epochs=1, hidden_size=8)
    original = agent.policy.critic.forward
    calls = {"n": 0}

    def poisoned(h):
        calls["n"] += 1
        out = original(h)
        # Calls 1-17 are the first rollout (16 steps + the last value); call 18 is its first minibatch update.
        return out * float("nan") if calls["n"] == 18 else out

    agent.policy.critic.forward = poisoned
    with pytest.warns(RuntimeWarning, match="skipped a PPO update"):
        agent.learn(64 * 3)
    assert agent.ppo.skipped_updates == 1
    assert agent.ppo.n_updates == 3 * 4 - 1
    for name, p in agent.policy.named_parameters():
        assert torch.isfinite(p).all(), name


@pytest.mark.faults("NaN parameters make every loss NaN | NonFiniteError after max_consecutive_skips; parameters unchanged by the skipped updates | none")
def test_repeated_non_finite_updates_stop_training_with_a_clear_error():
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 4}, seed=0, verbose=0, n_envs=4, n_steps=16,
                    batch_size=16, hidden_size=8, max_consecutive_skips=3)
    with torch.no_grad():
        for p in agent.policy.critic.parameters():
            p.fill_(float("nan"))
    before = {k: v.clone() for k, v in agent.policy.actor.state_dict().items()}
    with pytest.raises(NonFiniteError, match="3 PPO updates in a row skipped"), pytest.warns(RuntimeWarning):
        agent.learn(64)
    for k, v in agent.policy.actor.state_dict().items():
        assert torch.equal(v, before[k]), k  # skipped updates leave the parameters unchanged


@pytest.mark.parametrize("n_steps,bptt_len", [(12, -1), (12, 4), (11, 3)])
def test_update_replays_the_strategic_memory_entries_the_agent_held(n_steps, bptt_len):
    """With random (reservoir) evictions, the update re-runs each chunk with the recorded decisions: the
    log-probs match collection and each chunk ends in exactly the store the next chunk's record starts from."""
    from tracerl import StrategicMemoryBuffer, StrategicMemoryTransformerPolicy

    mem = StrategicMemoryBuffer(obs_dim=3, action_dim=1, mem_dim=8, max_entries=2, retention_explore_mode="reservoir")
    agent = TraceRL(StrategicMemoryTransformerPolicy, "tracerl/CueDelay-v0", memory=mem, seed=0, verbose=0,
                    env_kwargs={"delay": 8, "difficulty": 1}, n_envs=5, n_steps=n_steps, bptt_len=bptt_len,
                    batch_size=-1, memory_learn_retention=False)
    mem.set_training_progress(0.0)  # ε = 1: random evictions
    collector = agent._ensure_collector()
    buf = RolloutBuffer.allocate(agent.policy, n_steps, 5, agent.config.chunk_len, agent.device)
    collector.collect(buf)
    collector.collect(buf)
    agent.ppo.compute_advantages(buf)
    assert set(buf.replay) == {"write_slot", "keep_u", "explore_dir"}
    seqs = agent.ppo._sequences(buf)
    states = {k: v.reshape(-1, *v.shape[2:]) for k, v in buf.chunk_states.items()}
    replay = {k[len("replay/"):]: v for k, v in seqs.items() if k.startswith("replay/")}
    with torch.no_grad():
        out = agent.policy.forward_full(seqs["obs"], states, seqs["episode_start"], seqs["prev_action"],
                                        seqs["prev_reward"], replay=replay)
        free = agent.policy.forward_full(seqs["obs"], states, seqs["episode_start"], seqs["prev_action"],
                                         seqs["prev_reward"])
    mask = seqs["mask"].bool()
    torch.testing.assert_close(out.dist.log_prob(seqs["action"])[mask], seqs["log_prob"][mask], atol=1e-5, rtol=1e-5)
    C = buf.chunk_states["entries"].shape[0]
    if C > 1 and n_steps % agent.config.chunk_len == 0:
        # chunk c's final store == the record at chunk c + 1's start, with that step's episode starts applied (the
        # carry's stored-state convention: a chunk that begins an episode begins from the initial state)
        L = agent.config.chunk_len
        starts = buf.episode_start[L::L]  # [C - 1, B]
        assert bool(starts.any())
        end = {k: out.state[k].view(C, 5, *v.shape[2:])[:-1].reshape(-1, *v.shape[2:])
               for k, v in buf.chunk_states.items()}
        end = agent.policy.core.reset_where(end, starts.reshape(-1))
        for k, v in buf.chunk_states.items():
            torch.testing.assert_close(end[k].view(C - 1, 5, *v.shape[2:]), v[1:])
    assert not torch.equal(free.trace["entry_time"], out.trace["entry_time"])  # replay is what made them equal
