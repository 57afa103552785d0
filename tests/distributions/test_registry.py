"""The registry of what a prior offers the loss."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Laplace, Normal

from batchshaping.distributions import (
    Beta,
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
    "normal": Normal(torch.tensor([0.3, 0.6]), 0.2),
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
def test_parameters_broadcast_to_the_batch_shape(name):
    prior = SHIPPED[name]
    for tensor in prior_traits(prior).parameters(prior).values():
        assert torch.broadcast_shapes(tensor.shape, prior.batch_shape) == prior.batch_shape


def test_only_the_chunkable_priors_say_so():
    assert {name for name, prior in SHIPPED.items() if prior_traits(prior).chunkable} == {
        "relaxed bernoulli",
        "normal",
    }


def test_traits_belong_to_one_class_exactly():
    class Shifted(Normal):
        pass

    assert prior_traits(Shifted(0.0, 1.0)) is None


def test_register_prior_declares_and_replaces(monkeypatch):
    monkeypatch.setattr(registry, "_TRAITS", dict(registry._TRAITS))
    assert prior_traits(Laplace(0.0, 1.0)) is None
    register_prior(
        Laplace,
        parameters=lambda prior: {"loc": prior.loc, "scale": prior.scale},
        rebuild=lambda prior, tensors: Laplace(**tensors, validate_args=False),
        chunkable=True,
    )
    assert prior_traits(Laplace(0.0, 1.0)).chunkable
    with pytest.raises(TypeError, match="Distribution subclass"):
        register_prior(int, parameters=dict, rebuild=lambda prior, tensors: prior)
