"""The AMRL core: known aggregates, straight-through gradients, chunk composition, validation, learning."""

from __future__ import annotations

import pytest
import torch

from helpers import cue_delay_success
from tracerl.memory.amrl import AMRLCore, aggregate

D, H = 4, 8

# One row, 6 steps, 2 channels; the row carries in 2 steps (agg, count) and a new episode starts at t = 3.
S = torch.tensor([[1.0, -2.0], [3.0, 0.0], [-1.0, 5.0], [0.5, -1.0], [-3.0, 2.0], [2.0, 1.0]]).unsqueeze(1)
STARTS = torch.tensor([False, False, False, True, False, False]).unsqueeze(1)
COUNT0 = torch.tensor([[2.0]])
KNOWN = {
    # running max from agg0 = [2, -1]: then reset at t=3
    "max": (torch.tensor([[2.0, -1.0]]), [[2, -1], [3, 0], [3, 5], [0.5, -1], [0.5, 2], [2, 2]]),
    # running sum from agg0 = [4, -2]
    "sum": (torch.tensor([[4.0, -2.0]]), [[5, -4], [8, -4], [7, 1], [0.5, -1], [-2.5, 1], [-0.5, 2]]),
    # running mean from agg0 = [1, 1] over 2 steps: (2 + 1) / 3, (2 + 1 + 3) / 4, ...
    "mean": (torch.tensor([[1.0, 1.0]]), [[1, 0], [1.5, 0], [1, 1], [0.5, -1], [-1.25, 0.5], [-0.5 / 3, 2 / 3]]),
}


@pytest.mark.parametrize("mode", ["max", "mean", "sum"])
@pytest.mark.parametrize("straight_through", [True, False])
def test_known_aggregates_on_a_hand_made_sequence_with_a_reset_in_the_middle(mode, straight_through):
    agg0, expected = KNOWN[mode]
    out, agg, count = aggregate(S, STARTS, agg0, COUNT0, mode, straight_through)
    expected_t = torch.tensor(expected, dtype=torch.float32).unsqueeze(1)
    torch.testing.assert_close(out, expected_t, atol=1e-6, rtol=0)
    torch.testing.assert_close(agg, expected_t[-1], atol=1e-6, rtol=0)
    torch.testing.assert_close(count, torch.tensor([[3.0]]), atol=0, rtol=0)


@pytest.mark.parametrize("mode", ["max", "mean", "sum"])
def test_chunks_and_single_steps_compose_into_the_whole_sequence(mode):
    agg0, _ = KNOWN[mode]
    full, agg_full, count_full = aggregate(S, STARTS, agg0, COUNT0, mode)
    for cuts in ([0, 2, 4, 6], [0, 1, 2, 3, 4, 5, 6], [0, 3, 6]):
        agg, count, outs = agg0, COUNT0, []
        for a, b in zip(cuts[:-1], cuts[1:]):
            out, agg, count = aggregate(S[a:b], STARTS[a:b], agg, count, mode)
            outs.append(out)
        torch.testing.assert_close(torch.cat(outs), full, atol=1e-6, rtol=0)
        torch.testing.assert_close(agg, agg_full, atol=1e-6, rtol=0)
        torch.testing.assert_close(count, count_full, atol=0, rtol=0)


def _jacobian(mode: str, straight_through: bool) -> torch.Tensor:
    """d out[t, 0, c] / d s[τ, 0, c'] as [T, C, T, C]."""
    agg0, _ = KNOWN[mode]

    def f(s: torch.Tensor) -> torch.Tensor:
        return aggregate(s, STARTS, agg0, COUNT0, mode, straight_through)[0]

    return torch.autograd.functional.jacobian(f, S.clone()).squeeze(4).squeeze(1)


@pytest.mark.parametrize("mode", ["max", "mean", "sum"])
def test_straight_through_gradient_is_the_identity_at_the_same_step_and_zero_elsewhere(mode):
    jac = _jacobian(mode, straight_through=True)
    T, C = S.shape[0], S.shape[2]
    expected = torch.eye(T * C).view(T, C, T, C)
    torch.testing.assert_close(jac, expected, atol=0, rtol=0)


