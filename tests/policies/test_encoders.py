"""Tests of tracerl.policies.encoders: flat encoding of observation spaces and the MLP encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from tracerl.errors import ConfigError, UnsupportedSpaceError
from tracerl.policies.encoders import ObservationEncoder, flat_dim, preprocess

LEADS = [(), (5,), (3, 4)]


def _one_hot(idx: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[idx]


@pytest.mark.parametrize("lead", LEADS)
def test_box_is_flattened_float32_for_any_leading_dims(lead: tuple[int, ...]) -> None:
    space = spaces.Box(-1.0, 1.0, shape=(2, 3), dtype=np.float64)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(*lead, 2, 3))
    out = preprocess(space, obs)
    assert flat_dim(space) == 6
    assert out.shape == (*lead, 6)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), obs.reshape(*lead, 6).astype(np.float32))


def test_box_uint8_is_cast_without_rescaling() -> None:
    space = spaces.Box(0, 255, shape=(2, 2), dtype=np.uint8)
    obs = np.array([[[0, 7], [200, 255]]], dtype=np.uint8)
    out = preprocess(space, obs)
    assert out.dtype == torch.float32
    assert out.tolist() == [[0.0, 7.0, 200.0, 255.0]]


def test_box_with_scalar_shape_has_one_feature() -> None:
    space = spaces.Box(0.0, 1.0, shape=())
    assert flat_dim(space) == 1
    assert preprocess(space, np.array([0.25, 0.5])).tolist() == [[0.25], [0.5]]


@pytest.mark.parametrize("lead", LEADS)
def test_discrete_is_one_hot_for_any_leading_dims(lead: tuple[int, ...]) -> None:
    space = spaces.Discrete(4)
    obs = np.random.default_rng(1).integers(0, 4, size=lead)
    out = preprocess(space, obs)
    assert flat_dim(space) == 4
    assert out.shape == (*lead, 4)
    np.testing.assert_array_equal(out.numpy(), _one_hot(obs, 4))


def test_discrete_with_negative_start_one_hots_offset_values() -> None:
    space = spaces.Discrete(3, start=-2)
    out = preprocess(space, np.array([-2, 0, -1]))
    assert out.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert preprocess(space, -1).tolist() == [0, 1, 0]


def test_discrete_value_out_of_range_raises_value_error_naming_path() -> None:
    space = spaces.Dict({"pos": spaces.Discrete(3)})
    with pytest.raises(ValueError, match=r"obs\['pos'\]"):
        preprocess(space, {"pos": np.array([0, 3])})


@pytest.mark.parametrize("lead", LEADS)
def test_multidiscrete_is_concatenated_one_hots(lead: tuple[int, ...]) -> None:
    space = spaces.MultiDiscrete([3, 2, 4])
    rng = np.random.default_rng(2)
    obs = np.stack([rng.integers(0, n, size=lead) for n in (3, 2, 4)], axis=-1)
    out = preprocess(space, obs)
    expected = np.concatenate([_one_hot(obs[..., i], n) for i, n in enumerate((3, 2, 4))], axis=-1)
    assert flat_dim(space) == 9
    assert out.shape == (*lead, 9)
    np.testing.assert_array_equal(out.numpy(), expected)


def test_multidiscrete_with_2d_nvec_and_start_flattens_in_c_order() -> None:
    space = spaces.MultiDiscrete(np.array([[2, 3], [1, 2]]), start=np.array([[0, 1], [5, -1]]))
    obs = np.array([[[1, 3], [5, -1]], [[0, 1], [5, 0]]])  # lead (2,)
    out = preprocess(space, obs)
    assert flat_dim(space) == 8
    assert out.tolist() == [
        [0, 1, 0, 0, 1, 1, 1, 0],
        [1, 0, 1, 0, 0, 1, 0, 1],
    ]


@pytest.mark.parametrize("lead", LEADS)
def test_multibinary_is_float_flattened(lead: tuple[int, ...]) -> None:
    space = spaces.MultiBinary([2, 3])
    obs = np.random.default_rng(3).integers(0, 2, size=(*lead, 2, 3)).astype(np.int8)
    out = preprocess(space, obs)
    assert flat_dim(space) == 6
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), obs.reshape(*lead, 6).astype(np.float32))


def test_nested_dict_tuple_known_answer_uses_space_key_order() -> None:
    space = spaces.Dict(
        {
            "z_flag": spaces.MultiBinary(2),
            "a_sensors": spaces.Tuple((spaces.Box(-5, 5, (2,)), spaces.Discrete(3, start=1))),
        }
    )
    assert list(space.spaces) == ["a_sensors", "z_flag"]  # gymnasium sorts keys
    obs = {"z_flag": np.array([1, 0]), "a_sensors": (np.array([0.5, -2.0]), 3)}
    out = preprocess(space, obs)
    assert flat_dim(space) == 7
    assert out.tolist() == [0.5, -2.0, 0.0, 0.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("lead", LEADS)
def test_nested_dict_tuple_batched_matches_per_element_encoding(lead: tuple[int, ...]) -> None:
    space = spaces.Dict(
        {"img": spaces.Box(0, 255, (2, 2), np.uint8), "inv": spaces.Tuple((spaces.Discrete(2), spaces.MultiDiscrete([2, 3])))}
    )
    rng = np.random.default_rng(4)
    obs = {
        "img": rng.integers(0, 256, size=(*lead, 2, 2)).astype(np.uint8),
        "inv": (rng.integers(0, 2, size=lead), np.stack([rng.integers(0, 2, lead), rng.integers(0, 3, lead)], -1)),
    }
    out = preprocess(space, obs)
    assert out.shape == (*lead, 4 + 2 + 5)
    for i in np.ndindex(*lead):
        single = {"img": obs["img"][i], "inv": (obs["inv"][0][i], obs["inv"][1][i])}
        np.testing.assert_array_equal(out[i].numpy(), preprocess(space, single).numpy())


def test_torch_tensor_input_matches_numpy_and_keeps_device() -> None:
    space = spaces.Tuple((spaces.Box(-1, 1, (3,)), spaces.Discrete(5)))
    box = np.random.default_rng(5).uniform(-1, 1, size=(2, 3, 3)).astype(np.float32)
    disc = np.array([[0, 4, 2], [1, 1, 3]])
    from_np = preprocess(space, (box, disc))
    from_torch = preprocess(space, (torch.from_numpy(box), torch.from_numpy(disc)))
    assert from_torch.shape == (2, 3, 8)
    assert from_torch.device.type == "cpu"
    torch.testing.assert_close(from_np, from_torch)


def test_device_argument_places_result() -> None:
    out = preprocess(spaces.Discrete(2), np.array([1]), device="cpu")
    assert out.device == torch.device("cpu")


def test_mismatched_trailing_shape_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        preprocess(spaces.Box(0, 1, (2, 3)), np.zeros((4, 3, 2)))


def test_mismatched_leading_dims_between_children_raise_value_error() -> None:
    space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2)))
    with pytest.raises(ValueError, match="leading dims"):
        preprocess(space, (np.zeros(3, dtype=int), np.zeros(4, dtype=int)))


@pytest.mark.parametrize(
    "space",
    [spaces.Text(5), spaces.Sequence(spaces.Discrete(2)), spaces.Graph(spaces.Box(0, 1, (2,)), spaces.Discrete(2))],
    ids=["text", "sequence", "graph"],
)
def test_unsupported_space_raises_typed_error_naming_the_space(space: spaces.Space) -> None:
    for call in (lambda: flat_dim(space), lambda: preprocess(space, np.zeros(1))):
        with pytest.raises(UnsupportedSpaceError) as info:
            call()
        assert isinstance(info.value, TypeError)
        assert repr(space) in str(info.value)


def test_nested_unsupported_space_error_names_the_path() -> None:
    space = spaces.Dict({"sensors": spaces.Tuple((spaces.Box(0, 1, (2,)), spaces.Text(4)))})
    with pytest.raises(UnsupportedSpaceError, match=r"obs\['sensors'\]\[1\]") as info:
        flat_dim(space)
    assert "Text(" in str(info.value)
    with pytest.raises(UnsupportedSpaceError, match=r"obs\['sensors'\]\[1\]"):
        ObservationEncoder(space)


def test_custom_space_is_unsupported() -> None:
    class Custom(spaces.Space):
        pass

    with pytest.raises(UnsupportedSpaceError, match="Custom"):
        flat_dim(Custom())


@pytest.mark.parametrize("hidden", [(64,), (32, 16), ()])
def test_encoder_output_shape_and_dims(hidden: tuple[int, ...]) -> None:
    space = spaces.Dict({"a": spaces.Box(-1, 1, (3,)), "b": spaces.Discrete(4)})
    enc = ObservationEncoder(space, hidden_sizes=hidden)
    assert enc.input_dim == 7
    assert enc.output_dim == (hidden[-1] if hidden else 7)
    flat = enc.preprocess({"a": np.zeros((6, 2, 3)), "b": np.ones((6, 2), dtype=int)})
    out = enc(flat)
    assert out.shape == (6, 2, enc.output_dim)
    if not hidden:
        assert torch.equal(out, flat)


def test_encoder_layers_are_orthogonal_with_gain_sqrt2_and_zero_bias() -> None:
    enc = ObservationEncoder(spaces.Box(-1, 1, (8,)), hidden_sizes=(8, 4), activation=nn.ReLU)
    linears = [m for m in enc.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [8, 4]
    assert any(isinstance(m, nn.ReLU) for m in enc.modules())
    w = linears[0].weight.detach()
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(8), atol=1e-5, rtol=0)
    for m in linears:
        assert torch.count_nonzero(m.bias) == 0


@pytest.mark.parametrize("bad", [(0,), (64, -1), (3.5,), (True,)])
def test_encoder_rejects_invalid_hidden_sizes(bad: tuple) -> None:
    with pytest.raises(ValueError, match="hidden_sizes") as info:
        ObservationEncoder(spaces.Box(-1, 1, (3,)), hidden_sizes=bad)
    assert isinstance(info.value, ConfigError)
    assert repr(bad) in str(info.value)


def test_preprocess_large_batch_has_one_hot_rows() -> None:
    space = spaces.Dict({"a": spaces.Box(-1, 1, (16,)), "b": spaces.MultiDiscrete([5, 5, 5]), "c": spaces.Discrete(7)})
    lead = (256, 64)
    rng = np.random.default_rng(6)
    obs = {"a": rng.standard_normal((*lead, 16)).astype(np.float32), "b": rng.integers(0, 5, (*lead, 3)), "c": rng.integers(0, 7, lead)}
    out = preprocess(space, obs)
    assert out.shape == (*lead, 16 + 15 + 7)
    assert torch.all(out[..., 16:31].sum(-1) == 3)
    assert torch.all(out[..., 31:].sum(-1) == 1)
