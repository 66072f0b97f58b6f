"""Property-based contract checks: random episode-boundary patterns and chunkings, every core."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracerl.memory import available_memories, make_memory

D = 3


@st.composite
def batches(draw):
    T = draw(st.integers(1, 10))
    B = draw(st.integers(1, 3))
    starts = draw(st.lists(st.lists(st.booleans(), min_size=B, max_size=B), min_size=T, max_size=T))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(T - 1, 1)), max_size=3)))) if T > 1 else []
    seed = draw(st.integers(0, 2**16))
    return T, B, torch.tensor(starts, dtype=torch.bool), cuts, seed


@pytest.mark.parametrize("name", available_memories())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches())
def test_any_chunking_of_any_episode_pattern_equals_one_call(name, batch):
    T, B, starts, cuts, seed = batch
    torch.manual_seed(0)
    core = make_memory(name, input_dim=D, hidden_size=8)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, D, generator=g)
    state0 = {k: torch.randn(v.shape, generator=g) for k, v in core.initial_state(B).items()}
    with torch.no_grad():
        y_full, s_full = core(x, state0, starts)
        state, ys = state0, []
        for a, b in zip([0, *cuts], [*cuts, T]):
            y, state = core(x[a:b], state, starts[a:b])
            ys.append(y)
    torch.testing.assert_close(torch.cat(ys), y_full, atol=1e-5, rtol=1e-5)
    for k in s_full:
        torch.testing.assert_close(state[k], s_full[k], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(y_full).all()