def test_without_straight_through_max_only_the_maximal_step_gets_gradient():
    jac = _jacobian("max", straight_through=False)
    # Output at t = 2, channel 1 is the max 5 of step 2; channel 0 is the max 3 of step 1.
    assert jac[2, 1, 2, 1] == 1.0 and jac[2, 1, :2].abs().sum() == 0
    assert jac[2, 0, 1, 0] == 1.0 and jac[2, 0, 0, 0] == 0 and jac[2, 0, 2, 0] == 0
    # Output at t = 0 is the carried-in max for both channels: no step of s gets gradient.
    assert jac[0].abs().sum() == 0
    # After the reset at t = 3, channel 0's max 2 is step 5's; steps 3, 4 (and the old episode) get none.
    assert jac[5, 0, 5, 0] == 1.0 and jac[5, 0, :5].abs().sum() == 0


def test_without_straight_through_sum_gradient_stops_at_the_episode_start():
    jac = _jacobian("sum", straight_through=False)
    for t in range(6):
        first = 0 if t < 3 else 3
        for tau in range(6):
            want = torch.eye(2) if first <= tau <= t else torch.zeros(2, 2)
            torch.testing.assert_close(jac[t, :, tau], want, atol=0, rtol=0)


@pytest.mark.parametrize("mode", ["max", "mean", "sum"])
def test_core_stepping_equals_the_sequence_for_every_aggregator(mode):
    torch.manual_seed(0)
    core = AMRLCore(D, H, aggregator=mode)
    g = torch.Generator().manual_seed(1)
    T, B = 17, 4
    x = torch.randn(T, B, D, generator=g)
    starts = torch.rand(T, B, generator=g) < 0.2
    state0 = {k: torch.randn(v.shape, generator=g) for k, v in core.initial_state(B).items()}
    state0["count"] = torch.tensor([[3.0], [0.0], [1.0], [7.0]])
    y_seq, s_seq = core(x, state0, starts)
    state, ys = state0, []
    for t in range(T):
        y, state = core(x[t : t + 1], state, starts[t : t + 1])
        ys.append(y)
    torch.testing.assert_close(torch.cat(ys), y_seq, atol=1e-5, rtol=1e-5)
    for k in s_seq:
        torch.testing.assert_close(state[k], s_seq[k], atol=1e-5, rtol=1e-5)


def test_straight_through_changes_gradients_but_not_outputs():
    torch.manual_seed(0)
    st = AMRLCore(D, H)
    plain = AMRLCore(D, H, straight_through=False)
    plain.load_state_dict(st.state_dict())
    x = torch.randn(12, 2, D)
    starts = torch.zeros(12, 2, dtype=torch.bool)
    starts[0] = True
    ys, grads = [], []
    for core in (st, plain):
        xg = x.clone().requires_grad_()
        y, _ = core(xg, core.initial_state(2), starts)
        y[-1].sum().backward()
        ys.append(y.detach())
        grads.append(xg.grad)
    torch.testing.assert_close(ys[0], ys[1], atol=1e-6, rtol=0)  # s + (g - s) rounds like g
    assert not torch.allclose(grads[0], grads[1])


def test_the_output_uses_the_aggregated_half_of_the_lstm():
    torch.manual_seed(0)
    core = AMRLCore(D, H)
    assert core.agg_size == H // 2
    x = torch.randn(5, 1, D)
    starts = torch.zeros(5, 1, dtype=torch.bool)
    starts[0] = True
    y, state = core(x, core.initial_state(1), starts)
    h, _ = core.lstm(x, {"h": torch.zeros(1, 1, H), "c": torch.zeros(1, 1, H)}, starts)
    g = torch.cummax(h[..., H // 2 :], dim=0).values
    expected = core.out(torch.cat([h[..., : H // 2], g], dim=-1))
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(state["agg"], g[-1], atol=1e-6, rtol=0)
    assert state["count"].item() == 5.0


@pytest.mark.parametrize(
    "name,value",
    [("aggregator", "median"), ("straight_through", "yes"), ("hidden_size", 0), ("num_layers", 0),
     ("input_dim", -2), ("chrono_tmax", 1.5)],
)
def test_invalid_arguments_raise_value_error_naming_them(name, value):
    kwargs = {"input_dim": D, "hidden_size": H, name: value}
    with pytest.raises(ValueError, match=name):
        AMRLCore(**kwargs)


def test_aggregate_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="aggregator"):
        aggregate(S, STARTS, KNOWN["max"][0], COUNT0, "min")


@pytest.mark.parametrize("mode", ["max", "mean", "sum"])
def test_ppo_with_amrl_solves_cue_delay_8(mode):
    success = cue_delay_success("amrl", 16_384, memory_kwargs={"aggregator": mode})
    assert success >= 0.9, success
