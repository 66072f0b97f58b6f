"""The parallel scans against plain sequential loops, with resets at the first, a middle and the last step."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tracerl.memory.scan import METHODS, complex_linear_scan, linear_scan, reset_decay


def _starts(T: int, B: int) -> torch.Tensor:
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0, 0] = True
    starts[T // 2, 1] = True
    starts[T - 1, 2] = True
    return starts


def _loop(a, b, h0):
    """The straightforward reference: ``h_t = a_t * h_{t-1} + b_t``, one step at a time."""
    h, out = h0, []
    for t in range(b.shape[0]):
        h = a[t] * h + b[t]
        out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("T", [1, 2, 7, 64, 100])
def test_linear_scan_equals_a_sequential_loop_with_resets(T, method):
    g = torch.Generator().manual_seed(T)
    B, H = 4, 3
    a = reset_decay(torch.rand(T, B, H, generator=g), _starts(T, B))
    b = torch.randn(T, B, H, generator=g)
    h0 = torch.randn(B, H, generator=g)
    torch.testing.assert_close(linear_scan(a, b, h0, method=method), _loop(a, b, h0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(linear_scan(a, b, method=method), _loop(a, b, torch.zeros(B, H)), atol=1e-5,
                               rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("T", [2, 3, 16, 37, 64])
def test_values_and_gradients_equal_the_sequential_loops_with_random_episode_starts(T, dtype, method):
    """The hand-written backward (a scan backwards in time) against autograd through the plain loop, for a decay
    per element and one broadcast over the last dim (as GLA's), real and complex (FFM, LRU)."""
    g = torch.Generator().manual_seed(T)
    B = 3
    for a_shape, b_shape in (((T, B, 4), (T, B, 4)), ((T, B, 4, 1), (T, B, 4, 5))):
        starts = torch.rand(T, B, generator=g) < 0.2
        a = torch.rand(a_shape, generator=g, dtype=torch.float64)
        b = torch.randn(b_shape, generator=g, dtype=torch.float64)
        h0 = torch.randn(b_shape[1:], generator=g, dtype=torch.float64)
        w = torch.randn(b_shape, generator=g, dtype=torch.float64)
        if dtype.is_complex:
            a = torch.polar(a, 6.3 * torch.rand(a_shape, generator=g, dtype=torch.float64))
            b = torch.complex(b, torch.randn(b_shape, generator=g, dtype=torch.float64))
            h0 = torch.complex(h0, torch.randn(b_shape[1:], generator=g, dtype=torch.float64))
            w = torch.complex(w, torch.randn(b_shape, generator=g, dtype=torch.float64))
        a = reset_decay(a, starts).requires_grad_()
        b.requires_grad_()
        h0.requires_grad_()
        expected = _loop(a, b, h0)
        expected_grads = torch.autograd.grad((expected * w).real.sum(), (a, b, h0))
        got = linear_scan(a, b, h0, method=method)
        grads = torch.autograd.grad((got * w).real.sum(), (a, b, h0))
        torch.testing.assert_close(got, expected)
        for name, x, y in zip(("a", "b", "h0"), grads, expected_grads):
            torch.testing.assert_close(x, y, msg=lambda m, name=name: f"gradient of {name}: {m}")


def test_the_backward_passes_torch_gradcheck():
    g = torch.Generator().manual_seed(0)
    T, B = 11, 2
    a = reset_decay(torch.rand(T, B, 3, 1, generator=g, dtype=torch.float64), torch.rand(T, B, generator=g) < 0.3)
    b = torch.randn(T, B, 3, 2, generator=g, dtype=torch.float64)
    h0 = torch.randn(B, 3, 2, generator=g, dtype=torch.float64)
    for method in METHODS:
        inputs = (a.clone().requires_grad_(), b.clone().requires_grad_(), h0.clone().requires_grad_())
        assert torch.autograd.gradcheck(lambda a, b, h0: linear_scan(a, b, h0, method=method), inputs)


def test_an_unknown_method_is_an_error_naming_it():
    with pytest.raises(ValueError, match="'blocked'"):
        linear_scan(torch.rand(4, 1, 2), torch.rand(4, 1, 2), method="blocked")


@settings(max_examples=40, deadline=None)
@given(T=st.integers(1, 40), seed=st.integers(0, 2**16), p_reset=st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_any_reset_pattern_gives_the_loop_that_restarts_from_zero_at_each_start(T, seed, p_reset):
    g = torch.Generator().manual_seed(seed)
    B, H = 3, 2
    starts = torch.rand(T, B, generator=g) < p_reset
    a = reset_decay(torch.rand(T, B, H, generator=g), starts)
    b = torch.randn(T, B, H, generator=g)
    h0 = torch.randn(B, H, generator=g)
    h, expected = h0, []
    for t in range(T):
        h = torch.where(starts[t].unsqueeze(-1), torch.zeros_like(h), h)  # reset, then consume
        h = a[t] * h + b[t]
        expected.append(h)
    for method in METHODS:
        torch.testing.assert_close(linear_scan(a, b, h0, method=method), torch.stack(expected), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_a_reset_cuts_every_earlier_step_and_the_carried_in_state_out_of_the_scan(method):
    T, B, H = 9, 3, 2
    starts = _starts(T, B)
    a = reset_decay(torch.rand(T, B, H), starts)
    b = torch.randn(T, B, H, requires_grad=True)
    h0 = torch.randn(B, H, requires_grad=True)
    h = linear_scan(a, b, h0, method=method)
    h[-1, 1].sum().backward()
    assert torch.all(b.grad[: T // 2, 1] == 0)  # before the reset: no gradient at all
    assert torch.all(b.grad[T // 2 :, 1] != 0)
    assert torch.all(h0.grad[1] == 0)
    h0.grad = None
    linear_scan(a, b, h0, method=method)[-1, 0].sum().backward()  # row 0 resets at step 0
    assert torch.all(h0.grad[0] == 0)


def test_linear_scan_broadcasts_a_decay_shared_over_trailing_dims():
    T, B = 13, 2
    a = torch.rand(T, B, 3, 1)
    b = torch.randn(T, B, 3, 5)
    for method in METHODS:
        h = linear_scan(a, b, method=method)
        assert h.shape == (T, B, 3, 5)
        torch.testing.assert_close(h, _loop(a.expand(T, B, 3, 5), b, torch.zeros(B, 3, 5)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("T", [1, 5, 33])
def test_complex_scan_equals_a_sequential_complex_loop_with_resets(T):
    g = torch.Generator().manual_seed(T)
    B, H = 3, 4
    a = torch.polar(torch.rand(T, B, H, generator=g), 6.3 * torch.rand(T, B, H, generator=g))
    a = torch.where(_starts(T, B).unsqueeze(-1), torch.zeros_like(a), a)
    b = torch.complex(torch.randn(T, B, H, generator=g), torch.randn(T, B, H, generator=g))
    h0 = torch.complex(torch.randn(B, H, generator=g), torch.randn(B, H, generator=g))
    expected = _loop(a, b, h0)
    h_re, h_im = complex_linear_scan(a.real, a.imag, b.real, b.imag, h0.real, h0.imag)
    torch.testing.assert_close(torch.complex(h_re, h_im), expected, atol=1e-5, rtol=1e-5)
    h_re, h_im = complex_linear_scan(a.real, a.imag, b.real, None, h0.real, h0.imag)  # a real input
    torch.testing.assert_close(torch.complex(h_re, h_im), _loop(a, b.real.to(a.dtype), h0), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_long_scans_stay_finite_and_match_the_loop(method):
    T, B, H = 4096, 2, 3
    g = torch.Generator().manual_seed(0)
    a = 1.0 - 1e-3 * torch.rand(T, B, H, generator=g)  # long memory: decays near 1
    b = torch.randn(T, B, H, generator=g)
    hs = linear_scan(a, b, method=method)
    h = torch.zeros(B, H, dtype=torch.float64)
    for t in range(T):
        h = a[t].double() * h + b[t].double()
    assert torch.isfinite(hs).all()
    torch.testing.assert_close(hs[-1].double(), h, atol=1e-3, rtol=1e-4)


SCAN_CORES = ("mingru", "ffm", "lru", "gla")


def test_scan_cores_are_registered_memories_and_benchmark_agents():
    from tracerl.bench.agents import available_agents
    from tracerl.memory import available_memories

    assert set(SCAN_CORES) <= set(available_memories())
    assert {f"tracerl-{core}" for core in SCAN_CORES} <= set(available_agents())


@pytest.mark.parametrize("core", SCAN_CORES)
def test_the_cli_trains_saves_and_reloads_an_agent_with_each_scan_core(core, tmp_path):
    from tracerl import TraceRL
    from tracerl.cli import main
    from tracerl.memory import make_memory

    out = tmp_path / core
    args = ["train", "--memory", core, "--steps", "256", "--n-envs", "2", "--n-steps", "64", "--eval-episodes", "0",
            "--out", str(out), "--no-progress", "--verbose", "0"]
    assert main(args) == 0
    agent = TraceRL.load(out / "agent.tracerl")
    assert type(agent.policy.core) is type(make_memory(core, input_dim=3))
    assert agent.num_timesteps >= 256


@pytest.mark.parametrize("name", ["mingru", "ffm", "lru", "gla"])
def test_a_scan_cores_outputs_after_a_reset_do_not_depend_on_inputs_before_it(name):
    """Row 0 resets at t_reset, row 1 does not: changing the inputs before t_reset changes only row 1's later
    outputs (two layers, so the reset must hold in every block's scan)."""
    from tracerl.memory.registry import make_memory

    torch.manual_seed(0)
    core = make_memory(name, input_dim=5, hidden_size=16, num_layers=2)
    T, B, t_reset = 20, 2, 8
    x = torch.randn(T, B, 5)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[t_reset, 0] = True
    x2 = x.clone()
    x2[:t_reset] = torch.randn(t_reset, B, 5)
    state = core.initial_state(B)
    with torch.no_grad():
        y1, _ = core(x, state, starts)
        y2, _ = core(x2, state, starts)
    assert torch.equal(y1[t_reset:, 0], y2[t_reset:, 0])
    assert not torch.allclose(y1[t_reset:, 1], y2[t_reset:, 1])


@pytest.mark.parametrize("name", SCAN_CORES)
def test_a_scan_cores_values_and_gradients_equal_stepping_it_one_step_at_a_time(name):
    """The sequence path (scans with the hand-written backward) against the step path (plain torch ops, autograd
    through T calls of one step) with random episode starts: outputs, final state, and the gradients of a random
    projection of both with respect to the inputs, the carried-in state and every parameter."""
    from tracerl.memory.registry import make_memory

    torch.manual_seed(0)
    core = make_memory(name, input_dim=5, hidden_size=8, num_layers=2).double()
    T, B = 23, 3
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, 5, generator=g, dtype=torch.float64, requires_grad=True)
    starts = torch.rand(T, B, generator=g) < 0.2
    starts[0, 0] = starts[T - 1, 1] = True
    state = {k: torch.randn(v.shape, generator=g, dtype=torch.float64).requires_grad_()
             for k, v in core.initial_state(B).items()}
    w_y = torch.randn(T, B, core.output_dim, generator=g, dtype=torch.float64)
    w_s = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in state.items()}
    wrt = [x, *state.values(), *core.parameters()]

    def loss(y, final):
        return (y * w_y).sum() + sum((final[k] * w_s[k]).sum() for k in final)

    y, final = core(x, state, starts)
    grads = torch.autograd.grad(loss(y, final), wrt, allow_unused=True)
    s, ys = state, []
    for t in range(T):
        y_t, s = core(x[t : t + 1], s, starts[t : t + 1])
        ys.append(y_t)
    y_ref = torch.cat(ys)
    grads_ref = torch.autograd.grad(loss(y_ref, s), wrt, allow_unused=True)
    torch.testing.assert_close(y, y_ref)
    for k in final:
        torch.testing.assert_close(final[k], s[k])
    names = ["x", *state, *(n for n, _ in core.named_parameters())]
    for n, got, expected in zip(names, grads, grads_ref):
        assert (got is None) == (expected is None), n
        if got is not None:
            torch.testing.assert_close(got, expected, msg=lambda m, n=n: f"{name}: gradient of {n}: {m}")
