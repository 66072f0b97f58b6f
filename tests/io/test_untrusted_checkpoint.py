"""Edited-but-re-hashed checkpoints: a file that asks for a huge agent is refused before anything big is allocated,
and every malformed entry is a CheckpointError naming the file and entry (never another exception)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from checkpoint_edit import read_raw, write_rehashed
from tracerl import TraceRL
from tracerl.errors import CheckpointError

CUE = "tracerl/CueDelay-v0"
_PPO = dict(env=CUE, env_kwargs={"delay": 2}, n_envs=2, n_steps=8, batch_size=8, n_epochs=1, hidden_size=8,
            encoder_hidden=(16,), seed=0, verbose=0)
_R2D2 = dict(env=CUE, env_kwargs={"delay": 2}, algo="r2d2", n_envs=2, learning_starts=8, buffer_size=64,
             batch_size=2, seq_len=4, hidden_size=8, encoder_hidden=(16,), head_hidden=(8,), seed=0, verbose=0)


def _saved(tmp_path: Path, name: str, steps: int = 16, **kwargs: Any) -> Path:
    agent = TraceRL(**kwargs)
    agent.learn(steps)
    path = tmp_path / f"{name}.tracerl"
    agent.save(path)
    return path


def _edit_meta(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    tensors, meta, kind = read_raw(src)
    edit(meta)
    write_rehashed(dst, tensors, meta, kind)
    return dst


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        node = meta
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


# --------------------------------------------------------------------------------- 1. unbounded allocation

_HUGE_PPO = {
    "hidden_size_4000": _set("policy", "hidden_size", value=4000),  # ~0.4 GB of GRU weights
    "hidden_size_14000": _set("policy", "hidden_size", value=14000),  # ~4.7 GB (the 7.9 GB, 536 s)
    "discrete_n_5e6": _set("action_space", "n", value=5_000_000),  # actor head of 5e6 x 8 floats
    "discrete_n_1e9": _set("action_space", "n", value=10**9),
    "encoder_widths_1e6": _set("policy", "encoder_hidden", value=[10**6]),
    "encoder_widths_50000x2": _set("policy", "encoder_hidden", value=[50_000, 50_000]),
    "aux_n_classes_1e9": _set("aux_modules", value=[{"name": "CueAuxModule", "config": {
        "feat_dim": 8, "n_classes": 10**9, "coef": 0.1, "info_key": "cue"}}]),
    "aux_n_classes_1e7": _set("aux_modules", value=[{"name": "CueAuxModule", "config": {
        "feat_dim": 8, "n_classes": 10**7, "coef": 0.1, "info_key": "cue"}}]),
    "n_envs_1e9": _set("ppo", "n_envs", value=10**9),
    "n_steps_1e9": _set("ppo", "n_steps", value=10**9),
}
_HUGE_R2D2 = {
    "buffer_size_1e9": _set("config", "buffer_size", value=10**9),
    "buffer_size_1e7": _set("config", "buffer_size", value=10**7),  # ~0.3 GB touched by the replay's index arrays
    "hidden_size_14000": _set("policy", "hidden_size", value=14000),
    "head_hidden_60000": _set("config", "head_hidden", value=[60_000]),
}
_HUGE_STRATEGIC = {
    "max_entries_1e8": _set("policy", "memory_kwargs", "max_entries", value=10**8),
    "max_entries_1e6": _set("policy", "memory_kwargs", "max_entries", value=10**6),
}

_PROBE = textwrap.dedent("""
    import json, resource, sys
    from tracerl import TraceRL
    from tracerl.errors import CheckpointError

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    env = "tracerl/CueDelay-v0"
    for reference in json.loads(sys.argv[2]):  # warm up: every import and first-use allocation of a real load
        TraceRL.load(reference, env=env, verbose=0)
    base = peak_mb()
    results = {}
    for name, path in json.loads(sys.argv[1]).items():
        try:
            TraceRL.load(path, env=env, verbose=0)
            outcome = "loaded"
        except CheckpointError as exc:
            outcome = "CheckpointError: " + str(exc)
        except BaseException as exc:
            outcome = type(exc).__name__ + ": " + str(exc)[:300]
        results[name] = [outcome, peak_mb() - base]
    print(json.dumps(results))
""")


@pytest.mark.faults("A re-hashed checkpoint asking for a huge network, action space, encoder, aux head, strategic memory, replay or env count (16 variants, PPO, R2D2, strategic) | CheckpointError naming the entry, before anything big is allocated (peak RSS growth < 200 MB) | none")
def test_checkpoint_asking_for_a_huge_agent_is_refused_without_allocating_it(tmp_path: Path) -> None:
    sources = {"ppo": _saved(tmp_path, "ppo", **_PPO), "r2d2": _saved(tmp_path, "r2d2", steps=24, **_R2D2),
               "strategic": _saved(tmp_path, "strategic", **dict(_PPO, memory="strategic",
                                                                memory_kwargs={"max_entries": 4}))}
    crafted = {}
    for family, edits in (("ppo", _HUGE_PPO), ("r2d2", _HUGE_R2D2), ("strategic", _HUGE_STRATEGIC)):
        for name, edit in edits.items():
            crafted[f"{family}:{name}"] = str(_edit_meta(sources[family], tmp_path / f"{family}-{name}.tracerl", edit))
    for path in crafted.values():
        assert Path(path).stat().st_size < 200_000  # small files...
    run = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(crafted),
                          json.dumps([str(p) for p in sources.values()])],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    not_refused = {name: outcome for name, (outcome, _) in results.items() if not outcome.startswith("CheckpointError")}
    assert not not_refused, not_refused
    grown = {name: round(mb) for name, (_, mb) in results.items() if mb >= 200}
    assert not grown, f"peak RSS grew by >= 200 MB (MB per variant, cumulative peak): {grown}"
    assert all("file=" in outcome and "entry=" in outcome for outcome, _ in results.values()), results
