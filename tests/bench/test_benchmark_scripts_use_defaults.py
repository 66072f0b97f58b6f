"""Issue 23: "default settings are the ones used by every benchmark figure (benchmark scripts pass no memory or
agent overrides)", checked on the strategic-memory scripts of issue 23 (``benchmarks/rewrite_memory.py``,
``benchmarks/tmaze_cost.py``).

Every ``TraceRL(...)`` call in them may name only the env, its kwargs, the memory core, the seed and the verbosity:
no PPO or network hyperparameter, no ``memory_kwargs``, no ``**`` unpacking, no memory object. (The older
``benchmarks/strategic.py`` and ``tracerl.bench.agents.core_settings("strategic")`` do pass overrides: whole-episode
rollouts, ``memory_learn_retention``, R2D2 settings; they are not covered until those become the defaults.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = ("rewrite_memory.py", "tmaze_cost.py")
ALLOWED = frozenset({"env", "env_kwargs", "memory", "seed", "verbose"})
"""The only keywords a default-settings agent is built with."""
AGENT_BUILDERS = frozenset({"TraceRL", "make_tracerl", "make_tracerl_agent", "strategic_agent", "strategic_r2d2_agent"})


def overrides(source: str) -> tuple[int, list[str]]:
    """(number of agent constructions, what in them is not a default) for a script's source."""
    found, problems = 0, []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if name not in AGENT_BUILDERS:
            continue
        found += 1
        if name != "TraceRL":
            problems.append(f"line {node.lineno}: {name}() builds an agent with the benchmark's own settings")
            continue
        if node.args:
            problems.append(f"line {node.lineno}: positional arguments (a policy class or memory object)")
        for kw in node.keywords:
            if kw.arg is None:
                problems.append(f"line {node.lineno}: **{ast.unparse(kw.value)}")
            elif kw.arg not in ALLOWED:
                problems.append(f"line {node.lineno}: {kw.arg}={ast.unparse(kw.value)}")
            elif kw.arg == "memory" and not isinstance(kw.value, (ast.Name, ast.Constant)):
                problems.append(f"line {node.lineno}: memory={ast.unparse(kw.value)} (a core name only)")
    return found, problems


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_issue_23_benchmark_scripts_build_their_agents_at_the_defaults(script: str) -> None:
    found, problems = overrides((BENCHMARKS / script).read_text())
    assert found >= 1, f"{script} builds no TraceRL agent"
    assert problems == [], f"{script} passes overrides: {problems}"


def test_the_check_flags_hyperparameters_memory_settings_and_other_builders() -> None:
    found, problems = overrides(
        "a = TraceRL(env=E, memory='strategic', seed=0, n_steps=512)\n"
        "b = TraceRL(env=E, memory=core, memory_kwargs={'max_entries': 64})\n"
        "c = TraceRL(StrategicPolicy, env=E, **kw)\n"
        "d = strategic_agent(E, {}, 64, 0)\n"
        "e = TraceRL(env=E, env_kwargs=k, memory=core, seed=s, verbose=0)\n")
    assert found == 5
    assert [p.split(":")[0] for p in problems] == ["line 1", "line 2", "line 3", "line 3", "line 4"]
    assert "n_steps=512" in problems[0] and "memory_kwargs" in problems[1] and "**kw" in problems[3]
