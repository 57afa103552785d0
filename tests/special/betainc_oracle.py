"""An independent oracle of I_x(a, b) and its a, b derivatives: the density integrated in mpmath.

Nothing here shares code or method with the kernels. Both sides of x are integrated at high
precision, L = int_0^x t^(a-1) (1-t)^(b-1) dt and U = int_x^1 (the same), so that

    I = L / (L + U),   dI/da = (L_a U - L U_a) / (L + U)^2,   L_a = int_0^x f(t) log t dt, ...

and neither B(a, b) nor a digamma function is needed. Each side is integrated in a log variable,
t = x e^(-u) (u from 0 to infinity), where the integrand exp(a (log x - u) + (b - 1) log(1 - t))
has no singularity at an end point whatever a and b: composite Gauss-Legendre on intervals that
follow the integrand's own scales (its peak and width, the distance of 1 from x, its decay),
each interval checked against a rule of half the degree and bisected until they agree. The
working precision grows with log10 of the parameters, so that a log t of 1e16 still has 40
digits after the point.

Used by ``test_betainc_oracle.py`` (which recomputes a random part of the committed table) and by
``data/make_betainc_oracle_table.py`` (which writes the table).
"""

from __future__ import annotations

import functools
import itertools
import math

import gmpy2
import mpmath

# Gauss-Legendre degrees of the check and of the result: on an interval where the log of the
# integrand changes by at most _CHANGE, and no singularity lies nearer than its width, the
# errors are below 1e-31 and 1e-50 of the integral.
_LOW_DEGREE, _HIGH_DEGREE = 28, 40
_CHANGE = 12
_MAX_DEPTH = 12
# Relative agreement of the two rules on an interval (the integrand's own rounding is far below).
_TOLERANCE = gmpy2.mpfr("1e-30")


def _rule(degree: int, dps: int):
    """Gauss-Legendre nodes and weights on [0, 1] at (at least) ``dps`` digits."""
    return _rule_at(degree, max(80, 50 * math.ceil(dps / 50)))


@functools.cache
def _rule_at(degree: int, dps: int):
    bits = math.ceil(dps * math.log2(10)) + 16
    with mpmath.workdps(dps):
        nodes, weights = mpmath.mp.gauss_quadrature(degree, "legendre")
        return (
            [_mpfr((node + 1) / 2, bits) for node in nodes],
            [_mpfr(weight / 2, bits) for weight in weights],
        )


def _mpfr(value, bits: int | None = None) -> gmpy2.mpfr:
    """An mpmath number as a gmpy2 (MPFR) one, at ``bits`` (default: the current precision)."""
    text = mpmath.nstr(value, mpmath.mp.dps + 5, strip_zeros=False)
    return gmpy2.mpfr(text) if bits is None else gmpy2.mpfr(text, bits)


def _mpf(value: gmpy2.mpfr) -> mpmath.mpf:
    return mpmath.mpf(format(value, f".{mpmath.mp.dps + 5}e"))


def _interval(integrand, low, high, dps: int, floor, depth: int = 0):
    """Integrals of the three components of ``integrand`` over [low, high], adaptively.

    The two rules must agree to _TOLERANCE of the integral, or of ``floor`` (a lower bound on
    the whole integral) where this interval's part is negligible.
    """
    results = []
    for degree in (_LOW_DEGREE, _HIGH_DEGREE):
        nodes, weights = _rule(degree, dps)
        width = high - low
        total = [gmpy2.mpfr(0)] * 3
        for node, weight in zip(nodes, weights, strict=True):
            values = integrand(low + width * node)
            for k in range(3):
                total[k] += weight * values[k]
        results.append([width * value for value in total])
    coarse, fine = results
    scale = max(abs(fine[0]), floor)
    agree = all(abs(c - f) <= _TOLERANCE * scale for c, f in zip(coarse, fine, strict=True))
    if agree or depth >= _MAX_DEPTH:
        return fine, agree
    middle = (low + high) / 2
    left, left_ok = _interval(integrand, low, middle, dps, floor, depth + 1)
    right, right_ok = _interval(integrand, middle, high, dps, floor, depth + 1)
    return [lo + hi for lo, hi in zip(left, right, strict=True)], left_ok and right_ok


