"""The declared training hooks of the memory contract: defaults (none), the strategic memory's declarations, and
the registry's input forms."""

from __future__ import annotations

import pytest
import torch

from tracerl.errors import ConfigError
from tracerl.memory import (TrainingInputs, available_memories, describe_memory, make_memory, memory_cores,
                            memory_input_form, register_memory)
from tracerl.memory.rnn import GRUCore


def test_a_core_declares_no_training_hooks_by_default():
    core = make_memory("gru", input_dim=3, hidden_size=4)
    assert core.training_inputs() == TrainingInputs()
    assert core.memory_losses_required() is None
    assert core.memory_kwargs() is None and core.memory_name is None
    assert core.training_options == frozenset()
    assert core.input_form == "features"
    before = {k: v.clone() for k, v in core.state_dict().items()}
    core.set_training_progress(0.5)  # a no-op
    assert all(torch.equal(before[k], v) for k, v in core.state_dict().items())


def test_every_registered_core_but_the_strategic_memory_reads_features():
    forms = {name: memory_input_form(name) for name in available_memories()}
    assert forms.pop("strategic") == "raw_steps"
    assert set(forms.values()) == {"features"}
    with pytest.raises(ConfigError, match="unknown memory 'nope'"):
        memory_input_form("nope")


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test are undone after it (other tests walk every registered core)."""
    from tracerl.memory import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_INPUT_FORMS", dict(registry._INPUT_FORMS))


def test_a_core_class_registered_as_its_own_factory_gives_its_declared_input_form(scratch_registry):
    class RawGRU(GRUCore):
        input_form = "raw_steps"

    register_memory("test-raw-gru", RawGRU, overwrite=True)
    register_memory("test-explicit", GRUCore, overwrite=True, input_form="raw_steps")
    assert memory_input_form("test-raw-gru") == "raw_steps"
    assert memory_input_form("test-explicit") == "raw_steps"
    with pytest.raises(ConfigError, match="input_form='pixels'"):
        register_memory("test-bad", GRUCore, overwrite=True, input_form="pixels")  # type: ignore[arg-type]


def test_the_strategic_memory_declares_its_training_inputs_options_and_required_losses():
    plain = make_memory("strategic", input_dim=5, mem_dim=8, max_entries=4, n_heads=2, learn_retention=False)
    assert plain.training_inputs() == TrainingInputs(step_mask="step_mask")
    assert plain.memory_losses_required() is None
    assert {"learn_retention", "retention_coef"} <= plain.training_options
    with_hindsight = make_memory("strategic", input_dim=5, mem_dim=8, max_entries=4, n_heads=2, obs_dim=3,
                                 action_dim=1)
    wants = with_hindsight.training_inputs()
    assert (wants.reward, wants.action, wants.episode_end, wants.step_mask) == (
        "hindsight_reward", "hindsight_action", "hindsight_end", "step_mask")
    assert "learn_retention" in with_hindsight.memory_losses_required()
    with_hindsight.set_training_progress(0.0)
    assert with_hindsight.retention_explore == 1.0  # the declared schedule starts fully exploring


def test_training_inputs_fill_calls_only_the_providers_of_wanted_inputs():
    calls: list[str] = []

    def provide(name):
        def f():
            calls.append(name)
            return name
        return f

    wants = TrainingInputs(reward="r", step_mask="m")
    got = wants.fill(reward=provide("reward"), action=provide("action"), step_mask=provide("mask"))
    assert got == {"r": "reward", "m": "mask"} and calls == ["reward", "mask"]
    with pytest.raises(ValueError, match="unknown training input 'value'"):
        wants.fill(value=provide("v"))


def test_describe_memory_records_a_rebuildable_core_by_name_and_any_other_by_class():
    assert describe_memory("lstm") == ("lstm", None)
    buf = make_memory("strategic", input_dim=5, mem_dim=8, max_entries=4, n_heads=2, obs_dim=3, action_dim=1)
    name, kwargs = describe_memory(buf)
    assert name == "strategic" and kwargs["obs_dim"] == 3 and kwargs["max_entries"] == 4
    rebuilt = make_memory(name, input_dim=5, **kwargs)
    assert rebuilt.state_spec() == buf.state_spec()
    assert describe_memory(GRUCore(3, 4)) == ("GRUCore", None)


def test_memory_cores_finds_every_core_inside_a_module():
    a, b = make_memory("gru", input_dim=2, hidden_size=3), make_memory("lstm", input_dim=2, hidden_size=3)
    holder = torch.nn.ModuleDict({"x": torch.nn.Linear(2, 2), "a": a, "inner": torch.nn.ModuleList([b])})
    assert memory_cores(holder) == [a, b]
