"""`tracerl train --out DIR`: one run per directory (refused when used, --overwrite, a lock, a run id), arguments
checked before anything is written, and final outputs that are never lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tracerl import TraceRL
from tracerl.cli import main
from tracerl.io.rotation import checkpoint_run_id, list_checkpoints

PPO = ["train", "--env", "tracerl/CueDelay-v0", "--env-kwargs", "delay=4", "difficulty=1", "--n-envs", "4",
       "--n-steps", "32", "--hidden-size", "16", "--no-progress", "--verbose", "0", "--eval-episodes", "0"]
R2D2 = ["train", "--algo", "r2d2", "--env", "tracerl/CueDelay-v0", "--env-kwargs", "delay=4", "--learning-starts",
        "100", "--n-step", "2", "--seq-len", "4", "--n-envs", "4", "--buffer-size", "800", "--hidden-size", "8",
        "--no-progress", "--verbose", "0", "--eval-episodes", "0"]
ALGOS = {"ppo": PPO, "r2d2": R2D2}


def _snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every entry under ``directory``: file bytes (None for directories)."""
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(directory.rglob("*"))}


def _train(out: Path, *extra: str, algo: str = "ppo") -> int:
    return main([*ALGOS[algo], "--out", str(out), *extra])


# -- one run per directory ---------------------------------------------------------------------------------------

@pytest.mark.faults("A second `tracerl train --out R` on a finished run's directory | refused (exit 2) naming --resume "
                    "and --overwrite; every old file byte-identical | none")
@pytest.mark.parametrize("algo", ["ppo", "r2d2"])
def test_a_second_train_on_a_used_out_is_refused_and_leaves_its_files_byte_identical(tmp_path, capsys, algo):
    out = tmp_path / "run"
    assert _train(out, "--steps", "256", "--checkpoint-every", "128", algo=algo) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert _train(out, "--steps", "128", "--seed", "1", "--memory", "lstm", algo=algo) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert _snapshot(out) == before


@pytest.mark.parametrize("algo", ["ppo", "r2d2"])
def test_overwrite_replaces_the_previous_run_entirely(tmp_path, algo):
    out = tmp_path / "run"
    assert _train(out, "--steps", "512", "--checkpoint-every", "128", "--seed", "0", algo=algo) == 0
    old_id = json.loads((out / "config.json").read_text())["run_id"]
    # The new run is shorter: the old run's later checkpoints (384, 512) would outrank its own by step.
    assert _train(out, "--steps", "256", "--checkpoint-every", "128", "--seed", "1", "--overwrite", algo=algo) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 1 and config["run_id"] != old_id
    ckpts = list_checkpoints(out / "checkpoints")
    assert [p.name for p in ckpts] == ["ckpt_000000000128.tracerl", "ckpt_000000000256.tracerl"]
    assert {checkpoint_run_id(p) for p in ckpts} == {config["run_id"]}
    assert checkpoint_run_id(out / "agent.tracerl") == config["run_id"]
    assert TraceRL.load(out / "agent.tracerl", verbose=0).num_timesteps == 256
    assert not [p for p in out.iterdir() if p.name.startswith(".overwritten")]


@pytest.mark.faults("`tracerl train --overwrite` on a directory holding files a run does not write | refused (exit 2) "
                    "naming them; nothing deleted | none")
def test_overwrite_refuses_a_directory_holding_other_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "--steps", "128") == 0
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    assert _train(out, "--steps", "128", "--overwrite") == 2
    assert "notes.txt" in capsys.readouterr().err
    assert _snapshot(out) == before
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "data.bin").write_bytes(b"x")
    assert _train(plain, "--steps", "128") == 2
    assert "not empty" in capsys.readouterr().err
    assert _snapshot(plain) == {"data.bin": b"x"}


