"""The scalar mathematics of the Triton kernel, elementwise on blocks of float64 values.

The functions of ``_scalar`` (the CPU kernels' shared mathematics), written in plain ``tl.*``
operations so that Triton's interpreter runs on CPU tensors the code the GPU runs: no
libdevice (``lgamma``, ``log1p``, ``expm1``, digamma are built from ``exp``, ``log`` and
arithmetic), no data-dependent loop lengths where a fixed count is exact, and the same
thresholds and constants (imported from ``_constants``):

- log Gamma and digamma by shifting the argument up, then Stirling's series; log Gamma(1 + p),
  log Gamma(q + p) - log Gamma(q) and psi(q + p) - psi(q) to full relative accuracy as p -> 0;
- delta = a - (a + b) x by an error-free sum and a fused multiply-add;
- the prefactor ``x^a (1-x)^b / B(a, b)`` in log space in the three forms of ``_scalar``
  (direct; one parameter large; both large, Loader's deviances from delta), each computed only
  where some element of the block needs it.
"""

from __future__ import annotations

import triton
import triton.language as tl

from batchshaping.special import _constants as constants

_DIGAMMA = tl.constexpr(constants.DIGAMMA)
_DIGAMMA_TERMS = tl.constexpr(len(constants.DIGAMMA))
_DIGAMMA_MIN = tl.constexpr(constants.DIGAMMA_MIN)
_STIRLING = tl.constexpr(constants.STIRLING)
_STIRLING_TERMS = tl.constexpr(len(constants.STIRLING))
_STIRLING_MIN = tl.constexpr(constants.STIRLING_MIN)
_LOG_GAMMA_1P = tl.constexpr(constants.LOG_GAMMA_1P)
_LOG_GAMMA_1P_TERMS = tl.constexpr(len(constants.LOG_GAMMA_1P))
_EULER_GAMMA = tl.constexpr(constants.EULER_GAMMA)
_HALF_LOG_2PI = tl.constexpr(constants.HALF_LOG_2PI)
# v - log(1 + v) for |v| < 1/2 by its series in r = v / (2 + v), r^2 <= 1/9: the term of
# r^(2j) after 17 is below 1e-16 of the sum, after 20 below 1e-19.
_LOG1P_MINUS_TERMS = tl.constexpr(20)


@triton.jit
def log1p(x):
    """log(1 + x), exact for small x: the rounding of 1 + x is undone (Goldberg, 1991)."""
    u = 1.0 + x
    return tl.where(u == 1.0, x, tl.log(u) * (x / (u - 1.0)))


@triton.jit
def expm1(x):
    """exp(x) - 1, exact for small x: (u - 1) x / log u with u = exp(x) rounded (Kahan)."""
    u = tl.exp(x)
    near = tl.abs(x) < 0.5
    u_near = tl.where(near, u, 2.0)
    kahan = tl.where(u_near == 1.0, x, (u_near - 1.0) * (x / tl.log(u_near)))
    return tl.where(near, kahan, u - 1.0)


