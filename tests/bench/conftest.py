"""Tiny suites for the harness tests: CueDelay delay 4, a few thousand env steps, 1-2 seeds."""

from __future__ import annotations

import pytest

from tracerl.bench import AgentEntry, EvalProtocol, Suite, cue_delay

TINY_PROTOCOL = EvalProtocol(episodes=16, every=512, final_episodes=16)


def tiny_suite(agents: tuple[AgentEntry, ...] = (AgentEntry("tracerl-gru"),), seeds: tuple[int, ...] = (0, 1),
               budget: int = 1024, name: str = "tiny") -> Suite:
    """``agents`` on CueDelay(delay=4, difficulty=1), ``budget`` env steps, evaluations on 16 episodes."""
    return Suite(name=name, description="test suite", agents=agents, envs=(cue_delay(4, 1),), seeds=seeds,
                 budget=budget, protocol=TINY_PROTOCOL)


BROKEN = AgentEntry("tracerl-mlp", kwargs={"learning_rate": -1.0})
"""An agent whose construction raises ConfigError: every run of it fails."""

SMALL_SB3_PPO = AgentEntry("sb3-ppo", kwargs={"n_steps": 64, "batch_size": 64})
"""The real SB3 PPO with 8 x 64-step rollouts, so a 1024-step budget is quick."""


@pytest.fixture
def suite_factory():
    return tiny_suite
