"""Agent checkpoints of settings that once could not be saved (whole agents, save -> load -> continue)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from helpers import errors_without_blocking
from tracerl import TraceRL
from tracerl.errors import CheckpointError

_TINY = {
    "ppo": dict(n_steps=8, batch_size=8, n_epochs=1, hidden_size=8),
    "sac": dict(learning_starts=8, buffer_size=64, batch_size=2, seq_len=4, hidden_size=8, head_hidden=(8,)),
}


@pytest.mark.faults("Saving a 1-env CountWindow agent (its one-env carry is a zero-stride view) | saved; the loaded agent continues training | none")
@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_one_env_count_window_agent_saves_and_loads(tmp_path: Path, algo: str) -> None:
    agent = TraceRL(env="tracerl/CountWindow-v0", algo=algo, n_envs=1, seed=0, verbose=0, **_TINY[algo])
    agent.learn(16)
    path = tmp_path / "agent.tracerl"
    agent.save(path)
    loaded = TraceRL.load(path, env="tracerl/CountWindow-v0", verbose=0)
    assert loaded.num_timesteps == agent.num_timesteps
    for (name, want), (_, got) in zip(agent.policy.state_dict().items(), loaded.policy.state_dict().items()):
        assert torch.equal(want, got), name
    loaded.learn(8, reset_num_timesteps=False)
    assert loaded.num_timesteps > agent.num_timesteps


@pytest.mark.faults("TraceRL.load of a FIFO or of /dev/zero | CheckpointError 'not a regular file' at once (no hang, no memory filled) | none")
@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="needs POSIX FIFOs")
def test_agent_load_refuses_special_files_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.tracerl"
    os.mkfifo(fifo)
    link = tmp_path / "zero.tracerl"
    link.symlink_to("/dev/zero")
    errors = errors_without_blocking(TraceRL.load, [fifo, link], fifo, "TraceRL.load")
    assert [type(e) for e in errors] == [CheckpointError, CheckpointError], errors
    assert all("regular file" in str(e) for e in errors)


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_load_with_a_memory_object_keeps_it_on_its_device_and_uses_it(tmp_path: Path, algo: str) -> None:
    from tracerl.memory import LSTMCore

    class MyCore(LSTMCore):  # not registered: the file names it, the caller provides it
        pass

    kwargs = {k: v for k, v in _TINY[algo].items() if k != "hidden_size"}
    agent = TraceRL(env="tracerl/CueDelay-v0", algo=algo, memory=MyCore(input_dim=64, hidden_size=8), n_envs=2,
                    seed=0, verbose=0, **kwargs)
    agent.learn(16)
    path = tmp_path / "agent.tracerl"
    agent.save(path)
    with pytest.raises(CheckpointError, match="MyCore"):
        TraceRL.load(path)
    core = MyCore(input_dim=64, hidden_size=8)
    loaded = TraceRL.load(path, env="tracerl/CueDelay-v0", memory=core, verbose=0)
    assert all(p.device.type == "cpu" for p in core.parameters())  # the probe built on a copy
    for (name, want), (_, got) in zip(agent.policy.state_dict().items(), loaded.policy.state_dict().items()):
        assert torch.equal(want, got), name
    loaded.learn(8, reset_num_timesteps=False)
