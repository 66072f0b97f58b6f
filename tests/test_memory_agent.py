"""TraceRL's memory-agent options (seed 001): retention, RND, reward normalization, aux modules, HER errors."""

from __future__ import annotations

import pytest
import torch

from tracerl import (
    ConfidenceAuxModule,
    CueAuxModule,
    StrategicMemoryBuffer,
    StrategicMemoryTransformerPolicy,
    TraceRL,
)
from tracerl.errors import CheckpointError, ConfigError
from tracerl.agent import CHECKPOINT_KIND
from tracerl.io.checkpoint import load_checkpoint, save_checkpoint

CUE = "tracerl/CueDelay-v0"


def _strategic(**kw) -> TraceRL:
    torch.manual_seed(0)  # the memory object is built before TraceRL seeds torch
    mem = StrategicMemoryBuffer(obs_dim=3, action_dim=1, mem_dim=8, max_entries=4)
    kw.setdefault("env_kwargs", {"delay": 6, "difficulty": 1})
    return TraceRL(StrategicMemoryTransformerPolicy, CUE, memory=mem, seed=0, verbose=0, n_envs=4, n_steps=16, **kw)


def test_her_with_an_on_policy_algorithm_says_where_her_is_supported():
    with pytest.raises(ConfigError, match="sac"):
        TraceRL(env=CUE, her=True, verbose=0)


def test_an_intrinsic_reward_needs_a_source():
    with pytest.raises(ConfigError, match="use_rnd"):
        TraceRL(env=CUE, intrinsic_expl=True, use_rnd=False, verbose=0)


def test_retention_options_on_a_memory_without_retention_are_an_error():
    with pytest.raises(ConfigError, match="memory_learn_retention"):
        TraceRL(env=CUE, memory="gru", memory_learn_retention=True, verbose=0)


@pytest.mark.parametrize("field, value", [("intrinsic_eta", -1.0), ("rnd_emb_dim", 0), ("rnd_lr", 0.0),
                                          ("memory_retention_coef", -0.5)])
def test_invalid_memory_agent_options_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TraceRL(env=CUE, verbose=0, **{field: value})


def test_aux_module_width_must_match_the_memory():
    with pytest.raises(ConfigError, match="feat_dim"):
        _strategic(aux_modules=[CueAuxModule(feat_dim=5, n_classes=2)])


def test_retention_options_reach_the_memory_and_exploration_follows_training_progress():
    agent = _strategic(memory_learn_retention=False, memory_retention_coef=0.5)
    core = agent.policy.core
    assert core.learn_retention is False and core.retention_coef == 0.5
    agent.learn(64)
    assert core.retention_explore == 1.0  # without learning: reservoir sampling


def test_logs_hold_the_seed_001_keys(tmp_path):
    agent = _strategic(use_rnd=True, intrinsic_expl=True, memory_learn_retention=True,
                       aux_modules=[CueAuxModule(16, 2), ConfidenceAuxModule(16)], tensorboard_log=str(tmp_path))
    agent.learn(128)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in ("rollout/aux_loss_mean", "rnd_net_dist/mean_rnd_bonus", "memory/usefulness_loss",
                "rollout/ep_rew_mean", "train/value_loss"):
        assert key in header, key


def test_strategic_agent_with_every_option_saves_and_loads_exactly(tmp_path):
    agent = _strategic(use_rnd=True, intrinsic_expl=True, reward_norm=True,
                       aux_modules=[CueAuxModule(16, 2), ConfidenceAuxModule(16)])
    agent.learn(128)
    path = tmp_path / "a.tracerl"
    agent.save(path)
    loaded = TraceRL.load(path, verbose=0)
    assert type(loaded.policy) is StrategicMemoryTransformerPolicy
    assert [type(m) for m in loaded.aux_modules] == [CueAuxModule, ConfidenceAuxModule]
    for name, value in agent.reward_normalizer.state_dict().items():
        assert torch.equal(loaded.reward_normalizer.state_dict()[name], value), name
    for name, value in agent.rnd.state_dict().items():
        assert torch.equal(loaded.rnd.state_dict()[name], value), name
    for name, value in agent.policy.state_dict().items():
        assert torch.equal(loaded.policy.state_dict()[name], value), name
    obs = torch.tensor([[1.0, 1.0, 0.0]]).numpy()
    a1, s1 = agent.predict(obs, deterministic=True)
    a2, s2 = loaded.predict(obs, deterministic=True)
    assert (a1 == a2).all()


def test_reward_normalization_scales_what_ppo_sees_but_not_the_logged_returns():
    agent = TraceRL(env=CUE, env_kwargs={"delay": 3, "difficulty": 1}, reward_norm=True, seed=0, verbose=0,
                    n_envs=4, n_steps=12)
    agent.learn(48)
    assert float(agent.reward_normalizer.rms.count) > 40
    assert set(agent.collector.stats.returns) <= {-1.0, 1.0}


