"""An env id read from a file never imports a module the user did not name; stored env kwargs are checked."""

from __future__ import annotations

import sys

import gymnasium
import numpy as np
import pytest

from tracerl import TraceRL
from tracerl.cli import main
from tracerl.envs import make_vec_env
from tracerl.envs.safe_make import (
    MAX_EPISODE_STEPS,
    FileEnvId,
    check_env_id,
    check_env_kwargs,
    env_id_from_file,
    is_trusted_module,
)
from tracerl.errors import CheckpointError, ConfigError
from tracerl.evaluation import evaluate
from tracerl.io.checkpoint import load_checkpoint, save_checkpoint

EVIL_SOURCE = '''
import pathlib
pathlib.Path({marker!r}).write_text("imported")
import gymnasium
if "EvilCue-v0" not in gymnasium.registry:
    gymnasium.register("EvilCue-v0", entry_point="tracerl.envs.cue_delay:CueDelay")
'''


@pytest.fixture
def evil_cwd(tmp_path, monkeypatch):
    """A current directory holding evilmod.py (which writes ``marker`` when imported), first on sys.path as
    with ``python -m tracerl``; returns the marker path."""
    marker = tmp_path / "IMPORTED"
    (tmp_path / "evilmod.py").write_text(EVIL_SOURCE.format(marker=str(marker)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "evilmod", raising=False)
    yield marker
    sys.modules.pop("evilmod", None)
    gymnasium.registry.pop("EvilCue-v0", None)


def _rewrite_meta(path, **changes):
    """Edit a checkpoint's metadata the way an attacker would (the hashes are recomputed: the file is 'valid')."""
    from tracerl.agent import CHECKPOINT_KIND

    tensors, meta = load_checkpoint(path, kind=CHECKPOINT_KIND)
    meta.update(changes)
    save_checkpoint(path, tensors, meta, kind=CHECKPOINT_KIND)


@pytest.fixture
def evil_checkpoint(tmp_path):
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 3}, n_envs=2, n_steps=8, batch_size=16,
                    hidden_size=8, encoder_hidden=(8,), verbose=0, seed=0)
    path = tmp_path / "agent.tracerl"
    agent.save(path)
    _rewrite_meta(path, env_id="evilmod:EvilCue-v0", env_kwargs={"delay": 3})
    return path


@pytest.mark.faults("Checkpoint env_id 'evilmod:X-v0' (module in the cwd), then tracerl eval / inspect, agent.inspect(), "
                    "evaluate(agent, agent.env_id), TraceRL.load(env=id from config) | ConfigError naming the module "
                    "and --env-module / import_modules; the module is never imported | none")
@pytest.mark.parametrize("path_kind", ["eval_cli", "inspect_cli", "agent_inspect", "evaluate", "load_with_env",
                                       "resume_config"])
def test_an_env_id_from_a_file_never_imports_its_module(evil_cwd, evil_checkpoint, tmp_path, capsys, path_kind):
    marker = evil_cwd
    if path_kind == "eval_cli":
        assert main(["eval", str(evil_checkpoint), "--episodes", "2"]) == 2
        err = capsys.readouterr().err
        assert "evilmod" in err and "--env-module evilmod" in err
    elif path_kind == "inspect_cli":
        assert main(["inspect", str(evil_checkpoint), "--episodes", "2", "--out", str(tmp_path / "ins")]) == 2
        assert "--env-module evilmod" in capsys.readouterr().err
    else:
        with pytest.raises(ConfigError, match="import_modules=\\['evilmod'\\]"):
            if path_kind == "agent_inspect":
                TraceRL.load(evil_checkpoint, verbose=0).inspect(episodes=2)
            elif path_kind == "evaluate":
                agent = TraceRL.load(evil_checkpoint, verbose=0)
                evaluate(agent, agent.env_id, n_episodes=2)
            elif path_kind == "load_with_env":
                agent = TraceRL.load(evil_checkpoint, verbose=0)
                TraceRL.load(evil_checkpoint, env=agent.env_id, verbose=0)
            else:  # a run's config.json names the env that `--resume` rebuilds
                TraceRL.load(evil_checkpoint, env=env_id_from_file("evilmod:EvilCue-v0", "config.json"), verbose=0)
    assert not marker.exists()
    assert "evilmod" not in sys.modules


def test_the_env_module_flag_and_import_modules_allow_it(evil_cwd, evil_checkpoint, capsys):
    marker = evil_cwd
    assert main(["eval", str(evil_checkpoint), "--episodes", "2", "--env-module", "evilmod"]) == 0
    assert marker.exists()
    agent = TraceRL.load(evil_checkpoint, verbose=0, import_modules=["evilmod"])
    assert evaluate(agent, agent.env_id, n_episodes=2, env_kwargs=agent.env_kwargs).lengths.tolist() == [3, 3]
    agent = TraceRL.load(evil_checkpoint, verbose=0)
    assert len(evaluate(agent, agent.env_id, n_episodes=2, import_modules=["evilmod"]).returns) == 2


