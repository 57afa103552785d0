"""betainc over the whole float range against an oracle of our own, every kernel.

The oracle (``betainc_oracle.py``) integrates the Beta density in mpmath on both sides of x at
high precision; ``data/make_betainc_oracle_table.py`` tabulates it at about 2,000 points
(``data/betainc_points.py``: a and b log-uniform from 1e-6 to 1e16 and up to 1e300, both large,
one large, tiny a or b, integers, values below the smallest normal number, the rows of issue 12;
float64 and float32), because the integration takes about a second a point. The table itself is
checked here: a random part of its rows is recomputed from scratch, and another is compared with
mpmath's own hypergeometric ``betainc`` where that converges.

Bounds, on every row:

- float64 values: within 1e-12 relative of the exact value everywhere (which implies the bound
  asked for, max(1e-12, 10 x scipy's relative error on the same point)); a value
  below the smallest normal number is the subnormal (or 0) to 1e-12 relative or to one unit of
  the smallest subnormal, whichever is coarser (so the tiniest are correctly rounded), never a
  normal number;
- float32 values: the float32 rounding of the exact value, to half a unit in the last place
  plus 1e-9 relative (the kernels stop at 1e-10 in float32 and round the float64 result once);
- d/da and d/db: relative error at most 1e-9 in float64 (wherever the value and the gradient are
  normal numbers), and the float32 rounding of that; finite on every row.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import math
import random
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest
import torch

from batchshaping import betainc

HERE = Path(__file__).resolve().parent
TABLE = HERE / "data" / "betainc_oracle.csv"
GRADIENT_TOLERANCE = 1e-9
TINY = float(np.finfo(np.float64).tiny)
SMALLEST_SUBNORMAL = 2.0**-1074


@functools.cache
def _rows() -> list[dict[str, str]]:
    with TABLE.open(newline="") as handle:
        return list(csv.DictReader(handle))


@functools.cache
def _columns(dtype: str) -> dict[str, np.ndarray]:
    rows = [row for row in _rows() if row["dtype"] == dtype]
    columns = {key: np.array([float(row[key]) for row in rows]) for key in ("a", "b", "x")}
    for key in ("value", "grad_a", "grad_b"):
        columns[key] = np.array([float(mpmath.mpf(row[key])) for row in rows])
    columns["group"] = np.array([row["group"] for row in rows])
    return columns


def _ours(columns, dtype, with_grad=True):
    a, b, x = (
        torch.tensor(columns[key], dtype=dtype, requires_grad=with_grad) for key in ("a", "b", "x")
    )
    value = betainc(a, b, x)
    if not with_grad:  # the kernels' value-only code (their own stopping rules)
        return value.double().numpy(), None, None
    value.backward(torch.ones_like(value))
    return value.detach().double().numpy(), a.grad.double().numpy(), b.grad.double().numpy()


def _describe(columns, index, found, expected):
    return (
        f"{columns['group'][index]}: betainc({columns['a'][index]!r}, {columns['b'][index]!r}, "
        f"{columns['x'][index]!r}) = {found[index]!r}, exact {expected[index]!r}"
    )


def test_the_table_covers_the_range():
    columns = _columns("float64")
    assert len(_rows()) >= 2000
    for parameter in (columns["a"], columns["b"]):
        assert parameter.min() <= 1e-5 and parameter.max() >= 1e16
    assert set(_columns("float32")["group"]) >= {"log-uniform", "both large", "tiny b"}


@pytest.mark.parametrize("with_grad", [True, False], ids=["with-gradients", "value-only"])
def test_float64_values_within_1e_12(kernel, with_grad):
    """1e-12 relative everywhere: stronger than the bound asked for, max(1e-12, 10 x scipy's
    error), since scipy is off by up to 50% on some of these rows (both parameters above 1e16)."""
    columns = _columns("float64")
    value, _, _ = _ours(columns, torch.float64, with_grad)
    exact = columns["value"]
    normal = np.abs(exact) >= TINY
    with np.errstate(divide="ignore", invalid="ignore"):
        ours = np.abs(value - exact) / np.abs(exact)
    bad = np.flatnonzero(normal & ~(ours <= 1e-12))
    assert not len(bad), [_describe(columns, i, value, exact) for i in bad[:5]]
    # Below the smallest normal number: the subnormal (or 0) to the same relative accuracy, or
    # to one unit of the smallest subnormal where that is coarser; never a normal number.
    bound = np.maximum(1e-12 * np.abs(exact), SMALLEST_SUBNORMAL)
    bad = np.flatnonzero(~normal & ~(np.abs(value - exact) <= bound))
    assert not len(bad), [_describe(columns, i, value, exact) for i in bad[:5]]


@pytest.mark.parametrize("with_grad", [True, False], ids=["with-gradients", "value-only"])
def test_float32_values_correctly_rounded(kernel, with_grad):
    columns = _columns("float32")
    value, _, _ = _ours(columns, torch.float32, with_grad)
    exact = columns["value"]
    half_ulp = 0.5 * np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    bad = np.flatnonzero(~(np.abs(value - exact) <= half_ulp + 1e-9 * np.abs(exact)))
    assert not len(bad), [_describe(columns, i, value, exact) for i in bad[:5]]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_parameter_gradients(kernel, dtype):
    name = "float64" if dtype == torch.float64 else "float32"
    columns = _columns(name)
    _, grad_a, grad_b = _ours(columns, dtype)
    for found, expected in ((grad_a, columns["grad_a"]), (grad_b, columns["grad_b"])):
        assert np.isfinite(found).all()
        smallest = TINY if dtype == torch.float64 else float(np.finfo(np.float32).tiny)
        checked = (np.abs(expected) >= smallest) & (np.abs(columns["value"]) >= smallest)
        tolerance = GRADIENT_TOLERANCE
        if dtype == torch.float32:
            tolerance += 2.0**-24
        with np.errstate(divide="ignore", invalid="ignore"):
            error = np.abs(found - expected) / np.abs(expected)
        bad = np.flatnonzero(checked & ~(error <= tolerance))
        assert not len(bad), [_describe(columns, i, found, expected) for i in bad[:5]]


def _some_rows(count: int, condition) -> list[dict[str, str]]:
    chooser = random.Random()
    candidates = [row for row in _rows() if condition(row)]
    return chooser.sample(candidates, min(count, len(candidates)))


def test_table_rows_recomputed_from_scratch(betainc_oracle):
    for row in _some_rows(5, lambda row: True):
        found, converged = betainc_oracle.betainc_with_gradients(
            float(row["a"]), float(row["b"]), float(row["x"])
        )
        assert converged
        with mpmath.workdps(30):
            for value, key in zip(found, ("value", "grad_a", "grad_b"), strict=True):
                expected = mpmath.mpf(row[key])
                assert abs(value - expected) <= 1e-20 * abs(expected), (row, key, value)


def test_table_agrees_with_mpmath_hypergeometric():
    """A second, unrelated oracle where it converges: mpmath's betainc, derivatives by central
    differences of it with steps of 1e-20 of the parameter (40 digits at 60)."""

    def moderate(row):
        # Where I is near 1, mpmath's I is 1 to 60 digits and its derivatives 0.
        return max(float(row["a"]), float(row["b"])) <= 300 and float(row["value"]) <= 0.9

    for row in _some_rows(6, moderate):
        with mpmath.workdps(60):
            a, b, x = (mpmath.mpf(float(row[key])) for key in ("a", "b", "x"))

            def value_at(a, b, x=x):
                return mpmath.betainc(a, b, 0, x, regularized=True)

            value = value_at(a, b)
            grad_a = mpmath.diff(lambda s, b=b: value_at(s, b), a, h=a * mpmath.mpf(1e-20))
            grad_b = mpmath.diff(lambda s, a=a: value_at(a, s), b, h=b * mpmath.mpf(1e-20))
            for found, key in ((value, "value"), (grad_a, "grad_a"), (grad_b, "grad_b")):
                expected = mpmath.mpf(row[key])
                bound = 1e-20 * abs(expected) + mpmath.mpf(10) ** -320
                assert abs(found - expected) <= bound, (row, key, found)


def _mpmath_betainc(a, b, x):
    return mpmath.betainc(a, b, 0, x, regularized=True)


def _check_against_mpmath(points, with_grad, relative, floor=0.0, exact_of=_mpmath_betainc):
    """betainc at ``points`` (with a gradient asked for in a, or value only) within ``relative``
    of ``exact_of(a, b, x)`` in mpmath at 60 digits (its hypergeometric betainc unless said), or
    within ``floor``."""
    a, b, x = (torch.tensor(column, dtype=torch.float64) for column in zip(*points, strict=True))
    if with_grad:
        a.requires_grad_()
    value = betainc(a, b, x).detach().numpy()
    for (pa, pb, px), found in zip(points, value, strict=True):
        with mpmath.workdps(60):
            exact = float(exact_of(mpmath.mpf(pa), mpmath.mpf(pb), mpmath.mpf(px)))
        assert abs(found - exact) <= max(relative * abs(exact), floor), (pa, pb, px, found, exact)


@pytest.mark.parametrize("with_grad", [True, False], ids=["with-gradients", "value-only"])
def test_tiny_b_above_the_reflection_point_down_to_1e_300(kernel, with_grad):
    """1 - I_{1-x}(b, a) for b from 1e-5 down to 1e-300, x past the reflection point and a not an
    integer (where the series of the tail does not end): the series must converge relative to
    its own sum, not to 1/b (value-only calls were off by up to 2% at b below 1e-15 before)."""
    rng = random.Random(12)
    points = []
    for exponent in range(-300, -2, 7):
        a = rng.choice([0.29, 0.5, 1.7, 5.3, 0.0021])
        b = rng.uniform(1.0, 10.0) * 10.0**exponent
        x = rng.uniform((a + 1.0) / (a + 2.0), 0.999)
        points.append((a, b, x))
    _check_against_mpmath(points, with_grad, relative=1e-13)


_LARGEST = sys.float_info.max


def _huge_b_points(count: int, seed: int, low: float, high: float) -> list[tuple]:
    """a from 1e-3 to 30 (some integers), b log-uniform from ``low`` to ``high``, x = k / b with k
    log-uniform from 0.05 to 500: both sides of the reflection point (a + 1) / (a + b + 2)."""
    rng = random.Random(seed)
    points = []
    for _ in range(count):
        a = rng.choice([1.0, 3.0, 10.0]) if rng.random() < 0.2 else 10.0 ** rng.uniform(-3, 1.5)
        b = min(10.0 ** rng.uniform(math.log10(low), math.log10(high)), _LARGEST)
        points.append((a, b, 10.0 ** rng.uniform(-1.3, 2.7) / b))
    return points


# b from 1e20 to 1e305; and from 1e305 to the largest float, where the fraction's c0 and its
# growth term overflowed (NaN on every kernel from b = 3e307 at a = 0.5, x = 10 / b): their
# products with p, of order p k, are now formed after the division by p + 2 k.
_HUGE_B_RANGES = {
    "b-1e20-to-1e305": _huge_b_points(150, 13, 1e20, 1e305),
    "b-1e305-to-the-largest-float": [
        *_huge_b_points(40, 17, 1e305, _LARGEST),
        (0.5, _LARGEST, 1.0 / _LARGEST),
        (2.5, _LARGEST, 10.0 / _LARGEST),
        (0.5, 3e307, 10.0 / 3e307),
    ],
}


@pytest.mark.parametrize("points", list(_HUGE_B_RANGES.values()), ids=list(_HUGE_B_RANGES))
@pytest.mark.parametrize("with_grad", [True, False], ids=["with-gradients", "value-only"])
def test_huge_b_with_x_of_order_1_over_b(kernel, with_grad, points):
    """b from 1e20 to the largest float with b x of order 1: there I_x(a, b) = P(a, b x), the
    regularized lower incomplete gamma function, to a relative O((a + b x)^2 / b) (below 1e-14
    here), an oracle independent of the kernels' methods; d/dx is the Beta density,
    d/db = x P'(a, b x), d/da that of P(a, b x) (mpmath, 30 digits).

    The continued fraction's coefficients underflowed (b above about 1e150) or overflowed (e of
    order b^2, t^2 subnormal) there before it was scaled: values from -inf to 100, NaN, or a
    silent 0, on every kernel. Values are held to 1e-13: the prefactor is formed from its log,
    with about ulp(|log P|) of relative error (3.5e-14 at a = 29, log P = -174). The power series
    where a < 1 had kept ulp(a log b) besides (3e-14 at b = 1e300), from a log x and
    -log(a B(a, b)), each of order a log b, until it took a log(b x) and log(a B(a, b)) + a log b.
    """
    a, b, x = (torch.tensor(column, dtype=torch.float64) for column in zip(*points, strict=True))
    if with_grad:
        for column in (a, b, x):
            column.requires_grad_()
    value = betainc(a, b, x)
    if with_grad:
        value.backward(torch.ones_like(value))
    value = value.detach().numpy()
    for i, (pa, pb, px) in enumerate(points):
        with mpmath.workdps(30):
            y = mpmath.mpf(pb) * mpmath.mpf(px)
            exact = mpmath.gammainc(pa, 0, y, regularized=True)
            where = (pa, pb, px, value[i], float(exact))
            assert abs(value[i] - exact) <= 1e-13 * exact, where
            if not with_grad:
                continue
            with mpmath.workdps(340):  # log Gamma(a + b) - log Gamma(b): b's 305 digits cancel
                log_density = (
                    mpmath.loggamma(pa + mpmath.mpf(pb))
                    - mpmath.loggamma(pa)
                    - mpmath.loggamma(pb)
                    + (pa - 1) * mpmath.log(px)
                    + (pb - 1) * mpmath.log1p(-mpmath.mpf(px))
                )
            gamma_density = mpmath.exp((pa - 1) * mpmath.log(y) - y - mpmath.loggamma(pa))
            expected = {
                "x": mpmath.exp(log_density),
                "b": px * gamma_density,
                # From the smaller of P and Q = 1 - P, which keeps its digits.
                "a": mpmath.diff(lambda s, y=y: mpmath.gammainc(s, 0, y, regularized=True), pa)
                if exact < 0.5
                else -mpmath.diff(lambda s, y=y: mpmath.gammainc(s, y, regularized=True), pa),
            }
            for key, column in (("a", a), ("b", b), ("x", x)):
                # Relative where the gradient is a normal number, else within the smallest one.
                found = float(column.grad[i])
                bound = max(1e-11 * abs(expected[key]), TINY)
                assert abs(found - expected[key]) <= bound, (key, found, where)


@pytest.mark.parametrize("with_grad", [True, False], ids=["with-gradients", "value-only"])
def test_subnormal_parameters(kernel, with_grad):
    """a or b below the smallest normal number, down to the smallest subnormal: the value is of
    the order of the tiny parameter (or 1 minus it), itself subnormal where b is. log Gamma(q + p)
    - log Gamma(q) overflowed in p / q there (the small-parameter form of the series), and the
    value was 0 (1.9e-309 at a = 0.05, b = 1e-310, x = 0.3)."""
    rng = random.Random(14)
    points = []
    for tiny in (5e-324, 1e-320, 1e-315, 1e-310, 2e-308):
        for _ in range(4):
            other = 10.0 ** rng.uniform(-3, 1)
            x = rng.uniform(0.01, 0.99)
            points += [(other, tiny, x), (tiny, other, x)]
    _check_against_mpmath(points, with_grad, relative=1e-12, floor=SMALLEST_SUBNORMAL)


@pytest.mark.parametrize("with_grad", [True, False], ids=["with-gradients", "value-only"])
def test_small_a_against_huge_b_to_a_few_ulp(kernel, with_grad):
    """a in (0, 1), b from 1e20 to 1e305, b x from 0.01 to 1: the power series for a < 1, whose
    log was a log x - log(a B(a, b)), two terms of order a log b (up to 700 a) whose rounding
    errors stayed in the result (2.3e-14 at a = 0.3, b = 1e300; scipy is within 1e-16). It is
    a log(b x) - (log(a B(a, b)) + a log b) now, each of order a. Oracle P(a, b x) (see above).

    Bound 2e-15; 1e-14 for the Triton kernel, whose log Gamma is built from exp and log (shifted
    up to 15 and back: about ulp(30) of absolute error, 6e-15 here)."""
    rng = random.Random(15)
    points = []
    for _ in range(60):
        a = rng.uniform(0.02, 0.98)
        b = 10.0 ** rng.uniform(20, 305)
        points.append((a, b, 10.0 ** rng.uniform(-2, 0) / b))
    _check_against_mpmath(
        points,
        with_grad,
        relative=1e-14 if kernel == "triton" else 2e-15,
        exact_of=lambda a, b, x: mpmath.gammainc(a, 0, b * x, regularized=True),
    )


@functools.cache
def _far_apart_points() -> tuple[tuple[tuple[float, float, float], tuple], ...]:
    """a from 1e18 to 1e26 against b from 1e200 to 1e300, x from 8 standard deviations below the
    mean to 8 above (a standard deviation is 1 / sqrt(a) of the mean: at least 1e-13 of it, so
    that x resolves it), with the oracle's value and gradients (about 0.3 s a point, once)."""
    spec = importlib.util.spec_from_file_location("betainc_oracle", HERE / "betainc_oracle.py")
    oracle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(oracle)
    rng = random.Random(16)
    points = []
    while len(points) < 16:
        a, b = 10.0 ** rng.uniform(18, 26), 10.0 ** rng.uniform(200, 300)
        mean = a / (a + b)
        x = mean + rng.uniform(-8.0, 8.0) * math.sqrt(a) / b
        exact, converged = oracle.betainc_with_gradients(a, b, x)
        if converged and exact[0] > 1e-300:
            points.append(((a, b, x), exact))
    return tuple(points)


