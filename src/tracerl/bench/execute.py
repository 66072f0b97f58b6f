"""Run one :class:`~tracerl.bench.suites.RunSpec` in the current process and return its record.

This is what every backend executes (inline, in a spawned worker process, or as a Ray task). It sets
torch to one thread, trains and evaluates, and never raises: a crash becomes a ``failed`` record with
the traceback, so the suite can go on.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from .agents import get_agent
from .envs import ensure_registered
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
        "comparison": spec.comparison, "score": spec.env.score,
    }


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
        metrics = train_and_evaluate(
            lambda: agent.build(spec.env, spec.seed, budget=spec.budget, **spec.agent_kwargs), spec.env,
            spec.seed, spec.budget, spec.effective_protocol, progress=bar, time_budget=spec.time_budget,
            env_rate_steps=spec.env_rate_steps)
        record.update(status="ok", metrics=metrics.to_json())
    except Exception as exc:  # a crashing run is data, not the end of the suite
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    finally:
        if bar is not None:
            bar.close()
    record["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return record
