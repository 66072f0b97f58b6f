"""The vector env kind: ``env_vectorization`` / ``make_vec_env(vectorization=...)``, and the automatic choice made
from a measured step cost (the decision itself is tested with injected costs: nothing here asserts on time)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

import tracerl.envs.vector as vector
from tracerl import TraceRL
from tracerl.cli import main
from tracerl.envs import CueDelayVectorEnv, make_vec_env
from tracerl.envs.vector import ASYNC_IPC_SECONDS, ASYNC_MARGIN, choose_vectorization, measure_step_seconds
from tracerl.errors import ConfigError


def _break_even(n_envs: int, cpus: int) -> float:
    """The step cost at which subprocesses start to pay, from the documented cost model."""
    k = min(n_envs, cpus)
    return ASYNC_MARGIN * ASYNC_IPC_SECONDS / (1 - ASYNC_MARGIN / k)


def test_fast_envs_stay_in_process_and_slow_ones_get_subprocesses():
    assert choose_vectorization(10e-6, n_envs=16, cpus=2) == "sync"  # a POPGym env: ~10 µs a step
    assert choose_vectorization(5e-3, n_envs=16, cpus=2) == "async"  # a simulator: 5 ms a step
    edge = _break_even(16, 2)
    assert choose_vectorization(edge * 0.99, n_envs=16, cpus=2) == "sync"
    assert choose_vectorization(edge * 1.01, n_envs=16, cpus=2) == "async"
    # more CPUs make subprocesses pay off for cheaper envs
    assert choose_vectorization(edge * 0.5, n_envs=16, cpus=8) == "async"


@pytest.mark.parametrize(("n_envs", "cpus"), [(1, 8), (16, 1)])
def test_one_env_or_one_cpu_always_steps_in_process(n_envs, cpus):
    assert choose_vectorization(10.0, n_envs=n_envs, cpus=cpus) == "sync"


@pytest.mark.parametrize(("cost", "expected"), [(1e-5, SyncVectorEnv), (5e-3, AsyncVectorEnv)])
def test_auto_builds_the_kind_chosen_from_the_measured_cost(monkeypatch, cost, expected):
    measured = []

    def fake_measure(make_env, *args, **kwargs):
        env = make_env()  # the factory builds one sub-env of the requested id
        measured.append(env.spec.id)
        env.close()
        return cost

    monkeypatch.setattr(vector, "measure_step_seconds", fake_measure)
    monkeypatch.setattr(vector, "available_cpus", lambda: 2)
    vec = make_vec_env("CartPole-v1", n_envs=4, vectorization="auto")
    try:
        assert measured == ["CartPole-v1"]
        assert isinstance(vec, expected) and vec.num_envs == 4
    finally:
        vec.close()


def test_auto_measures_nothing_for_tracerls_own_tasks_one_env_or_a_vector_env(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("measured")

    monkeypatch.setattr(vector, "measure_step_seconds", fail)
    monkeypatch.setattr(vector, "available_cpus", lambda: 2)
    assert isinstance(make_vec_env("tracerl/CueDelay-v0", n_envs=4, vectorization="auto"), CueDelayVectorEnv)
    assert isinstance(make_vec_env("CartPole-v1", n_envs=1, vectorization="auto"), SyncVectorEnv)
    plain = make_vec_env("CartPole-v1", n_envs=2)
    assert make_vec_env(plain, vectorization="auto") is plain


def test_the_agent_prints_what_auto_measured_and_chose(monkeypatch, capsys):
    monkeypatch.setattr(vector, "measure_step_seconds", lambda *a, **k: 2e-5)
    monkeypatch.setattr(vector, "available_cpus", lambda: 2)
    agent = TraceRL(env="CartPole-v1", n_envs=2, n_steps=8, seed=0, verbose=1)
    out = capsys.readouterr().out
    assert "CartPole-v1 steps in 20 µs" in out and "chose 'sync' for 2 envs on 2 CPUs" in out
    assert isinstance(agent.env, SyncVectorEnv)
    TraceRL(env="CartPole-v1", n_envs=2, n_steps=8, seed=0, verbose=0)
    assert capsys.readouterr().out == ""


class _Counting(gymnasium.Env):
    """Episodes of 3 steps; counts steps, resets and closes."""

    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def __init__(self) -> None:
        self.steps = self.resets = self.t = 0
        self.closed = False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.resets += 1
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.steps += 1
        self.t += 1
        return np.zeros(1, np.float32), 0.0, self.t == 3, False, {}

    def close(self) -> None:
        self.closed = True


def test_the_measurement_steps_with_random_actions_resets_ended_episodes_and_closes_the_env():
    made = []

    def make():
        made.append(_Counting())
        return made[-1]

    seconds = measure_step_seconds(make, steps=10, max_seconds=60.0)
    (env,) = made
    assert env.steps == 10 and env.resets == 1 + 3 and env.closed
    assert seconds > 0


@pytest.mark.faults("vectorization / env_vectorization is not sync, async or auto (API and CLI) | ConfigError naming the value and the valid ones; nothing is built | none")
def test_a_bad_vectorization_is_refused_naming_the_valid_ones(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"vectorization='fork' is invalid.*'sync', 'async', 'auto'"):
        make_vec_env("CartPole-v1", n_envs=2, vectorization="fork")
    with pytest.raises(ConfigError, match=r"env_vectorization='fork' is invalid: must be one of 'auto', 'sync', "
                                          r"'async'"):
        TraceRL(env="CartPole-v1", env_vectorization="fork")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--env-vectorization", "fork", "--out", str(tmp_path / "x"), "--no-progress"])
    assert exc.value.code == 2 and "fork" in capsys.readouterr().err


def test_the_cli_flag_sets_the_vector_env_kind(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--env", "CartPole-v1", "--env-vectorization", "async", "--steps", "32", "--n-envs", "2",
                 "--n-steps", "16", "--out", str(out), "--no-progress", "--verbose", "0", "--eval-episodes", "0"]) == 0
    agent = TraceRL.load(out / "agent.tracerl", env="CartPole-v1", verbose=0)
    assert agent.learner.env_config.env_vectorization == "async" and isinstance(agent.env, AsyncVectorEnv)
    agent.env.close()
