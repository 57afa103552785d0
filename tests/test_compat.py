"""The drop-in gbas_loss: the original's meaning, minus its defects."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import scipy.stats
import torch
from torch.distributions import Normal

from batchshaping import Prior, batch_shaping_loss, gbas_loss
from batchshaping.distributions import Beta, RelaxedBernoulli, SymmetricBeta

F64 = torch.float64


def test_prior_enum_keeps_the_original_numbering():
    assert [(p.name, p.value) for p in Prior] == [
        ("SYMBETA", 0),
        ("BETA", 1),
        ("RELAXED_BERNOULLI", 2),
        ("NORMAL", 3),
    ]


# Each family: the gbas_loss parameters and the equivalent modern prior.
FAMILIES = {
    "symbeta": (Prior.SYMBETA, 0.9, None, lambda: SymmetricBeta(torch.tensor(0.9, dtype=F64))),
    "beta": (Prior.BETA, 2.0, 6.0, lambda: Beta(torch.tensor(2.0, dtype=F64), 6.0)),
    "relaxed bernoulli": (
        Prior.RELAXED_BERNOULLI,
        0.2,
        0.25,
        lambda: RelaxedBernoulli(torch.tensor(0.25, dtype=F64), probs=0.2),
    ),
    "normal": (Prior.NORMAL, 0.6, 0.1, lambda: Normal(torch.tensor(0.6, dtype=F64), 0.1)),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_flat_input_equals_the_modern_loss(name):
    prior, first, second, modern = FAMILIES[name]
    x = torch.rand(8, 25, dtype=F64)
    torch.testing.assert_close(gbas_loss(x, prior, first, second), batch_shaping_loss(x, modern()))


@pytest.mark.parametrize("name", FAMILIES)
def test_dim_is_the_group_dimension(name):
    prior, first, second, _ = FAMILIES[name]
    x = torch.rand(6, 3, 7, dtype=F64)  # groups along dim 1, 42 samples each
    first_per_group = torch.tensor([first, first * 0.5, first * 0.9], dtype=F64)
    loss = gbas_loss(x, prior, first_per_group, second, dim=1)
    separately = [
        gbas_loss(x[:, g].reshape(-1), prior, first_per_group[g], second) for g in range(3)
    ]
    torch.testing.assert_close(loss, torch.stack(separately).mean())


def test_per_group_beta_is_matched_group_by_group():
    # Regression: on 3 groups of 2000 exact Beta samples the original gave 0.084 (every group
    # against every prior); the mean of the per-group losses is about 8e-5.
    torch.manual_seed(0)
    a = torch.tensor([0.5, 2.0, 5.0])
    b = torch.tensor([0.5, 6.0, 1.0])
    x = Beta(a, b).sample((2000,))
    loss = gbas_loss(x, Prior.BETA, a, b, dim=1)
    separately = [gbas_loss(x[:, g], Prior.BETA, a[g], b[g]) for g in range(3)]
    torch.testing.assert_close(loss, torch.stack(separately).mean())
    assert loss < 5e-4


def test_per_group_symbeta_is_matched_group_by_group():
    torch.manual_seed(0)
    a = torch.tensor([0.2, 0.5, 0.8])
    x = SymmetricBeta(a).sample((2000,))
    assert gbas_loss(x, Prior.SYMBETA, a, dim=1) < 5e-4


def test_handle_ties_works_within_groups():
    # Regression: with dim, the original looked for tied columns and never found ties.
    x = torch.tensor([[0.2, 0.1], [0.2, 0.4], [0.2, 0.6], [0.7, 0.9]], dtype=F64)
    with_ties = gbas_loss(x, Prior.NORMAL, 0.5, 0.2, dim=1, handle_ties=True)
    without = gbas_loss(x, Prior.NORMAL, 0.5, 0.2, dim=1)
    assert with_ties != without
    expected = batch_shaping_loss(x, Normal(torch.tensor(0.5, dtype=F64), 0.2), dim=0, ties=True)
    torch.testing.assert_close(with_ties, expected)


@pytest.mark.parametrize("name", FAMILIES)
def test_prior_parameters_get_gradients_only_when_trainable(name):
    prior, first, second, _ = FAMILIES[name]
    x = torch.rand(50, 2, dtype=F64)
    parameters = [torch.tensor(first, requires_grad=True)]
    if second is not None:
        parameters.append(torch.tensor(second, requires_grad=True))
    detached = gbas_loss(x, prior, *parameters)
    assert not detached.requires_grad
    loss = gbas_loss(x, prior, *parameters, trainable_prior_params=True)
    loss.backward()
    for parameter in parameters:
        assert parameter.grad is not None and torch.isfinite(parameter.grad)


def test_trainable_beta_gradients_are_exact():
    # Regression: the original crashed on NumPy 2 and used 11-point finite differences.
    x = torch.rand(40, dtype=F64)
    a = torch.tensor(2.0, dtype=F64, requires_grad=True)
    b = torch.tensor(3.0, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: gbas_loss(x, Prior.BETA, a, b, trainable_prior_params=True), (a, b)
    )


@pytest.mark.parametrize(
    "prior, first, second", [(Prior.BETA, 2.0, 6.0), (Prior.SYMBETA, 0.9, None)]
)
def test_beta_gradient_wrt_x_keeps_the_originals_clamped_density(prior, first, second):
    # Kept from the original on purpose: its examples' convergence under Adam depends on it.
    x = torch.tensor([-0.2, 0.05, 0.5, 0.97, 0.999999], dtype=F64, requires_grad=True)
    gbas_loss(x, prior, first, second).backward()
    sorted_x = x.detach()
    b = 1 - first if second is None else second
    density = np.clip(scipy.stats.beta(first, b).pdf(sorted_x.numpy()), 1e-3, 100.0)
    modern = Beta(torch.tensor(first, dtype=F64), b, density_bounds=(1e-3, 100.0))
    expected_x = sorted_x.clone().requires_grad_()
    batch_shaping_loss(expected_x, modern).backward()
    torch.testing.assert_close(x.grad, expected_x.grad)
    cdf = scipy.stats.beta(first, b).cdf(sorted_x.numpy())
    ranks = np.argsort(np.argsort(sorted_x.numpy())) + 1
    manual = -2 / 5 * (ranks / 6 - cdf) * density
    np.testing.assert_allclose(x.grad.numpy(), manual, rtol=1e-9)


def test_float64_stays_float64():
    # Regression: the original computed float64 input in float32.
    x = torch.rand(100, dtype=F64)
    loss = gbas_loss(x, Prior.BETA, 2.0, 6.0)
    assert loss.dtype == F64
    torch.testing.assert_close(loss, batch_shaping_loss(x, Beta(torch.tensor(2.0, dtype=F64), 6.0)))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_works(dtype):
    # Regression: the original raised TypeError for bfloat16.
    x = torch.rand(100).to(dtype).requires_grad_()
    loss = gbas_loss(x, Prior.RELAXED_BERNOULLI, 0.3, 0.5)
    assert loss.dtype == dtype
    loss.backward()
    assert x.grad.dtype == dtype


BAD_INPUT = [
    ("nan in x", dict(x_in=torch.tensor([0.1, math.nan, 0.5])), "1 non-finite"),
    ("beta a = -1", dict(prior=Prior.BETA, prior_param1=-1.0, prior_param2=2.0), "concentration1"),
    ("normal std = 0", dict(prior=Prior.NORMAL, prior_param1=0.6, prior_param2=0.0), "scale"),
    ("symbeta a = 1", dict(prior=Prior.SYMBETA, prior_param1=1.0, prior_param2=None), "param"),
    ("symbeta with b", dict(prior=Prior.SYMBETA, prior_param1=0.5, prior_param2=0.5), "None"),
    ("beta without b", dict(prior=Prior.BETA, prior_param2=None), "prior_param2"),
    ("temperature 0", dict(prior_param2=0.0), "temperature"),
    (
        "parameters per group without dim",
        dict(prior_param1=torch.tensor([0.2, 0.3])),
        r"prior_param1.*one value per group \(1\)",
    ),
    (
        "wrong number of groups",
        dict(x_in=torch.rand(5, 3), dim=1, prior_param1=torch.tensor([0.2, 0.3])),
        r"one value per group \(3\), got shape \(2,\)",
    ),
    ("dim out of range", dict(x_in=torch.rand(5, 3), dim=2), "dim 2 is out of range"),
    ("dim on 1-d input", dict(x_in=torch.rand(5), dim=0), "besides the group dimension"),
    ("not a Prior", dict(prior="beta"), "batchshaping.Prior"),
]


@pytest.mark.parametrize(
    "overrides, match", [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT]
)
def test_bad_input_raises_value_error(overrides, match):
    arguments = dict(
        x_in=torch.rand(20),
        prior=Prior.RELAXED_BERNOULLI,
        prior_param1=0.3,
        prior_param2=0.5,
    )
    arguments.update(overrides)
    with pytest.raises(ValueError, match=match):
        gbas_loss(**arguments)


def test_relaxed_bernoulli_is_not_clipped():
    # Regression: the original clipped x to [1e-3, 1 - 1e-3] before the CDF.
    levels = np.arange(1, 201) / 201
    temperature, probs = 0.4, 0.8
    quantiles = 1 / (1 + np.exp(-(np.log(levels / (1 - levels)) + np.log(4.0)) / temperature))
    assert (quantiles < 1e-3).any()
    loss = gbas_loss(torch.tensor(quantiles), Prior.RELAXED_BERNOULLI, probs, temperature)
    assert loss < 1e-20


def test_original_calling_code_runs_unchanged():
    # The shape of the original notebooks' code: partial application and keyword arguments.
    torch.manual_seed(0)
    data = torch.nn.Parameter((torch.rand(500) * 2 - 1) * 4)
    loss_fn = partial(gbas_loss, prior=Prior.BETA, prior_param1=2.0, prior_param2=6.0, dim=None)
    optimizer = torch.optim.Adam([data], lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        loss = loss_fn(torch.sigmoid(data)[None, :])
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss)

    # The generalized notebook's call: per-group relaxed Bernoulli parameters, dim=1.
    means = torch.nn.Parameter(torch.zeros(30))
    temperatures = torch.nn.Parameter(torch.zeros(30))
    prior_loss_fn = partial(gbas_loss, prior=Prior.RELAXED_BERNOULLI, dim=1)
    loss = prior_loss_fn(
        torch.rand(500, 30),
        prior_param1=torch.sigmoid(means),
        prior_param2=torch.sigmoid(temperatures),
        trainable_prior_params=True,
    )
    loss.backward()
    assert means.grad.abs().sum() > 0 and temperatures.grad.abs().sum() > 0
