"""One agent for every algorithm (issue 17 item 1): ``TraceRL(algo=a)`` is a ``TraceRL`` whose learner the
registry names, and predict, save, load, resume, inspect and evaluate go through the same code for all of them."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from tracerl import TraceRL
from tracerl.algos.learner import Learner
from tracerl.algos.registry import available_algos, get_algo
from tracerl.evaluation import evaluate

CUE, CUE_KW = "tracerl/CueDelay-v0", {"delay": 3, "difficulty": 1}
CW, CW_KW = "tracerl/CountWindow-v0", {"horizon": 3, "episode_length": 12}
SRC = Path(__file__).resolve().parents[1] / "src" / "tracerl"


def _env_of(algo: str) -> tuple[str, dict]:
    """A task whose action space the algorithm acts in (SAC and TD3: Box; the others: Discrete)."""
    return (CW, CW_KW) if algo in ("sac", "td3") else (CUE, CUE_KW)


def _small(algo: str) -> dict:
    if get_algo(algo).kind == "on_policy":
        return dict(n_envs=2, n_steps=16, hidden_size=8)
    return dict(n_envs=2, hidden_size=8, seq_len=4, burn_in=2, learning_starts=16, buffer_size=400, batch_size=4)


def _agent(algo: str, **kw) -> TraceRL:
    env, env_kwargs = _env_of(algo)
    return TraceRL(env=env, env_kwargs=env_kwargs, algo=algo, seed=0, verbose=0, **_small(algo), **kw)


@pytest.mark.parametrize("algo", available_algos())
def test_every_registered_algorithm_builds_a_traceRL_with_its_registered_learner(algo):
    agent = _agent(algo)
    assert type(agent) is TraceRL
    assert isinstance(agent.learner, get_algo(algo).learner_class) and isinstance(agent.learner, Learner)
    assert isinstance(agent.config, get_algo(algo).config_class)


@pytest.mark.parametrize("algo", available_algos())
def test_predict_save_load_resume_and_evaluate_work_the_same_way_for_every_algorithm(algo, tmp_path):
    env, env_kwargs = _env_of(algo)
    agent = _agent(algo).learn(64)
    obs = np.zeros((2, *agent.observation_space.shape), np.float32)
    a1, s1 = agent.predict(obs, deterministic=True)
    agent.save(tmp_path / "a.tracerl")
    loaded = TraceRL.load(tmp_path / "a.tracerl")
    assert type(loaded) is TraceRL and loaded.algo == algo
    a2, s2 = loaded.predict(obs, deterministic=True)
    assert np.array_equal(a1, a2) and s1.keys() == s2.keys()
    b1, _ = agent.predict(obs, s1, np.zeros(2, bool), deterministic=True, prev_reward=np.zeros(2))
    b2, _ = loaded.predict(obs, s2, np.zeros(2, bool), deterministic=True, prev_reward=np.zeros(2))
    assert np.array_equal(b1, b2)
    with pytest.raises(ValueError, match="episode_start"):
        loaded.predict(obs, s2)
    resumed = TraceRL.load(tmp_path / "a.tracerl", env=env, verbose=0)
    resumed.learn(64, reset_num_timesteps=False)
    assert resumed.num_timesteps >= 128
    res = evaluate(resumed, env, 2, env_kwargs=env_kwargs)
    assert len(res.returns) == 2


@pytest.mark.parametrize("algo", available_algos())
def test_inspect_records_the_acting_memory_for_every_algorithm(algo, tmp_path):
    agent = _agent(algo, memory="transformer", memory_kwargs={"window": 4}).learn(64)
    report = agent.inspect(episodes=2, out=tmp_path / "insp")
    assert len(report.episodes) == 2
    steps = report.episodes[0]["steps"]
    assert steps and {"action", "reward"} <= steps[0].keys()
    assert any(k not in ("action", "reward") for k in steps[0])  # the transformer's attention trace
    assert (tmp_path / "insp" / "inspection.json").is_file()


@pytest.mark.parametrize("algo", ["r2d2", "sac"])
def test_tracerl_inspect_on_an_off_policy_checkpoint_writes_the_report(algo, tmp_path, capsys):
    """It died with AttributeError ('OffPolicyAgent' object has no attribute 'inspect')."""
    from tracerl.cli import main

    _agent(algo).learn(32).save(tmp_path / "a.tracerl")
    assert main(["inspect", str(tmp_path / "a.tracerl"), "--episodes", "4", "--out", str(tmp_path / "insp")]) == 0
    assert (tmp_path / "insp" / "inspection.json").is_file()
    assert "wrote json" in capsys.readouterr().out


def test_predict_and_inspect_leave_the_training_stream_alone_for_off_policy_agents():
    straight = _agent("r2d2").learn(64)
    watched = _agent("r2d2").learn(32)
    watched.predict(np.zeros((2, 3), np.float32))
    watched.inspect(episodes=2)
    watched.learn(32, reset_num_timesteps=False)
    for name, module in straight.learner.modules().items():
        other = watched.learner.modules()[name].state_dict()
        for k, v in module.state_dict().items():
            assert torch.equal(v, other[k]), f"{name}.{k}"


def test_algorithm_specific_attributes_are_the_learners_and_others_raise_attribute_error():
    agent = _agent("ppo")
    assert agent.ppo is agent.learner.ppo and agent.minibatch_generator is agent.learner.minibatch_generator
    with pytest.raises(AttributeError, match="replay"):
        agent.replay  # noqa: B018 (an off-policy component)


def _imports(path: Path) -> set[str]:
    """Modules ``path`` imports, resolved to absolute ``tracerl.`` names."""
    package = ".".join(("tracerl",) + path.relative_to(SRC).parent.parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            out.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_no_algorithm_module_imports_the_agent():
    """The agent depends on the learners, never the other way round (no agent <-> algorithm import cycle)."""
    offenders = [p.name for p in (SRC / "algos").glob("*.py") if "tracerl.agent" in _imports(p)]
    assert offenders == []
    assert not (SRC / "algos" / "offpolicy_agent.py").exists()
