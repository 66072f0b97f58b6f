"""The throughput suite sets each agent's training rate beside its env's own random-action stepping rate (same
vector env class and number of sub-envs, measured in the same run) and beside RecurrentPPO's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tracerl.bench import AgentEntry, EvalProtocol, Suite, run_suite
from tracerl.bench.agents import Trainer
from tracerl.bench.envs import cue_delay, popgym_env
from tracerl.bench.report import env_rate_rows
from tracerl.bench.suites import load_suite, suite_from_toml
from tracerl.bench.training import random_action_rate, train_and_evaluate
from tracerl.envs import make_vec_env
from tracerl.errors import ConfigError


def _record(agent: str, env: str, train_sps: float, env_sps: float | None) -> dict:
    metrics = {"steps_per_second": train_sps,
               "env_rate": None if env_sps is None else {"steps_per_second": env_sps, "vector_env": "SyncVectorEnv",
                                                          "n_envs": 16}}
    return {"agent": agent, "env_label": env, "status": "ok", "metrics": metrics}


def test_the_rows_give_the_fraction_of_the_envs_rate_and_the_ratio_to_recurrentppo():
    records = [_record("tracerl-gru", "A", 3000.0, 60000.0), _record("tracerl-gru", "A", 5000.0, 40000.0),
               _record("sb3-recurrentppo", "A", 100.0, 10000.0), _record("tracerl-gru", "B", 2000.0, 8000.0),
               _record("sb3-ppo", "B", 900.0, None)]
    rows = {(r["env"], r["agent"]): r for r in env_rate_rows(records, ["tracerl-gru", "sb3-recurrentppo", "sb3-ppo"],
                                                             ["A", "B"])}
    gru = rows[("A", "tracerl-gru")]
    assert gru["train_sps"] == 4000.0 and gru["env_sps"] == 50000.0  # medians over seeds
    assert gru["fraction_of_env"] == pytest.approx(0.08) and gru["vs_baseline"] == pytest.approx(40.0)
    assert rows[("A", "sb3-recurrentppo")]["vs_baseline"] == pytest.approx(1.0)
    assert rows[("B", "tracerl-gru")]["vs_baseline"] is None  # RecurrentPPO did not run on B
    assert ("B", "sb3-ppo") not in rows  # no measurement, no row


def test_the_random_action_rate_steps_the_env_for_the_requested_steps():
    vec = make_vec_env("CartPole-v1", n_envs=4)
    calls = []
    step = vec.step

    def counted(action):
        calls.append(np.asarray(action).copy())
        return step(action)

    vec.step = counted  # type: ignore[method-assign]
    assert random_action_rate(vec, steps=50, seed=1) > 0
    assert len(calls) == 13 and all(c.shape == (4,) for c in calls)  # ceil(50 / 4) vector steps of 4 actions
    assert len({c.tobytes() for c in calls}) > 1  # random actions


class _EnvTrainer(Trainer):
    """Trains nothing; its env is a CueDelay vector env of 4 sub-envs, rebuilt on every ``env_for_rate`` call."""

    def __init__(self) -> None:
        class Model:
            num_timesteps = 0

            def predict(self, obs, state=None, episode_start=None, deterministic=True):
                return np.zeros(len(obs), dtype=np.int64), state

        super().__init__(Model())
        self.built: list[int] = []
        self.trained_between = False

    def env_for_rate(self):
        self.built.append(self.model.num_timesteps)
        return make_vec_env("tracerl/CueDelay-v0", n_envs=4, env_kwargs={"delay": 2})

    def train(self, budget, on_update):
        self.model.num_timesteps = budget


def test_the_env_rate_is_measured_before_and_after_training_outside_the_training_clock():
    trainer = _EnvTrainer()
    m = train_and_evaluate(lambda: trainer, cue_delay(2, 0), seed=0, budget=256,
                           protocol=EvalProtocol(every=0, final_episodes=4, modes=("deterministic",)),
                           env_rate_steps=64)
    assert trainer.built == [0, 256]  # a fresh env right before and right after training
    rate = m.env_rate
    assert rate is not None and rate["n_envs"] == 4 and rate["vector_env"] == "CueDelayVectorEnv"
    assert rate["steps_per_second"] == pytest.approx((rate["before"] + rate["after"]) / 2)
    assert train_and_evaluate(lambda: _EnvTrainer(), cue_delay(2, 0), seed=0, budget=256,
                              protocol=EvalProtocol(every=0, final_episodes=4)).env_rate is None


def test_the_throughput_suite_measures_every_run_and_reports_the_ratio(tmp_path):
    suite = dataclasses.replace(load_suite("throughput"), envs=(cue_delay(4, 1),),
                                agents=(AgentEntry("tracerl-gru"), AgentEntry("sb3-recurrentppo")))
    assert load_suite("throughput").env_rate_steps > 0 and suite.runs()[0].identity()["env_rate_steps"] > 0
    suite = dataclasses.replace(suite, budget=256, env_rate_steps=64,
                                protocol=EvalProtocol(every=0, final_episodes=4, modes=("deterministic",)))
    outcome = run_suite(suite, tmp_path / "out", backend="inline", progress=False, bootstrap_reps=20)
    assert not outcome.failed
    rates = {r["agent"]: r["metrics"]["env_rate"] for r in outcome.records}
    assert (rates["tracerl-gru"]["vector_env"], rates["tracerl-gru"]["n_envs"]) == ("CueDelayVectorEnv", 16)
    assert (rates["sb3-recurrentppo"]["vector_env"], rates["sb3-recurrentppo"]["n_envs"]) == ("DummyVecEnv", 8)
    rows = {r["agent"]: r for r in outcome.tables["env_rate"]["rows"]}
    train = {r["agent"]: r["metrics"]["steps_per_second"] for r in outcome.records}
    assert rows["tracerl-gru"]["vs_baseline"] == pytest.approx(train["tracerl-gru"] / train["sb3-recurrentppo"])
    assert rows["tracerl-gru"]["fraction_of_env"] == pytest.approx(train["tracerl-gru"] / rates["tracerl-gru"]["steps_per_second"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Training throughput against the env's own stepping rate" in report and "CueDelayVectorEnv x 16" in report


def test_a_popgym_env_is_measured_on_a_plain_gymnasium_vector_env_of_the_agents_kind(tmp_path):
    pytest.importorskip("popgym")
    assert popgym_env("RepeatPrevious") in load_suite("throughput").envs
    suite = Suite(name="t", description="", agents=(AgentEntry("tracerl-gru", {"n_envs": 4, "n_steps": 16}),),
                  envs=(popgym_env("RepeatPrevious"),), seeds=(0,), budget=64, env_rate_steps=64,
                  protocol=EvalProtocol(every=0, final_episodes=2, modes=("deterministic",)))
    outcome = run_suite(suite, tmp_path / "out", backend="inline", progress=False, report=False)
    (record,) = outcome.records
    assert record["status"] == "ok", record.get("error")
    assert record["metrics"]["env_rate"]["vector_env"] == "SyncVectorEnv"
    assert record["metrics"]["env_rate"]["n_envs"] == 4


def test_suites_without_the_measurement_keep_their_run_ids():
    quick = load_suite("quick").runs()[0]
    assert "env_rate_steps" not in quick.identity()
    measured = dataclasses.replace(load_suite("quick"), env_rate_steps=100).runs()[0]
    assert measured.run_id != quick.run_id


@pytest.mark.faults("A suite file with env_rate_steps negative, fractional or not a number | ConfigError naming the key and value | none")
@pytest.mark.parametrize("value", ["-1", "1.5", "'many'", "true"])
def test_a_bad_env_rate_steps_in_a_suite_file_is_refused(tmp_path, value):
    path = tmp_path / "s.toml"
    path.write_text(f"budget = 10\nseeds = [0]\nagents = ['sb3-ppo']\nenv_rate_steps = {value}\n"
                    "[[envs]]\nid = 'tracerl/CueDelay-v0'\n")
    with pytest.raises(ConfigError, match="env_rate_steps = .* is invalid: must be an integer >= 0"):
        suite_from_toml(path)
