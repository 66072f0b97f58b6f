"""Every agent gets the same env-step budget: SB3's rollout is fitted to a small budget and a run stops at
its budget; ``should_stop`` (equal-time budgets) stops an SB3 agent at the next vector step."""

from __future__ import annotations

import json

from tracerl.bench import AgentEntry, AgentPerformanceBenchmark, run_suite
from tracerl.bench.agents import SB3Trainer, fit_rollout, make_sb3_ppo
from tracerl.bench.envs import cue_delay

from conftest import tiny_suite


def test_fit_rollout_shrinks_only_rollouts_larger_than_the_budget_and_keeps_explicit_values():
    assert fit_rollout("sb3-ppo", 2048, 8, {}) == {"n_steps": 256, "batch_size": 64}
    assert fit_rollout("sb3-ppo", 100, 8, {}) == {"n_steps": 12, "batch_size": 64}
    assert fit_rollout("sb3-ppo", 40, 8, {}) == {"n_steps": 5, "batch_size": 40}
    assert fit_rollout("sb3-ppo", 16_384, 8, {}) == {}
    assert fit_rollout("sb3-ppo", None, 8, {}) == {}
    assert fit_rollout("sb3-ppo", 2048, 8, {"n_steps": 64}) == {"n_steps": 64, "batch_size": 64}
    assert fit_rollout("sb3-recurrentppo", 512, 8, {}) == {"n_steps": 64, "batch_size": 128}


def test_the_seed_api_trains_sb3_ppo_on_the_budget_not_a_whole_default_rollout():
    bench = AgentPerformanceBenchmark(dict(delay=4, total_timesteps=2048, eval_base=True))
    name, build = bench._agents()[0]
    assert name == "PPO"
    trainer = build()
    trainer.train(2048, lambda steps: True)
    assert trainer.num_timesteps == 2048  # was 8 x 2,048 = 16,384 at PPO's default rollout
    assert trainer.model._n_updates == trainer.model.n_epochs  # one rollout, trained on


def test_tracerl_bench_gives_sb3_ppo_and_tracerl_the_same_budget(tmp_path):
    suite = tiny_suite(agents=(AgentEntry("tracerl-gru"), AgentEntry("sb3-ppo")), seeds=(0,), budget=2048)
    run_suite(suite, tmp_path, backend="inline", progress=False, report=False)
    steps = {json.loads(line)["agent"]: json.loads(line)["metrics"]["train_steps"]
             for line in (tmp_path / "runs.jsonl").read_text().splitlines()}
    assert steps == {"tracerl-gru": 2048, "sb3-ppo": 2048}


def test_a_budget_between_rollouts_stops_sb3_there_without_training_on_the_cut_rollout():
    model = make_sb3_ppo(cue_delay(4, 1), seed=0, budget=5000, n_steps=256, batch_size=256)  # rollouts of 2,048
    trainer = SB3Trainer(model)
    trainer.train(5000, lambda steps: True)
    assert model.num_timesteps == 5000
    assert model._n_updates == 2 * model.n_epochs  # the rollouts at 2,048 and 4,096; the cut one is not trained on


def test_should_stop_stops_an_sb3_agent_at_the_next_vector_step():
    model = make_sb3_ppo(cue_delay(4, 1), seed=0, budget=4096, n_steps=64, batch_size=64)
    trainer = SB3Trainer(model)
    trainer.should_stop = lambda: model.num_timesteps >= 40
    trainer.train(4096, lambda steps: True)
    assert model.num_timesteps == 40 and model._n_updates == 0


def test_should_stop_stops_an_sb3_agent_inside_its_update_phase():
    import torch

    model = make_sb3_ppo(cue_delay(4, 1), seed=0, budget=4096, n_steps=16, batch_size=16)  # rollouts of 128
    before = [p.detach().clone() for p in model.policy.parameters()]
    trainer = SB3Trainer(model)
    calls = []

    def should_stop():  # checked at each of the 16 vector steps, then before each optimizer step
        calls.append(model.num_timesteps)
        return len(calls) > 16 + 3

    trainer.should_stop = should_stop
    trainer.train(4096, lambda steps: True)
    assert model.num_timesteps == 128
    assert model._n_updates == 0  # SB3 counts updates at the end of its update phase: it was cut inside it
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))  # 3 minibatch steps kept
    assert "step" not in vars(model.policy.optimizer)  # the optimizer is left as it was


def test_episodic_control_agents_run_a_tiny_suite_end_to_end_with_their_algorithm(tmp_path):
    from tracerl.bench.agents import get_agent
    from tracerl.bench.envs import cue_delay as cue

    for name, algo in (("tracerl-nec-gru", "nec"), ("tracerl-nec-mlp", "nec"), ("tracerl-mfec", "mfec")):
        trainer = get_agent(name).build(cue(4, 1), seed=0)
        assert trainer.model.algo == algo, name
    names = ("tracerl-nec-gru", "tracerl-mfec")
    small = {"tracerl-nec-gru": {"batch_size": 4, "seq_len": 8}}  # a quick test: small NEC updates
    suite = tiny_suite(agents=tuple(AgentEntry(n, kwargs=small.get(n, {})) for n in names), seeds=(0,), budget=1024)
    run_suite(suite, tmp_path, backend="inline", progress=False, report=False)
    runs = {json.loads(line)["agent"]: json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()}
    assert set(runs) == set(names)
    for name in names:
        assert runs[name]["status"] == "ok", runs[name].get("error")
        metrics = runs[name]["metrics"]
        assert metrics["train_steps"] == 1024, name
        assert metrics["final"] and all(0.0 <= res["success_rate"] <= 1.0 for res in metrics["final"].values()), name
