"""HER where the HER paper shows it matters: bit flipping with 10 bits. Without HER, R2D2 never sees a reward (a
random policy meets the goal in about 1 % of the episodes) and stays at chance; with HER it solves the task.
The same run as ``benchmarks/her.py --task bitflip --n-bits 10 --budget 30000`` (about 8 minutes of CPU)."""

from __future__ import annotations

import pytest

from tracerl import TraceRL
from tracerl.envs.bitflip import BitFlip
from tracerl.evaluation import evaluate


def _success(her: bool) -> float:
    agent = TraceRL(env=lambda: BitFlip(10), algo="r2d2", her=her, seed=0, verbose=0, n_envs=8, hidden_size=64,
                    seq_len=16, batch_size=32, learning_starts=1_000, buffer_size=50_000, n_step=1, gamma=0.98,
                    target_update_interval=100, learning_rate=1e-3)
    agent.learn(30_000)
    return evaluate(agent, lambda: BitFlip(10), 100, seed=10_000).success_rate


@pytest.mark.slow
def test_her_solves_ten_bit_flipping_where_r2d2_alone_stays_at_chance():
    assert _success(her=False) <= 0.1
    assert _success(her=True) >= 0.8
