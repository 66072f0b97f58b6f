"""Issue 17 item 5b and item 8: the agent options (reward normalization, RND / intrinsic reward, retention knobs,
env settings) for SAC, TD3, R2D2 and DRQN, a ConfigError saying why where one does not apply (auxiliary losses,
env runners, the episodic-control learners), and the option configs split by owner."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tracerl import TraceRL
from tracerl.agent_config import EnvConfig, ExploreConfig, MemoryAgentConfig, RetentionConfig
from tracerl.errors import ConfigError

CUE, CUE_KW = "tracerl/CueDelay-v0", {"delay": 3, "difficulty": 1}
CW, CW_KW = "tracerl/CountWindow-v0", {"horizon": 3, "episode_length": 8}
SMALL = dict(n_envs=2, hidden_size=8, seq_len=4, burn_in=0, learning_starts=16, buffer_size=400, batch_size=8)


def _agent(algo: str, **kw) -> TraceRL:
    env, env_kwargs = (CW, CW_KW) if algo in ("sac", "td3") else (CUE, CUE_KW)
    return TraceRL(env=env, env_kwargs=env_kwargs, algo=algo, seed=0, verbose=0, **{**SMALL, **kw})


@pytest.mark.parametrize("algo", ["sac", "td3", "r2d2", "drqn"])
def test_reward_norm_scales_the_replayed_rewards_by_the_running_return_std(algo, tmp_path):
    agent = _agent(algo, reward_norm=True).learn(64)
    norm = agent.learner.reward_normalizer
    assert norm is not None and float(norm.rms.count) > 16  # it followed every collected step
    std = float(norm.rms.std)
    batch = agent.replay.sample(16)
    raw = batch.reward.clone()
    agent.learner._scale_rewards(batch)
    torch.testing.assert_close(batch.reward, (raw / std).clamp(-10, 10))
    assert abs(std - 1.0) > 1e-3  # the scaling is not the identity here (so the check above can fail)
    agent.save(tmp_path / "a.tracerl")
    loaded = TraceRL.load(tmp_path / "a.tracerl")
    for k, v in norm.state_dict().items():
        assert torch.equal(v, loaded.learner.reward_normalizer.state_dict()[k]), k


@pytest.mark.parametrize("algo", ["sac", "td3", "r2d2", "drqn"])
def test_rnd_adds_the_weighted_novelty_of_the_next_observation_to_replayed_rewards(algo, tmp_path):
    agent = _agent(algo, use_rnd=True, intrinsic_expl=True, intrinsic_eta=0.5)
    before = copy.deepcopy(agent.learner.rnd.predictor.state_dict())
    agent.learn(64)
    rnd = agent.learner.rnd
    assert {"rnd_loss", "mean_rnd_bonus"} <= agent.last_stats.keys()
    assert any(not torch.equal(v, rnd.predictor.state_dict()[k]) for k, v in before.items())  # the predictor trains
    batch = agent.replay.sample(16)
    raw = batch.reward.clone()
    with torch.no_grad():
        want = rnd.error(batch.obs[1:]) / rnd.int_rms.std.squeeze().float()
    agent.learner._scale_rewards(batch)
    added = batch.reward - raw
    steps = (batch.has_action & batch.valid.roll(-1, 0))[:-1]
    torch.testing.assert_close(added[:-1][steps], 0.5 * want[steps])
    assert bool((added[:-1][steps] > 0).all()) and bool((added[:-1][~steps] == 0).all())
    agent.save(tmp_path / "a.tracerl")
    loaded = TraceRL.load(tmp_path / "a.tracerl")
    for k, v in rnd.state_dict().items():
        assert torch.equal(v, loaded.learner.rnd.state_dict()[k]), k


def test_rnd_without_intrinsic_expl_trains_the_predictor_but_leaves_the_rewards_alone():
    agent = _agent("r2d2", use_rnd=True).learn(64)
    batch = agent.replay.sample(8)
    raw = batch.reward.clone()
    agent.learner._scale_rewards(batch)
    assert torch.equal(batch.reward, raw) and "rnd_loss" in agent.last_stats


def test_off_policy_defaults_keep_rewards_raw_and_no_rnd():
    agent = _agent("sac")
    assert agent.learner.reward_normalizer is None and agent.learner.rnd is None
    assert agent.learner.explore.reward_norm is False and agent.learner.env_config.env_vectorization == "sync"
    assert TraceRL(env=CUE, algo="ppo", seed=0, verbose=0).learner.explore.reward_norm is True


@pytest.mark.parametrize("algo", ["sac", "r2d2"])
def test_retention_knobs_set_every_network_memory_of_an_off_policy_agent(algo):
    """They raised TypeError off-policy (a PPO-only MemoryAgentConfig field)."""
    agent = _agent(algo, memory="strategic", memory_learn_retention=False, memory_retention_coef=0.5,
                   memory_kwargs={"mem_dim": 8, "max_entries": 4})
    cores = [m.core for m in agent.learner.algorithm.torsos().values()]
    assert cores and all(c.learn_retention is False and c.retention_coef == 0.5 for c in cores)
    with pytest.raises(ConfigError, match="memory_learn_retention=False: memory 'gru' has no retention"):
        _agent(algo, memory_learn_retention=False)


@pytest.mark.parametrize("algo", ["sac", "td3", "r2d2"])
def test_auxiliary_losses_off_policy_are_a_config_error_saying_why(algo):
    with pytest.raises(ConfigError, match=r"aux.*not supported by algo=.*replay does not store"):
        _agent(algo, aux=("cue",))


@pytest.mark.parametrize("field,value", [("reward_norm", True), ("use_rnd", True), ("env_max_restarts", 2)])
@pytest.mark.parametrize("algo", ["nec", "mfec"])
def test_the_episodic_control_learners_refuse_the_options_they_do_not_wire(algo, field, value):
    with pytest.raises(ConfigError, match=f"{field}={value!r} is not supported by algo='{algo}'"):
        TraceRL(env=CUE, env_kwargs=CUE_KW, algo=algo, seed=0, verbose=0, n_envs=2, **{field: value})


# -- item 8: the options split by owner -----------------------------------------------------------------------
@pytest.mark.parametrize("field,home", [("use_rnd", "ExploreConfig"), ("reward_norm", "ExploreConfig"),
                                        ("memory_learn_retention", "RetentionConfig"),
                                        ("env_max_restarts", "EnvConfig"), ("her", "OffPolicyConfig.her")])
def test_a_moved_field_given_to_memory_agent_config_names_its_new_home(field, home):
    with pytest.raises(ConfigError, match=f"{field} moved to .*{home}"):
        MemoryAgentConfig(**{field: True})


def test_each_option_lives_in_one_config():
    assert ExploreConfig(use_rnd=True).use_rnd and RetentionConfig(memory_retention_coef=0.1).memory_retention_coef
    assert EnvConfig(env_max_restarts=1).vec_env_options()["max_restarts"] == 1
    names = [set(c.__dataclass_fields__) for c in (ExploreConfig, RetentionConfig, EnvConfig, MemoryAgentConfig)]
    assert sum(len(n) for n in names) == len(set().union(*names))
    assert "her" in __import__("tracerl.algos.offpolicy", fromlist=["x"]).OffPolicyConfig.__dataclass_fields__


def test_old_keyword_arguments_keep_working_through_traceRL():
    agent = TraceRL(env=CUE, algo="ppo", seed=0, verbose=0, reward_norm=False, use_rnd=True, intrinsic_expl=True,
                    env_vectorization="sync", her=False, n_steps=8)
    assert agent.learner.explore.use_rnd and agent.learner.rnd is not None and agent.reward_normalizer is None
    with pytest.raises(ConfigError, match="her=True is not supported by the on-policy algorithms"):
        TraceRL(env=CUE, algo="ppo", seed=0, verbose=0, her=True)


def test_checkpoints_written_before_the_split_still_load(tmp_path):
    """Older PPO files hold every MemoryAgentConfig field (her included) in meta.extras; older off-policy files hold
    no extras and keep her in meta.her only, not in the config."""
    from checkpoint_edit import read_raw, write_rehashed

    ppo = TraceRL(env=CUE, algo="ppo", seed=0, verbose=0, n_steps=8, use_rnd=True)
    ppo.save(tmp_path / "p.tracerl")
    tensors, meta, kind = read_raw(tmp_path / "p.tracerl")
    assert "her" not in meta["extras"]
    meta["extras"]["her"] = False
    write_rehashed(tmp_path / "p.tracerl", tensors, meta, kind)
    assert TraceRL.load(tmp_path / "p.tracerl").learner.explore.use_rnd

    sac = _agent("sac", her=False).learn(32)
    sac.save(tmp_path / "s.tracerl")
    tensors, meta, kind = read_raw(tmp_path / "s.tracerl")
    del meta["extras"], meta["config"]["her"]
    write_rehashed(tmp_path / "s.tracerl", tensors, meta, kind)
    loaded = TraceRL.load(tmp_path / "s.tracerl", env=CW)
    assert loaded.config.her is False and loaded.learner.reward_normalizer is None
    a, _ = loaded.predict(np.zeros((2, *loaded.observation_space.shape), np.float32), deterministic=True)
    b, _ = sac.predict(np.zeros((2, *sac.observation_space.shape), np.float32), deterministic=True)
    assert np.array_equal(a, b)


def test_a_resumed_run_with_reward_norm_and_rnd_equals_an_uninterrupted_one(tmp_path):
    straight = _agent("r2d2", reward_norm=True, use_rnd=True, intrinsic_expl=True).learn(96)
    first = _agent("r2d2", reward_norm=True, use_rnd=True, intrinsic_expl=True).learn(48)
    first.save(tmp_path / "a.tracerl")
    resumed = TraceRL.load(tmp_path / "a.tracerl", env=CUE, verbose=0)
    resumed.learn(48, reset_num_timesteps=False)
    for name, module in straight.learner.modules().items():
        for k, v in module.state_dict().items():
            assert torch.equal(v, resumed.learner.modules()[name].state_dict()[k]), f"{name}.{k}"
    for part in ("rnd", "reward_normalizer"):
        for k, v in getattr(straight.learner, part).state_dict().items():
            assert torch.equal(v, getattr(resumed.learner, part).state_dict()[k]), f"{part}.{k}"
