"""Inspection: per-step records, files, the linear probe, and what a trained strategic agent keeps."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch
import pytest

from tracerl import StrategicMemoryBuffer, StrategicMemoryTransformerPolicy, TraceRL
from tracerl.cli import main
from tracerl.errors import ConfigError
from tracerl.inspection import linear_probe

CUE = "tracerl/CueDelay-v0"


def _agent(delay: int = 6, **kw) -> TraceRL:
    torch.manual_seed(0)  # the memory object is built before TraceRL, from the global generator
    mem = StrategicMemoryBuffer(obs_dim=3, action_dim=1, mem_dim=16, max_entries=kw.pop("max_entries", 4))
    return TraceRL(StrategicMemoryTransformerPolicy, CUE, env_kwargs={"delay": delay, "difficulty": 1}, memory=mem,
                   seed=0, verbose=0, **kw)


def test_inspect_records_every_step_of_every_episode_and_writes_json_and_png(tmp_path):
    agent = _agent()
    report = agent.inspect(episodes=6, out=tmp_path)
    assert len(report.episodes) == 6
    for ep in report.episodes:
        assert len(ep["steps"]) == 6 and ep["label"] in (-1.0, 1.0)
        step = ep["steps"][-1]
        assert len(step["entry_time"]) == 4 and len(step["attention"]) == 5 and len(step["retention"]) == 4
        assert sum(step["attention"]) == pytest.approx(1.0, abs=1e-5)
        held = [t for t in step["entry_time"] if t >= 0]
        assert sorted(held) == sorted(set(held)) and max(held) <= 4  # distinct earlier steps of this episode
    data = json.loads((tmp_path / "inspection.json").read_text())
    assert data["summary"]["episodes"] == 6 and len(data["episodes"]) == 6
    assert (tmp_path / "inspection.png").stat().st_size > 10_000


def test_inspect_works_for_cores_without_a_store(tmp_path):
    agent = TraceRL(env=CUE, env_kwargs={"delay": 4, "difficulty": 1}, memory="ntm", seed=0, verbose=0)
    report = agent.inspect(episodes=4, out=tmp_path)
    import torch

    core = agent.policy.core
    _, _, trace = core.forward_with_trace(torch.zeros(1, 1, core.input_dim), core.initial_state(1),
                                          torch.ones(1, 1, dtype=torch.bool))
    assert trace and set(trace) <= set(report.episodes[0]["steps"][0])  # the core's own trace, every step
    assert "first_step_held_at_last_step" not in report.summary
    assert (tmp_path / "inspection.png").exists()


def test_the_linear_probe_decodes_a_variable_written_into_the_features_and_not_noise():
    rng = np.random.default_rng(0)
    labels = [float(v) for v in rng.choice([-1.0, 1.0], size=40)]
    informative = [np.c_[rng.normal(size=(5, 3)), np.full((5, 1), lab) + 0.1 * rng.normal(size=(5, 1))] for lab in labels]
    noise = [rng.normal(size=(5, 4)) for _ in labels]
    good = linear_probe(informative, labels, "cue")
    bad = linear_probe(noise, labels, "cue")
    assert good is not None and bad is not None
    assert good.accuracy_all_steps > 0.95 and good.accuracy_last_step > 0.95
    assert bad.accuracy_all_steps < 0.75
    assert linear_probe(noise[:3], labels[:3], "cue") is None  # too few episodes to hold any out


def test_invalid_episode_counts_are_rejected():
    with pytest.raises(ConfigError, match="episodes"):
        _agent().inspect(episodes=0)


def test_the_cli_inspects_a_checkpoint(tmp_path, capsys):
    agent = _agent()
    agent.save(tmp_path / "a.tracerl")
    code = main(["inspect", str(tmp_path / "a.tracerl"), "--episodes", "4", "--out", str(tmp_path / "out")])
    assert code == 0
    assert (tmp_path / "out" / "inspection.json").exists()
    assert "first_step_held_at_last_step" in capsys.readouterr().out


def test_a_trained_agent_keeps_the_cue_entry_and_attends_to_it_at_the_decision():
    agent = _agent(delay=16, max_entries=16)
    agent.learn(45_000)
    report = agent.inspect(episodes=32)
    s = report.summary
    assert s["mean_return"] > 0.9, s
    assert s["first_step_held_at_last_step"] > 0.9, s
    # attends to it: at the decision, the cue's entry draws the most attention of all entries (the mass on it
    # varies with the seed, 0.28-0.66 over seeds 0-3, against a uniform share of 1/17)
    top = []
    for ep in report.episodes:
        last = ep["steps"][-1]
        weights = np.asarray(last["attention"])
        top.append(int(np.argmax(weights)) == list(last["entry_time"]).index(0))
    assert np.mean(top) > 0.9, s
    assert s["attention_on_first_step_when_held"] > 3 / len(weights), s
    assert report.probe is not None and report.probe.accuracy_last_step > 0.95


@pytest.mark.parametrize("algo", ["sac", "td3", "r2d2", "drqn", "nec", "mfec"])
def test_tracerl_inspect_of_an_off_policy_checkpoint_records_traces_heatmaps_and_a_probe(algo, tmp_path, capsys):
    """Issue 17 item 5: inspection (memory traces, heatmaps, probes) works through the CLI for every off-policy
    algorithm, on the strategic memory whose trace says which episode step each slot holds."""
    from tracerl.algos.registry import get_algo

    continuous = algo in ("sac", "td3")
    env, env_kwargs, key = (("tracerl/CountWindow-v0", {"horizon": 3, "episode_length": 8}, "count") if continuous
                            else (CUE, {"delay": 3, "difficulty": 1}, "cue"))
    sizes = {f: v for f, v in dict(seq_len=4, burn_in=2, buffer_size=400, batch_size=4).items()
             if f in {fld.name for fld in dataclasses.fields(get_algo(algo).config_class)}}
    agent = TraceRL(env=env, env_kwargs=env_kwargs, algo=algo, seed=0, verbose=0, n_envs=2, hidden_size=8,
                    learning_starts=8, memory="strategic",
                    memory_kwargs={"learn_retention": False, "mem_dim": 8, "max_entries": 4}, **sizes)
    agent.learn(32).save(tmp_path / "a.tracerl")
    out = tmp_path / "insp"
    assert main(["inspect", str(tmp_path / "a.tracerl"), "--episodes", "8", "--out", str(out), "--info-key",
                 key]) == 0
    printed = capsys.readouterr().out
    assert "first_step_held_at_last_step" in printed and "wrote png" in printed
    report = json.loads((out / "inspection.json").read_text())
    assert len(report["episodes"]) == 8
    steps = report["episodes"][0]["steps"]
    assert {"entry_time", "attention", "retention"} <= steps[0].keys()  # the memory's trace, every step
    assert len(steps[-1]["entry_time"]) == 4 and max(steps[-1]["entry_time"]) > 0  # slots hold later steps
    assert report["probe"]["key"] == key and 0.0 <= report["probe"]["accuracy_last_step"] <= 1.0
    assert (out / "inspection.png").stat().st_size > 10_000  # the entries x time heatmaps
