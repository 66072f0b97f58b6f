"""Shared helpers of the benchmark scripts: threading, machine info, a pausable clock, the
held-out evaluation protocol, agent/env factories and small statistics.

Every benchmark runs single-threaded (``torch.set_num_threads(1)``) so that figures are comparable
across machines and are not disturbed by whatever runs on the other cores.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Iterable, Sequence

from tracerl.bench.agents import make_recurrent_ppo as _bench_recurrent_ppo
from tracerl.bench.agents import make_sb3_ppo as _bench_sb3_ppo
from tracerl.bench.envs import CUE_ENV_ID, SB3_N_ENVS, cue_delay  # noqa: F401
from tracerl.bench.envs import make_sb3_env as _bench_sb3_env
from tracerl.bench.protocol import EVAL_SEED_BASE, PausableClock  # noqa: F401
from tracerl.bench.protocol import eval_seed as _bench_eval_seed
from tracerl.bench.provenance import configure_torch, cpu_model, git_commit, machine_info, package_version  # noqa: F401

# CUE_ENV_ID, SB3_N_ENVS, EVAL_SEED_BASE, PausableClock, configure_torch, cpu_model, git_commit, machine_info
# and package_version are tracerl.bench's, re-exported here for the scripts (one copy of each).

EVAL_EPISODES = 100
"""Episodes per held-out evaluation."""

RESULTS_DIR = Path(__file__).resolve().parent / "bench_results"
"""Default output folder (git-ignored)."""


# -- agents and envs (the CueDelay difficulty-1 forms of tracerl.bench's builders) -------------------
def cue_kwargs(delay: int) -> dict[str, int]:
    """CueDelay keyword arguments of the benchmarks: ``difficulty=1`` (+-1 distractors)."""
    return {"delay": delay, "difficulty": 1}


def make_tracerl(memory: str, delay: int, seed: int, **hyperparams: Any) -> Any:
    """A silent ``TraceRL`` agent on CueDelay ``delay`` (difficulty 1)."""
    from tracerl import TraceRL

    return TraceRL(env=CUE_ENV_ID, env_kwargs=cue_kwargs(delay), memory=memory, seed=seed, verbose=0,
                   **hyperparams)


def make_sb3_env(delay: int, seed: int, n_envs: int = SB3_N_ENVS) -> Any:
    """SB3's ``make_vec_env`` (a Monitor-wrapped DummyVecEnv) of ``n_envs`` single ``CueDelay`` envs."""
    return _bench_sb3_env(cue_delay(delay, 1), seed, n_envs)


def make_recurrent_ppo(delay: int, seed: int, **overrides: Any) -> Any:
    """``sb3_contrib.RecurrentPPO("MlpLstmPolicy")`` at its defaults (plus ``overrides``) with 8 envs."""
    return _bench_recurrent_ppo(cue_delay(delay, 1), seed, **overrides)


def make_sb3_ppo(delay: int, seed: int, **overrides: Any) -> Any:
    """``stable_baselines3.PPO("MlpPolicy")`` (memoryless) at its defaults (plus ``overrides``) with 8 envs."""
    return _bench_sb3_ppo(cue_delay(delay, 1), seed, **overrides)


# -- evaluation ------------------------------------------------------------------------------------
def eval_seed(train_seed: int, index: int) -> int:
    """Seed of the ``index``-th evaluation of the run trained with ``train_seed`` (see
    :func:`tracerl.bench.protocol.eval_seed`)."""
    return _bench_eval_seed(train_seed, index)


def held_out_success(model: Any, delay: int, seed: int, n_episodes: int = EVAL_EPISODES) -> float:
    """Deterministic success rate over ``n_episodes`` held-out CueDelay episodes.

    Uses :func:`tracerl.evaluation.evaluate` for every agent: it calls
    ``model.predict(obs, state, episode_start, deterministic=True)`` and feeds the returned state back
    with ``episode_start`` on every step. That is tracerl's ``predict`` signature and also SB3's
    (``RecurrentPPO.predict(observation, state=lstm_states, episode_start=...)``; plain PPO ignores the state).
    """
    from tracerl.evaluation import evaluate

    result = evaluate(model, CUE_ENV_ID, n_episodes=n_episodes, deterministic=True, seed=seed,
                      env_kwargs=cue_kwargs(delay))
    return result.success_rate


# -- statistics and formatting ---------------------------------------------------------------------
def median(values: Iterable[float]) -> float:
    """Median of a non-empty iterable."""
    return float(statistics.median(list(values)))


def spread(values: Sequence[float]) -> str:
    """``"min-max"`` of several values (empty string for a single one)."""
    return "" if len(values) < 2 else f"{min(values):,.0f}-{max(values):,.0f}"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, creating the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


# -- output ---------------------------------------------------------------------------------------
def log(message: str) -> None:
    """A progress line, flushed at once (full runs are long)."""
    print(message, flush=True)


def section(title: str) -> None:
    """Print an underlined section title."""
    print(f"\n{title}\n{'=' * len(title)}")


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """A GitHub-style table (cells are preformatted strings)."""
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