def test_an_id_typed_by_the_user_keeps_gymnasiums_meaning(evil_cwd):
    vec = make_vec_env("evilmod:EvilCue-v0", n_envs=1)  # the user's own code names the module
    assert evil_cwd.exists()
    vec.close()


def test_trusted_packages_need_no_flag():
    check_env_id(env_id_from_file("tracerl.envs.registration:tracerl/CueDelay-v0", "f.json"))
    assert is_trusted_module("tracerl.envs")
    assert not is_trusted_module("evilmod")
    vec = make_vec_env(env_id_from_file("tracerl.envs.registration:tracerl/CueDelay-v0", "f.json"), n_envs=1)
    vec.close()


def test_popgym_is_trusted_only_when_installed_in_site_packages(tmp_path, monkeypatch):
    pytest.importorskip("popgym")
    assert is_trusted_module("popgym")
    fake = tmp_path / "popgym.py"
    fake.write_text("raise SystemExit('shadow popgym imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "popgym", raising=False)
    assert not is_trusted_module("popgym")  # the copy in the cwd would be imported: not the installed package


@pytest.mark.faults("Checkpoint env_kwargs with a huge delay, a nested object, an inf, a 10 kB string or 100 keys | "
                    "CheckpointError / ConfigError naming the kwarg before the env is built | none")
@pytest.mark.parametrize("kwargs", [{"delay": 10_000_000}, {"delay": 2**80}, {"delay": {"__class__": "x"}},
                                    {"delay": float("inf")}, {"delay": "x" * 10_000},
                                    {f"k{i}": 1 for i in range(100)}, {"not an id": 1}])
def test_stored_env_kwargs_are_checked(tmp_path, kwargs):
    agent = TraceRL(env="tracerl/CueDelay-v0", n_envs=2, n_steps=8, batch_size=16, hidden_size=8, verbose=0)
    path = tmp_path / "a.tracerl"
    agent.save(path)
    _rewrite_meta(path, env_kwargs=kwargs)
    with pytest.raises((CheckpointError, ConfigError)) as info:
        loaded = TraceRL.load(path, verbose=0)
        evaluate(loaded, loaded.env_id, n_episodes=1, env_kwargs=loaded.env_kwargs)
    assert "delay" in str(info.value) or "env_kwargs" in str(info.value)


def test_check_env_kwargs_accepts_json_scalars_and_flat_lists():
    ok = {"delay": 4, "p": 0.5, "mode": "sum", "flag": True, "none": None, "keep": [0, 2]}
    assert check_env_kwargs(ok, "f") == ok
    with pytest.raises(ConfigError, match="keep"):
        check_env_kwargs({"keep": [[0]]}, "f")


@pytest.mark.parametrize("env_id, kwargs", [("tracerl/CueDelay-v0", {"delay": MAX_EPISODE_STEPS + 1}),
                                            ("tracerl/TMazePassive-v0", {"corridor_length": MAX_EPISODE_STEPS + 1}),
                                            ("tracerl/CountWindow-v0", {"episode_length": MAX_EPISODE_STEPS + 1})])
def test_tracerls_envs_cap_their_episode_sizes(env_id, kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=name):
        gymnasium.make(env_id, **kwargs)


def test_file_env_ids_survive_pickling_and_reject_two_colons():
    import pickle

    fid = env_id_from_file("tracerl/CueDelay-v0", "ckpt", ["m"])
    back = pickle.loads(pickle.dumps(fid))
    assert isinstance(back, FileEnvId) and back.source == "ckpt" and back.import_modules == ("m",)
    with pytest.raises(ConfigError, match="at most one"):
        check_env_id(env_id_from_file("a:b:c", "ckpt"))
    with pytest.raises(ConfigError, match="printable"):
        env_id_from_file("x" * 1000, "ckpt")
    assert np.isscalar(len(fid))


def test_a_bench_suite_env_id_with_a_module_prefix_is_refused_without_import(evil_cwd):
    from tracerl.bench.envs import check_env_id as bench_check_env_id

    with pytest.raises(ConfigError, match="evilmod:EvilCue-v0"):
        bench_check_env_id("evilmod:EvilCue-v0", where="suite.toml: envs[0]")
    assert not evil_cwd.exists()


def test_numpy_scalars_count_as_json_scalars_but_nan_does_not():
    assert check_env_kwargs({"a": np.float32(1), "b": np.int64(3)}, "f")["b"] == 3
    with pytest.raises(ConfigError, match="finite"):
        check_env_kwargs({"a": np.float32("nan")}, "f")


def test_python_m_tracerl_eval_in_a_directory_with_evilmod_does_not_import_it(evil_cwd, evil_checkpoint):
    """The real attack: `python -m tracerl eval` puts the current directory first on sys.path."""
    import os
    import subprocess

    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "tracerl", "eval", str(evil_checkpoint), "--episodes", "2"],
                          cwd=evil_cwd.parent, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--env-module evilmod" in proc.stderr
    assert not evil_cwd.exists()
