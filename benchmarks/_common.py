"""Shared helpers of the benchmark scripts: threading, machine info, a pausable clock, the
held-out evaluation protocol, agent/env factories and small statistics.

Every benchmark runs single-threaded (``torch.set_num_threads(1)``) so that figures are comparable
across machines and are not disturbed by whatever runs on the other cores.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

CUE_ENV_ID = "tracerl/CueDelay-v0"
"""The registered id of tracerl's delayed-cue memory task."""

EVAL_EPISODES = 100
"""Episodes per held-out evaluation."""

EVAL_SEED_BASE = 1_000_000
"""Evaluation seeds start here; training seeds are small ints, so evaluation episodes are held out."""

SB3_N_ENVS = 8
"""Parallel envs of the stable-baselines3 agents (their ``make_vec_env`` of 8 ``CueDelay`` copies)."""

RESULTS_DIR = Path(__file__).resolve().parent / "bench_results"
"""Default output folder (git-ignored)."""


# -- process setup ---------------------------------------------------------------------------------
def configure_torch() -> None:
    """One intra-op and one inter-op thread: must run before any tensor work."""
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started: harmless for these benchmarks
        pass


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (falls back to ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(repo: Path) -> str:
    """``git rev-parse HEAD`` of ``repo`` (``"unknown"`` outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def package_version(name: str) -> str:
    """Installed version of a distribution, or ``"not installed"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    """Platform, CPU, thread settings, library versions, git commit and current load."""
    repo = Path(__file__).resolve().parent.parent
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "loadavg_at_start": list(os.getloadavg()),
        "versions": {name: package_version(name) for name in
                     ("tracerl", "torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy")},
        "git_commit": git_commit(repo),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# -- timing ----------------------------------------------------------------------------------------
class PausableClock:
    """A wall clock (``time.perf_counter``) that can be paused, e.g. while evaluating."""

    def __init__(self) -> None:
        self._elapsed = 0.0
        self._since: float | None = None

    def start(self) -> None:
        """Start or resume counting (no-op while running)."""
        if self._since is None:
            self._since = time.perf_counter()

    def pause(self) -> None:
        """Stop counting (no-op while paused)."""
        if self._since is not None:
            self._elapsed += time.perf_counter() - self._since
            self._since = None

    @property
    def running(self) -> bool:
        """Whether the clock is counting."""
        return self._since is not None

    @property
    def elapsed(self) -> float:
        """Seconds counted so far."""
        running = 0.0 if self._since is None else time.perf_counter() - self._since
        return self._elapsed + running


# -- agents and envs -------------------------------------------------------------------------------
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
    from stable_baselines3.common.env_util import make_vec_env

    from tracerl.envs import CueDelay

    return make_vec_env(lambda: CueDelay(delay, difficulty=1), n_envs=n_envs, seed=seed)


def make_recurrent_ppo(delay: int, seed: int, **overrides: Any) -> Any:
    """``sb3_contrib.RecurrentPPO("MlpLstmPolicy")`` at its defaults (plus ``overrides``) with 8 envs."""
    from sb3_contrib import RecurrentPPO

    return RecurrentPPO("MlpLstmPolicy", make_sb3_env(delay, seed), seed=seed, verbose=0, device="cpu", **overrides)


def make_sb3_ppo(delay: int, seed: int, **overrides: Any) -> Any:
    """``stable_baselines3.PPO("MlpPolicy")`` (memoryless) at its defaults (plus ``overrides``) with 8 envs."""
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", make_sb3_env(delay, seed), seed=seed, verbose=0, device="cpu", **overrides)


# -- evaluation ------------------------------------------------------------------------------------
def eval_seed(train_seed: int, index: int) -> int:
    """Seed of the ``index``-th evaluation of the run trained with ``train_seed``.

    Every evaluation draws fresh held-out episodes (sub-env i of an evaluation uses ``seed + i``, i < 16),
    and the k-th evaluation of a given training seed sees the same episodes whatever the agent.
    """
    return EVAL_SEED_BASE + 10_000 * train_seed + 16 * index


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