def test_gradients_with_one_parameter_far_above_the_other(kernel):
    """d/da and d/db where a is huge and b far larger still (a = 4e22, b = 2e272): the fraction's
    q derivatives are of order 1 / b beside what they differentiate, and its stopping rule's
    absolute floor let them stop unconverged (d/db was 5% to 18% off, the value exact) until
    they were scaled (``_fraction``: nu)."""
    points = _far_apart_points()
    a, b, x = (
        torch.tensor(column, dtype=torch.float64, requires_grad=True)
        for column in zip(*(point for point, _ in points), strict=True)
    )
    value = betainc(a, b, x)
    value.backward(torch.ones_like(value))
    value = value.detach()
    for i, (point, (exact, grad_a, grad_b)) in enumerate(points):
        found = (float(value[i]), float(a.grad[i]), float(b.grad[i]))
        for got, expected in zip(found, (exact, grad_a, grad_b), strict=True):
            bound = max(GRADIENT_TOLERANCE * abs(expected), TINY)  # relative where normal
            assert abs(got - expected) <= bound, (point, found)


# (a, b, x, the parameter differentiated): the tail I_{1-x}(b, a) (or I_x(a, b)) is below half
# the smallest subnormal, its gradient a normal number (from an independent audit).
_NEGLIGIBLE_TAILS = (
    (9.476840531489899e-293, 28.359983244322763, 0.9999999106977399, "a"),
    (1.1711962410548402e-86, 53.28566829931279, 0.9999908932248077, "a"),
    (6.545939002295974, 2.2250738585072014e-308, 3.485026588854931e-46, "b"),
)