def test_the_default_ppo_agent_scales_rewards_by_the_return_std():
    agent = TraceRL(env=CUE, env_kwargs={"delay": 3, "difficulty": 1}, seed=0, verbose=0, n_envs=4, n_steps=12)
    assert agent.learner.explore.reward_norm is True
    agent.learn(48)
    assert float(agent.reward_normalizer.rms.count) > 40


def test_reward_normalization_can_be_switched_off():
    agent = TraceRL(env=CUE, env_kwargs={"delay": 3, "difficulty": 1}, reward_norm=False, seed=0, verbose=0,
                    n_envs=4, n_steps=12)
    assert agent.reward_normalizer is None


def test_a_vector_env_of_another_width_keeps_the_reward_statistics():
    import gymnasium as gym

    agent = TraceRL(env=CUE, env_kwargs={"delay": 3, "difficulty": 1}, seed=0, verbose=0, n_envs=4, n_steps=12)
    agent.learn(48)
    count = float(agent.reward_normalizer.rms.count)
    wider = gym.make_vec(CUE, num_envs=6, vectorization_mode="sync", delay=3, difficulty=1,
                         vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    agent.set_env(wider)
    agent.learn(72, reset_num_timesteps=False)
    assert agent.reward_normalizer.ret.shape == (6,)
    assert float(agent.reward_normalizer.rms.count) > count


def _aux_losses(module_factory, steps: int = 6144) -> list[float]:
    losses: list[float] = []
    agent = TraceRL(env=CUE, env_kwargs={"delay": 4, "difficulty": 1}, memory="gru", hidden_size=16, seed=0,
                    verbose=0, n_envs=8, n_steps=32, learning_rate=3e-3, aux_modules=[module_factory(16)])
    agent.learn(steps, callback=lambda a, st: losses.append(st["aux_loss"]))
    return losses


@pytest.mark.parametrize("factory", [lambda f: CueAuxModule(f, n_classes=2, coef=1.0),
                                     lambda f: ConfidenceAuxModule(f, coef=1.0)], ids=["cue", "confidence"])
def test_each_aux_module_loss_falls_where_its_target_is_learnable(factory):
    losses = _aux_losses(factory)
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.6 * first, (first, last)


def test_save_load_resume_with_every_option_equals_an_uninterrupted_run(tmp_path):
    """Reward normalization, RND (networks, statistics, optimizer), aux modules and the strategic memory's
    exploration all continue exactly: 2 + 2 rollouts with a save/load in between == 4 rollouts."""
    opts = dict(use_rnd=True, intrinsic_expl=True, reward_norm=True, memory_learn_retention=True,
                aux_modules=None)

    def make():
        return _strategic(**opts, aux=("cue", "confidence"))

    straight = make()
    straight.learn(256)
    first = make()
    first.learn(256, callback=lambda agent, stats: agent.num_timesteps < 128)  # stopped halfway (same schedule)
    first.save(tmp_path / "half.tracerl")
    resumed = TraceRL.load(tmp_path / "half.tracerl", env=CUE, verbose=0)
    resumed.learn(128, reset_num_timesteps=False)
    for name, value in straight.policy.state_dict().items():
        assert torch.equal(resumed.policy.state_dict()[name], value), name
    for name, value in straight.rnd.state_dict().items():
        assert torch.equal(resumed.rnd.state_dict()[name], value), name
    for name, value in straight.reward_normalizer.state_dict().items():
        assert torch.equal(resumed.reward_normalizer.state_dict()[name], value), name


def test_the_hindsight_replay_travels_in_checkpoints_and_a_malformed_one_names_the_file(tmp_path):
    agent = _strategic(memory_learn_retention=True)
    agent.learn(128)
    held = agent.policy.core.hindsight_replay
    assert len(held) > 0
    agent.save(tmp_path / "a.tracerl")
    loaded = TraceRL.load(tmp_path / "a.tracerl", env=CUE, verbose=0)
    got = loaded.policy.core.hindsight_replay
    assert len(got) == len(held)
    assert all(torch.equal(a, b) for x, y in zip(held.items, got.items) for a, b in zip(x, y))

    tensors, meta = load_checkpoint(tmp_path / "a.tracerl")
    name = next(k for k in tensors if k.endswith("_extra_state"))
    tensors[name] = tensors[name][:-1]  # one value short: the last item is cut
    save_checkpoint(tmp_path / "bad.tracerl", tensors, meta, kind=CHECKPOINT_KIND)
    with pytest.raises(CheckpointError, match="bad.tracerl"):
        TraceRL.load(tmp_path / "bad.tracerl", env=CUE, verbose=0)
