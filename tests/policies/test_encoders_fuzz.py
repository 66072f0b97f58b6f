"""Property-based checks of observation encoding over random (nested) spaces."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from tracerl.io.spaces import space_from_json, space_to_json
from tracerl.policies.encoders import flat_dim, preprocess

leaf_spaces = st.one_of(
    st.builds(lambda n, lo: spaces.Box(lo, lo + 2.0, shape=(n,), dtype=np.float32), st.integers(1, 4),
              st.floats(-5, 5)),
    st.builds(lambda n, s: spaces.Discrete(n, start=s), st.integers(1, 5), st.integers(-3, 3)),
    st.builds(lambda v: spaces.MultiDiscrete(v), st.lists(st.integers(1, 4), min_size=1, max_size=3)),
    st.builds(spaces.MultiBinary, st.integers(1, 4)),
    st.builds(lambda shape: spaces.Box(0, 255, shape=shape, dtype=np.uint8),
              st.tuples(st.integers(1, 3), st.integers(1, 3))),
)
nested_spaces = st.recursive(
    leaf_spaces,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda xs: spaces.Tuple(xs)),
        st.dictionaries(st.text("abcxyz", min_size=1, max_size=3), children, min_size=1, max_size=3).map(spaces.Dict),
    ),
    max_leaves=6,
)


def _batch(space, n):
    samples = [space.sample() for _ in range(n)]
    return _stack(space, samples)


def _stack(space, samples):
    if isinstance(space, spaces.Dict):
        return {k: _stack(s, [x[k] for x in samples]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_stack(s, [x[i] for x in samples]) for i, s in enumerate(space.spaces))
    return np.stack([np.asarray(x) for x in samples])


@settings(max_examples=60, deadline=None)
@given(space=nested_spaces, n=st.integers(1, 5), seed=st.integers(0, 1000))
def test_any_supported_space_encodes_to_a_finite_flat_vector(space, n, seed):
    space.seed(seed)
    flat = preprocess(space, _batch(space, n))
    assert flat.shape == (n, flat_dim(space))
    assert flat.dtype == torch.float32 and torch.isfinite(flat).all()


@settings(max_examples=60, deadline=None)
@given(space=nested_spaces)
def test_any_supported_space_survives_the_checkpoint_json(space):
    assert space_from_json(space_to_json(space)) == space
