"""The registry of prior examples and bad examples that drives the prior tests (as torch's
``test/distributions`` does): ``tests/distributions/test_priors.py`` runs every example through
the oracles, gradcheck, the protocol, sampling and a fit, and
``tests/loss/test_priors_on_routes.py`` through every route of the loss.

Each example says what applies to it (its support, whether it has an ``icdf``, an ``rsample``, a
mean, which values lie outside its support); no test decides from a name. Every oracle is
independent of the code under test: scipy where it has the distribution, numerical integration
of a separately written density otherwise, and mpmath at 60 digits for the CDF at sigmoid(z).

The test files put its directory on ``sys.path`` to import it: the suite runs with
``--import-mode=importlib``, which puts none there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import mpmath
import numpy as np
import scipy.integrate
import scipy.special
import scipy.stats
import torch
from torch.distributions import (
    AffineTransform,
    Cauchy,
    Exponential,
    Gumbel,
    Laplace,
    Normal,
    SigmoidTransform,
    TransformedDistribution,
    Uniform,
    constraints,
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
)

F64 = torch.float64
mp = mpmath.mpf

# --- where the CDF is compared ------------------------------------------------------------------

UNIT_GRID = np.concatenate([[1e-12, 1e-6], np.linspace(0.001, 0.999, 61), [1 - 1e-6, 1 - 1e-12]])
# (value, the CDF there): outside (0, 1) the unit-interval priors are 0 or 1, zero gradient;
# NaN gives NaN.
NAN = (math.nan, math.nan)
UNIT_OUTSIDE = (
    (-1.0, 0.0),
    (0.0, 0.0),
    (1.0, 1.0),
    (2.0, 1.0),
    (-math.inf, 0.0),
    (math.inf, 1.0),
    NAN,
)


class Fit(NamedTuple):
    """How 500 points per group are fitted to the prior: they start as ``start`` (seeded
    normal values times ``spread``), the loss sees ``values(theta)`` (with ``logits`` the CDF
    at sigmoid of them), ``ties`` as given; Adam at ``lr``."""

    values: Callable[[torch.Tensor], torch.Tensor] = lambda theta: theta
    logits: bool = True
    ties: bool = False
    spread: float = 1.0
    lr: float = 0.05


def _standardised(loc: list[float], scale: list[float]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Values loc + scale * theta: the fit moves points in units of each group's scale (else a
    point started far out in a thin tail has no gradient left to move it)."""
    return lambda theta: torch.tensor(loc) + torch.tensor(scale) * theta


