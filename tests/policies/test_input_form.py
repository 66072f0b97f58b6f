"""A core chooses what it reads (``MemoryCore.input_form``): the strategic memory declares raw steps, so
``memory="strategic"`` builds seed 001's raw-step network for every algorithm with no policy class or CLI case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracerl import StrategicMemoryBuffer, StrategicMemoryTransformerPolicy, TraceRL
from tracerl.bench.agents import core_settings
from tracerl.evaluation import evaluate

CUE = {"delay": 3, "difficulty": 1}
SMALL = {"mem_dim": 8, "max_entries": 4, "n_heads": 2}


def _ppo(**kw):
    return TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, seed=0, verbose=0, n_envs=2, n_steps=8, batch_size=16,
                   n_epochs=1, memory_kwargs=SMALL, memory_learn_retention=True, **kw)


def _same_params(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_memory_strategic_by_name_builds_and_trains_seed_001s_raw_step_network():
    by_name = _ppo(memory="strategic")
    by_class = _ppo(policy_class=StrategicMemoryTransformerPolicy, memory="strategic")
    assert by_name.policy.core.input_dim == 3 + 1 + 1  # observation, previous action (Discrete(2): index), reward
    assert by_name.policy.core.hindsight
    _same_params(by_name.policy, by_class.policy)
    by_name.learn(32)
    by_class.learn(32)
    _same_params(by_name.policy, by_class.policy)
    assert "policy_class" not in core_settings("strategic", {"delay": 8})  # the bench needs no policy class either


def test_a_strategic_memory_object_is_fed_raw_steps_without_a_policy_class():
    torch.manual_seed(0)
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, memory=StrategicMemoryBuffer(3, 1, **SMALL), verbose=0)
    assert isinstance(agent.policy.project, torch.nn.Identity)
    assert agent.policy_config.use_prev_action and agent.policy_config.use_prev_reward
    assert agent.policy_config.encoder_hidden == ()


def test_a_raw_step_agent_asks_predict_and_evaluate_for_the_previous_reward():
    agent = _ppo(memory="strategic")
    assert agent.policy_config.use_prev_reward  # the settings the network uses, not only those passed
    obs = np.zeros((1, 3), dtype=np.float32)
    _, state = agent.predict(obs)
    with pytest.raises(ValueError, match="prev_reward"):
        agent.predict(obs, state, episode_start=[False])
    rewards = []
    predict = agent.predict

    def spy(*args, **kwargs):
        rewards.append(kwargs.get("prev_reward"))
        return predict(*args, **kwargs)

    agent.predict = spy  # type: ignore[method-assign]
    evaluate(agent, "tracerl/CueDelay-v0", n_episodes=2, env_kwargs=CUE)
    assert rewards and all(r is not None for r in rewards)


@pytest.mark.parametrize("algo,env,kw,act_width", [
    ("r2d2", "tracerl/CueDelay-v0", CUE, 1),
    ("sac", "tracerl/CountWindow-v0", {"horizon": 3, "episode_length": 12}, None),
])
def test_off_policy_networks_feed_the_strategic_memory_raw_steps(tmp_path, algo, env, kw, act_width):
    extra = {} if algo == "r2d2" else {"memory_kwargs": {**SMALL, "learn_retention": False}}
    agent = TraceRL(env=env, env_kwargs=kw, algo=algo, memory="strategic", seed=0, verbose=0, n_envs=2,
                    learning_starts=16, buffer_size=400, seq_len=3, burn_in=2, state_stride=1, batch_size=3,
                    **({"memory_kwargs": SMALL} if algo == "r2d2" else extra))
    obs_dim = agent.learner.obs_dim
    for name, torso in agent.algorithm.torsos().items():
        width = act_width if act_width is not None else torso.codec.feat_dim
        assert isinstance(torso.encoder.net, torch.nn.Identity) and not torso.encoder.cnns, name  # no encoder layer
        assert torso.core.input_dim == obs_dim + width + 1, name
        assert isinstance(torso.project, torch.nn.Identity), name
    agent.learn(40)
    agent.save(tmp_path / "a.tracerl")
    loaded = TraceRL.load(tmp_path / "a.tracerl")
    for name, module in agent.algorithm.modules().items():
        _same_params(module, loaded.algorithm.modules()[name])


@pytest.mark.parametrize("algo", ["ppo", "r2d2"])
def test_a_checkpoint_written_before_cores_declared_their_input_loads_with_encoded_features(tmp_path, algo):
    """Before the strategic memory declared raw steps, memory="strategic" was fed encoded features; such a file
    (no ``core_input`` in its policy settings) still loads, into the network it describes."""
    from checkpoint_edit import read_raw, write_rehashed

    off = dict(learning_starts=10, buffer_size=400, seq_len=3, burn_in=2, state_stride=1) if algo == "r2d2" else {}
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, algo=algo, memory="strategic", core_input="features",
                    seed=0, verbose=0, n_envs=2, memory_kwargs=SMALL, hidden_size=8, **off)
    net = agent.policy
    assert not isinstance(net.encoder.net, torch.nn.Identity) and net.core.input_dim != 5  # encoded features
    agent.save(tmp_path / "new.tracerl")
    tensors, meta, kind = read_raw(tmp_path / "new.tracerl")
    del meta["policy"]["core_input"]
    write_rehashed(tmp_path / "old.tracerl", tensors, meta, kind)
    loaded = TraceRL.load(tmp_path / "old.tracerl")
    assert loaded.policy_config.core_input == "features"
    _same_params(loaded.policy, net)
