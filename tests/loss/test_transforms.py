"""batch_shaping_loss under torch.func (grad, vmap, jacrev) with every shipped prior, as autograd.

The host-side checks skip themselves under the transforms (as under ``torch.compile``), so the
default arguments work; the transforms take the sorted route.
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal

from batchshaping import batch_shaping_loss
from batchshaping.distributions import Beta, RelaxedBernoulli, SymmetricBeta

F64 = torch.float64

# name: (build the prior from one parameter tensor, a parameter value); one prior per group.
PRIORS = {
    "beta": (lambda a: Beta(a, torch.tensor(3.0, dtype=F64)), [0.7, 2.0, 4.0]),
    "symmetric beta": (lambda a: SymmetricBeta(a), [0.2, 0.5, 0.9]),
    "relaxed bernoulli": (
        lambda t: RelaxedBernoulli(t, probs=torch.tensor(0.3, dtype=F64)),
        [0.3, 0.6, 0.9],
    ),
    "normal": (lambda loc: Normal(loc, torch.tensor(0.25, dtype=F64)), [0.3, 0.5, 0.7]),
}


def _x(seed=0, shape=(40, 3)):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, dtype=F64, generator=generator) * 0.98 + 0.01


def _loss(x, parameter, name):
    return batch_shaping_loss(x, PRIORS[name][0](parameter), dim=0)


def _autograd(x, parameter, name):
    x, parameter = x.clone().requires_grad_(), parameter.clone().requires_grad_()
    return torch.autograd.grad(_loss(x, parameter, name), (x, parameter))


@pytest.mark.parametrize("name", PRIORS)
def test_func_grad_matches_autograd(name):
    x, parameter = _x(), torch.tensor(PRIORS[name][1], dtype=F64)
    found = torch.func.grad(lambda x, p: _loss(x, p, name), argnums=(0, 1))(x, parameter)
    for ours, expected in zip(found, _autograd(x, parameter, name), strict=True):
        torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", PRIORS)
def test_jacrev_matches_autograd(name):
    x, parameter = _x(), torch.tensor(PRIORS[name][1], dtype=F64)

    def per_group(p):
        return batch_shaping_loss(x, PRIORS[name][0](p), dim=0, reduction="none")

    jacobian = torch.func.jacrev(per_group)(parameter)
    for group in range(3):
        p = parameter.clone().requires_grad_()
        (expected,) = torch.autograd.grad(per_group(p)[group], p)
        torch.testing.assert_close(jacobian[group], expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", PRIORS)
def test_vmap_over_a_batch_of_inputs(name):
    xs = torch.stack([_x(seed) for seed in range(4)])
    parameter = torch.tensor(PRIORS[name][1], dtype=F64)
    found = torch.func.vmap(lambda x: _loss(x, parameter, name))(xs)
    expected = torch.stack([_loss(x, parameter, name) for x in xs])
    torch.testing.assert_close(found, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", PRIORS)
def test_vmap_over_a_batch_of_prior_parameters(name):
    x = _x()
    base = torch.tensor(PRIORS[name][1], dtype=F64)
    parameters = torch.stack([base, base.flip(0), (base + base.flip(0)) / 2])
    found = torch.func.vmap(lambda p: _loss(x, p, name))(parameters)
    expected = torch.stack([_loss(x, p, name) for p in parameters])
    torch.testing.assert_close(found, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", PRIORS)
def test_per_sample_gradients_by_vmap_of_grad(name):
    xs = torch.stack([_x(seed) for seed in range(3)])
    parameter = torch.tensor(PRIORS[name][1], dtype=F64)
    per_sample = torch.func.vmap(torch.func.grad(lambda p, x: _loss(x, p, name)), (None, 0))(
        parameter, xs
    )
    for found, x in zip(per_sample, xs, strict=True):
        torch.testing.assert_close(found, _autograd(x, parameter, name)[1], rtol=1e-12, atol=1e-15)


def test_bad_input_is_still_reported_outside_the_transforms():
    x = _x()
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        batch_shaping_loss(x, Normal(0.5, 0.2))
