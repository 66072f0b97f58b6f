"""Seed 001's training cell (examples/seed001_strategic_memory.py) runs unchanged apart from imports and learns."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seed001_strategic_memory.py"


def test_the_seed_001_training_cell_runs_prints_the_log_table_and_learns(capsys):
    scope = runpy.run_path(str(EXAMPLE), run_name="seed001")  # as imported: trains, skips the __main__ evaluation
    out = capsys.readouterr().out
    for key in ("ep_rew_mean", "aux_loss_mean", "mean_rnd_bonus", "usefulness_loss", "explained_variance"):
        assert key in out, key
    agent = scope["agent"]
    assert agent.num_timesteps >= 40_000
    from tracerl.evaluation import evaluate

    result = evaluate(agent, "tracerl/CueDelay-v0", 100, env_kwargs={"delay": 16, "difficulty": 0}, seed=123)
    assert result.success_rate >= 0.9
