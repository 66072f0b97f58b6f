"""Checkpoint components (io/components.py): one walk saves and restores every declared piece of an agent; every
piece is checked before any is copied, and a stored tensor that no component owns is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from checkpoint_edit import read_raw, write_rehashed
from tracerl import TraceRL
from tracerl.errors import CheckpointError
from tracerl.io.components import (Counters, GeneratorState, MetaEntry, ModuleState, OptimizerState, Walk,
                                   optimizer_tensors)


class _Parts:
    """A module, its Adam optimizer (one step taken), a generator and a counter: what a learner declares."""

    def __init__(self, seed: int) -> None:
        torch.manual_seed(seed)
        self.net = nn.Linear(3, 2)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.net(torch.randn(4, 3)).sum().backward()
        self.opt.step()
        self.gen = torch.Generator().manual_seed(seed)
        self.steps = 10 * seed

    def walk(self) -> Walk:
        def write(c: dict[str, int]) -> None:
            self.steps = c["steps"]

        return Walk([MetaEntry("note", lambda: "hello"), ModuleState("net.", self.net),
                     OptimizerState("optim.", self.opt, ("optim_param_groups",)),
                     GeneratorState("rng.gen", self.gen.get_state, self.gen.set_state,
                                    lambda: self.gen.get_state().shape),
                     Counters({"steps": True}, lambda: {"steps": self.steps}, write)])


def test_a_walk_saves_and_restores_every_component():
    src, dst = _Parts(1), _Parts(2)
    tensors, meta = src.walk().save()
    assert meta["note"] == "hello" and meta["counters"] == {"steps": 10} and "optim_param_groups" in meta
    dst.walk().restore(tensors, meta, "mem")
    for k, v in src.net.state_dict().items():
        assert torch.equal(v, dst.net.state_dict()[k])
    assert torch.equal(src.opt.state_dict()["state"][0]["exp_avg"], dst.opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(src.gen.get_state(), dst.gen.get_state()) and dst.steps == 10


def test_the_optimizer_serializer_names_each_moment_by_parameter_index():
    parts = _Parts(1)
    tensors, groups = optimizer_tensors(parts.opt, "optim.")
    assert set(tensors) == {f"optim.{i}.{k}" for i in (0, 1) for k in ("step", "exp_avg", "exp_avg_sq")}
    assert groups[0]["lr"] == 1e-3 and isinstance(groups[0]["betas"], list)


@pytest.mark.parametrize("broken", ["counters", "rng.gen", "optim.0.exp_avg"])
def test_a_component_that_does_not_fit_leaves_every_component_unchanged(broken):
    src, dst = _Parts(1), _Parts(2)
    tensors, meta = src.walk().save()
    if broken == "counters":
        meta["counters"] = {"steps": -1}
    else:
        tensors[broken] = torch.zeros(1, dtype=tensors[broken].dtype)
    before = {k: v.clone() for k, v in dst.net.state_dict().items()}
    with pytest.raises(CheckpointError, match=broken.replace(".", r"\.")):
        dst.walk().restore(tensors, meta, "mem")
    for k, v in dst.net.state_dict().items():  # the module comes first in the walk, and was not copied
        assert torch.equal(v, before[k]), k
    assert dst.steps == 20


def test_a_tensor_no_component_owns_is_refused():
    src, dst = _Parts(1), _Parts(2)
    tensors, meta = src.walk().save()
    tensors["ghost.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="ghost.weight"):
        dst.walk().restore(tensors, meta, "mem")


@pytest.mark.faults("A re-hashed off-policy checkpoint holding the weights of a network the agent does not have "
                    "(net.ghost.*) | CheckpointError naming the entry | none")
def test_an_off_policy_checkpoint_with_a_network_the_agent_lacks_is_refused(tmp_path: Path):
    agent = TraceRL(env="tracerl/CountWindow-v0", env_kwargs={"horizon": 3, "episode_length": 12}, algo="sac",
                    seed=0, verbose=0, n_envs=2, hidden_size=8, seq_len=4, learning_starts=10, buffer_size=200,
                    batch_size=4).learn(20)
    agent.save(tmp_path / "a.tracerl")
    tensors, meta, kind = read_raw(tmp_path / "a.tracerl")
    tensors["net.ghost.weight"] = torch.zeros(2, 2)
    write_rehashed(tmp_path / "b.tracerl", tensors, meta, kind)
    with pytest.raises(CheckpointError, match="net.ghost.weight"):
        TraceRL.load(tmp_path / "b.tracerl")
