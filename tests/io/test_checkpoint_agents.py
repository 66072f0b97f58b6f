"""Agent checkpoints of settings that once could not be saved (whole agents, save -> load -> continue)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tracerl import TraceRL

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