@triton.jit
def two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth)."""
    s = a + b
    virtual = s - a
    return s, (a - (s - virtual)) + (b - virtual)


@triton.jit
def mean_offset(a, b, x, y):
    """delta = a - (a + b) x = (a + b) y - b, to a few ulp of delta, with y = 1 - x.

    From x where x <= 1/2 and from y above (the one that is exact). a + b is formed without
    rounding error (its rounding error is added back), and a - (a + b) x by a fused
    multiply-add, rounded once: near the mean, where a and (a + b) x nearly cancel, that is the
    exact difference to within half an ulp of delta. (The CPU kernels subtract an error-free
    product instead; written so, a compiler that contracts multiplies into adds, as Triton's
    does on the GPU, would fuse the product into the subtraction and count its error twice.)
    """
    total, total_error = two_sum(a, b)
    from_x = tl.fma(-total, x, a) - total_error * x
    from_y = tl.fma(total, y, -b) + total_error * y
    return tl.where(x <= 0.5, from_x, from_y)


@triton.jit
def stirling_error(z):
    """lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2), for z >= 15."""
    inv = 1.0 / z
    inv2 = inv * inv
    total = tl.zeros_like(z)
    for k in tl.static_range(_STIRLING_TERMS):
        total = total * inv2 + _STIRLING[_STIRLING_TERMS - 1 - k]
    return inv * total


@triton.jit
def _next_power_minus_one(power_minus_one, step_minus_one):
    """r^(m + k) - 1 from r^m - 1 and r^k - 1: (1 + e)(1 + s) - 1 = e + s + e s, to a few ulp
    for 0 < r < 1 (no logarithm or exponential per power)."""
    return power_minus_one + step_minus_one + power_minus_one * step_minus_one


@triton.jit
def stirling_difference(z, h):
    """stirling_error(z + h) - stirling_error(z) for z >= 15, h >= 0, to full relative accuracy:
    sum_k S_k z^-(2k+1) (r^(2k+1) - 1), r = z / (z + h), r - 1 = -h / (z + h)."""
    inv = 1.0 / z
    inv2 = inv * inv
    power = inv
    change = -h / (z + h)  # r - 1, then r^3 - 1, ...
    step = change * (2.0 + change)  # r^2 - 1
    total = tl.zeros_like(z)
    for k in tl.static_range(_STIRLING_TERMS):
        total += _STIRLING[k] * power * change
        power = power * inv2
        change = _next_power_minus_one(change, step)
    return total


@triton.jit
def lgamma(x):
    """log Gamma(x), x > 0: Gamma(x) = Gamma(z) / (x (x + 1) ... (z - 1)) with z >= 15."""
    product = tl.zeros_like(x) + 1.0
    low = x < _STIRLING_MIN
    while tl.max(low.to(tl.int32), axis=0) > 0:
        product = tl.where(low, product * x, product)
        x = tl.where(low, x + 1.0, x)
        low = x < _STIRLING_MIN
    return (x - 0.5) * tl.log(x) - x + _HALF_LOG_2PI + stirling_error(x) - tl.log(product)


@triton.jit
def digamma_series(x):
    """psi(x) - log(x) for x >= 10: -1/(2x) minus the asymptotic series in 1/x^2."""
    inv = 1.0 / x
    inv2 = inv * inv
    series = tl.zeros_like(x)
    for k in tl.static_range(_DIGAMMA_TERMS):
        series = series * inv2 + _DIGAMMA[_DIGAMMA_TERMS - 1 - k]
    return -0.5 * inv - series * inv2


@triton.jit
def digamma(x):
    """psi(x) for x > 0: the recurrence up to x >= 10, then the asymptotic series."""
    result = tl.zeros_like(x)
    low = x < _DIGAMMA_MIN
    while tl.max(low.to(tl.int32), axis=0) > 0:
        result = tl.where(low, result - 1.0 / x, result)
        x = tl.where(low, x + 1.0, x)
        low = x < _DIGAMMA_MIN
    return result + tl.log(x) + digamma_series(x)


@triton.jit
def log_ratio_to_mean(p, q, delta, log_t, psi_p, psi_pq):
    """log t - psi(p) + psi(p + q), delta = p - (p + q) t: for large p near the mean,
    log(1 - delta / p) plus the differences of psi(z) - log(z) (``_scalar``)."""
    ratio = -delta / p
    log_ratio = tl.where(
        tl.abs(ratio) < 0.5, log1p(ratio), log_t + tl.log(p + q) - tl.log(p)
    )  # far from the mean, 1 + ratio would lose the digits of a small t n / p
    large = p >= _DIGAMMA_MIN
    p_large = tl.where(large, p, _DIGAMMA_MIN)
    near = log_ratio + digamma_series(p_large + q) - digamma_series(p_large)  # both >= 10
    return tl.where(large, near, log_t - psi_p + psi_pq)


@triton.jit
def log_beta(a, b):
    """log B(a, b), without the cancellation of lgamma(b) - lgamma(a + b) for large b."""
    small = tl.minimum(a, b)
    big = tl.maximum(a, b)
    log_gamma_small = lgamma(small)
    result = tl.zeros_like(a)
    direct = big < _STIRLING_MIN
    if tl.max(direct.to(tl.int32), axis=0) > 0:
        low_big = tl.where(direct, big, 1.0)
        low_sum = tl.where(direct, a + b, 1.0)
        result = log_gamma_small + lgamma(low_big) - lgamma(low_sum)
    # lgamma(big) - lgamma(big + small) by Stirling's series.
    big = tl.maximum(big, _STIRLING_MIN)
    difference = (
        small
        - small * tl.log(big)
        - (big + small - 0.5) * log1p(small / big)
        + stirling_error(big)
        - stirling_error(big + small)
    )
    return tl.where(direct, result, log_gamma_small + difference)


@triton.jit
def log_gamma_1p(p):
    """log Gamma(1 + p) for 0 <= p, to full relative accuracy as p -> 0 (1 + p would round)."""
    small = p < 0.2
    p_small = tl.where(small, p, 0.0)
    total = tl.zeros_like(p)
    for k in tl.static_range(_LOG_GAMMA_1P_TERMS):
        total = total * p_small + _LOG_GAMMA_1P[_LOG_GAMMA_1P_TERMS - 1 - k]
    series = p_small * (p_small * total - _EULER_GAMMA)
    return tl.where(small, series, lgamma(tl.where(small, 1.0, 1.0 + p)))


@triton.jit
def log_gamma_difference(q, p):
    """log Gamma(q + p) - log Gamma(q) for q > 0 and 0 <= p, to within a few ulp of
    p log(q + p): shifted up to q >= 15, then Stirling's series, so that nothing cancels."""
    total = tl.zeros_like(q)
    low = q < _STIRLING_MIN
    while tl.max(low.to(tl.int32), axis=0) > 0:
        # log(q + p) - log(q) where p / q overflows (q subnormal): q + p = p there.
        ratio = p / q
        term = tl.where(ratio < 1e300, log1p(ratio), tl.log(p) - tl.log(q))
        total = tl.where(low, total - term, total)
        q = tl.where(low, q + 1.0, q)
        low = q < _STIRLING_MIN
    return total + p * tl.log(q) + log_gamma_difference_over_power(q, p)