_HOLD_LOCK = """
import sys, time
from tracerl.io.rundir import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


@pytest.mark.faults("Two `tracerl train` on one --out at once; then the holder is SIGKILLed | the second is refused "
                    "(exit 2) naming the holder's pid, writing nothing; after the kill the lock is free | none")
def test_a_run_directory_in_use_is_refused_and_a_killed_holder_does_not_block(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        assert _train(out, "--steps", "128") == 2
        err = capsys.readouterr().err
        assert "in use by another tracerl run" in err and f"pid {holder.pid}" in err
        assert [p.name for p in out.iterdir()] == [".tracerl.lock"]
        assert main(["train", "--resume", str(out)]) == 2
        assert "in use" in capsys.readouterr().err
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert _train(out, "--steps", "128") == 0  # flock died with its process: no stale lock
    assert (out / "agent.tracerl").is_file()


@pytest.mark.faults("Invalid flags (--steps 0, --memory nope, --keep-checkpoints 0) on a new --out and with "
                    "--overwrite on a used one | exit 2 before anything is written or deleted | none")
@pytest.mark.parametrize("bad", [["--steps", "0"], ["--memory", "nope"], ["--keep-checkpoints", "0"],
                                 ["--n-steps", "0"]])
def test_invalid_arguments_write_nothing(tmp_path, capsys, bad):
    fresh = tmp_path / "fresh"
    assert _train(fresh, *bad) == 2
    assert not fresh.exists()
    used = tmp_path / "used"
    assert _train(used, "--steps", "128") == 0
    before = _snapshot(used)
    capsys.readouterr()
    assert _train(used, "--overwrite", *bad) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert _snapshot(used) == before


# -- resume: the same run, and only it ------------------------------------------------------------------------

@pytest.mark.faults("`--resume R` when R/checkpoints holds another run's newer checkpoint | refused (exit 2) naming "
                    "the file and both run ids; nothing trained | none")
@pytest.mark.parametrize("algo", ["ppo", "r2d2"])
def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, capsys, algo):
    mine, other = tmp_path / "mine", tmp_path / "other"
    assert _train(mine, "--steps", "256", "--checkpoint-every", "128", algo=algo) == 0
    assert _train(other, "--steps", "512", "--checkpoint-every", "128", algo=algo) == 0
    (mine / "agent.tracerl").unlink()  # "killed" before its final save
    stray = list_checkpoints(other / "checkpoints")[-1]
    shutil.copy(stray, mine / "checkpoints" / stray.name)
    before = _snapshot(mine)
    capsys.readouterr()
    assert main(["train", "--resume", str(mine), "--no-progress", "--verbose", "0"]) == 2
    err = capsys.readouterr().err
    other_id = json.loads((other / "config.json").read_text())["run_id"]
    assert stray.name in err and other_id in err and "belongs to run" in err
    assert _snapshot(mine) == before


@pytest.mark.faults("`--resume R --seed 4 --memory lstm` | refused (exit 2) naming --seed and --memory; the run is "
                    "untouched | none")
def test_resume_refuses_flags_that_would_change_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "--steps", "256", "--checkpoint-every", "128") == 0
    (out / "agent.tracerl").unlink()
    before = _snapshot(out)
    assert main(["train", "--resume", str(out), "--seed", "4", "--memory=lstm", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--seed" in err and "--memory" in err and "--steps" in err
    assert _snapshot(out) == before


def test_resume_with_steps_sets_a_new_total(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "--steps", "256", "--checkpoint-every", "128") == 0
    assert main(["train", "--resume", str(out), "--steps", "512", "--no-progress", "--verbose", "0"]) == 0
    assert TraceRL.load(out / "agent.tracerl", verbose=0).num_timesteps == 512
    assert json.loads((out / "config.json").read_text())["steps"] == 512
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == [
        "ckpt_000000000256.tracerl", "ckpt_000000000384.tracerl", "ckpt_000000000512.tracerl"]
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--steps", "128", "--no-progress"]) == 2
    assert "already at 512 steps" in capsys.readouterr().err


# -- final outputs ----------------------------------------------------------------------------------------------

@pytest.mark.faults("Run killed after its last checkpoint, before agent.tracerl / eval.json | `--resume` writes both "
                    "(agent equal to the uninterrupted run's) and exits 0 | none")
@pytest.mark.parametrize("algo", ["ppo", "r2d2"])
def test_resume_of_a_run_killed_after_its_last_checkpoint_writes_the_final_files(tmp_path, algo):
    out = tmp_path / "run"
    assert _train(out, "--steps", "256", "--checkpoint-every", "128", "--eval-episodes", "4", algo=algo) == 0
    straight = TraceRL.load(out / "agent.tracerl", verbose=0).policy.state_dict()
    eval_before = json.loads((out / "eval.json").read_text())
    (out / "agent.tracerl").unlink()
    (out / "eval.json").unlink()
    assert main(["train", "--resume", str(out), "--no-progress", "--verbose", "0"]) == 0
    resumed = TraceRL.load(out / "agent.tracerl", verbose=0)
    assert resumed.num_timesteps == 256
    for key, value in straight.items():
        assert (resumed.policy.state_dict()[key] == value).all(), key
    assert json.loads((out / "eval.json").read_text()) == eval_before
    # killed during the evaluation after the final save: the resume only evaluates
    (out / "eval.json").unlink()
    saved = (out / "agent.tracerl").read_bytes()
    assert main(["train", "--resume", str(out), "--no-progress", "--verbose", "0"]) == 0
    assert json.loads((out / "eval.json").read_text()) == eval_before
    assert (out / "agent.tracerl").read_bytes() == saved


@pytest.mark.faults("A directory where agent.tracerl (or eval.json) goes, found at `--resume` | refused (exit 2) "
                    "naming the path, before any training | none")
@pytest.mark.parametrize("name", ["agent.tracerl", "eval.json"])
def test_an_unwritable_final_path_is_refused_before_training(tmp_path, capsys, name):
    out = tmp_path / "run"
    assert _train(out, "--steps", "256", "--checkpoint-every", "128", "--eval-episodes", "2") == 0
    (out / name).unlink()
    (out / name).mkdir()
    before = _snapshot(out)
    assert main(["train", "--resume", str(out), "--steps", "512", "--no-progress", "--verbose", "0"]) == 2
    err = capsys.readouterr().err
    assert str(out / name) in err and "is a directory" in err
    assert _snapshot(out) == before  # no step trained, no checkpoint written


def _cannot_create_in(directory: Path) -> bool:
    probe = directory / "probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return True
    probe.unlink()
    return False


@pytest.mark.faults("A read-only --out | refused (exit 2) before training, naming the directory | none")
def test_a_read_only_out_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        if not _cannot_create_in(out):
            pytest.skip("this user can write into a read-only directory (root)")
        assert _train(out, "--steps", "128") == 2
        err = capsys.readouterr().err
        assert str(out) in err and "read-only" in err
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o755)


@pytest.mark.faults("The final save fails after training (disk full) | the agent is saved to a fallback file beside "
                    "it, named on stderr; exit 1 | none (the agent is in the fallback file)")
@pytest.mark.parametrize("algo", ["ppo", "r2d2"])
def test_a_failed_final_save_writes_a_fallback_and_says_where(tmp_path, capsys, monkeypatch, algo):
    cls = TraceRL  # one agent class for every algorithm
    original = cls.save

    def save(self, path, *args, **kwargs):
        if Path(path).name == "agent.tracerl":
            raise OSError(28, "No space left on device", str(path))
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(cls, "save", save)
    out = tmp_path / "run"
    assert _train(out, "--steps", "256", "--eval-episodes", "3", algo=algo) == 1
    err = capsys.readouterr().err
    fallback = out / f"agent.{os.getpid()}.fallback.tracerl"
    assert str(fallback) in err and "No space left" in err
    assert not (out / "agent.tracerl").exists() and not (out / "eval.json").exists()
    monkeypatch.undo()
    assert TraceRL.load(fallback, verbose=0).num_timesteps == 256


def test_when_nothing_can_be_written_beside_the_run_the_fallback_goes_to_the_temp_dir(tmp_path, capsys, monkeypatch):
    import tempfile

    from tracerl.agent import TraceRL as PPOAgent

    original = PPOAgent.save
    out = tmp_path / "run"

    def save(self, path, *args, **kwargs):
        if Path(path).parent == out:
            raise OSError(30, "Read-only file system", str(path))
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(PPOAgent, "save", save)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert _train(out, "--steps", "128") == 1
    err = capsys.readouterr().err
    [fallback] = list((tmp_path / "tmp").glob("tracerl-*.fallback.tracerl"))
    assert str(fallback) in err and "Read-only file system" in err
    monkeypatch.undo()
    assert TraceRL.load(fallback, verbose=0).num_timesteps == 128


# -- command-line errors: one line, exit 2, no traceback ------------------------------------------------------

def _one_line_error(capsys, *needles: str) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.faults("`tracerl train` with --env NoSuchEnv-v0, --device cuda (CPU build), --threads 0, --seed -1 | "
                    "one-line error naming the flag, exit 2, nothing written | none")
@pytest.mark.parametrize(("flags", "needle"), [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv"),
    (["--env", "no_such_module_xyz:Env-v0"], "no_such_module_xyz"),
    (["--device", "cuda"], "--device"),
    (["--device", "warp9"], "--device"),
    (["--threads", "0"], "--threads 0"),
    (["--seed", "-1"], "--seed -1"),
    (["--seed", str(2**70)], "--seed"),
])
def test_train_argument_errors_are_one_line_and_exit_2(tmp_path, capsys, flags, needle):
    import torch

    if flags == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out = tmp_path / "run"
    assert _train(out, "--steps", "128", *flags) == 2
    _one_line_error(capsys, needle)
    assert not out.exists()


@pytest.mark.faults("`tracerl eval` with --env NoSuchEnv-v0, --threads 0, --seed -1, --episodes 0 | one-line error "
                    "naming the flag, exit 2 | none")
@pytest.mark.parametrize(("flags", "needle"), [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv"),
    (["--threads", "0"], "--threads 0"),
    (["--seed", "-1"], "--seed -1"),
    (["--episodes", "0"], "--episodes 0"),
])
def test_eval_argument_errors_are_one_line_and_exit_2(tmp_path, capsys, flags, needle):
    path = tmp_path / "a.tracerl"
    TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 2}, n_envs=2, n_steps=8, hidden_size=8,
            verbose=0).save(path)
    assert main(["eval", str(path), "--episodes", "2", *flags]) == 2
    _one_line_error(capsys, needle)


# -- Ctrl-C during training -------------------------------------------------------------------------------------

def _interrupt_learn_after(monkeypatch, algo: str, steps: int) -> None:
    """``learn`` trains ``steps`` env steps as asked (with the run's checkpointing), then Ctrl-C arrives."""
    cls = TraceRL  # one agent class for every algorithm
    original = cls.learn

    def learn(self, total_timesteps, *args, **kwargs):
        original(self, steps, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(cls, "learn", learn)


@pytest.mark.faults("Ctrl-C during `tracerl train` | the agent is saved to agent.interrupted.tracerl in --out (never "
                    "over agent.tracerl), named on stderr with how to evaluate and resume; exit 130 | the steps "
                    "after the newest periodic checkpoint, for --resume")
@pytest.mark.parametrize("algo", ["ppo", "r2d2"])
def test_ctrl_c_during_training_saves_an_interrupted_agent_and_exits_130(tmp_path, capsys, monkeypatch, algo):
    out = tmp_path / "run"
    _interrupt_learn_after(monkeypatch, algo, 256)
    assert _train(out, "--steps", "1024", "--checkpoint-every", "128", "--eval-episodes", "3", algo=algo) == 130
    err = capsys.readouterr().err
    interrupted = out / "agent.interrupted.tracerl"
    assert str(interrupted) in err and "tracerl eval" in err and f"--resume {out}" in err
    assert not (out / "agent.tracerl").exists() and not (out / "eval.json").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    loaded = TraceRL.load(interrupted, verbose=0)
    assert loaded.num_timesteps == 256
    assert checkpoint_run_id(interrupted) == json.loads((out / "config.json").read_text())["run_id"]
    # the run resumes from its newest periodic checkpoint and completes
    assert main(["train", "--resume", str(out), "--no-progress", "--verbose", "0"]) == 0
    assert TraceRL.load(out / "agent.tracerl", verbose=0).num_timesteps == 1024


def test_ctrl_c_during_a_resumed_run_never_replaces_its_final_agent(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert _train(out, "--steps", "256", "--checkpoint-every", "0") == 0
    final = (out / "agent.tracerl").read_bytes()
    _interrupt_learn_after(monkeypatch, "ppo", 128)
    assert main(["train", "--resume", str(out), "--steps", "1024", "--no-progress", "--verbose", "0"]) == 130
    err = capsys.readouterr().err
    assert str(out / "agent.interrupted.tracerl") in err
    assert (out / "agent.tracerl").read_bytes() == final
    monkeypatch.undo()
    assert TraceRL.load(out / "agent.interrupted.tracerl", verbose=0).num_timesteps == 256 + 128


def test_a_real_sigint_during_training_exits_130_with_the_interrupted_agent(tmp_path):
    import time

    out = tmp_path / "run"
    def default_sigint() -> None:  # as from a terminal: whatever earlier tests did to this process's SIGINT
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # (a blocked or ignored SIGINT is inherited)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, "-m", "tracerl", *PPO, "--out", str(out), "--steps", "100000000",
                             "--checkpoint-every", "128"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 120
        while not list_checkpoints(out / "checkpoints") and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list_checkpoints(out / "checkpoints"), "training never wrote a checkpoint"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode()
    interrupted = out / "agent.interrupted.tracerl"
    assert str(interrupted) in err.decode() and not (out / "agent.tracerl").exists()
    assert TraceRL.load(interrupted, verbose=0).num_timesteps >= 128


# -- a run directory wherever a checkpoint file is read -----------------------------------------------------------

def _run_forms(tmp_path: Path) -> dict[str, tuple[Path, int | None]]:
    """Each form a checkpoint argument takes -> (path, the step count of the agent it stands for; None: none)."""
    from tracerl.io.rotation import checkpoint_path

    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 4}, n_envs=2, n_steps=8, hidden_size=8,
                    seed=0, verbose=0)

    def save(path: Path, steps: int) -> None:
        agent.num_timesteps = steps
        path.parent.mkdir(parents=True, exist_ok=True)
        agent.save(path)

    save(tmp_path / "file.tracerl", 7)
    final = tmp_path / "final"
    for steps in (128, 256):
        save(checkpoint_path(final / "checkpoints", steps), steps)
    save(final / "agent.tracerl", 300)
    rotated = tmp_path / "rotated"
    for steps in (99_999_999_999, 1_000_000_000_000, 256):  # newest by step number, not by name
        save(checkpoint_path(rotated / "checkpoints", steps), steps)
    (tmp_path / "empty").mkdir()
    return {"file": (tmp_path / "file.tracerl", 7), "final": (final, 300),
            "rotated": (rotated, 1_000_000_000_000), "empty": (tmp_path / "empty", None)}


FORMS = ["file", "final", "rotated", "empty"]


@pytest.mark.faults("TraceRL.load of a run directory holding no agent.tracerl and no checkpoints | CheckpointError "
                    "naming the directory and what was looked for | none")
@pytest.mark.parametrize("form", FORMS)
def test_load_accepts_a_checkpoint_or_a_run_directory(tmp_path, form):
    from tracerl.errors import CheckpointError

    path, steps = _run_forms(tmp_path)[form]
    if steps is None:
        with pytest.raises(CheckpointError, match="agent.tracerl") as info:
            TraceRL.load(path, verbose=0)
        assert str(path) in str(info.value)
        return
    agent = TraceRL.load(path, verbose=0)
    assert agent.num_timesteps == steps
    assert agent.env_id == "tracerl/CueDelay-v0" and agent.env_kwargs == {"delay": 4}


@pytest.mark.faults("`tracerl eval/inspect/export` of a run directory holding no agent.tracerl and no checkpoints | "
                    "exit 2, one line naming the directory and what was looked for | none")
@pytest.mark.parametrize("command", ["eval", "inspect", "export"])
@pytest.mark.parametrize("form", FORMS)
def test_eval_inspect_and_export_accept_a_checkpoint_or_a_run_directory(tmp_path, capsys, command, form):
    path, steps = _run_forms(tmp_path)[form]
    extra = {"eval": ["--episodes", "4"],
             "inspect": ["--episodes", "4", "--out", str(tmp_path / "insp")],
             "export": ["--format", "torchscript", "--out", str(tmp_path / "policy.pt")]}[command]
    code = main([command, str(path), *extra])
    out, err = capsys.readouterr()
    if steps is None:
        assert code == 2
        assert str(path) in err and "agent.tracerl" in err and "checkpoints/ckpt_<steps>.tracerl" in err
        assert err.count("\n") == 1
        return
    assert code == 0, err
    if form != "file":  # the file the directory stood for is named
        expected = "agent.tracerl" if form == "final" else "ckpt_1000000000000.tracerl"
        assert expected in out + err
    if command == "inspect":
        assert (tmp_path / "insp" / "inspection.json").is_file()
    if command == "export":
        assert (tmp_path / "policy.pt").is_file()
