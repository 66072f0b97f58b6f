"""Benchmark harness: tracerl's memory agents against the real SB3 / sb3-contrib baselines.

- :mod:`.agents`: named agents (``sb3-ppo``, ``sb3-recurrentppo``, ``tracerl-<core>`` for every core).
- :mod:`.envs`: benchmark environments (``EnvSpec``).
- :mod:`.protocol`: held-out evaluation protocol and seeds.
- :mod:`.training`: one run: train with periodic evaluation, then evaluate.
- :mod:`.suites`: suites (agents x envs x seeds x budget x protocol), built in or from TOML.
- :mod:`.execute`, :mod:`.backends`, :mod:`.runner`, :mod:`.store`: running suites (inline, processes, Ray),
  resumable JSON-lines results.
- :mod:`.stats`, :mod:`.report`, :mod:`.plots`: rliable statistics, CSV / Markdown reports, PNG figures.
- :mod:`.seed_api`: :class:`AgentPerformanceBenchmark` (the API of seed 001).
- :mod:`.cli`: ``tracerl bench``.
"""

from __future__ import annotations

from .agents import available_agents, get_agent
from .envs import EnvSpec, cue_delay
from .protocol import EvalProtocol, eval_seed
from .runner import SuiteOutcome, run_suite
from .seed_api import AgentPerformanceBenchmark
from .suites import SUITES, AgentEntry, RunSpec, Suite, load_suite

__all__ = [
    "AgentEntry",
    "AgentPerformanceBenchmark",
    "EnvSpec",
    "EvalProtocol",
    "RunSpec",
    "SUITES",
    "Suite",
    "SuiteOutcome",
    "available_agents",
    "cue_delay",
    "eval_seed",
    "get_agent",
    "load_suite",
    "run_suite",
]