def _stretched(lower: float, upper: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A Hard Concrete gate: the stretched sigmoid clamped to [0, 1] (atoms reachable)."""
    return lambda theta: torch.clamp(lower + (upper - lower) * torch.sigmoid(theta), 0.0, 1.0)


class Example(NamedTuple):
    """A prior of the tests.

    build: the prior from float tensors, one per entry of ``parameters`` (one value per group
    where a list; Empirical's is a list of reference samples per group). oracle: its CDF at
    numpy x of shape (N, 1) and the parameters as numpy arrays. logit_oracle: its CDF at
    sigmoid(z) in mpmath, from an mpf z and the parameters of one group. support: the constraint
    ``prior.support`` must be, or for an interval a function of the numpy parameters giving,
    for each group, the points where the CDF may bend, the first and last its bounds. points:
    where the CDF is compared (inside the support). logit_points: the logits where its
    logit-space CDF is gradchecked (away from its kinks by more than gradcheck's step).
    outside: (value, CDF) pairs outside the support, where the gradient is zero. icdf, rsample,
    mean: whether the prior has them in closed form (else they raise ``NotImplementedError``, a
    mean may be NaN). sampler_exact: whether its sampler follows its CDF (torch's relaxed
    Bernoulli and Beta samplers keep their samples below 1, which moves visible mass where the
    CDF is far from 1 in two examples).
    fit: how 500 points are fitted to it (None: another example of its family does it).
    """

    build: Callable[..., torch.distributions.Distribution]
    parameters: tuple[list[Any], ...]
    oracle: Callable[..., np.ndarray]
    logit_oracle: Callable[..., Any]
    constraint_names: frozenset[str]
    repr_start: str
    support: Any = constraints.unit_interval
    points: np.ndarray = UNIT_GRID
    logit_points: tuple[float, ...] = (-60.0, -41.0, -12.0, -0.5, 0.7, 9.0, 40.5, 55.0)
    outside: tuple[tuple[float, float], ...] = UNIT_OUTSIDE
    icdf: bool = True
    rsample: bool = True
    sampler_exact: bool = True
    mean: bool = True
    fit: Fit | None = Fit()


# --- oracles --------------------------------------------------------------------------------------


def integrated(
    density: Callable[..., float], lower: float, upper: float, atom: Callable | None = None
):
    """The CDF of ``density`` on [lower, upper] by adaptive quadrature, plus ``atom(*parameters)``,
    a point mass at ``lower``, if given.

    ``density(x, gap, *parameters)`` takes x and gap = upper - x, exact (the integration variable
    above the middle, where F = 1 - the integral above x - any atom at ``upper``), so that a
    density with a singularity at ``upper`` can be written without cancellation. The CDF has a
    ``mean(*parameters)`` too, from the density.
    """

    def cdf(x: np.ndarray, *parameters: np.ndarray) -> np.ndarray:
        x, *parameters = np.broadcast_arrays(x, *parameters)
        out = np.empty(x.shape)
        middle = 0.5 * (lower + upper)
        for index in np.ndindex(x.shape):
            point, group = x[index], [p[index] for p in parameters]
            mass = atom(*group) if atom is not None else 0.0

            def below(t, group=group):
                return density(t, upper - t, *group)

            def above(gap, group=group):
                return density(upper - gap, gap, *group)

            if point < lower:
                out[index] = 0.0
            elif point >= upper:
                out[index] = 1.0
            elif point <= middle:
                out[index] = mass + _quad(below, lower, point)
            else:
                # 1 - the integral above x - the atom at ``upper``, 1 - mass - the integral.
                top = 1.0 - mass - _quad(below, lower, middle) - _quad(above, 0.0, upper - middle)
                out[index] = 1.0 - top - _quad(above, 0.0, upper - point)
        return out

    def mean(*group: float) -> float:
        """E[X] from the density and the atoms: one quadrature, not one per value of F."""
        mass = atom(*group) if atom is not None else 0.0
        continuous = _quad(lambda t: density(t, upper - t, *group), lower, upper)
        first_moment = _quad(lambda t: t * density(t, upper - t, *group), lower, upper)
        return lower * mass + upper * (1.0 - mass - continuous) + first_moment

    cdf.mean = mean
    return cdf


def _quad(f, a: float, b: float) -> float:
    return scipy.integrate.quad(f, a, b, epsabs=1e-300, epsrel=1e-13, limit=200)[0]


def kumaraswamy_density(x, gap, a, b):
    """a b x^(a - 1) (1 - x^a)^(b - 1), 1 - x^a = -expm1(a log x), log x = log1p(-gap) near 1."""
    log_x = np.log1p(-gap) if gap < 0.5 else np.log(x)
    return a * b * np.exp((a - 1) * log_x) * (-np.expm1(a * log_x)) ** (b - 1)


def hard_concrete_parts(lower: float, upper: float):
    """The continuous density on (0, 1) and the atom at 0 of a Hard Concrete, from the binary
    Concrete S (scipy's logistic: P(S <= y) = logistic.cdf(t logit(y) - log_alpha))."""

    def density(x, gap, log_alpha, temperature):
        y = (x - lower) / (upper - lower)  # in (0.08, 0.92) for x in [0, 1]: no cancellation
        slope = temperature / (y * (1 - y) * (upper - lower))
        return scipy.stats.logistic.pdf(temperature * scipy.special.logit(y) - log_alpha) * slope

    def atom(log_alpha, temperature):
        y = -lower / (upper - lower)
        return scipy.stats.logistic.cdf(temperature * scipy.special.logit(y) - log_alpha)

    return density, atom


def relaxed_bernoulli_oracle(x, temperature, logits):
    """P(sigmoid((l + L) / t) <= x) for L standard logistic: a logistic CDF in logit space."""
    return scipy.stats.logistic.cdf(temperature * scipy.special.logit(x) - logits)


def empirical_oracle(x, samples):
    """numpy's interpolation through the sorted samples at levels (k - 1) / (M - 1)."""
    samples = np.sort(np.asarray(samples), axis=-1)
    levels = np.arange(samples.shape[-1]) / (samples.shape[-1] - 1)
    columns = [np.interp(x[:, 0], group, levels, left=0.0, right=1.0) for group in samples]
    return np.stack(columns, axis=-1)


# The CDF at sigmoid(z) in mpmath: s = sigmoid(z), its logs and its complement written so that
# 60 digits are enough at |z| = 700 (s = 1 - 1e-304 is never formed by rounding).


def _s(z):
    return 1 / (1 + mpmath.exp(-z))


def _log_s(z):
    return -mpmath.log1p(mpmath.exp(-z))


def _log_one_minus_s(z):
    return -mpmath.log1p(mpmath.exp(z))


def _mp_logistic(t):
    return 1 / (1 + mpmath.exp(-t))


def beta_at_logit(z, a, b):
    """I_sigmoid(z)(a, b), through the complement for z > 0."""
    if z <= 0:
        return mpmath.betainc(a, b, 0, _s(z), regularized=True)
    return 1 - mpmath.betainc(b, a, 0, _s(-z), regularized=True)


def kumaraswamy_at_logit(z, a, b):
    log_power = a * _log_s(z)
    power = mpmath.exp(log_power)
    # log(1 - s^a): log1p where s^a is small, log(-expm1) where it is near 1.
    log_rest = mpmath.log1p(-power) if power < 0.5 else mpmath.log(-mpmath.expm1(log_power))
    return -mpmath.expm1(b * log_rest)


def hard_concrete_at_logit(lower, upper):
    def cdf(z, log_alpha, temperature):
        # y = (s - l) / (r - l); 1 - y = ((r - 1) + (1 - s)) / (r - l).
        top = mp(upper) - 1 + mpmath.exp(_log_one_minus_s(z))
        logit_y = mpmath.log(_s(z) - lower) - mpmath.log(top)
        return _mp_logistic(temperature * logit_y - log_alpha)

    return cdf


def empirical_at_logit(z, samples):
    s, ordered = _s(z), sorted(mp(v) for v in samples)
    below = [v for v in ordered if v <= s]
    if not below:
        return mp(0)
    if len(below) == len(ordered):
        return mp(1)
    k = len(below)  # s_k <= s < s_{k+1}, 1-based
    low, high = ordered[k - 1], ordered[k]
    return (k - 1 + (s - low) / (high - low)) / (len(ordered) - 1)


def _real_line(cdf_of_value):
    """A real-line prior's CDF at sigmoid(z)."""
    return lambda z, *parameters: cdf_of_value(_s(z), *parameters)


def _uniform_cdf(x, low, high):
    return min(max((x - low) / (high - low), mp(0)), mp(1))


def _laplace_cdf(x, loc, scale):
    t = (x - loc) / scale
    return mpmath.exp(t) / 2 if t < 0 else 1 - mpmath.exp(-t) / 2


def _reference_samples() -> list[list[float]]:
    """Two groups of 120 reference values in (0, 1): one with a value at 1e-300 (for the far
    lower tail of the logit-space CDF) and a tie, one with a value at 1 - 1e-15."""
    generator = np.random.default_rng(7)
    first = generator.beta(2.0, 5.0, 120)
    first[0], first[1] = 1e-300, first[2]  # a tie: an atom of the interpolated CDF
    second = generator.beta(0.5, 0.5, 120)
    second[0] = 1 - 1e-15
    return [first.tolist(), second.tolist()]


REFERENCE = _reference_samples()

# --- the examples ------------------------------------------------------------------------------

_BETA_NAMES = frozenset({"concentration1", "concentration0"})
_LOC_SCALE = frozenset({"loc", "scale"})
_REAL_POINTS = np.concatenate([np.linspace(-12.0, 12.0, 61), [-40.0, 40.0]])


def _hard_concrete(parameters, limits=(-0.1, 1.1)) -> Example:
    density, atom = hard_concrete_parts(*limits)
    return Example(
        lambda log_alpha, t: HardConcrete(log_alpha, t, limits=limits),
        parameters,
        integrated(density, 0.0, 1.0, atom=atom),
        hard_concrete_at_logit(*limits),
        frozenset({"log_alpha", "temperature"}),
        "HardConcrete(",
        # 0 is an atom, not outside: F(0) = P(0) (tested on its own).
        outside=tuple(pair for pair in UNIT_OUTSIDE if pair[0] != 0.0),
        fit=Fit(values=_stretched(*limits), logits=False, ties=True),
    )


def _uniform_support(low, high):
    return np.stack([low, high], axis=-1)


def _empirical_support(samples):
    return np.sort(np.asarray(samples), axis=-1)


def _decreasing_logit_normal(loc, scale, shift, stretch):
    """sigmoid(shift - stretch * Y), Y ~ Normal(loc, scale): a decreasing chain."""
    transforms = [AffineTransform(shift, -stretch), SigmoidTransform()]
    return TransformedDistribution(Normal(loc, scale), transforms)


def _decreasing_logit_normal_oracle(x, loc, scale, shift, stretch):
    return scipy.stats.norm(loc, scale).sf((shift - scipy.special.logit(x)) / stretch)


def _logistic_from_uniform(loc, scale):
    """torch's recipe for a logistic: a uniform through logit and an affine map."""
    transforms = [SigmoidTransform().inv, AffineTransform(loc, scale)]
    return TransformedDistribution(Uniform(torch.zeros_like(loc), torch.ones_like(loc)), transforms)


LOGISTIC = ([0.5, -2.0], [0.2, 3.0])
NORMAL = ([0.3, 0.6], [0.2, 0.05])
LAPLACE = ([0.5, -1.0], [0.1, 2.0])
GUMBEL = ([0.5, -1.0], [0.2, 1.5])
CAUCHY = ([0.5, -3.0], [0.1, 2.0])
RATES = [2.0, 0.5]

PRIORS: dict[str, Example] = {
    "beta(2, 6)": Example(
        Beta,
        ([2.0], [6.0]),
        lambda x, a, b: scipy.stats.beta(a, b).cdf(x),
        beta_at_logit,
        _BETA_NAMES,
        "Beta(",
        icdf=False,
        fit=None,  # the README's "Tails and Adam" example fits 500 points to it
    ),
    "beta per group": Example(
        Beta,
        ([0.3, 2.0, 10.0, 0.5], [0.7, 3.0, 0.2, 0.5]),
        lambda x, a, b: scipy.stats.beta(a, b).cdf(x),
        beta_at_logit,
        _BETA_NAMES,
        "Beta(",
        icdf=False,
        fit=None,  # Beta(10, 0.2)'s quantiles lie far out in logit space: beta(2, 6) fits
    ),
    "symmetric beta(0.9)": Example(
        SymmetricBeta,
        ([0.9],),
        lambda x, a: scipy.stats.beta(a, 1 - a).cdf(x),
        lambda z, a: beta_at_logit(z, a, 1 - mp(a)),
        frozenset({"a"}),
        "SymmetricBeta(",
        icdf=False,
        # torch's Beta sampler returns at most the largest double below 1, where the CDF of
        # Beta(0.9, 0.1) is 0.975: 2.7% of its samples sit there.
        sampler_exact=False,
        fit=None,  # most of its mass lies within 1e-10 of 1, beyond reach in logit space
    ),
    "symmetric beta per group": Example(
        SymmetricBeta,
        ([0.1, 0.5, 0.75],),
        lambda x, a: scipy.stats.beta(a, 1 - a).cdf(x),
        lambda z, a: beta_at_logit(z, a, 1 - mp(a)),
        frozenset({"a"}),
        "SymmetricBeta(",
        icdf=False,
        fit=None,  # at a = 0.1 its quantiles lie hundreds of units out in logit space
    ),
    "kumaraswamy per group": Example(
        Kumaraswamy,
        ([0.3, 2.0, 5.0], [0.6, 3.0, 1.5]),
        integrated(kumaraswamy_density, 0.0, 1.0),
        kumaraswamy_at_logit,
        _BETA_NAMES,
        "Kumaraswamy(",
    ),
    "relaxed bernoulli probs": Example(
        lambda t, p: RelaxedBernoulli(t, probs=p),
        ([0.25, 0.01, 2.0], [0.2, 0.8, 0.5]),
        lambda x, t, p: relaxed_bernoulli_oracle(x, t, scipy.special.logit(p)),
        lambda z, t, p: _mp_logistic(t * z - mpmath.log(p / (1 - mp(p)))),
        frozenset({"temperature", "probs", "logits"}),
        "RelaxedBernoulli(",
        icdf=False,
        # Clamped to [eps, 1 - eps]: at temperature 0.01, 73% of the mass goes to 1 - eps,
        # where the CDF is 0.26.
        sampler_exact=False,
        mean=False,
        fit=None,  # at temperature 0.01 its quantiles lie hundreds of units out in logit space
    ),
    "relaxed bernoulli logits": Example(
        lambda t, logits: RelaxedBernoulli(t, logits=logits),
        ([0.4, 1.0], [1.5, -3.0]),
        relaxed_bernoulli_oracle,
        lambda z, t, logits: _mp_logistic(t * z - logits),
        frozenset({"temperature", "probs", "logits"}),
        "RelaxedBernoulli(",
        icdf=False,
        mean=False,
        fit=Fit(lr=0.1),
    ),
    "hard concrete per group": _hard_concrete(([-1.5, 0.0, 2.0], [2.0 / 3.0, 0.3, 1.5])),
    "hard concrete, other limits": _hard_concrete(([0.5, -3.0], [1.0, 0.5]), (-0.2, 1.05)),
    "logit normal per group": Example(
        LogitNormal,
        ([-1.0, 0.0, 2.5], [0.5, 1.0, 3.0]),
        lambda x, loc, scale: scipy.stats.norm(loc, scale).cdf(scipy.special.logit(x)),
        lambda z, loc, scale: mpmath.ncdf((z - loc) / scale),
        _LOC_SCALE,
        "LogitNormal(",
    ),
    "logistic per group": Example(
        Logistic,
        LOGISTIC,
        lambda x, loc, scale: scipy.stats.logistic(loc, scale).cdf(x),
        _real_line(lambda x, loc, scale: _mp_logistic((x - loc) / scale)),
        _LOC_SCALE,
        "Logistic(",
        support=constraints.real,
        points=_REAL_POINTS,
        outside=((-math.inf, 0.0), (math.inf, 1.0), NAN),
        fit=Fit(values=_standardised(*LOGISTIC), logits=False, spread=2.0),
    ),
    "empirical per group": Example(
        Empirical,
        (REFERENCE,),
        empirical_oracle,
        empirical_at_logit,
        frozenset({"samples"}),
        "Empirical(",
        support=_empirical_support,
        # sigmoid of these lies more than 1e-6 from every reference value (1e-300, 1 - 1e-15).
        logit_points=(-9.0, -4.0, -1.5, -0.5, 0.7, 2.0, 4.5, 6.0),
        # Started where the reference values are: a point past them has no gradient back.
        fit=Fit(spread=0.5, lr=0.1),
    ),
    # torch's own, with the traits of batchshaping.distributions.torch_priors. Their cdf is
    # torch's; outside the support it is torch's too (no claims made here: outside=()).
    "torch normal": Example(
        Normal,
        NORMAL,
        lambda x, loc, scale: scipy.stats.norm(loc, scale).cdf(x),
        _real_line(lambda x, loc, scale: mpmath.ncdf((x - loc) / scale)),
        _LOC_SCALE,
        "Normal(",
        support=constraints.real,
        points=np.linspace(-1.0, 2.0, 61),
        outside=(),
        fit=Fit(values=_standardised(*NORMAL), logits=False, spread=2.0),
    ),
    "torch uniform": Example(
        Uniform,
        ([0.1, 0.0], [0.7, 1.0]),
        lambda x, low, high: scipy.stats.uniform(low, high - low).cdf(x),
        _real_line(_uniform_cdf),
        frozenset({"low", "high"}),
        "Uniform(",
        support=_uniform_support,
        points=np.linspace(0.1, 0.7, 31),
        logit_points=(-4.0, -1.5, -0.5, 0.0, 0.4, 0.9, 2.0, 5.0),  # sigmoid away from the bounds
        outside=(),
        # Started inside both supports, slowly: a point past a bound has no gradient back.
        fit=Fit(spread=0.1, lr=0.02),
    ),
    "torch laplace": Example(
        Laplace,
        LAPLACE,
        lambda x, loc, scale: scipy.stats.laplace(loc, scale).cdf(x),
        _real_line(_laplace_cdf),
        _LOC_SCALE,
        "Laplace(",
        support=constraints.real,
        points=_REAL_POINTS,
        outside=(),
        fit=Fit(values=_standardised(*LAPLACE), logits=False, spread=2.0),
    ),
    "torch exponential": Example(
        Exponential,
        (RATES,),
        lambda x, rate: scipy.stats.expon(scale=1 / rate).cdf(x),
        _real_line(lambda x, rate: -mpmath.expm1(-rate * x)),
        frozenset({"rate"}),
        "Exponential(",
        support=constraints.nonnegative,
        points=np.concatenate([[1e-12, 1e-6], np.linspace(0.01, 12.0, 50)]),
        outside=(),
        fit=Fit(values=lambda theta: torch.exp(theta) / torch.tensor(RATES), logits=False),
    ),
    "torch gumbel": Example(
        Gumbel,
        GUMBEL,
        lambda x, loc, scale: scipy.stats.gumbel_r(loc, scale).cdf(x),
        _real_line(lambda x, loc, scale: mpmath.exp(-mpmath.exp(-(x - loc) / scale))),
        _LOC_SCALE,
        "Gumbel(",
        support=constraints.real,
        # torch's Gumbel cdf checks its base uniform's support, [tiny, 1 - eps]: it raises a
        # ValueError where F underflows (below -0.8 for Gumbel(0.5, 0.2)) or rounds to 1.
        # In float32 that is below -0.35 or above 3.6.
        points=np.linspace(-0.35, 3.6, 58),
        outside=(),
        fit=Fit(values=_standardised(*GUMBEL), logits=False, spread=2.0),
    ),
    "torch cauchy": Example(
        Cauchy,
        CAUCHY,
        lambda x, loc, scale: scipy.stats.cauchy(loc, scale).cdf(x),
        _real_line(lambda x, loc, scale: 0.5 + mpmath.atan((x - loc) / scale) / mpmath.pi),
        _LOC_SCALE,
        "Cauchy(",
        support=constraints.real,
        points=_REAL_POINTS,
        outside=(),
        mean=False,  # it has none (torch: NaN)
        fit=Fit(values=_standardised(*CAUCHY), logits=False, spread=2.0),
    ),
    "torch transformed: sigmoid of a normal": Example(
        lambda loc, scale: TransformedDistribution(Normal(loc, scale), SigmoidTransform()),
        ([-1.0, 0.5], [0.5, 2.0]),
        lambda x, loc, scale: scipy.stats.norm(loc, scale).cdf(scipy.special.logit(x)),
        lambda z, loc, scale: mpmath.ncdf((z - loc) / scale),
        frozenset(),
        "TransformedDistribution(",
        outside=(),
        mean=False,
    ),
    "torch transformed: decreasing, affine tensors": Example(
        _decreasing_logit_normal,
        ([-1.0, 0.5], [0.5, 2.0], [1.0, -0.5], [1.5, 0.7]),
        _decreasing_logit_normal_oracle,
        lambda z, loc, scale, shift, stretch: mpmath.ncdf(
            (loc - (shift - z) / stretch) / scale
        ),  # P(Y > (shift - z) / stretch)
        frozenset(),
        "TransformedDistribution(",
        outside=(),
        mean=False,
    ),
    "torch transformed: logistic from a uniform": Example(
        _logistic_from_uniform,
        LOGISTIC,
        lambda x, loc, scale: scipy.stats.logistic(loc, scale).cdf(x),
        _real_line(lambda x, loc, scale: _mp_logistic((x - loc) / scale)),
        frozenset(),
        "TransformedDistribution(",
        support=constraints.real,
        points=_REAL_POINTS,
        outside=(),
        mean=False,
        fit=Fit(values=_standardised(*LOGISTIC), logits=False, spread=2.0),
    ),
}


def build(name: str, dtype=F64, requires_grad=False):
    """The example's prior and its parameter tensors."""
    example = PRIORS[name]
    tensors = [
        torch.tensor(p, dtype=dtype).requires_grad_(requires_grad) for p in example.parameters
    ]
    return example.build(*tensors), tensors


def oracle(name: str, x: np.ndarray) -> np.ndarray:
    """The example's oracle CDF at x (N,): (N, groups)."""
    example = PRIORS[name]
    return example.oracle(x[:, None], *(np.asarray(p) for p in example.parameters))


def group_parameters(name: str) -> list[list[Any]]:
    """The parameters of each group (a parameter given once applies to every group)."""
    parameters = PRIORS[name].parameters
    groups = max(len(p) for p in parameters)
    return [[p[g] if len(p) > 1 else p[0] for p in parameters] for g in range(groups)]


# --- bad examples ------------------------------------------------------------------------------


def _tensor(values):
    return torch.tensor(values, dtype=F64)


# (case, how to build it, what the message must name, whether the check is batchshaping's own:
# on by default even where torch's global default is off).
INVALID = [
    ("beta negative a", lambda: Beta(-1.0, 2.0), "concentration1", True),
    ("beta zero b", lambda: Beta(_tensor([1.0, 2.0]), _tensor([1.0, 0.0])), "concentration0", True),
    ("beta nan a", lambda: Beta(math.nan, 2.0), "concentration1", True),
    ("symmetric beta 0", lambda: SymmetricBeta(0.0), "parameter a ", True),
    ("symmetric beta 1", lambda: SymmetricBeta(_tensor([0.5, 1.0])), "parameter a ", True),
    ("symmetric beta 1.5", lambda: SymmetricBeta(1.5), "parameter a ", True),
    ("relaxed bernoulli zero t", lambda: RelaxedBernoulli(0.0, probs=0.5), "temperature", True),
    ("relaxed bernoulli negative t", lambda: RelaxedBernoulli(-1.0, logits=0.0), "temp", True),
    ("relaxed bernoulli probs > 1", lambda: RelaxedBernoulli(0.5, probs=1.5), "probs", True),
    (
        "relaxed bernoulli both",
        lambda: RelaxedBernoulli(0.5, probs=0.5, logits=0.0),
        "probs or",
        True,
    ),
    ("relaxed bernoulli neither", lambda: RelaxedBernoulli(0.5), "probs or logits", True),
    ("kumaraswamy zero a", lambda: Kumaraswamy(0.0, 1.0), "parameter concentration1", True),
    ("kumaraswamy negative b", lambda: Kumaraswamy(1.0, -2.0), "parameter concentration0", True),
    ("kumaraswamy nan b", lambda: Kumaraswamy(1.0, math.nan), "parameter concentration0", True),
    ("hard concrete zero t", lambda: HardConcrete(0.0, 0.0), "parameter temperature", True),
    ("hard concrete nan log alpha", lambda: HardConcrete(math.nan), "parameter log_alpha", True),
    ("hard concrete lower limit", lambda: HardConcrete(0.0, limits=(0.1, 1.1)), "limits", True),
    ("hard concrete upper limit", lambda: HardConcrete(0.0, limits=(-0.1, 1.0)), "limits", True),
    ("hard concrete one limit", lambda: HardConcrete(0.0, limits=(-0.1,)), "limits", True),
    ("logistic zero scale", lambda: Logistic(0.0, _tensor([1.0, 0.0])), "parameter scale", True),
    ("logistic nan loc", lambda: Logistic(math.nan, 1.0), "parameter loc", True),
    ("logit normal negative scale", lambda: LogitNormal(0.0, -1.0), "parameter scale", True),
    ("logit normal nan loc", lambda: LogitNormal(math.nan, 1.0), "parameter loc", True),
    ("empirical one sample", lambda: Empirical(_tensor([[0.5], [0.2]])), "at least 2", True),
    ("empirical no sample", lambda: Empirical(torch.zeros(3, 0)), "at least 2", True),
    ("empirical scalar", lambda: Empirical(_tensor(0.5)), "samples must have shape", True),
    ("empirical nan", lambda: Empirical(_tensor([0.1, math.nan, 0.3])), r"samples .*1 NaN", True),
    ("empirical inf", lambda: Empirical(_tensor([0.1, math.inf])), "samples must be finite", True),
    ("torch normal zero std", lambda: Normal(0.0, 0.0, validate_args=True), "scale", False),
    ("torch uniform low > high", lambda: Uniform(1.0, 0.0, validate_args=True), "low", False),
    ("torch exponential rate", lambda: Exponential(-1.0, validate_args=True), "rate", False),
    ("torch laplace scale", lambda: Laplace(0.0, -1.0, validate_args=True), "scale", False),
    ("torch cauchy scale", lambda: Cauchy(0.0, 0.0, validate_args=True), "scale", False),
    ("torch gumbel scale", lambda: Gumbel(0.0, -1.0, validate_args=True), "scale", False),
]
