"""AgentPerformanceBenchmark: seed 001's API on a tiny budget."""

from __future__ import annotations

import pytest

import tracerl
from tracerl import AgentPerformanceBenchmark
from tracerl.bench.seed_api import EXTRA_COLUMNS, SEED_001_EXPERIMENTS, TABLE_COLUMNS
from tracerl.errors import ConfigError

TINY = dict(delay=4, n_train_episodes=256, total_timesteps=1024, difficulty=1, mode_name="HARD", verbose=0,
            eval_base=False, n_eval_episodes=16)
GRU = dict(memory="gru", learning_rate=3e-3, lam=0.95, gamma=0.99, ent_coef=0.0, device="cpu", verbose=0)


def test_seed_api_returns_the_seed_table_columns_for_every_agent(capsys):
    rows = AgentPerformanceBenchmark({**TINY, "eval_base": True}, memory_agent_config=GRU).run()
    assert [r["Agent"] for r in rows] == ["PPO", "RecurrentPPO", "TraceRL"]
    for row in rows:
        assert set(TABLE_COLUMNS + EXTRA_COLUMNS) <= set(row)
        assert row["Delay"] == 4 and row["Mode"] == "HARD" and row["Duration (s)"] > 0
        assert -1.0 <= row["Mean Ep Rew"] <= 1.0 and 0.0 <= row["Std Ep Rew"] <= 1.0
        assert 0.0 <= row["Success Rate"] <= 1.0 and row["Env-steps/s"] > 0
        # CueDelay pays +-1 on the last step only: the mean return is 2 * success - 1
        assert row["Mean Ep Rew"] == pytest.approx(2 * row["Success Rate"] - 1)
        assert row["Train Steps"] == TINY["total_timesteps"]  # every agent trains the budget (SB3 was 8x at 2,048)
    printed = capsys.readouterr().out
    assert all(col in printed for col in TABLE_COLUMNS + EXTRA_COLUMNS) and "RecurrentPPO" in printed


def test_the_memory_agent_is_built_from_the_config_and_learns_the_short_delay():
    bench = AgentPerformanceBenchmark({**TINY, "total_timesteps": 4096, "difficulty": 0},
                                      memory_agent_config=GRU)
    (row,) = bench.run()
    assert bench.results == [row] and row["Agent"] == "TraceRL" and row["Mode"] == "HARD"
    assert row["Success Rate"] == 1.0  # GRU solves blank delay 4 within 4k steps (seed 0)


def test_experiment_and_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown key 'delays'"):
        AgentPerformanceBenchmark({**TINY, "delays": 4})
    with pytest.raises(ConfigError, match="difficulty = 2"):
        AgentPerformanceBenchmark({**TINY, "difficulty": 2})
    with pytest.raises(ConfigError, match="missing key 'delay'"):
        AgentPerformanceBenchmark({k: v for k, v in TINY.items() if k != "delay"})
    # Unknown TraceRL keywords are not stripped: TraceRL raises TypeError naming them.
    with pytest.raises(TypeError, match="not_a_tracerl_kwarg"):
        AgentPerformanceBenchmark(TINY, {**GRU, "not_a_tracerl_kwarg": 1}).run()


def test_budget_falls_back_to_n_train_episodes_times_delay():
    bench = AgentPerformanceBenchmark({k: v for k, v in TINY.items() if k != "total_timesteps"})
    assert bench.total_timesteps == 256 * 4
    assert all(AgentPerformanceBenchmark(e).total_timesteps == e["total_timesteps"] for e in SEED_001_EXPERIMENTS)


def test_strategic_config_builds_a_strategic_memory_buffer():
    config = dict(action_dim=1, mem_dim=16, max_entries=8, policy_class=tracerl.StrategicMemoryTransformerPolicy,
                  device="cpu", verbose=0, lam=0.95, gamma=0.99, ent_coef=0.01, learning_rate=1e-3)
    bench = AgentPerformanceBenchmark(TINY, memory_agent_config=config)
    agent = bench.build_memory_agent().model
    assert any(isinstance(m, tracerl.StrategicMemoryBuffer) for m in agent.policy.modules())
    (row,) = bench.run()
    assert row["Agent"] == "TraceRL" and 0.0 <= row["Success Rate"] <= 1.0


def test_strategic_keys_need_both_sizes():
    with pytest.raises(ConfigError, match="mem_dim = 16, max_entries = None"):
        AgentPerformanceBenchmark(TINY, {"mem_dim": 16}).build_memory_agent()
