"""Per-sub-env action sampling: a sub-env's action depends on its global index, not on how envs are grouped."""

import math

import pytest
import torch

from tracerl.distributed.sampling import env_generators, sample_per_env
from tracerl.errors import ConfigError
from tracerl.policies.distributions import (BernoulliDist, CategoricalDist, DiagGaussianDist, MultiCategoricalDist,
                                            multi_categorical_layout)


def _make(kind: str, params: torch.Tensor):
    """A distribution of batch shape [1, B] from ``params`` [1, B, width]."""
    if kind == "categorical":
        return CategoricalDist(params[..., :4])
    if kind == "multi":
        index, pad = multi_categorical_layout([3, 5])
        return MultiCategoricalDist(params, index, pad)
    if kind == "gaussian":
        return DiagGaussianDist(params[..., :2], torch.zeros(2))
    return BernoulliDist(params[..., :3])


@pytest.mark.parametrize("kind", ["categorical", "multi", "gaussian", "bernoulli"])
def test_split_batches_draw_the_actions_of_the_whole_batch(kind):
    B = 6
    params = torch.randn(1, B, 8, generator=torch.Generator().manual_seed(0))
    whole_gens = env_generators(7, 0, B)
    whole = torch.cat([sample_per_env(_make(kind, params), whole_gens) for _ in range(5)])
    # the same sub-envs grouped as batches of 2 and 4 (global indices 0-1 and 2-5)
    gens_a, gens_b = env_generators(7, 0, 2), env_generators(7, 2, 4)
    parts = torch.cat([torch.cat([sample_per_env(_make(kind, params[:, :2]), gens_a),
                                  sample_per_env(_make(kind, params[:, 2:]), gens_b)], dim=1) for _ in range(5)])
    assert torch.equal(whole, parts)
    assert not torch.equal(whole[0], whole[1])  # the streams advance
    other_gens = env_generators(8, 0, B)
    assert not torch.equal(whole, torch.cat([sample_per_env(_make(kind, params), other_gens) for _ in range(5)]))


def test_categorical_samples_follow_the_probabilities():
    probs = torch.tensor([0.1, 0.2, 0.7, 0.0])
    dist = CategoricalDist(probs.clamp(min=1e-30).log().expand(1, 1, 4))
    gens = env_generators(0, 0, 1)
    n = 4000
    counts = torch.bincount(torch.cat([sample_per_env(dist, gens).flatten() for _ in range(n)]), minlength=4)
    assert counts[3] == 0
    for k in range(3):
        sd = math.sqrt(n * probs[k] * (1 - probs[k]))
        assert abs(counts[k] - n * probs[k]) < 5 * sd


def test_multi_categorical_never_picks_a_padding_category():
    index, pad = multi_categorical_layout([2, 5])
    dist = MultiCategoricalDist(torch.zeros(1, 3, 7), index, pad)
    gens = env_generators(1, 0, 3)
    draws = torch.cat([sample_per_env(dist, gens) for _ in range(500)])  # [500, 3, 2]
    assert int(draws[..., 0].max()) == 1 and int(draws[..., 1].max()) == 4
    assert int(draws.min()) == 0


def test_gaussian_samples_have_the_distribution_mean_and_std():
    dist = DiagGaussianDist(torch.tensor([[[1.0, -2.0]]]), torch.tensor([0.0, math.log(0.5)]))
    gens = env_generators(2, 0, 1)
    draws = torch.cat([sample_per_env(dist, gens)[0] for _ in range(3000)])  # [3000, 2]
    assert torch.allclose(draws.mean(0), torch.tensor([1.0, -2.0]), atol=0.08)
    assert torch.allclose(draws.std(0), torch.tensor([1.0, 0.5]), atol=0.05)


def test_an_unknown_distribution_is_refused_by_name():
    class Weird:
        pass

    with pytest.raises(ConfigError, match="Weird"):
        sample_per_env(Weird(), env_generators(0, 0, 1))  # type: ignore[arg-type]
