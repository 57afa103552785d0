"""Every prior example on every route of the loss: the loss and its gradients to x and to every
parameter are those of the sorted route.

The examples are those of ``tests/distributions/prior_examples.py`` (every prior the package
ships or registers), each on both of its paths: the values as its fit gives them (with
``logits`` and ``ties`` as there) and the other one (logits where it fits values, values where
it fits logits).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.distributions import Exponential, Uniform

from batchshaping import batch_shaping_loss
from batchshaping.distributions import prior_traits
from batchshaping.loss import route

# The registry of examples sits beside the prior tests; the suite imports with importlib.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "distributions"))
import prior_examples as examples

F64 = torch.float64
ROUTES = {"ranked": {}, "chunked": {"chunk_values": 97}}  # several chunks to every group


def _case(name: str, fitted_path: bool):
    """(x, logits, ties) for the example: 300 values per group."""
    fit = examples.PRIORS[name].fit or examples.Fit()
    prior, _ = examples.build(name)
    generator = torch.Generator().manual_seed(3)
    theta = torch.randn(300, *prior.batch_shape, generator=generator, dtype=F64) * fit.spread
    if fitted_path:
        x = theta if fit.logits else fit.values(theta).to(F64)
        return x, fit.logits, fit.ties
    if fit.logits:  # its values: the sigmoid of the logits it fits
        return torch.sigmoid(theta), False, fit.ties
    return theta, True, fit.ties


def _loss_and_grads(name, x, logits, ties, reduction):
    prior_builder = examples.PRIORS[name].build
    parameters = [
        torch.tensor(p, dtype=F64).requires_grad_() for p in examples.PRIORS[name].parameters
    ]
    x = x.detach().clone().requires_grad_()
    loss = batch_shaping_loss(
        x, prior_builder(*parameters), dim=0, logits=logits, ties=ties, reduction=reduction
    )
    gradients = torch.autograd.grad(loss.sum(), [x, *parameters])
    return loss.detach(), *gradients


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("route_name", ROUTES)
@pytest.mark.parametrize("fitted_path", [True, False], ids=["as fitted", "other path"])
@pytest.mark.parametrize("name", examples.PRIORS)
def test_every_route_gives_the_sorted_routes_loss_and_gradients(
    name, fitted_path, route_name, reduction
):
    prior, _ = examples.build(name)
    traits = prior_traits(prior)
    assert traits is not None  # every example has traits: the fast routes take it
    x, logits, ties = _case(name, fitted_path)
    with route("sorted"):
        expected = _loss_and_grads(name, x, logits, ties, reduction)
    with route(route_name, **ROUTES[route_name]):
        found = _loss_and_grads(name, x, logits, ties, reduction)
    assert expected[0].abs().sum() > 0
    for ours, reference in zip(found, expected, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("route_name", ["sorted", *ROUTES])
@pytest.mark.parametrize(
    "prior", [Uniform(0.0, 1.0), Exponential(2.0)], ids=["uniform", "exponential"]
)
def test_torch_bounded_priors_check_their_support_on_every_route(prior, route_name):
    # torch's cdf checks the values; rebuilt by the fast routes, they keep that check.
    x = torch.linspace(-0.5, 0.9, 50, dtype=F64)
    with (
        route(route_name, **ROUTES.get(route_name, {})),
        pytest.raises(ValueError, match="support"),
    ):
        batch_shaping_loss(x, prior)