@triton.jit
def log_gamma_difference_over_power(q, p):
    """log Gamma(q + p) - log Gamma(q) - p log q for q >= 15 (Stirling's series), without the
    p log q that would cancel."""
    return ((q + p - 0.5) * log1p(p / q) - p) + stirling_difference(q, p)


@triton.jit
def digamma_difference(q, p):
    """psi(q + p) - psi(q) for q > 0 and 0 <= p, to full relative accuracy as p -> 0."""
    total = tl.zeros_like(q)
    low = q < _DIGAMMA_MIN
    while tl.max(low.to(tl.int32), axis=0) > 0:
        total = tl.where(low, total + (p / (q + p)) / q, total)
        q = tl.where(low, q + 1.0, q)
        low = q < _DIGAMMA_MIN
    ratio = log1p(p / q)
    inv2 = 1.0 / (q * q)
    power = inv2
    shift = -p / (q + p)  # r - 1, r = q / (q + p)
    step = shift * (2.0 + shift)  # r^2 - 1
    change = step  # r^(2k+2) - 1
    series = tl.zeros_like(q)
    for k in tl.static_range(_DIGAMMA_TERMS):
        series += _DIGAMMA[k] * power * change
        power = power * inv2
        change = _next_power_minus_one(change, step)
    return total + ratio + p / (2.0 * q * (q + p)) - series


