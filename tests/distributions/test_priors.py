"""The priors: CDFs against scipy and mpmath, exact gradients, torch's distribution protocol."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import mpmath
import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck
from torch.distributions import Normal, constraints

from batchshaping.distributions import Beta, Kumaraswamy, RelaxedBernoulli, SymmetricBeta

F64 = torch.float64


def tensor(values, dtype=F64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def relaxed_bernoulli_oracle(x, temperature, logits):
    """P(sigmoid((l + L) / t) <= x) for L standard logistic: a logistic CDF in logit space."""
    return scipy.stats.logistic.cdf(temperature * scipy.special.logit(x) - logits)


class Example(NamedTuple):
    """A prior of the tests: how to build it from float64 parameter tensors, the parameters (one
    value per group of a batch where given as lists), the scipy oracle of its CDF (numpy
    parameters), the names its ``arg_constraints`` must hold and the start of its repr."""

    build: Callable[..., torch.distributions.Distribution]
    parameters: tuple[list[float], ...]
    oracle: Callable[..., np.ndarray]
    constraint_names: frozenset[str]
    repr_start: str


# One entry per prior (and parameterisation): adding a prior adds its examples here.
PRIORS = {
    "beta(2, 6)": Example(
        Beta,
        ([2.0], [6.0]),
        lambda x, a, b: scipy.stats.beta(a, b).cdf(x),
        frozenset({"concentration1", "concentration0"}),
        "Beta(",
    ),
    "beta per group": Example(
        Beta,
        ([0.3, 2.0, 10.0, 0.5], [0.7, 3.0, 0.2, 0.5]),
        lambda x, a, b: scipy.stats.beta(a, b).cdf(x),
        frozenset({"concentration1", "concentration0"}),
        "Beta(",
    ),
    "symmetric beta(0.9)": Example(
        SymmetricBeta,
        ([0.9],),
        lambda x, a: scipy.stats.beta(a, 1 - a).cdf(x),
        frozenset({"a"}),
        "SymmetricBeta(",
    ),
    "symmetric beta per group": Example(
        SymmetricBeta,
        ([0.1, 0.5, 0.75],),
        lambda x, a: scipy.stats.beta(a, 1 - a).cdf(x),
        frozenset({"a"}),
        "SymmetricBeta(",
    ),
    "kumaraswamy per group": Example(
        Kumaraswamy,
        ([0.3, 2.0, 5.0], [0.6, 3.0, 1.5]),
        lambda x, a, b: -np.expm1(b * np.log1p(-(x**a))),
        frozenset({"concentration1", "concentration0"}),
        "Kumaraswamy(",
    ),
    "relaxed bernoulli probs": Example(
        lambda t, p: RelaxedBernoulli(t, probs=p),
        ([0.25, 0.01, 2.0], [0.2, 0.8, 0.5]),
        lambda x, t, p: relaxed_bernoulli_oracle(x, t, scipy.special.logit(p)),
        frozenset({"temperature", "probs", "logits"}),
        "RelaxedBernoulli(",
    ),
    "relaxed bernoulli logits": Example(
        lambda t, logits: RelaxedBernoulli(t, logits=logits),
        ([0.4, 1.0], [1.5, -3.0]),
        relaxed_bernoulli_oracle,
        frozenset({"temperature", "probs", "logits"}),
        "RelaxedBernoulli(",
    ),
}
BETA_PRIORS = [name for name in PRIORS if "beta" in name]


def build(name: str, dtype=F64, requires_grad=False):
    builder, parameters = PRIORS[name].build, PRIORS[name].parameters
    tensors = [tensor(p, dtype).requires_grad_(requires_grad) for p in parameters]
    return builder(*tensors), tensors


def oracle(name: str, x: np.ndarray) -> np.ndarray:
    example = PRIORS[name]
    return example.oracle(x[:, None], *(np.asarray(p) for p in example.parameters))


X_GRID = np.concatenate([[1e-12, 1e-6], np.linspace(0.001, 0.999, 61), [1 - 1e-6, 1 - 1e-12]])


@pytest.mark.parametrize("name", PRIORS)
def test_cdf_matches_scipy_float64(name):
    prior, _ = build(name)
    got = prior.cdf(tensor(X_GRID)[:, None]).numpy()
    np.testing.assert_allclose(got, oracle(name, X_GRID), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", PRIORS)
def test_cdf_float32_close_to_float64(name):
    prior, _ = build(name, torch.float32)
    x = X_GRID.astype(np.float32)
    x = x[x < 1]  # 1 - 1e-12 rounds to 1 in float32
    got = prior.cdf(torch.from_numpy(x)[:, None])
    assert got.dtype == torch.float32
    expected = oracle(name, x.astype(np.float64))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", PRIORS)
def test_cdf_from_logits_matches_cdf_of_sigmoid(name):
    # Beyond |z| = 15, 1 - sigmoid(z) has lost more than 1e-9 of relative precision in float64:
    # there the two differ, and cdf_from_logits is the exact one (see the far-tail tests).
    prior, _ = build(name)
    z = torch.linspace(-15, 15, 121, dtype=F64)[:, None]
    torch.testing.assert_close(
        prior.cdf_from_logits(z), prior.cdf(torch.sigmoid(z)), rtol=1e-8, atol=1e-13
    )


def _beta_cdf_at_logit(z: float, a: float, b: float) -> float:
    """I_sigmoid(z)(a, b) in 60 digits, through the complement for z > 0."""
    with mpmath.workdps(60):
        z = mpmath.mpf(z)
        if z <= 0:
            return float(mpmath.betainc(a, b, 0, 1 / (1 + mpmath.exp(-z)), regularized=True))
        return float(1 - mpmath.betainc(b, a, 0, 1 / (1 + mpmath.exp(z)), regularized=True))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("a, b", [(0.9, 0.1), (0.1, 0.9), (2.0, 6.0), (0.05, 0.3)])
def test_beta_cdf_from_logits_far_tails_match_mpmath(a, b, dtype):
    # Far beyond where sigmoid rounds to 0 or 1, in both tails and both branches (|z| <= 40 is
    # betainc, beyond it the series' leading term). Lower tail: relative error; upper tail: F
    # itself is near 1, so absolute error.
    far = [1.0, 15.0, 39.0, 41.0, 80.0, 120.0, 300.0] + ([700.0] if dtype == F64 else [])
    z = np.array(sorted([-v for v in far] + far))
    expected = np.array([_beta_cdf_at_logit(v, a, b) for v in z])
    got = Beta(tensor(a, dtype), tensor(b, dtype)).cdf_from_logits(tensor(z, dtype))
    got = got.double().numpy()
    lower = z <= 0
    relative, absolute = (1e-12, 1e-15) if dtype == F64 else (2e-5, 1e-7)
    smallest = 1e-300 if dtype == F64 else 1e-37  # float32 underflows below about 1e-38
    np.testing.assert_allclose(got[lower], expected[lower], rtol=relative, atol=smallest)
    np.testing.assert_allclose(got[~lower], expected[~lower], rtol=0, atol=absolute)


def test_relaxed_bernoulli_cdf_from_logits_is_exact_far_out():
    prior = RelaxedBernoulli(tensor(0.01), probs=tensor(0.8))
    z = tensor([-500.0, -200.0, 0.0, 100.0, 300.0, 800.0])
    expected = scipy.stats.logistic.cdf(0.01 * z.numpy() - scipy.special.logit(0.8))
    np.testing.assert_allclose(prior.cdf_from_logits(z).numpy(), expected, rtol=1e-13)


# --- gradients ---------------------------------------------------------------------------------


def _inputs(name: str, points: torch.Tensor):
    return (points, *(tensor(p).requires_grad_() for p in PRIORS[name].parameters))


VALUES = torch.tensor([0.003, 0.2, 0.45, 0.8, 0.997], dtype=F64)[:, None]
LOGITS = torch.tensor([-60.0, -41.0, -12.0, -0.5, 0.7, 9.0, 40.5, 55.0], dtype=F64)[:, None]


@pytest.mark.parametrize("name", PRIORS)
def test_gradcheck_cdf_wrt_value_and_parameters(name):
    builder = PRIORS[name].build
    inputs = _inputs(name, VALUES.clone().requires_grad_())
    assert gradcheck(lambda x, *p: builder(*p).cdf(x), inputs, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("name", PRIORS)
def test_gradcheck_cdf_from_logits_wrt_value_and_parameters(name):
    builder = PRIORS[name].build
    inputs = _inputs(name, LOGITS.clone().requires_grad_())
    assert gradcheck(lambda z, *p: builder(*p).cdf_from_logits(z), inputs, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("name", PRIORS)
def test_cdf_outside_support_is_clamped_with_zero_gradient(name):
    prior, parameters = build(name, requires_grad=True)
    x = tensor([-1.0, 0.0, 1.0, 2.0, -math.inf, math.inf])[:, None].requires_grad_()
    cdf = prior.cdf(x)
    expected = tensor([0.0, 0.0, 1.0, 1.0, 0.0, 1.0])[:, None].expand_as(cdf)
    torch.testing.assert_close(cdf, expected)
    gradients = torch.autograd.grad(cdf.sum(), [x, *parameters])
    for gradient in gradients:
        assert torch.equal(gradient, torch.zeros_like(gradient))


@pytest.mark.parametrize("name", PRIORS)
def test_cdf_of_nan_is_nan(name):
    prior, _ = build(name)
    assert torch.isnan(prior.cdf(tensor([math.nan]))).all()


# --- torch's distribution protocol -------------------------------------------------------------

INVALID = [
    ("beta negative a", lambda: Beta(-1.0, 2.0), "concentration1"),
    ("beta zero b", lambda: Beta(tensor([1.0, 2.0]), tensor([1.0, 0.0])), "concentration0"),
    ("beta nan a", lambda: Beta(math.nan, 2.0), "concentration1"),
    ("symmetric beta 0", lambda: SymmetricBeta(0.0), "parameter a "),
    ("symmetric beta 1", lambda: SymmetricBeta(tensor([0.5, 1.0])), "parameter a "),
    ("symmetric beta 1.5", lambda: SymmetricBeta(1.5), "parameter a "),
    ("relaxed bernoulli zero temperature", lambda: RelaxedBernoulli(0.0, probs=0.5), "temperature"),
    ("relaxed bernoulli negative temperature", lambda: RelaxedBernoulli(-1.0, logits=0.0), "temp"),
    ("relaxed bernoulli probs > 1", lambda: RelaxedBernoulli(0.5, probs=1.5), "probs"),
    ("relaxed bernoulli both", lambda: RelaxedBernoulli(0.5, probs=0.5, logits=0.0), "probs or"),
    ("relaxed bernoulli neither", lambda: RelaxedBernoulli(0.5), "probs or logits"),
    ("kumaraswamy zero a", lambda: Kumaraswamy(0.0, 1.0), "parameter concentration1"),
    ("kumaraswamy negative b", lambda: Kumaraswamy(1.0, -2.0), "parameter concentration0"),
    ("torch normal zero std", lambda: Normal(0.0, 0.0, validate_args=True), "scale"),
]


@pytest.mark.parametrize(
    "build_invalid, match", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_parameters_raise_value_error_naming_them(build_invalid, match):
    with pytest.raises(ValueError, match=match):
        build_invalid()


def test_validation_is_on_by_default_even_when_torch_default_is_off():
    # torch.compile switches torch's global default off for the whole process.
    default = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        for build_invalid, match in [case[1:] for case in INVALID[:-1]]:
            with pytest.raises(ValueError, match=match):
                build_invalid()
        assert Beta(2.0, 3.0)._validate_args
    finally:
        torch.distributions.Distribution.set_default_validate_args(default)


def test_validate_args_false_skips_the_checks():
    beta = Beta(-1.0, 2.0, validate_args=False)
    symmetric = SymmetricBeta(1.5, validate_args=False)
    relaxed = RelaxedBernoulli(-1.0, probs=0.5, validate_args=False)
    assert beta.concentration1.item() == -1.0 and not beta._validate_args
    assert symmetric.a.item() == 1.5 and not symmetric._validate_args
    assert relaxed.temperature.item() == -1.0 and not relaxed._validate_args


@pytest.mark.parametrize("name", PRIORS)
def test_expand(name):
    prior, _ = build(name)
    shape = (3, *prior.batch_shape)
    expanded = prior.expand(shape)
    assert type(expanded) is type(prior)
    assert expanded.batch_shape == shape
    x = torch.rand(7, *shape, dtype=F64)
    torch.testing.assert_close(expanded.cdf(x), prior.cdf(x))
    torch.testing.assert_close(expanded.cdf_from_logits(x), prior.cdf_from_logits(x))
    assert expanded.sample().shape == shape


@pytest.mark.parametrize("name", PRIORS)
def test_support_constraints_and_batch_shape(name):
    prior, parameters = build(name)
    assert prior.support is constraints.unit_interval
    assert prior.event_shape == ()
    assert prior.batch_shape == torch.broadcast_shapes(*(p.shape for p in parameters))
    assert set(prior.arg_constraints) == PRIORS[name].constraint_names
    assert repr(prior).startswith(PRIORS[name].repr_start)


@pytest.mark.parametrize("logits", [False, True])
def test_density_bounds_clamp_only_the_gradient_wrt_the_value(logits):
    a = tensor([0.5, 2.0, 0.9]).requires_grad_()
    b = tensor([0.5, 6.0, 0.1]).requires_grad_()
    x = tensor([-0.5, 1e-9, 0.02, 0.3, 0.9, 0.995, 1 - 1e-9, 1.5])[:, None]
    points = torch.logit(x.clamp(1e-12, 1 - 1e-12)) if logits else x
    points = points.clone().requires_grad_()
    exact, bounded = Beta(a, b), Beta(a, b, density_bounds=(1e-3, 100.0))
    cdf = (exact.cdf_from_logits if logits else exact.cdf)(points)
    surrogate = (bounded.cdf_from_logits if logits else bounded.cdf)(points)
    torch.testing.assert_close(surrogate, cdf)
    exact_grads = torch.autograd.grad(cdf.sum(), [a, b])
    surrogate_grads = torch.autograd.grad(surrogate.sum(), [points, a, b])
    for got, expected in zip(surrogate_grads[1:], exact_grads, strict=True):
        torch.testing.assert_close(got, expected)
    values = x.numpy()
    density = scipy.stats.beta(a.detach().numpy(), b.detach().numpy()).pdf(values)
    density = np.clip(np.where((values > 0) & (values < 1), density, 0.0), 1e-3, 100.0)
    slope = values * (1 - values) if logits else 1.0
    expected_grad = (density * slope).sum(axis=1, keepdims=True)
    if logits:  # x was clamped to form the logits: compare where it was not
        np.testing.assert_allclose(surrogate_grads[0][1:-1], expected_grad[1:-1], rtol=1e-6)
    else:
        np.testing.assert_allclose(surrogate_grads[0], expected_grad, rtol=1e-6)


def test_density_bounds_are_checked_and_kept_by_expand():
    with pytest.raises(ValueError, match="density_bounds"):
        Beta(2.0, 3.0, density_bounds=(1.0, 0.1))
    prior = SymmetricBeta(0.3, density_bounds=(1e-3, 100))
    assert prior.density_bounds == (1e-3, 100.0)
    assert prior.expand((4,)).density_bounds == (1e-3, 100.0)


def test_relaxed_bernoulli_temperature_broadcasts_with_probs():
    prior = RelaxedBernoulli(tensor([0.1, 0.5, 1.0]), probs=0.3)
    assert prior.batch_shape == (3,)
    assert prior.temperature.shape == (3,)


def test_symmetric_beta_is_beta_a_one_minus_a():
    a = tensor([0.2, 0.9])
    prior = SymmetricBeta(a)
    torch.testing.assert_close(prior.a, a)
    torch.testing.assert_close(prior.concentration0, 1 - a)
    torch.testing.assert_close(prior.mean, a)


@pytest.mark.parametrize("name", ["beta per group", "relaxed bernoulli logits"])
def test_cdf_against_torch_samples(name):
    # The closed forms against torch's own samplers (Monte Carlo, Kolmogorov-Smirnov distance).
    torch.manual_seed(0)
    prior, _ = build(name)
    samples = prior.sample((20000,))
    sorted_samples = samples.sort(0).values
    empirical = torch.arange(1, 20001, dtype=F64)[:, None] / 20000
    distance = (prior.cdf(sorted_samples) - empirical).abs().max()
    assert distance < 0.015  # the 1% KS critical value for n = 20000 is 0.0115


@settings(max_examples=40, deadline=None)
@given(
    temperature=st.floats(0.01, 5.0),
    probs=st.floats(0.01, 0.99),
    x=st.lists(st.floats(1e-6, 1 - 1e-6), min_size=2, max_size=20),
)
def test_relaxed_bernoulli_cdf_is_monotone_and_matches_logit_form(temperature, probs, x):
    prior = RelaxedBernoulli(tensor(temperature), probs=tensor(probs))
    values = tensor(sorted(x))
    cdf = prior.cdf(values)
    assert ((cdf >= 0) & (cdf <= 1)).all()
    assert (cdf.diff() >= 0).all()
    torch.testing.assert_close(cdf, prior.cdf_from_logits(torch.logit(values)))


@settings(max_examples=30, deadline=None)
@given(
    a=st.floats(0.05, 20.0),
    b=st.floats(0.05, 20.0),
    z=st.lists(st.floats(-60.0, 60.0), min_size=2, max_size=10),
)
def test_beta_cdf_from_logits_is_monotone_in_unit_interval(a, b, z):
    cdf = Beta(tensor(a), tensor(b)).cdf_from_logits(tensor(sorted(z)))
    assert ((cdf >= 0) & (cdf <= 1)).all()
    # Across z = 0 the CDF switches from I_s(a, b) to 1 - I_s(b, a): a step of up to twice the
    # error of a value, which is ~1e-15 near 1/2 (Beta(6, 6) at 1/2 is 0.5 + 1.1e-15; the
    # accuracy tests bound it by 1e-12 and have seen 2.6e-14).
    assert (cdf.diff() >= -1e-13).all()
