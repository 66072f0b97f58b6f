"""The memory contract, checked for every registered core (see tracerl.memory.base)."""

from __future__ import annotations

import pytest
import torch

from tracerl.errors import ConfigError
from tracerl.memory import available_memories, make_memory

T, B, D = 23, 5, 4


def _core(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return make_memory(name, input_dim=D, hidden_size=8)


def _batch(seed: int = 1, p_start: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.rand(T, B, generator=g) < p_start
    starts[0, 0] = True  # one row starts an episode at t=0, the others carry state in
    starts[5, :] = True  # a reset shared by every row
    return x, starts


def _noisy_state(core, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) for k, v in core.initial_state(B).items()}


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("name", available_memories())
def test_stepping_one_step_at_a_time_equals_one_call_on_the_sequence(name, num_layers):
    """Outputs, final state and the inspection trace all agree."""
    torch.manual_seed(0)
    core = make_memory(name, input_dim=D, hidden_size=8, num_layers=num_layers)
    x, starts = _batch()
    state0 = _noisy_state(core)
    y_seq, s_seq, trace_seq = core.forward_with_trace(x, state0, starts)
    state = state0
    ys, traces = [], []
    for t in range(T):
        y, state, trace = core.forward_with_trace(x[t : t + 1], state, starts[t : t + 1])
        ys.append(y)
        traces.append(trace)
    y_step = torch.cat(ys)
    assert y_seq.shape == (T, B, core.output_dim)
    torch.testing.assert_close(y_step, y_seq, atol=1e-5, rtol=1e-5)
    assert s_seq.keys() == state.keys()
    for k in s_seq:
        torch.testing.assert_close(state[k], s_seq[k], atol=1e-5, rtol=1e-5)
    for k in trace_seq:
        torch.testing.assert_close(torch.cat([tr[k] for tr in traces]), trace_seq[k], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", available_memories())
def test_chunked_calls_equal_one_call(name):
    """Truncated BPTT re-runs chunks from stored states: chunks must compose exactly."""
    core = _core(name)
    x, starts = _batch(seed=3)
    state0 = _noisy_state(core)
    y_full, s_full = core(x, state0, starts)
    state, ys = state0, []
    for a, b in [(0, 7), (7, 8), (8, 19), (19, T)]:
        y, state = core(x[a:b], state, starts[a:b])
        ys.append(y)
    torch.testing.assert_close(torch.cat(ys), y_full, atol=1e-5, rtol=1e-5)
    for k in s_full:
        torch.testing.assert_close(state[k], s_full[k], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", available_memories())
def test_state_never_leaks_into_a_new_episode(name):
    core = _core(name)
    x, starts = _batch(seed=4)
    clean = core.initial_state(B)
    noisy = {k: v + 10.0 * torch.randn_like(v) for k, v in clean.items()}
    y_clean, _ = core(x, clean, starts)
    y_noisy, _ = core(x, noisy, starts)
    for b in range(B):
        first = int(torch.nonzero(starts[:, b])[0])
        # From the first episode start of each row on, the incoming state must not matter.
        torch.testing.assert_close(y_noisy[first:, b], y_clean[first:, b], atol=1e-6, rtol=0)
    if core.state_spec():
        # ...while before it, it must (otherwise the check above proves nothing).
        b = int(torch.nonzero(~starts[0])[0])
        assert not torch.allclose(y_noisy[0, b], y_clean[0, b])


@pytest.mark.parametrize("name", available_memories())
def test_an_episode_inside_a_batch_equals_that_episode_run_alone(name):
    core = _core(name)
    x, starts = _batch(seed=5)
    y, _ = core(x, _noisy_state(core), starts)
    b = 1
    idx = torch.nonzero(starts[:, b]).flatten().tolist() + [T]
    for a, e in zip(idx[:-1], idx[1:]):
        alone_start = torch.zeros(e - a, 1, dtype=torch.bool)
        alone_start[0] = True
        y_alone, _ = core(x[a:e, b : b + 1], core.initial_state(1), alone_start)
        torch.testing.assert_close(y[a:e, b : b + 1], y_alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", available_memories())
def test_gradients_are_finite_and_reach_every_parameter(name):
    core = _core(name)
    x, starts = _batch(seed=6)
    state = {k: v.requires_grad_() for k, v in _noisy_state(core).items()}
    y, s, trace = core.forward_with_trace(x.requires_grad_(), state, starts)
    # Through the output, the next state, or the core's own losses (e.g. learned retention).
    loss = y.pow(2).mean() + sum(v.pow(2).mean() for v in s.values())
    loss = loss + sum(value for value, _ in core.memory_losses(trace, torch.ones(T, B)).values())
    loss.backward()
    assert torch.isfinite(x.grad).all()
    for pname, p in core.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    for k, v in state.items():
        assert torch.isfinite(v.grad).all(), k


@pytest.mark.parametrize("name", available_memories())
def test_gradients_are_finite_from_the_zero_state(name):
    core = _core(name)
    x = torch.zeros(6, 2, D, requires_grad=True)
    starts = torch.zeros(6, 2, dtype=torch.bool)
    starts[0] = True
    y, _ = core(x, core.initial_state(2), starts)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", available_memories())
def test_initial_state_follows_the_declared_spec(name):
    core = _core(name)
    state = core.initial_state(3)
    spec = core.state_spec()
    assert state.keys() == spec.keys()
    for k, v in state.items():
        assert v.shape == (3, *spec[k].shape) and v.dtype == spec[k].dtype


@pytest.mark.parametrize("name", available_memories())
def test_shape_errors_name_the_argument(name):
    core = _core(name)
    x, starts = _batch()
    with pytest.raises(ValueError, match="x"):
        core(x[0], core.initial_state(B), starts)
    with pytest.raises(ValueError, match="episode_start"):
        core(x, core.initial_state(B), starts[:-1])
    with pytest.raises(ValueError, match="episode_start"):
        core(x, core.initial_state(B), starts.float())
    if core.state_spec():
        with pytest.raises(ValueError, match="state"):
            core(x, core.initial_state(B + 1), starts)


def test_unknown_memory_names_the_valid_ones():
    with pytest.raises(ConfigError, match="gru"):
        make_memory("nope", input_dim=3)


def test_a_core_missing_part_of_the_contract_cannot_be_built():
    from tracerl.memory import MemoryCore

    class NoSpec(MemoryCore):
        def forward(self, x, state, episode_start):
            return x, state

    with pytest.raises(TypeError, match="state_spec"):
        NoSpec()