def _side(p, q, t, s, dps: int):
    """int_0^t s^(p-1) (1-s)^(q-1) ds, and the same weighted by log s and by log(1 - s).

    In u = log(t / s): the integrand is exp(g(u)), g(u) = p (log t - u) + (q - 1) log(1 - s).
    Returns the three integrals scaled by exp(-g_max) (one factor for all three), log of that
    factor, and whether every interval converged. ``s`` = 1 - t, exact (t may round to 1):
    1 - t e^(-u) is formed as s - t expm1(-u).
    """
    log_t = mpmath.log1p(-s) if s < 0.5 else mpmath.log(t)

    def log_one_minus(u):  # log(1 - t e^(-u))
        return mpmath.log(s - t * mpmath.expm1(-u))

    def g(u):
        return p * (log_t - u) + (q - 1) * log_one_minus(u)

    def slope(u):  # g'(u) = -p + (q - 1) / (e^u / t - 1)
        return -p + (q - 1) * t / (s + mpmath.expm1(u))

    # The peak of g, where g' vanishes (if q > 1), and its width there.
    peak, step = mpmath.mpf(0), None
    if q > 1:
        peak = max(peak, log_t + mpmath.log1p((q - 1) / p))
        step = mpmath.sqrt((q - 1) / (p * (p + q - 1)))
    if peak == 0:
        candidates = [1 / abs(slope(0)) if slope(0) != 0 else 1 / p, s / t]
        if step is not None:
            candidates.append(step)
        step = min(candidates)
    g_max = g(peak)
    # Past exp(-margin) of its peak the rest of the integrand is far below the tolerance.
    margin = mpmath.mpf(90)

    def next_point(u, step, direction):
        # At most a change of _CHANGE in g across the interval, and no wider than its distance
        # from the singularity of log(1 - s) at u = log t.
        limit = _CHANGE / max(abs(slope(u)), mpmath.mpf(10) ** (-dps))
        if q != 1:
            # Going down, the interval [u - h, u] ends nearer the singularity: h <= (u - h) - log t.
            limit = min(limit, u - log_t if direction > 0 else (u - log_t) / 2)
        return min(2 * step, limit)

    # What is left past u (or below it) is at most the integrand there times the width of what
    # is left: the distance u itself where the integrand falls slowly (like 1 / u, for small
    # p or q), the decay length 1 / |g'| where it falls exponentially. The whole integral is at
    # least the peak, 1, times ``step`` / 2.
    reference = g_max + mpmath.log(step) - margin

    def negligible(u, beyond):
        width = max(abs(u - peak), 1 / abs(slope(u))) if beyond else u
        return g(u) + mpmath.log(width) < reference

    points = [peak]
    u, h = peak, step / 2
    while u == peak or not negligible(u, beyond=True):
        h = next_point(u, h, 1)
        u = u + h
        points.append(u)
    u, h = peak, step / 2
    while u > 0:
        if u < peak and negligible(u, beyond=False):  # the rest, down to 0, is negligible
            points.insert(0, mpmath.mpf(0))
            break
        h = next_point(u, h, -1)
        u = max(mpmath.mpf(0), u - h)
        points.insert(0, u)

    # The integrand in MPFR (gmpy2): a hundred times faster than mpmath's own numbers.
    p_f, q_f, t_f, s_f, log_t_f, g_max_f = (_mpfr(v) for v in (p, q, t, s, log_t, g_max))

    def integrand(u):
        log_one_minus = gmpy2.log(s_f - t_f * gmpy2.expm1(-u))
        value = gmpy2.exp(p_f * (log_t_f - u) + (q_f - 1) * log_one_minus - g_max_f)
        return value, value * (log_t_f - u), value * log_one_minus

    totals = [gmpy2.mpfr(0)] * 3
    converged = True
    # The integrand is 1 at its peak and stays above 1/e^4 for at least ``step`` / 2 beside it.
    floor = _mpfr(step) / 200
    for low, high in itertools.pairwise(_mpfr(point) for point in points):
        part, ok = _interval(integrand, low, high, dps, floor)
        converged = converged and ok
        totals = [total + piece for total, piece in zip(totals, part, strict=True)]
    return [_mpf(total) for total in totals], g_max, converged


def working_digits(a: float, b: float) -> int:
    """Digits for parameters up to max(a, b): 40 after the point of the largest log term."""
    return 40 + max(0, math.ceil(math.log10(max(a, b, 1.0))))


def betainc_with_gradients(a: float, b: float, x: float, dps: int | None = None):
    """(I_x(a, b), dI/da, dI/db) as mpmath numbers, and whether the quadrature converged.

    ``a``, ``b`` > 0 and 0 < ``x`` < 1 are taken as the exact binary numbers they are.
    """
    dps = working_digits(a, b) if dps is None else dps
    bits = math.ceil(dps * math.log2(10)) + 16
    with mpmath.workdps(dps), gmpy2.context(gmpy2.get_context(), precision=bits):
        a, b, x = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(x)
        y = mpmath.fsub(1, x, exact=True)
        (lower, lower_log_t, lower_log_y), lower_max, lower_ok = _side(a, b, x, y, dps)
        (upper, upper_log_y, upper_log_t), upper_max, upper_ok = _side(b, a, y, x, dps)
        # Put both sides on one scale.
        shift = lower_max - upper_max
        if shift > 0:
            factor = mpmath.exp(-shift)
            upper, upper_log_y, upper_log_t = (
                v * factor for v in (upper, upper_log_y, upper_log_t)
            )
        else:
            factor = mpmath.exp(shift)
            lower, lower_log_t, lower_log_y = (
                v * factor for v in (lower, lower_log_t, lower_log_y)
            )
        total = lower + upper
        value = lower / total
        grad_a = (lower_log_t * upper - lower * upper_log_t) / total**2
        grad_b = (lower_log_y * upper - lower * upper_log_y) / total**2
        return (+value, +grad_a, +grad_b), lower_ok and upper_ok
