"""Kill a training with SIGKILL and resume it: the result equals a run never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tracerl import TraceRL
from tracerl.cli import main
from tracerl.errors import CheckpointError
from tracerl.io.rotation import list_checkpoints, newest_loadable

ARGS = ["train", "--env", "tracerl/CueDelay-v0", "--env-kwargs", "delay=4", "difficulty=1", "--memory", "gru",
        "--steps", "4096", "--seed", "1", "--n-envs", "4", "--n-steps", "32", "--hidden-size", "16",
        "--no-progress", "--verbose", "0", "--eval-episodes", "0", "--checkpoint-every", "256",
        "--keep-checkpoints", "3"]


def _params(path: Path) -> dict[str, torch.Tensor]:
    return TraceRL.load(path, verbose=0).policy.state_dict()


@pytest.mark.faults("SIGKILL during training, then `tracerl train --resume` | final parameters bit-identical to an uninterrupted run; no temp files | none")
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    straight = tmp_path / "straight"
    assert main(ARGS + ["--out", str(straight)]) == 0
    assert len(list_checkpoints(straight / "checkpoints")) == 3  # rotation keeps the newest three

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "tracerl", *ARGS, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list_checkpoints(killed / "checkpoints"):  # wait for the first periodic checkpoint
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "agent.tracerl").exists()  # it really died before the end
    assert main(["train", "--resume", str(killed), "--no-progress", "--verbose", "0"]) == 0

    a, b = _params(straight / "agent.tracerl"), _params(killed / "agent.tracerl")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not [p for p in (killed / "checkpoints").iterdir() if ".tmp" in p.name]


@pytest.mark.faults("Newest periodic checkpoint corrupted before resume | skipped with a warning; the previous one is used | the steps since the previous checkpoint are retrained, identically")
def test_resume_skips_a_corrupted_newest_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert main(ARGS + ["--out", str(run), "--steps", "1024"]) == 0
    ckpts = list_checkpoints(run / "checkpoints")
    ckpts[-1].write_bytes(ckpts[-1].read_bytes()[:100])
    from tracerl.agent import CHECKPOINT_KIND
    from tracerl.io.checkpoint import load_checkpoint

    with pytest.warns(RuntimeWarning, match="skipping"):
        found = newest_loadable(run / "checkpoints", lambda p: load_checkpoint(p, kind=CHECKPOINT_KIND))
    assert found == ckpts[-2]


def test_no_loadable_checkpoint_names_the_directory(tmp_path):
    with pytest.raises(CheckpointError, match="nothing_here"):
        newest_loadable(tmp_path / "nothing_here", lambda p: None)


@pytest.mark.faults("A save killed half-way leaves a temporary file | the next successful save removes it; the "
                    "previous checkpoints stay loadable | none")
def test_a_killed_save_leaves_nothing_behind_after_the_next_save(tmp_path):
    from tracerl.io.rotation import checkpoint_path, rotate

    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 4}, seed=0, verbose=0, n_envs=2, n_steps=8,
                    batch_size=8, hidden_size=8)
    d = tmp_path / "checkpoints"
    agent.save(checkpoint_path(d, 16))
    stale = d / ".ckpt_000000000032.tracerl.0a1b2c3d4e5f.tmp"  # what a SIGKILL during a save leaves
    stale.write_bytes(b"partial")
    agent.save(checkpoint_path(d, 48))
    rotate(d, keep=3)
    assert not stale.exists()
    assert [p.name for p in list_checkpoints(d)] == ["ckpt_000000000016.tracerl", "ckpt_000000000048.tracerl"]
    TraceRL.load(checkpoint_path(d, 16), verbose=0)