@pytest.mark.parametrize("run", [1, 600], ids=["one-element", "shared-run"])
@pytest.mark.parametrize("point", _NEGLIGIBLE_TAILS, ids=["tiny-a", "small-a", "tiny-b"])
def test_gradients_of_a_tail_below_the_smallest_subnormal(kernel, point, run):
    """A tail below half the smallest subnormal gives 0 (or 1), but its gradient d/dq is of the
    order of the tail over q and may be a normal number: the shortcut that set both to 0 now
    applies to the gradients only where they are negligible too (cpu-shared gave 0 for
    -4.3e-202 at a = 9.5e-293, b = 28.4, x = 0.99999991). Oracle: mpmath, 60 digits."""
    pa, pb, px, which = point
    a = torch.tensor([pa], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([pb], dtype=torch.float64, requires_grad=True)
    value = betainc(a, b, torch.full((run,), px, dtype=torch.float64))
    found = float(torch.autograd.grad(value[0], a if which == "a" else b)[0])
    with mpmath.workdps(60):
        ma, mb, mx = mpmath.mpf(pa), mpmath.mpf(pb), mpmath.mpf(px)
        if which == "a":
            tail = lambda s: mpmath.betainc(mb, s, 0, 1 - mx, regularized=True)  # noqa: E731
            expected = -mpmath.diff(tail, ma)
        else:
            expected = mpmath.diff(lambda s: mpmath.betainc(ma, s, 0, mx, regularized=True), mb)
    assert abs(found - expected) <= GRADIENT_TOLERANCE * abs(expected), (point, found)


def _tiny_parameter_points() -> list[tuple[float, float, float]]:
    """a or b subnormal (5e-324 to 2e-308) against the other from 1e-30 to 1e4, or below 1e-30
    too (where both are small); normal tiny b (1e-300 to 1e-200) beside a from 1e-30 to 1e-3,
    where psi(b + a) - psi(b) summed a / (b (b + a)), a product that underflowed (d/db was inf at
    a = 8.4e-29, b = 9.3e-302, x = 0.086, 1e-4 off at a = 1.1e-19); and both normal, below 1e-285
    (the series' first-order log I in p, for p below 1e-290, took the value 0 for 6.1e-4 at
    a = 1e-292, b = 6.2e-296, x = 0.11); each both ways round."""
    rng = random.Random(18)
    points = []
    for tiny in (5e-324, 1e-320, 1e-315, 1e-310, 2e-308):
        for low, high in ((-30, 4), (-30, 4), (-30, 4), (-323, -31)):
            other = 10.0 ** rng.uniform(low, high)
            x = rng.uniform(0.001, 0.999)
            points += [(tiny, other, x), (other, tiny, x)]
    for _ in range(6):
        small, tiny = 10.0 ** rng.uniform(-30, -3), 10.0 ** rng.uniform(-300, -200)
        x = rng.uniform(0.001, 0.999)
        points += [(small, tiny, x), (tiny, small, x)]
    for _ in range(6):
        first, second = (10.0 ** rng.uniform(-307.6, -285) for _ in "ab")
        x = rng.uniform(0.001, 0.999)
        points += [(first, second, x), (second, first, x)]
    return points


@functools.cache
def _tiny_parameter_oracle() -> tuple[tuple[float, float, float, float], ...]:
    """(I, dI/da, dI/db, dI/dx) at ``_tiny_parameter_points`` from mpmath at 60 digits: the tail
    that is below 1/2 (I_x(a, b), or I_{1-x}(b, a) where a < b, which keeps the digits of 1 - I),
    differentiated by central differences with steps of 1e-25 of the parameter."""
    results = []
    with mpmath.workdps(60):
        for point in _tiny_parameter_points():
            a, b, x = (mpmath.mpf(v) for v in point)
            flip = a < b  # then I is near 1: work with its complement

            def tail(p, q, flip=flip, x=x):
                if flip:
                    return mpmath.betainc(q, p, 0, 1 - x, regularized=True)
                return mpmath.betainc(p, q, 0, x, regularized=True)

            sign = -1 if flip else 1
            value = 1 - tail(a, b) if flip else tail(a, b)
            grad_a = sign * mpmath.diff(lambda s, b=b: tail(s, b), a, h=a * mpmath.mpf(10) ** -25)
            grad_b = sign * mpmath.diff(lambda s, a=a: tail(a, s), b, h=b * mpmath.mpf(10) ** -25)
            log_density = (a - 1) * mpmath.log(x) + (b - 1) * mpmath.log1p(-x)
            density = mpmath.exp(log_density - mpmath.log(mpmath.beta(a, b)))
            results.append(tuple(float(v) for v in (value, grad_a, grad_b, density)))
    return tuple(results)


def test_tiny_and_subnormal_parameters(kernel):
    """The value (with and without gradients) and its derivatives where a parameter is tiny: d/da
    where a is below the smallest normal number (and d/db likewise) was NaN (and before that
    -0.0, 0 or inf for -0.18 at a = 5e-324, b = 4.2e173, x = 2.7e-174, a point of this test too,
    with I = P(a, b x) its oracle); the kernels run at a = 2^-1000 there now, or the limit forms
    serve where both are below 2^-100 (``_tiny_parameters``).

    Bounds: 1e-12 relative for the value (or one subnormal unit), 1e-11 for the derivatives
    (or the smallest normal number, where they are subnormal); infinite, of the right sign, where
    the exact derivative is beyond the largest float (a + b below about 1e-308)."""
    points = _tiny_parameter_points()
    expected = list(_tiny_parameter_oracle())
    huge_b = (5e-324, 4.2e173, 2.7e-174)
    points.append(huge_b)
    with mpmath.workdps(60):
        a, y = mpmath.mpf(huge_b[0]), mpmath.mpf(huge_b[1]) * mpmath.mpf(huge_b[2])
        tail = mpmath.gammainc(a, y, mpmath.inf, regularized=True)
        grad_a = -mpmath.diff(lambda s: mpmath.gammainc(s, y, mpmath.inf, regularized=True), a)
        grad_b = huge_b[2] * mpmath.exp((a - 1) * mpmath.log(y) - y - mpmath.loggamma(a))
        expected.append((float(1 - tail), float(grad_a), float(grad_b), math.nan))
    a, b, x = (
        torch.tensor(column, dtype=torch.float64, requires_grad=True)
        for column in zip(*points, strict=True)
    )
    value_only = betainc(a.detach(), b.detach(), x.detach())
    value = betainc(a, b, x)
    value.backward(torch.ones_like(value))
    columns = (value.detach(), a.grad, b.grad, x.grad)
    found = zip(*(column.tolist() for column in columns), strict=True)
    for point, got, alone, exact in zip(points, found, value_only.tolist(), expected, strict=True):
        where = (point, got, alone, exact)
        for found_value in (got[0], alone):
            bound = max(1e-12 * abs(exact[0]), SMALLEST_SUBNORMAL)
            assert abs(found_value - exact[0]) <= bound, where
        for found_one, exact_one in zip(got[1:], exact[1:], strict=True):
            if math.isnan(exact_one):  # not computed for this point
                continue
            if abs(exact_one) > sys.float_info.max:
                assert found_one == math.copysign(math.inf, exact_one), where
            else:
                assert abs(found_one - exact_one) <= max(1e-11 * abs(exact_one), TINY), where


def test_huge_a_with_x_next_to_1(kernel):
    """a about 1e18 against a small b, x one or two ulp below 1 (from an independent audit): the
    portable kernel divided the prefactor P, about 1e-299, by a before the fraction, a subnormal
    on the way (2.1e-7 off at the first point, 1.8e-10 at the second). Oracle: for a huge,
    I_x(a, b) = Q(b, -(a + (b - 1) / 2) log x) to far better than the bound (mpmath)."""
    points = [
        (3.093066714749721e18, 0.08954876222301483, 0.9999999999999998),
        (1.5308831347175004e18, 0.012727087763473083, 0.9999999999999996),
    ]
    a, b, x = (torch.tensor(column, dtype=torch.float64) for column in zip(*points, strict=True))
    value = betainc(a, b, x).numpy()
    for (pa, pb, px), found in zip(points, value, strict=True):
        exact = _gamma_limit(pa, pb, px, upper=True)
        assert abs(found - exact) <= 1e-11 * exact, (pa, pb, px, found, exact)


def _gamma_limit(huge: float, small: float, x: float, *, upper: bool) -> float:
    """I for one huge parameter, from mpmath at 40 digits: with a = ``huge``,
    I_x(a, b) = Q(b, -(a + (b - 1) / 2) log x) (``upper``); with b = ``huge``,
    I_x(a, b) = P(a, -(b + (a - 1) / 2) log(1 - x)). Their error is O(1 / huge^2)."""
    with mpmath.workdps(40):
        huge, small, x = mpmath.mpf(huge), mpmath.mpf(small), mpmath.mpf(x)
        if upper:
            y = -(huge + (small - 1) / 2) * mpmath.log(x)
            return float(mpmath.gammainc(small, y, mpmath.inf, regularized=True))
        y = -(huge + (small - 1) / 2) * mpmath.log1p(-x)
        return float(mpmath.gammainc(small, 0, y, regularized=True))


# Shared runs whose reflection point (a + 1) / (a + b + 2) rounds to 1 (a above 2^53 against a
# small b) or whose bins' scale, per_side / that point, overflows (b near the largest float).
_END_RUNS = (
    (9381714835393882.0, 0.12941179406084832, "x near 1"),
    (2.0**53 + 2.0, 0.5, "x near 1"),
    (3.093066714749721e18, 2.0, "x near 1"),
    (0.5, 1.7e308, "x near 0"),
    (3.0, 1.2e308, "x near 0"),
)


@functools.cache
def _end_run(a: float, b: float, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The run's x (4,096 values, so that the bins of the shared-parameter kernel are full) and
    the oracle at each (:func:`_gamma_limit`, far better than the bound there)."""
    near_1 = where == "x near 1"
    if near_1:
        x = 1.0 - 2.0**-53 * np.repeat(np.arange(1.0, 9.0), 512)
    else:
        x = np.linspace(0.05, 2.5 * (a + 1.0), 4096) / b
    huge, small = (a, b) if near_1 else (b, a)
    table = {value: _gamma_limit(huge, small, value, upper=near_1) for value in set(x.tolist())}
    return x, np.array([table[value] for value in x.tolist()])


@pytest.mark.parametrize(("a", "b", "where"), _END_RUNS)
def test_shared_runs_whose_reflection_point_rounds_to_an_end(kernel, a, b, where):
    """From a cross-check of the kernels against each other: the kernel for shared parameters
    put each element in a bin by its position times per_side / (reflection point), or past the
    point by (1 - x) times per_side / (1 - point); where the point rounds to 1 (a = 9.4e15,
    b = 0.129), or where per_side / point overflows (b = 1.7e308), the scale was inf, the bin
    a negative number, and the element in no bin: its value was never written (uninitialised
    memory: 6.9e-310 where I = 0.0300, and 1e228 at b = 1.7e308) on the automatic CPU kernel
    too, for runs of at least 256 x."""
    x, exact = _end_run(a, b, where)
    found = betainc(
        torch.tensor(a, dtype=torch.float64),
        torch.tensor(b, dtype=torch.float64),
        torch.from_numpy(x),
    ).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.where(found == exact, 0.0, np.abs(found - exact) / exact)  # 0 where I underflows
    worst = int(np.argmax(np.nan_to_num(error, nan=np.inf)))
    assert error[worst] <= 1e-12, (x[worst], found[worst], exact[worst])
