"""Tests of tracerl.policies.distributions: action heads, their distributions and the critic head."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn
from torch.distributions import (
    AffineTransform,
    Bernoulli,
    Categorical,
    Independent,
    Normal,
    TanhTransform,
    TransformedDistribution,
)

from tracerl.errors import UnsupportedSpaceError
from tracerl.policies.distributions import (
    ActionHead,
    CategoricalDist,
    CriticHead,
    DiagGaussianDist,
    DiscreteHead,
    GaussianHead,
    MultiBinaryHead,
    MultiDiscreteHead,
    make_action_head,
)

T, B, IN = 5, 3, 6

HEAD_CASES = {
    "discrete": (spaces.Discrete(4, start=-1), False, DiscreteHead, (), torch.int64, 4),
    "multidiscrete": (spaces.MultiDiscrete(np.array([[2, 5], [3, 1]]), start=np.array([[0, 1], [-2, 7]])), False, MultiDiscreteHead, (4,), torch.int64, 11),
    "box": (spaces.Box(-1.0, 2.0, shape=(2, 3)), False, GaussianHead, (6,), torch.float32, 6),
    "box_squashed": (spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 10.0], np.float32)), True, GaussianHead, (2,), torch.float32, 2),
    "box_float64": (spaces.Box(-3.0, 3.0, shape=(2,), dtype=np.float64), False, GaussianHead, (2,), torch.float32, 2),
    "multibinary": (spaces.MultiBinary([2, 2]), False, MultiBinaryHead, (4,), torch.float32, 4),
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _head(name: str, log_std_init: float = 0.0) -> ActionHead:
    space, squash, *_ = HEAD_CASES[name]
    return make_action_head(space, IN, squash=squash, log_std_init=log_std_init)


@pytest.mark.parametrize("name", list(HEAD_CASES))
def test_make_action_head_builds_the_right_head_with_raw_layout(name: str) -> None:
    _, _, cls, raw_shape, raw_dtype, feat_dim = HEAD_CASES[name]
    head = _head(name)
    assert isinstance(head, cls)
    assert head.raw_shape == raw_shape
    assert head.raw_dtype == raw_dtype
    assert head.action_feat_dim == feat_dim


@pytest.mark.parametrize("name", list(HEAD_CASES))
def test_sample_mode_log_prob_entropy_shapes_with_time_major_leading_dims(name: str) -> None:
    head = _head(name)
    dist = head(torch.randn(T, B, IN))
    for raw in (dist.sample(), dist.mode()):
        assert raw.shape == (T, B, *head.raw_shape)
        assert raw.dtype == head.raw_dtype
    assert dist.log_prob(dist.sample()).shape == (T, B)
    assert dist.entropy().shape == (T, B)
    assert head.action_features(dist.sample()).shape == (T, B, head.action_feat_dim)
    assert head.action_features(dist.sample()).dtype == torch.float32


@pytest.mark.parametrize("name", list(HEAD_CASES))
def test_to_env_actions_are_contained_in_the_space(name: str) -> None:
    space = HEAD_CASES[name][0]
    head = _head(name, log_std_init=1.5)  # wide Gaussians: unsquashed samples exceed the bounds
    with torch.no_grad():
        dist = head(3.0 * torch.randn(T, B, IN))
        raws = [dist.sample() for _ in range(4)] + [dist.mode()]
    for raw in raws:
        actions = head.to_env(raw)
        assert isinstance(actions, np.ndarray)
        assert actions.shape == (T, B, *space.shape)
        for idx in np.ndindex(T, B):
            assert space.contains(actions[idx]), (name, actions[idx])


def test_unsquashed_box_to_env_clips_and_reshapes() -> None:
    space = spaces.Box(-1.0, 2.0, shape=(2, 2))
    head = make_action_head(space, IN)
    raw = torch.tensor([[-5.0, 0.5, 2.5, 1.0]])
    np.testing.assert_array_equal(head.to_env(raw), np.array([[[-1.0, 0.5], [2.0, 1.0]]], dtype=np.float32))


def test_squashed_box_to_env_maps_tanh_into_bounds() -> None:
    space = spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 10.0], np.float32))
    head = make_action_head(space, IN, squash=True)
    raw = torch.tensor([[0.0, 0.0], [0.5, -1.0], [50.0, -50.0]])
    t = np.tanh(raw.numpy().astype(np.float64))
    expected = np.array([-1.0, 0.0]) + (t + 1.0) / 2.0 * np.array([2.0, 10.0])
    np.testing.assert_allclose(head.to_env(raw), expected.astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(head.to_env(raw[2:]), np.array([[1.0, 0.0]], dtype=np.float32))
    torch.testing.assert_close(head.action_features(raw), torch.tanh(raw))


def test_discrete_and_multidiscrete_to_env_add_start() -> None:
    d = make_action_head(spaces.Discrete(3, start=-2), IN)
    np.testing.assert_array_equal(d.to_env(torch.tensor([[0, 2], [1, 0]])), np.array([[-2, 0], [-1, -2]]))
    md = make_action_head(spaces.MultiDiscrete(np.array([[2, 3], [4, 2]]), start=np.array([[1, 0], [-3, 5]])), IN)
    out = md.to_env(torch.tensor([[1, 2, 3, 0]]))
    np.testing.assert_array_equal(out, np.array([[[2, 2], [0, 5]]]))


def test_categorical_log_prob_and_entropy_match_torch_reference() -> None:
    head = make_action_head(spaces.Discrete(5), IN)
    features = torch.randn(T, B, IN)
    dist = head(features)
    ref = Categorical(logits=head.logits(features), validate_args=False)
    raw = torch.randint(0, 5, (T, B))
    torch.testing.assert_close(dist.log_prob(raw), ref.log_prob(raw))
    torch.testing.assert_close(dist.entropy(), ref.entropy())


def test_categorical_log_prob_fixed_known_values() -> None:
    logits = torch.tensor([[math.log(0.1), math.log(0.2), math.log(0.7)], [0.0, 0.0, 0.0]]) + 3.0
    dist = CategoricalDist(logits)
    torch.testing.assert_close(dist.log_prob(torch.tensor([2, 1])), torch.tensor([math.log(0.7), math.log(1 / 3)]))
    assert dist.mode().tolist() == [2, 0]


@pytest.mark.parametrize("n", [2, 7])
def test_uniform_categorical_entropy_is_log_n(n: int) -> None:
    head = make_action_head(spaces.Discrete(n), IN)
    dist = head(torch.zeros(T, B, IN))  # zero bias: initial logits are all zero
    torch.testing.assert_close(dist.entropy(), torch.full((T, B), math.log(n)))


def test_categorical_entropy_is_finite_with_impossible_actions() -> None:
    dist = CategoricalDist(torch.tensor([[0.0, -float("inf"), 0.0]]))
    torch.testing.assert_close(dist.entropy(), torch.tensor([math.log(2)]))


def test_categorical_sample_frequencies_match_probabilities() -> None:
    probs = torch.tensor([0.1, 0.2, 0.7])
    dist = CategoricalDist(probs.log().expand(20000, 3))
    freq = torch.bincount(dist.sample(), minlength=3).float() / 20000
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)


def test_multidiscrete_log_prob_and_entropy_equal_sum_of_component_categoricals() -> None:
    nvec = [3, 1, 5, 2]
    head = make_action_head(spaces.MultiDiscrete(nvec), IN)
    features = torch.randn(T, B, IN)
    with torch.no_grad():
        head.logits.weight.normal_()  # non-trivial logits
    dist = head(features)
    logits = head.logits(features).split(nvec, dim=-1)
    comps = [Categorical(logits=lg, validate_args=False) for lg in logits]
    raw = dist.sample()
    expected_lp = sum(c.log_prob(raw[..., i]) for i, c in enumerate(comps))
    expected_ent = sum(c.entropy() for c in comps)
    torch.testing.assert_close(dist.log_prob(raw), expected_lp)
    torch.testing.assert_close(dist.entropy(), expected_ent)
    assert torch.equal(dist.mode(), torch.stack([lg.argmax(-1) for lg in logits], dim=-1))


def test_multidiscrete_uniform_entropy_and_samples_never_hit_padding() -> None:
    nvec = [2, 5, 3]
    head = make_action_head(spaces.MultiDiscrete(nvec), IN)
    dist = head(torch.zeros(1000, IN))
    torch.testing.assert_close(dist.entropy(), torch.full((1000,), sum(math.log(n) for n in nvec)))
    raw = dist.sample()
    assert torch.all(raw >= 0)
    assert torch.all(raw < torch.tensor(nvec))
    assert all(len(torch.unique(raw[:, i])) == n for i, n in enumerate(nvec))


def test_gaussian_log_prob_and_entropy_match_torch_normal() -> None:
    head = make_action_head(spaces.Box(-1.0, 1.0, (3,)), IN, log_std_init=-0.7)
    with torch.no_grad():
        head.mean.weight.normal_()
        head.log_std.copy_(torch.tensor([-0.7, 0.1, 0.4]))
    features = torch.randn(T, B, IN)
    dist = head(features)
    ref = Independent(Normal(head.mean(features), head.log_std.exp(), validate_args=False), 1)
    raw = torch.randn(T, B, 3) * 2.0
    torch.testing.assert_close(dist.log_prob(raw), ref.log_prob(raw))
    torch.testing.assert_close(dist.entropy(), ref.entropy())


def test_gaussian_log_prob_fixed_known_value() -> None:
    dist = DiagGaussianDist(torch.tensor([[0.0, 1.0]]), torch.tensor([0.0, math.log(2.0)]))
    raw = torch.tensor([[1.0, 1.0]])
    expected = (-0.5 - 0.5 * math.log(2 * math.pi)) + (-math.log(2.0) - 0.5 * math.log(2 * math.pi))
    torch.testing.assert_close(dist.log_prob(raw), torch.tensor([expected]))


def test_log_std_is_initialised_from_log_std_init() -> None:
    head = make_action_head(spaces.Box(-1.0, 1.0, (4,)), IN, log_std_init=-1.25)
    assert isinstance(head.log_std, nn.Parameter)
    torch.testing.assert_close(head.log_std.detach(), torch.full((4,), -1.25))


def test_squashed_log_prob_matches_change_of_variables_density() -> None:
    low, high = np.array([-1.0, 0.0, -4.0], np.float32), np.array([1.0, 10.0, 2.0], np.float32)
    space = spaces.Box(low, high, dtype=np.float32)
    head = make_action_head(space, IN, squash=True, log_std_init=-0.3)
    features = torch.randn(T, B, IN)
    dist = head(features)
    raw = torch.randn(T, B, 3).clamp(-2.5, 2.5)
    center = torch.tensor((low + high) / 2, dtype=torch.float32)
    half = torch.tensor((high - low) / 2, dtype=torch.float32)
    base = Normal(head.mean(features), head.log_std.exp(), validate_args=False)
    squashed = Independent(
        TransformedDistribution(base, [TanhTransform(), AffineTransform(center, half)], validate_args=False), 1
    )
    action = center + half * torch.tanh(raw)
    torch.testing.assert_close(dist.log_prob(raw), squashed.log_prob(action), atol=2e-4, rtol=1e-5)
    np.testing.assert_allclose(head.to_env(raw), action.numpy(), rtol=1e-5, atol=1e-6)


def test_squashed_density_integrates_to_one_over_the_bounds() -> None:
    space = spaces.Box(np.array([-2.0], np.float32), np.array([6.0], np.float32))
    head = make_action_head(space, IN, squash=True, log_std_init=-0.5)
    dist = head(torch.randn(1, IN))
    # Integrate the env-action density p(a) over [low, high] via a = 2 + 4 tanh(u): da = 4 (1 - tanh^2) du.
    u = torch.linspace(-6.0, 6.0, 20001).unsqueeze(-1)
    density = dist.log_prob(u).exp().detach()
    jac = 4.0 * (1.0 - torch.tanh(u.squeeze(-1)) ** 2)
    total = torch.trapezoid(density * jac, u.squeeze(-1))
    assert abs(total.item() - 1.0) < 1e-3


def test_squashed_entropy_is_the_pre_squash_gaussian_entropy() -> None:
    space = spaces.Box(-3.0, 3.0, (2,))
    head = make_action_head(space, IN, squash=True, log_std_init=0.2)
    dist = head(torch.randn(T, B, IN))
    expected = 2 * (0.5 + 0.5 * math.log(2 * math.pi) + 0.2)
    torch.testing.assert_close(dist.entropy(), torch.full((T, B), expected))


def test_gaussian_samples_have_the_head_mean_and_std() -> None:
    head = make_action_head(spaces.Box(-1.0, 1.0, (2,)), IN, log_std_init=math.log(0.5))
    dist = head(torch.zeros(50000, IN))
    s = dist.sample()
    torch.testing.assert_close(s.mean(0), torch.zeros(2), atol=0.02, rtol=0)
    torch.testing.assert_close(s.std(0), torch.full((2,), 0.5), atol=0.02, rtol=0)


def test_multibinary_log_prob_and_entropy_match_torch_bernoulli() -> None:
    head = make_action_head(spaces.MultiBinary(4), IN)
    with torch.no_grad():
        head.logits.weight.normal_()
    features = torch.randn(T, B, IN)
    dist = head(features)
    ref = Independent(Bernoulli(logits=head.logits(features), validate_args=False), 1)
    raw = dist.sample()
    assert set(raw.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(dist.log_prob(raw), ref.log_prob(raw))
    torch.testing.assert_close(dist.entropy(), ref.entropy())
    assert torch.equal(dist.mode(), (head.logits(features) > 0).float())


@pytest.mark.parametrize("name", list(HEAD_CASES))
def test_mode_is_deterministic(name: str) -> None:
    head = _head(name)
    features = torch.randn(T, B, IN)
    assert torch.equal(head(features).mode(), head(features).mode())


def test_gaussian_mode_is_the_mean() -> None:
    head = make_action_head(spaces.Box(-1.0, 1.0, (3,)), IN)
    features = torch.randn(T, B, IN)
    torch.testing.assert_close(head(features).mode(), head.mean(features))


@pytest.mark.parametrize("name", list(HEAD_CASES))
def test_log_prob_gradients_reach_every_parameter(name: str) -> None:
    head = _head(name)
    features = torch.randn(T, B, IN, requires_grad=True)
    dist = head(features)
    raw = dist.sample()
    (dist.log_prob(raw).sum() + 0.1 * dist.entropy().sum()).backward()
    assert features.grad is not None and torch.count_nonzero(features.grad) > 0
    for pname, p in head.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, pname


def test_discrete_action_features_are_one_hot() -> None:
    head = make_action_head(spaces.Discrete(3, start=5), IN)
    feats = head.action_features(torch.tensor([[0, 2], [1, 1]]))
    assert feats.dtype == torch.float32
    assert feats.tolist() == [[[1, 0, 0], [0, 0, 1]], [[0, 1, 0], [0, 1, 0]]]


def test_multidiscrete_action_features_are_concatenated_one_hots() -> None:
    head = make_action_head(spaces.MultiDiscrete([2, 3, 1]), IN)
    feats = head.action_features(torch.tensor([[1, 0, 0], [0, 2, 0]]))
    assert feats.tolist() == [[0, 1, 1, 0, 0, 1], [1, 0, 0, 0, 1, 1]]


def test_box_and_multibinary_action_features_are_the_raw_values() -> None:
    box = make_action_head(spaces.Box(-1.0, 1.0, (2,)), IN)
    raw = torch.tensor([[3.0, -0.5]])
    assert torch.equal(box.action_features(raw), raw)
    mb = make_action_head(spaces.MultiBinary(3), IN)
    assert mb.action_features(torch.tensor([[1.0, 0.0, 1.0]])).tolist() == [[1.0, 0.0, 1.0]]


@pytest.mark.parametrize("name", ["discrete", "multidiscrete", "box", "multibinary"])
def test_output_layer_is_orthogonal_with_small_gain_and_zero_bias(name: str) -> None:
    head = _head(name)
    (layer,) = [m for m in head.modules() if isinstance(m, nn.Linear)]
    w = layer.weight.detach()
    small = w if w.shape[0] <= w.shape[1] else w.T
    torch.testing.assert_close(small @ small.T, 1e-4 * torch.eye(small.shape[0]), atol=1e-7, rtol=0)
    assert torch.count_nonzero(layer.bias) == 0


def test_critic_head_squeezes_last_dim_and_is_orthogonal_gain_one() -> None:
    critic = CriticHead(IN)
    out = critic(torch.randn(T, B, IN))
    assert out.shape == (T, B)
    w = critic.value.weight.detach()
    torch.testing.assert_close((w @ w.T).squeeze(), torch.tensor(1.0))
    assert torch.count_nonzero(critic.value.bias) == 0
    out.sum().backward()
    assert critic.value.weight.grad is not None


@pytest.mark.parametrize(
    "space",
    [spaces.Discrete(3), spaces.MultiDiscrete([2, 2]), spaces.MultiBinary(2), spaces.Box(-np.inf, np.inf, (2,)), spaces.Box(np.array([0.0, -1.0], np.float32), np.array([np.inf, 1.0], np.float32))],
    ids=["discrete", "multidiscrete", "multibinary", "box_unbounded", "box_half_bounded"],
)
def test_invalid_squash_combination_raises_value_error_naming_squash(space: spaces.Space) -> None:
    with pytest.raises(ValueError, match="squash"):
        make_action_head(space, IN, squash=True)


def test_unbounded_box_without_squash_is_fine_and_to_env_is_identity() -> None:
    head = make_action_head(spaces.Box(-np.inf, np.inf, (2,)), IN)
    raw = torch.tensor([[100.0, -3.0]])
    np.testing.assert_array_equal(head.to_env(raw), raw.numpy())


@pytest.mark.parametrize(
    "space",
    [spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3))), spaces.Dict({"a": spaces.Discrete(2)}), spaces.Text(4)],
    ids=["tuple", "dict", "text"],
)
def test_unsupported_action_space_raises_typed_error_naming_the_space(space: spaces.Space) -> None:
    with pytest.raises(UnsupportedSpaceError) as info:
        make_action_head(space, IN)
    assert isinstance(info.value, TypeError)
    assert repr(space) in str(info.value)


def test_in_dim_must_be_positive() -> None:
    with pytest.raises(ValueError, match="in_dim"):
        make_action_head(spaces.Discrete(2), 0)
