"""The registry of what a prior offers the loss."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import (
    Cauchy,
    Exponential,
    Gumbel,
    Laplace,
    LogNormal,
    Normal,
    StudentT,
    TransformedDistribution,
    Uniform,
)
from torch.distributions.transforms import (
    AffineTransform,
    CumulativeDistributionTransform,
    SigmoidTransform,
)

from batchshaping.distributions import (
    Beta,
    Empirical,
    HardConcrete,
    Kumaraswamy,
    Logistic,
    LogitNormal,
    RelaxedBernoulli,
    SymmetricBeta,
    prior_traits,
    register_prior,
    registry,
)

SHIPPED = {
    "beta": Beta(torch.tensor([2.0, 0.5]), torch.tensor(6.0), density_bounds=(1e-3, 50.0)),
    "symmetric beta": SymmetricBeta(torch.tensor([0.3, 0.9]), density_bounds=(0.0, 10.0)),
    "relaxed bernoulli": RelaxedBernoulli(torch.tensor(0.4), probs=torch.tensor([0.2, 0.7])),
    "kumaraswamy": Kumaraswamy(torch.tensor([0.5, 2.0]), 3.0),
    "hard concrete": HardConcrete(torch.tensor([0.5, -1.0]), 0.4, limits=(-0.2, 1.2)),
    "logit normal": LogitNormal(torch.tensor([0.5, -1.0]), 0.7),
    "logistic": Logistic(torch.tensor([0.3, 0.6]), 0.2),
    "empirical": Empirical(torch.rand(2, 7, generator=torch.Generator().manual_seed(0))),
    "normal": Normal(torch.tensor([0.3, 0.6]), 0.2),
    "uniform": Uniform(torch.tensor([0.0, -0.1]), 1.0),
    "laplace": Laplace(torch.tensor([0.3, 0.6]), 0.2),
    "exponential": Exponential(torch.tensor([2.0, 0.5])),
    "gumbel": Gumbel(torch.tensor([0.3, 0.6]), 0.2),
    "cauchy": Cauchy(torch.tensor([0.3, 0.6]), 0.2),
    "transformed": TransformedDistribution(
        Normal(torch.tensor([0.3, -0.6]), 0.5), [AffineTransform(0.5, 2.0), SigmoidTransform()]
    ),
}


@pytest.mark.parametrize("name", SHIPPED)
def test_rebuild_on_the_same_tensors_is_the_same_prior(name):
    prior = SHIPPED[name]
    traits = prior_traits(prior)
    rebuilt = traits.rebuild(prior, traits.parameters(prior))
    assert type(rebuilt) is type(prior)
    x = torch.rand(9, 2).requires_grad_()
    value = prior.cdf(x)
    torch.testing.assert_close(rebuilt.cdf(x), value)
    # The surrogate gradient of density_bounds is part of the prior: it must survive.
    (expected,) = torch.autograd.grad(value.sum(), x)
    (found,) = torch.autograd.grad(rebuilt.cdf(x).sum(), x)
    torch.testing.assert_close(found, expected)


@pytest.mark.parametrize("name", SHIPPED)
def test_parameters_broadcast_to_the_batch_shape_after_their_leading_dims(name):
    prior = SHIPPED[name]
    traits = prior_traits(prior)
    for parameter, tensor in traits.parameters(prior).items():
        batch = tensor.shape[traits.leading_dims.get(parameter, 0) :]
        assert torch.broadcast_shapes(batch, prior.batch_shape) == prior.batch_shape


def test_a_dimension_added_last_to_every_parameter_is_a_batch_dimension():
    # As the loss does to lay the samples of each group last: (*batch) -> (*batch, 1).
    for name, prior in SHIPPED.items():
        traits = prior_traits(prior)
        tensors = {n: t.unsqueeze(-1) for n, t in traits.parameters(prior).items()}
        rebuilt = traits.rebuild(prior, tensors)
        assert rebuilt.batch_shape == (*prior.batch_shape, 1), name
        x = torch.rand(2, 5)
        torch.testing.assert_close(rebuilt.cdf(x), prior.cdf(x.T).T, msg=name)


def test_only_the_betainc_priors_are_not_chunkable():
    chunkable = {name for name, prior in SHIPPED.items() if prior_traits(prior).chunkable}
    assert set(SHIPPED) - chunkable == {"beta", "symmetric beta"}


def test_empirical_declares_its_reference_samples_leading():
    prior = SHIPPED["empirical"]
    traits = prior_traits(prior)
    assert traits.leading_dims == {"samples": 1}
    assert traits.parameters(prior)["samples"].shape == (7, 2)


def test_traits_belong_to_one_class_exactly():
    class Shifted(Normal):
        pass

    assert prior_traits(Shifted(0.0, 1.0)) is None


def test_transformed_distributions_have_traits_only_where_they_can_be_rebuilt():
    base_without_traits = TransformedDistribution(StudentT(3.0), SigmoidTransform())
    unknown_transform = TransformedDistribution(
        Normal(0.0, 1.0), CumulativeDistributionTransform(Normal(0.0, 1.0))
    )
    assert prior_traits(base_without_traits) is None
    assert prior_traits(unknown_transform) is None
    traits = prior_traits(SHIPPED["transformed"])
    assert set(traits.parameters(SHIPPED["transformed"])) == {"base_loc", "base_scale"}
    with_tensors = TransformedDistribution(
        Normal(0.0, 1.0), [AffineTransform(torch.zeros(3), torch.ones(3)), SigmoidTransform()]
    )
    names = set(prior_traits(with_tensors).parameters(with_tensors))
    assert names == {"base_loc", "base_scale", "transform0_loc", "transform0_scale"}


def test_register_prior_declares_and_replaces(monkeypatch):
    monkeypatch.setattr(registry, "_TRAITS", dict(registry._TRAITS))
    assert prior_traits(LogNormal(0.0, 1.0)) is None
    register_prior(
        LogNormal,
        parameters=lambda prior: {"loc": prior.loc, "scale": prior.scale},
        rebuild=lambda prior, tensors: LogNormal(**tensors, validate_args=False),
        chunkable=True,
        accepts=lambda prior: prior.batch_shape == (),
    )
    assert prior_traits(LogNormal(0.0, 1.0)).chunkable
    assert prior_traits(LogNormal(torch.zeros(2), 1.0)) is None  # not accepted
    with pytest.raises(TypeError, match="Distribution subclass"):
        register_prior(int, parameters=dict, rebuild=lambda prior, tensors: prior)
