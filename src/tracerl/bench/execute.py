"""Run one :class:`~tracerl.bench.suites.RunSpec` in the current process and return its record.

This is what every backend executes (inline, in a spawned worker process, or as a Ray task). It sets
torch to one thread, trains and evaluates, and never raises: a crash becomes a ``failed`` record with
the traceback, so the suite can go on.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from typing import Any

from ..errors import ConfigError
from .agents import get_agent
from .envs import ensure_registered
from .protocol import training_clock
from .provenance import configure_torch, git_commit, git_dirty, machine_info, package_versions
from .suites import RunSpec
from .training import train_and_evaluate


def base_record(spec: RunSpec) -> dict[str, Any]:
    """The run's identity fields: id, suite, agent, env, seed, budget, protocol, time budget, comparison
    (``steps`` / ``time``) and what scores it (``success`` / ``return``)."""
    return {
        "run_id": spec.run_id, "suite": spec.suite, "agent": spec.agent, "agent_kwargs": spec.agent_kwargs,
        "env": spec.env.to_json(), "env_label": spec.env.label, "seed": spec.seed, "budget": spec.budget,
        "protocol": spec.effective_protocol.to_json(), "time_budget": spec.time_budget,
        "time_clock": spec.time_clock if spec.time_budget is not None else None,
        "comparison": spec.comparison, "score": spec.env.score,
    }


def _build_checked(agent: Any, spec: RunSpec) -> Any:
    """Build the run's trainer; under the CPU clock refuse one whose envs step in other processes (their work
    would not be counted, an unfair advantage in an equal-time comparison)."""
    trainer = agent.build(spec.env, spec.seed, budget=spec.budget, **spec.agent_kwargs)
    if spec.time_budget is not None and spec.time_clock == "cpu" and multiprocessing.active_children():
        raise ConfigError(
            f"run {spec.run_id}: time_clock 'cpu' counts only this process's CPU time, but agent {spec.agent!r} "
            f"steps its env {spec.env.label} in {len(multiprocessing.active_children())} subprocesses; use the wall "
            "clock for it, or in-process envs (tracerl: env_vectorization='sync')")
    return trainer


def run_one(spec: RunSpec, verbose: bool = False) -> dict[str, Any]:
    """Train and evaluate one run; return its JSON record (``status`` ``"ok"`` or ``"failed"``).

    The record holds the config, seed, git commit (and whether the tree had uncommitted changes), package
    versions and machine, and either
    ``metrics`` (:class:`~tracerl.bench.training.RunMetrics`) or ``error`` and ``traceback``.
    """
    configure_torch()
    record = base_record(spec)
    record.update(started_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), git_commit=git_commit(),
                  git_dirty=git_dirty(), versions=package_versions())
    bar = None
    try:
        record["machine"] = machine_info()
        ensure_registered(spec.env.id)
        agent = get_agent(spec.agent)
        if verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=spec.budget, unit="step", desc=spec.run_id, leave=False, dynamic_ncols=True)
        clock = training_clock(spec.time_clock if spec.time_budget is not None else "wall")
        metrics = train_and_evaluate(
            lambda: _build_checked(agent, spec), spec.env,
            spec.seed, spec.budget, spec.effective_protocol, progress=bar, time_budget=spec.time_budget,
            clock=clock, env_rate_steps=spec.env_rate_steps)
        record.update(status="ok", metrics=metrics.to_json())
    except Exception as exc:  # a crashing run is data, not the end of the suite
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    finally:
        if bar is not None:
            bar.close()
    record["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return record