@triton.jit
def log1p_minus(v):
    """v - log(1 + v) for v > -1, to full relative accuracy near 0 (Loader's series)."""
    near = tl.abs(v) < 0.5
    v_near = tl.where(near, v, 0.0)
    ratio = v_near / (2.0 + v_near)
    ratio2 = ratio * ratio
    # v - log1p(v) = ratio v - 2 (ratio^3 / 3 + ratio^5 / 5 + ...)
    total = ratio * v_near
    term = 2.0 * ratio * ratio2
    for j in tl.static_range(1, _LOG1P_MINUS_TERMS + 1):
        total -= term * (1.0 / (2 * j + 1))
        term = term * ratio2
    return tl.where(near, total, v - log1p(v))


@triton.jit
def deviance(k, offset, mean):
    """k log(k / mean) + mean - k, given offset = k - mean (exact) and mean (rounded)."""
    v = -offset / k
    near = v > -0.9
    return tl.where(near, k * log1p_minus(tl.where(near, v, 0.0)), -offset - k * tl.log(mean / k))


@triton.jit
def deviances(a, b, delta, x, y):
    """Loader's deviance of a from (a + b) x plus that of b from (a + b) y, from delta."""
    n = a + b
    return deviance(a, delta, n * x) + deviance(b, -delta, n * y)


@triton.jit
def _large_and_small(big, small, log_x_big, x_small, log_x_small):
    """log(x^a y^b / B(a, b)) where small < 15 <= big (``_scalar._large_and_small``)."""
    correction = (big + small - 0.5) * log1p(small / big) - small + stirling_difference(big, small)
    product = big * x_small
    # A subnormal product has lost bits; there the two logs are far from cancelling.
    log_product = tl.where(
        product > 1e-300, tl.log(tl.maximum(product, 1e-300)), tl.log(big) + log_x_small
    )
    return big * log_x_big + small * log_product - lgamma(small) + correction


@triton.jit
def both_large_deviances(a, b, delta, x, y):
    """deviances(a, b, delta, x, y) where a and b are both at least 15 (0 elsewhere): the
    saddle point's exponent, and z^2 / 2 of the uniform expansion."""
    both_large = tl.minimum(a, b) >= _STIRLING_MIN
    result = tl.zeros_like(a)
    if tl.max(both_large.to(tl.int32), axis=0) > 0:
        a_l = tl.where(both_large, a, _STIRLING_MIN)
        b_l = tl.where(both_large, b, _STIRLING_MIN)
        result = tl.where(
            both_large, deviances(a_l, b_l, tl.where(both_large, delta, 0.0), x, y), 0.0
        )
    return result


@triton.jit
def log_power_terms(a, b, x, y, log_x, log_y, log_beta_ab, both_deviances):
    """log(x^a y^b / B(a, b)) in the form of ``_scalar.log_power_terms`` that suits a, b:
    direct for both below 15, one large, both large (Loader's saddle point, from
    ``both_deviances``, :func:`both_large_deviances`)."""
    small = tl.minimum(a, b)
    big = tl.maximum(a, b)
    result = a * log_x + b * log_y - log_beta_ab
    one_large = (small < _STIRLING_MIN) & (big >= _STIRLING_MIN)
    if tl.max(one_large.to(tl.int32), axis=0) > 0:
        a_big = a >= b
        form = _large_and_small(
            tl.where(one_large, big, _STIRLING_MIN),
            tl.where(one_large, small, 1.0),
            tl.where(a_big, log_x, log_y),
            tl.where(a_big, y, x),
            tl.where(a_big, log_y, log_x),
        )
        result = tl.where(one_large, form, result)
    both_large = small >= _STIRLING_MIN
    if tl.max(both_large.to(tl.int32), axis=0) > 0:
        a_l = tl.where(both_large, a, _STIRLING_MIN)
        b_l = tl.where(both_large, b, _STIRLING_MIN)
        n = a_l + b_l
        saddle = (
            -both_deviances
            + 0.5 * tl.log(a_l * (b_l / n))
            - _HALF_LOG_2PI
            + stirling_error(n)
            - stirling_error(a_l)
            - stirling_error(b_l)
        )
        result = tl.where(both_large, saddle, result)
    return result
