"""The POPGym suite through the real package: the env list, the SB3 baselines' observation encoding (the
same numbers tracerl's encoder gets), and a tiny end-to-end run with both comparisons."""

from __future__ import annotations

import json

import numpy as np
import pytest

popgym = pytest.importorskip("popgym")

import gymnasium  # noqa: E402

from tracerl.bench import AgentEntry, EvalProtocol, Suite, run_suite  # noqa: E402
from tracerl.bench.envs import (POPGYM_EASY, EncodedPredictor, FlatObservation, encode_observation,  # noqa: E402
                                make_sb3_env, popgym_env)
from tracerl.bench.suites import load_suite  # noqa: E402


def test_the_suite_has_every_easy_env_plain_popgym_registers_and_scores_returns():
    registered = {k for k in gymnasium.registry if k.startswith("popgym-") and k.endswith("Easy-v0")
                  and "Labyrinth" not in k}  # LabyrinthEscape/Explore need mazelib
    suite = load_suite("popgym")
    assert {e.id for e in suite.envs} == registered and len(POPGYM_EASY) == len(registered) == 14
    assert all(e.score == "return" for e in suite.envs)
    assert suite.comparisons == ("steps", "time")
    assert {a.name for a in suite.agents} == {"tracerl-gru", "sb3-recurrentppo", "sb3-ppo"}
    runs = suite.runs()
    timed = [r for r in runs if r.time_budget is not None]
    assert len(timed) == len(runs) // 2 and all(r.time_budget == suite.time_budget for r in timed)
    assert {r.run_id for r in timed}.isdisjoint({r.run_id for r in runs if r.time_budget is None})


def test_a_multidiscrete_observation_is_encoded_identically_for_tracerl_and_the_sb3_wrapper():
    from tracerl import TraceRL

    env = gymnasium.make("popgym-CountRecallEasy-v0")
    space = env.observation_space
    assert isinstance(space, gymnasium.spaces.MultiDiscrete) and list(space.nvec) == [2, 2]
    wrapped = FlatObservation(gymnasium.make("popgym-CountRecallEasy-v0"))
    assert wrapped.observation_space.shape == (4,) and wrapped.observation_space.dtype == np.float32
    # known answers: concatenated one-hots
    np.testing.assert_array_equal(wrapped.observation(np.array([1, 0])), [0, 1, 1, 0])
    np.testing.assert_array_equal(wrapped.observation(np.array([0, 1])), [1, 0, 0, 1])
    # what a tracerl agent's encoder gets for the same observations
    agent = TraceRL(env="popgym-CountRecallEasy-v0", seed=0, verbose=0)
    obs = np.array([space.sample() for _ in range(32)])
    ours = agent.policy.preprocess(obs).numpy()
    theirs = np.stack([wrapped.observation(o) for o in obs])
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(encode_observation(space, obs), theirs)  # batched, as at evaluation


def test_a_tuple_observation_reaches_the_sb3_baselines_as_tracerls_flat_encoding():
    vec = make_sb3_env(popgym_env("Autoencode"), seed=0, n_envs=2)
    space = gymnasium.make("popgym-AutoencodeEasy-v0").observation_space  # Tuple(Discrete(2), Discrete(4))
    assert vec.observation_space.shape == (6,)
    first = vec.reset()
    assert first.shape == (2, 6) and set(np.unique(first)) <= {0.0, 1.0} and (first.sum(axis=1) == 2).all()
    # the evaluation adapter encodes raw batches the same way
    class Echo:
        num_timesteps = 0

        def predict(self, obs, state, episode_start, deterministic=False):
            return obs, state

    batch = (np.array([0, 1]), np.array([3, 0]))
    encoded, _ = EncodedPredictor(Echo(), space).predict(batch, None, None)
    np.testing.assert_array_equal(encoded, [[1, 0, 0, 0, 0, 1], [0, 1, 1, 0, 0, 0]])


def _tiny_popgym_suite(time_budget: float = 0.05) -> Suite:
    return Suite(
        name="tiny-popgym", description="test",
        # RecurrentPPO's 10 epochs over a 1,024-step rollout take ~30 s on a busy 2-core machine: 2 here
        agents=(AgentEntry("tracerl-gru"), AgentEntry("sb3-recurrentppo", kwargs={"n_epochs": 2}),
                AgentEntry("sb3-ppo")),
        envs=(popgym_env("CountRecall"), popgym_env("RepeatPrevious")), seeds=(0,), budget=1024,
        protocol=EvalProtocol(episodes=4, every=0, final_episodes=8, modes=("deterministic",)),
        time_budget=time_budget)


def test_the_suite_runs_end_to_end_with_real_popgym_envs_and_real_sb3_baselines(tmp_path):
    suite = _tiny_popgym_suite()
    outcome = run_suite(suite, tmp_path, backend="inline", progress=False, bootstrap_reps=50)
    assert not outcome.failed and len(outcome.ran) == 2 * 3 * 2
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["comparison"] == "steps"]
    timed = [r for r in records if r["comparison"] == "time"]
    assert len(steps) == len(timed) == 6
    # equal env steps: every agent trained exactly the budget (SB3's rollout fitted to it)
    assert {r["agent"]: r["metrics"]["train_steps"] for r in steps if r["env_label"] == "popgym-CountRecallEasy"} == {
        "tracerl-gru": 1024, "sb3-recurrentppo": 1024, "sb3-ppo": 1024}
    # equal time: every agent was stopped by the time budget, which the record keeps, well before its step cap
    for r in timed:
        m = r["metrics"]
        assert m["stopped_by"] == "time" and m["time_budget"] == 0.05 and r["time_budget"] == 0.05
        assert 0 < m["train_steps"] < suite.time_step_cap and m["train_seconds"] >= 0.05
    for r in records:
        assert r["score"] == "return" and -1.0 <= r["metrics"]["final"]["deterministic"]["mean_return"] <= 1.0
    report = (tmp_path / "report.md").read_text()
    assert "Within 0.05 s of training each on popgym-CountRecallEasy: " in report
    assert "At 1,024 env steps each on popgym-RepeatPreviousEasy: " in report
    assert "## Equal env steps" in report and "## Equal training time" in report
    assert "### Aggregate return over seeds and envs (rliable)" in report
    assert "tracerl-gru > sb3-recurrentppo" in report
    for png in ("learning_curves.png", "learning_curves_time.png", "aggregate_intervals_steps_return.png",
                "aggregate_intervals_time_return.png", "performance_profile_time_return.png"):
        assert (tmp_path / png).stat().st_size > 1000
    # the suite can be completed in parts: another invocation reuses every finished run
    again = run_suite(suite, tmp_path, backend="inline", progress=False, report=False)
    assert again.ran == [] and len(again.skipped) == 12
