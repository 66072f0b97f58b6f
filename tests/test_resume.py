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


def _copy_run(src: Path, dst: Path, drop: list[str]) -> Path:
    import shutil

    shutil.copytree(src, dst)
    for name in drop:
        (dst / name).unlink()
    return dst


@pytest.mark.faults("SIGKILL then `--resume` on a Gymnasium env without get_state/set_state (CartPole-v1) | a warning "
                    "says the resume restarts the envs from a seeded reset and is not bit-identical; two resumes from "
                    "one checkpoint agree exactly | the episodes in progress at the checkpoint")
@pytest.mark.parametrize("algo", ["ppo", "r2d2"])
def test_resume_on_an_env_without_state_capture_warns_and_is_deterministic(tmp_path, algo):
    run = tmp_path / "run"
    algo_args = ["--n-steps", "32"] if algo == "ppo" else [
        "--algo", "r2d2", "--learning-starts", "100", "--seq-len", "4", "--buffer-size", "800"]
    args = ["train", "--env", "CartPole-v1", "--steps", "512", "--seed", "2", "--n-envs", "4", *algo_args,
            "--hidden-size", "8", "--no-progress", "--verbose", "0", "--eval-episodes", "0", "--checkpoint-every",
            "256", "--out", str(run)]
    assert main(args) == 0
    killed = ["agent.tracerl", "checkpoints/ckpt_000000000512.tracerl"]  # died after its checkpoint at 256
    params = []
    for name in ("a", "b"):
        copy = _copy_run(run, tmp_path / name, killed)
        with pytest.warns(RuntimeWarning, match="CartPole-v1 cannot save and restore its state.*not bit-identical"):
            assert main(["train", "--resume", str(copy), "--no-progress", "--verbose", "0"]) == 0
        params.append(_params(copy / "agent.tracerl"))
    for k in params[0]:
        assert torch.equal(params[0][k], params[1][k]), k


def test_a_resume_on_an_env_with_state_capture_does_not_warn(tmp_path):
    import warnings

    run = tmp_path / "run"
    assert main(ARGS + ["--out", str(run), "--steps", "512"]) == 0
    copy = _copy_run(run, tmp_path / "copy", ["agent.tracerl", "checkpoints/ckpt_000000000512.tracerl"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["train", "--resume", str(copy), "--no-progress", "--verbose", "0"]) == 0
    a, b = _params(run / "agent.tracerl"), _params(copy / "agent.tracerl")
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.faults("Run killed after logging a step past its last checkpoint; `--resume` logs that step again | "
                    "TensorBoard shows every step once (purge_step) and progress.csv has one row per step | none")
def test_a_resumed_run_logs_every_step_once(tmp_path):
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    # Killed right after it logged step 384, before its checkpoint at 512: the newest checkpoint is at 256.
    assert main(ARGS + ["--out", str(run), "--steps", "384", "--log-interval", "1"]) == 0
    (run / "agent.tracerl").unlink()
    assert main(["train", "--resume", str(run), "--steps", "512", "--no-progress", "--verbose", "0"]) == 0
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert [s.step for s in acc.Scalars("time/total_timesteps")] == [128, 256, 384, 512]
    with open(run / "progress.csv", newline="") as f:
        assert [int(r["time/total_timesteps"]) for r in csv.DictReader(f)] == [128, 256, 384, 512]
