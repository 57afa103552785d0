"""GeneralizedBatchShaping: learned per-group priors, a hyperprior, a temperature weight."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from batchshaping import GeneralizedBatchShaping, batch_shaping_loss
from batchshaping.distributions import (
    Beta,
    HardConcrete,
    Kumaraswamy,
    LogitNormal,
    RelaxedBernoulli,
)

F64 = torch.float64


def test_terms_add_up_and_match_their_definitions():
    torch.manual_seed(0)
    hyperprior = Normal(0.3, 0.2)
    gbas = GeneralizedBatchShaping(
        4, hyperprior, dim=0, temperature_weight=0.1, init_probs=torch.tensor([0.1, 0.3, 0.5, 0.9])
    )
    x = torch.rand(50, 4)
    terms = gbas.terms(x)
    torch.testing.assert_close(terms.total, terms.groups + terms.hyperprior + terms.temperature)
    prior = RelaxedBernoulli(gbas.temperature, probs=gbas.probs)
    torch.testing.assert_close(terms.groups, batch_shaping_loss(x, prior, dim=0))
    torch.testing.assert_close(terms.hyperprior, batch_shaping_loss(gbas.probs, hyperprior))
    torch.testing.assert_close(terms.temperature, 0.1 * gbas.temperature.mean())


def test_forward_returns_the_total_and_keeps_detached_terms():
    gbas = GeneralizedBatchShaping(3, Beta(3.0, 7.0), dim=0, temperature_weight=0.1)
    assert gbas.last_terms is None
    loss = gbas(torch.rand(40, 3))
    assert loss.requires_grad
    assert gbas.last_terms.total == loss.detach()
    assert not any(part.requires_grad for part in gbas.last_terms)


def test_initial_values_and_transforms():
    gbas = GeneralizedBatchShaping((2, 3), init_probs=0.2, init_temperature=0.7)
    assert gbas.probs.shape == (2, 3) and gbas.temperature.shape == (2, 3)
    torch.testing.assert_close(gbas.probs, torch.full((2, 3), 0.2))
    torch.testing.assert_close(gbas.temperature, torch.full((2, 3), 0.7))
    with torch.no_grad():
        gbas.unconstrained_temperature.fill_(50.0)
        gbas.unconstrained_probs.fill_(-50.0)
    assert (gbas.temperature <= 1.0).all() and (gbas.probs >= 0).all()

    unbounded = GeneralizedBatchShaping(2, max_temperature=None, init_temperature=5.0)
    torch.testing.assert_close(unbounded.temperature, torch.full((2,), 5.0))

    beta = GeneralizedBatchShaping(2, prior="beta", init_concentration1=3.0)
    torch.testing.assert_close(beta.concentration1, torch.full((2,), 3.0))
    torch.testing.assert_close(beta.concentration0, torch.full((2,), 1.0))
    assert isinstance(beta.prior(), Beta) and beta.prior().batch_shape == (2,)


# family: (its prior's type, its initial values, the same values as that type's arguments);
# the hyperprior shapes each prior's mean, but the relaxed Bernoulli's p (see the docstring).
FAMILIES = {
    "relaxed_bernoulli": (RelaxedBernoulli, {"init_probs": 0.3, "init_temperature": 0.6}, None),
    "beta": (Beta, {"init_concentration1": 2.0, "init_concentration0": 5.0}, (2.0, 5.0)),
    "kumaraswamy": (
        Kumaraswamy,
        {"init_concentration1": 2.0, "init_concentration0": 5.0},
        (2.0, 5.0),
    ),
    "logit_normal": (LogitNormal, {"init_loc": -1.0, "init_scale": 0.5}, (-1.0, 0.5)),
    "hard_concrete": (HardConcrete, {"init_log_alpha": 1.5, "init_temperature": 0.6}, (1.5, 0.6)),
}
WITH_TEMPERATURE = {"relaxed_bernoulli", "hard_concrete"}


@pytest.mark.parametrize("prior", FAMILIES)
def test_every_family_builds_its_prior_and_shapes_its_mean(prior):
    cls, initial, arguments = FAMILIES[prior]
    gbas = GeneralizedBatchShaping(3, Normal(0.4, 0.2), prior=prior, dim=0, **initial)
    learned = gbas.prior()
    assert type(learned) is cls and learned.batch_shape == (3,)
    if arguments is not None:
        expected = cls(*(torch.full((3,), value) for value in arguments))
        x = torch.rand(20, 3)
        torch.testing.assert_close(learned.cdf(x), expected.cdf(x))
        torch.testing.assert_close(learned.mean, expected.mean)
    # The hyperprior shapes the means, taken on the logits (exact where they saturate).
    shaped = learned.probs if prior == "relaxed_bernoulli" else learned.mean
    torch.testing.assert_close(torch.sigmoid(gbas.mean_logits()), shaped)
    terms = gbas.terms(torch.rand(10, 3))
    torch.testing.assert_close(terms.hyperprior, batch_shaping_loss(shaped, Normal(0.4, 0.2)))


@pytest.mark.parametrize("prior", FAMILIES)
def test_gradients_reach_every_parameter_and_the_data(prior):
    options = {"temperature_weight": 0.1} if prior in WITH_TEMPERATURE else {}
    gbas = GeneralizedBatchShaping(5, Beta(3.0, 7.0), prior=prior, dim=0, **options)
    with torch.no_grad():  # distinct means, so the hyperprior term has a gradient to give
        for parameter in gbas.parameters():
            parameter.add_(torch.linspace(-1, 1, 5))
    x = torch.rand(30, 5, requires_grad=True)
    gbas(x).backward()
    assert x.grad.abs().sum() > 0
    for name, parameter in gbas.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_beta_hyperprior_acts_on_the_means():
    gbas = GeneralizedBatchShaping(
        3,
        Normal(0.5, 0.1),
        prior="beta",
        dim=0,
        init_concentration1=torch.tensor([1.0, 2.0, 3.0]),
        init_concentration0=torch.tensor([3.0, 2.0, 1.0]),
    )
    means = gbas.concentration1 / (gbas.concentration1 + gbas.concentration0)
    terms = gbas.terms(torch.rand(10, 3))
    torch.testing.assert_close(terms.hyperprior, batch_shaping_loss(means, Normal(0.5, 0.1)))
    assert terms.temperature == 0


def test_no_hyperprior_means_no_hyperprior_term():
    gbas = GeneralizedBatchShaping(3, dim=0)
    terms = gbas.terms(torch.rand(10, 3))
    assert terms.hyperprior == 0 and terms.temperature == 0
    torch.testing.assert_close(terms.total, terms.groups)


def test_learned_probabilities_follow_the_data():
    # Groups drawn from relaxed Bernoulli priors of known probabilities: gBaS (no hyperprior)
    # learns them back.
    torch.manual_seed(0)
    true_probs = torch.tensor([0.2, 0.5, 0.8])
    x = RelaxedBernoulli(torch.tensor(0.5), probs=true_probs).sample((1000,))
    gbas = GeneralizedBatchShaping(3, dim=0)
    optimizer = torch.optim.Adam(gbas.parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        gbas(x).backward()
        optimizer.step()
    torch.testing.assert_close(gbas.probs, true_probs, atol=0.03, rtol=0)
    torch.testing.assert_close(gbas.temperature, torch.full((3,), 0.5), atol=0.05, rtol=0)


def test_mask_and_float64():
    gbas = GeneralizedBatchShaping(2, Beta(3.0, 7.0), dim=1).to(F64)
    x = torch.rand(2, 20, dtype=F64)
    mask = torch.rand(2, 20) > 0.3
    mask[:, :2] = True
    loss = gbas(x, mask)
    assert loss.dtype == F64
    torch.testing.assert_close(
        gbas.last_terms.groups, batch_shaping_loss(x, gbas.prior(), dim=1, mask=mask)
    )


BAD_OPTIONS = [
    ("unknown family", dict(group_shape=3, prior="gauss"), "prior must be one of"),
    ("one group", dict(group_shape=1, hyperprior=Beta(3.0, 7.0)), "at least 2 groups"),
    ("hyperprior batch", dict(group_shape=3, hyperprior=Normal(torch.zeros(3), 1.0)), "batch_"),
    ("hyperprior type", dict(group_shape=3, hyperprior="beta"), "hyperprior must be"),
    ("weight on beta", dict(group_shape=3, prior="beta", temperature_weight=0.1), "relaxed_"),
    (
        "weight on kumaraswamy",
        dict(group_shape=3, prior="kumaraswamy", temperature_weight=1),
        "temp",
    ),
    ("logit normal scale", dict(group_shape=3, prior="logit_normal", init_scale=0.0), "init_scale"),
    ("log alpha", dict(group_shape=3, prior="hard_concrete", init_log_alpha=math.inf), "init_log"),
    ("negative weight", dict(group_shape=3, temperature_weight=-1.0), "temperature_weight"),
    ("max temperature", dict(group_shape=3, max_temperature=0.0), "max_temperature"),
    ("probs 1", dict(group_shape=3, init_probs=1.0), "init_probs"),
    ("temperature > max", dict(group_shape=3, init_temperature=2.0), "init_temperature"),
    ("concentration", dict(group_shape=3, prior="beta", init_concentration0=0.0), "init_conc"),
    ("init shape", dict(group_shape=3, init_probs=torch.rand(2)), "does not broadcast"),
]


@pytest.mark.parametrize(
    "options, match", [case[1:] for case in BAD_OPTIONS], ids=[case[0] for case in BAD_OPTIONS]
)
def test_bad_options_raise_value_error(options, match):
    with pytest.raises(ValueError, match=match):
        GeneralizedBatchShaping(**options)


def test_groups_must_fit_the_data():
    gbas = GeneralizedBatchShaping(3, dim=0)
    with pytest.raises(ValueError, match=r"batch_shape \(3,\) does not broadcast"):
        gbas(torch.rand(10, 4))


def test_to_and_state_dict_carry_the_hyperprior_and_the_learned_parameters():
    gbas = GeneralizedBatchShaping(3, Beta(3.0, 7.0), dim=0, temperature_weight=0.1)
    assert {"_hyperprior.concentration1", "_hyperprior.concentration0"} <= set(gbas.state_dict())
    x = torch.rand(80, 3, dtype=torch.float64)
    expected = gbas(x.float())
    moved = gbas.double()
    assert moved.hyperprior.concentration1.dtype == torch.float64
    found = moved(x)
    assert found.dtype == torch.float64
    torch.testing.assert_close(found, expected.double(), rtol=1e-5, atol=1e-7)
    other = GeneralizedBatchShaping(3, Beta(1.0, 1.0), dim=0, temperature_weight=0.1).double()
    with torch.no_grad():
        moved.unconstrained_probs.add_(0.3)
    assert not torch.allclose(other(x), moved(x))
    other.load_state_dict(moved.state_dict())
    torch.testing.assert_close(other(x), moved(x))
    torch.testing.assert_close(other.hyperprior.concentration1, moved.hyperprior.concentration1)
