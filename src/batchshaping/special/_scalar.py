"""Scalar mathematics shared by the CPU kernels of the incomplete beta function (numba).

Pure functions of floats, compiled with the package's one numba decorator:

- what a run of elements with the same (a, b) shares: log B(a, b), digammas, and for a parameter
  p < 1 the quantities that keep full accuracy as p -> 0 (log(p B(p, q)), psi(1 + p),
  psi(p + q) - psi(q));
- the offset of x from the mean, delta = a - (a + b) x, exact to a few units in its last place
  (error-free sums and products): near the mean of large parameters it is the difference of two
  nearly equal numbers, and every quantity below that depends on the distance from the mean is
  computed from it;
- the prefactor ``x^a (1-x)^b / B(a, b)`` in log space, in one of three forms so that no two
  large terms cancel: direct for small parameters, with log(a (1 - x)) when one parameter is
  large, Loader's saddle-point form (deviances from delta, Stirling errors) when both are;
- the coefficients of the continued fraction (the odd part of Numerical Recipes' fraction, its
  partial denominators written with delta so that none cancels) and their a, b derivatives, one
  step of the differentiated recurrence of its convergents, the gradients from its last
  convergents, and the Beta density.

The per-element kernel (``_cpu_elementwise``), the kernel for shared parameters
(``_cpu_shared``) and the asymptotic expansion (``_asymptotic``) build on these, so each formula
is written once.
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from batchshaping._runtime.jit import callee
from batchshaping.special import _fraction
from batchshaping.special._constants import (
    DIGAMMA,
    DIGAMMA_MIN,
    EULER_GAMMA,
    HALF_LOG_2PI,
    LOG_GAMMA_1P,
    LOG_SUBNORMAL,
    LOG_ZERO,
    NEGLIGIBLE_GRADIENT_MARGIN,
    SCALE_FROM,
    STIRLING,
    STIRLING_MIN,
)

NAN = math.nan
MAX_TERMS = 100_000
# The continued fraction's convergents are rescaled when B_n leaves this range.
RESCALE_LOW, RESCALE_HIGH = 1e-100, 1e100


@callee
def _digamma_series(x):
    """psi(x) - log(x) for x >= 10: -1/(2x) minus the asymptotic series in 1/x^2."""
    inv = 1.0 / x
    inv2 = inv * inv
    series = 0.0
    for k in range(len(DIGAMMA) - 1, -1, -1):
        series = series * inv2 + DIGAMMA[k]
    return -0.5 * inv - series * inv2


@callee
def digamma(x: float) -> float:
    """psi(x) for x > 0: recurrence up to x >= 10, then the asymptotic series."""
    result = 0.0
    while x < DIGAMMA_MIN:
        result -= 1.0 / x
        x += 1.0
    return result + math.log(x) + _digamma_series(x)


@callee
def digamma_minus_log(x):
    """psi(x) - log(x), without forming either where x is large (both grow like log x)."""
    if x >= DIGAMMA_MIN:
        return _digamma_series(x)
    return digamma(x) - math.log(x)


@callee
def log_ratio_to_mean(p, q, delta, log_t, psi_p, psi_pq):
    """log t - psi(p) + psi(p + q), the p derivative of log(t^p / B(p, q)), delta = p - (p + q) t.

    For large p each term is large and their sum small near the mean: there it is
    log(1 - delta / p) plus the differences of psi(z) - log(z).
    """
    if p >= DIGAMMA_MIN:
        ratio = -delta / p  # t n / p - 1
        if abs(ratio) < 0.5:
            log_ratio = math.log1p(ratio)
        else:  # far from the mean, where 1 + ratio would lose the digits of a small t n / p
            log_ratio = log_t + math.log(p + q) - math.log(p)
        return log_ratio + digamma_minus_log(p + q) - digamma_minus_log(p)
    return log_t - psi_p + psi_pq


@callee
def stirling_error(z: float) -> float:
    """lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2), for z >= 15."""
    inv = 1.0 / z
    inv2 = inv * inv
    return inv * (
        1.0 / 12.0
        - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 / 1188.0)))
    )


@callee
def log_beta_function(a: float, b: float) -> float:
    """log B(a, b), without the cancellation of lgamma(b) - lgamma(a + b) for large b."""
    small = min(a, b)
    big = max(a, b)
    if big < STIRLING_MIN:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    # lgamma(big) - lgamma(big + small) by Stirling's series.
    difference = (
        small
        - small * math.log(big)
        - (big + small - 0.5) * math.log1p(small / big)
        + stirling_error(big)
        - stirling_error(big + small)
    )
    return math.lgamma(small) + difference


@callee
def stirling_difference(z, h):
    """stirling_error(z + h) - stirling_error(z) for z >= 15, h >= 0, to full relative accuracy."""
    ratio = math.log1p(h / z)
    inv = 1.0 / z
    inv2 = inv * inv
    power = inv
    total = 0.0
    for k in range(len(STIRLING)):
        total += STIRLING[k] * power * math.expm1(-(2 * k + 1) * ratio)
        power *= inv2
    return total


@callee
def log_gamma_1p(p):
    """log Gamma(1 + p) for 0 <= p, to full relative accuracy as p -> 0 (1 + p would round)."""
    if p >= 0.2:
        return math.lgamma(1.0 + p)
    total = 0.0
    for k in range(len(LOG_GAMMA_1P) - 1, -1, -1):
        total = total * p + LOG_GAMMA_1P[k]
    return p * (p * total - EULER_GAMMA)


@callee
def log_gamma_difference(q, p):
    """log Gamma(q + p) - log Gamma(q) for q > 0 and 0 <= p, to within a few ulp of p log(q + p).

    Shifted up to q >= 15 by log Gamma(q + 1) = log Gamma(q) + log q, then by Stirling's series,
    so that no two large terms cancel when p is small.
    """
    total = 0.0
    while q < STIRLING_MIN:
        ratio = p / q
        # log(q + p) - log(q) where p / q overflows (q subnormal): q + p = p there.
        total -= math.log1p(ratio) if ratio < 1e300 else math.log(p) - math.log(q)
        q += 1.0
    return total + p * math.log(q) + log_gamma_difference_over_power(q, p)


@callee
def log_gamma_difference_over_power(q, p):
    """log Gamma(q + p) - log Gamma(q) - p log q for q >= 15 and 0 <= p (Stirling's series),
    of order p^2 / q: without the p log q that would cancel."""
    return ((q + p - 0.5) * math.log1p(p / q) - p) + stirling_difference(q, p)


@callee
def digamma_difference(q, p):
    """psi(q + p) - psi(q) for q > 0 and 0 <= p, to full relative accuracy as p -> 0."""
    total = 0.0
    while q < DIGAMMA_MIN:
        total += (p / (q + p)) / q  # q (q + p) may underflow (both tiny)
        q += 1.0
    ratio = math.log1p(p / q)
    inv2 = 1.0 / (q * q)
    power = inv2
    series = 0.0
    for k in range(len(DIGAMMA)):
        series += DIGAMMA[k] * power * math.expm1(-(2 * k + 2) * ratio)
        power *= inv2
    return total + ratio + p / (2.0 * q * (q + p)) - series


@callee
def two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth)."""
    s = a + b
    virtual = s - a
    return s, (a - (s - virtual)) + (b - virtual)


@intrinsic
def _fused_multiply_add(typingctx, a, b, c):
    """a b + c with a single rounding (LLVM's fma: one instruction where the CPU has it, the C
    library's exact fma elsewhere)."""
    signature = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, arguments):
        double = ir.DoubleType()
        function_type = ir.FunctionType(double, [double, double, double])
        function = cgutils.get_or_insert_function(builder.module, function_type, "llvm.fma.f64")
        return builder.call(function, arguments)

    return signature, codegen


@callee
def two_product(a, b):
    """(p, e) with p = fl(a b) and p + e = a b exactly (for |a b| well above the subnormals)."""
    p = a * b
    return p, _fused_multiply_add(a, b, -p)


@intrinsic
def _bits_of(typingctx, value):
    """The bits of a float64 as an int64."""
    signature = types.int64(types.float64)

    def codegen(context, builder, signature, arguments):
        return builder.bitcast(arguments[0], ir.IntType(64))

    return signature, codegen


@intrinsic
def _float_of(typingctx, bits):
    """The float64 whose bits are those of an int64."""
    signature = types.float64(types.int64)

    def codegen(context, builder, signature, arguments):
        return builder.bitcast(arguments[0], ir.DoubleType())

    return signature, codegen


# log, log1p and exp in plain arithmetic (fdlibm's algorithms, within 0.9 ulp; the C library's are
# within 0.52), without branches or calls: a loop over many elements that calls them compiles to
# SIMD instructions, where one that calls the C library's functions runs one element at a time.
_LN2_HI = 6.93147180369123816490e-01  # its last 32 bits zero: k * _LN2_HI is exact for |k| < 2^20
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
# Added to a number of magnitude below 2^51, rounds it to an integer, held in its low bits.
_ROUND = 6755399441055744.0  # 1.5 * 2^52
_ROUND_BITS = 0x4338000000000000
# fdlibm's minimax coefficients of log(1 + f) = 2s + s R(s^2), s = f / (2 + f), and of exp.
_LOG_R = (
    6.666666666666735130e-01,
    3.999999999940941908e-01,
    2.857142874366239149e-01,
    2.222219843214978396e-01,
    1.818357216161805012e-01,
    1.531383769920937332e-01,
    1.479819860511658591e-01,
)
_EXP_P = (
    1.66666666666666019037e-01,
    -2.77777777770155933842e-03,
    6.61375632143793436117e-05,
    -1.65339022054652515390e-06,
    4.13813679705723846039e-08,
)


@callee
def _log_reduced(k, f, c):
    """k log 2 + log(1 + f) + c for |f| < 0.4143 and a small correction c (fdlibm)."""
    s = f / (2.0 + f)
    z = s * s
    r = z * (
        _LOG_R[0]
        + z
        * (
            _LOG_R[1]
            + z * (_LOG_R[2] + z * (_LOG_R[3] + z * (_LOG_R[4] + z * (_LOG_R[5] + z * _LOG_R[6]))))
        )
    )
    half_square = 0.5 * f * f
    return k * _LN2_HI - ((half_square - (s * (half_square + r) + (k * _LN2_LO + c))) - f)


@callee
def _split(u):
    """(k, m - 1) with u = 2^k m and m in [0.7071, 1.4142), for a positive normal u."""
    bits = _bits_of(u)
    high = bits >> 32
    mantissa = high & 0x000FFFFF
    up = mantissa >= 0x6A09E  # m / 2 rather than m
    k = (high >> 20) - 1023 + (1 if up else 0)
    reduced = ((mantissa | (0x3FE00000 if up else 0x3FF00000)) << 32) | (bits & 0xFFFFFFFF)
    return float(k), _float_of(reduced) - 1.0


@callee
def simd_log(x):
    """log(x) for a positive finite x (subnormal too), within 0.9 ulp, branch-free."""
    tiny = x < 2.2250738585072014e-308
    k, f = _split(x * 18014398509481984.0 if tiny else x)  # 2^54
    return _log_reduced(k - 54.0 if tiny else k, f, 0.0)


@callee
def simd_log1p(z):
    """log(1 + z) for -1 < z < 2^53, within 0.9 ulp, branch-free."""
    u = 1.0 + z
    k, f = _split(u)
    # The rounding error of u relative to u (fdlibm's correction term), from whichever
    # difference is exact.
    c = ((1.0 - (u - z)) if u >= 2.0 else (z - (u - 1.0))) / u
    near = -0.2929 < z < 0.41422  # 1 + z itself lies in the reduced range: nothing rounded
    return _log_reduced(0.0 if near else k, z if near else f, 0.0 if near else c)


@callee
def simd_exp(v):
    """exp(v) for -708 <= v <= 709.78 (clamped to that range), within 0.9 ulp, branch-free."""
    v = min(max(v, -708.0), 709.78)
    shifted = v * _INV_LN2 + _ROUND
    k = shifted - _ROUND  # v / log 2 rounded to an integer
    high = v - k * _LN2_HI
    low = k * _LN2_LO
    r = high - low
    t = r * r
    c = r - t * (_EXP_P[0] + t * (_EXP_P[1] + t * (_EXP_P[2] + t * (_EXP_P[3] + t * _EXP_P[4]))))
    y = 1.0 - ((low - (r * c) / (2.0 - c)) - high)
    # y 2^(k - 1) 2: k runs from -1021 to 1024, and 2^1024 itself is not a float64.
    return y * _float_of((_bits_of(shifted) - _ROUND_BITS + 1022) << 52) * 2.0


@callee
def mean_offset(a, b, x, y):
    """delta = a - (a + b) x = (a + b) y - b, to a few ulp of delta, with y = 1 - x.

    From x where x <= 1/2 and from y above (the one that is exact). ``a + b`` and its product
    with x are formed without rounding error (their rounding errors are added back), so that
    the difference of the nearly equal a and (a + b) x near the mean keeps its accuracy.
    """
    total, total_error = two_sum(a, b)
    if x <= 0.5:
        product, product_error = two_product(total, x)
        return (a - product) - product_error - total_error * x
    product, product_error = two_product(total, y)
    return (product - b) + product_error + total_error * y


@callee
def log1p_minus(v):
    """v - log(1 + v) for v > -1, to full relative accuracy near 0 (Loader's series)."""
    if abs(v) >= 0.5:
        return v - math.log1p(v)
    ratio = v / (2.0 + v)
    ratio2 = ratio * ratio
    # v - log1p(v) = ratio v - 2 (ratio^3 / 3 + ratio^5 / 5 + ...)
    total = ratio * v
    term = 2.0 * ratio * ratio2
    for j in range(1, 100):
        new_total = total - term / (2 * j + 1)
        if new_total == total:
            break
        total = new_total
        term *= ratio2
    return total


@callee
def deviance(k, offset, mean):
    """k log(k / mean) + mean - k, given offset = k - mean (exact) and mean (rounded).

    Near the mean, from offset: k times the series of :func:`log1p_minus` at v = -offset / k;
    where mean / k = 1 + v < 0.1, 1 + v would lose the digits of a small mean / k, and the log
    is taken of mean / k itself.
    """
    v = -offset / k
    if v > -0.9:
        return k * log1p_minus(v)
    return -offset - k * math.log(mean / k)


@callee
def deviances(a, b, delta, x, y):
    """Loader's deviance of a from (a + b) x plus that of b from (a + b) y, from delta.

    Their sum D is n times minus the log of (x / x0)^x0 (y / y0)^y0, x0 = a / n, n = a + b: the
    Gaussian exponent of the saddle-point form, with z^2 = 2 D in the uniform expansion.
    """
    n = a + b
    return deviance(a, delta, n * x) + deviance(b, -delta, n * y)


@callee
def _large_and_small(big, small, log_x_big, x_small, log_x_small):
    """log(x^a y^b / B(a, b)) with (big, x_big) and (small, x_small) the parameters and their
    variables, small < 15 <= big: big log x_big + small log(big x_small) - log Gamma(small)
    minus log Gamma(big + small) - log Gamma(big) - small log big (Stirling)."""
    correction = (
        (big + small - 0.5) * math.log1p(small / big) - small + stirling_difference(big, small)
    )
    product = big * x_small
    # A subnormal product has lost bits; there the two logs are far from cancelling.
    log_product = math.log(product) if product > 1e-300 else math.log(big) + log_x_small
    return big * log_x_big + small * log_product - math.lgamma(small) + correction


@callee
def log_power_terms(a, b, x, y, log_x, log_y, log_beta, delta):
    """log(x^a y^b / B(a, b)) with y = 1 - x and delta = mean_offset(a, b, x, y).

    Symmetric under (a, x) <-> (b, y). Written so that no two large terms cancel: for large a
    and b, a log x + b log y and log B(a, b) are each large; the saddle-point form (Loader's
    deviances from delta and Stirling errors) keeps full relative accuracy, within a few ulp of
    the log's magnitude when the function is representable.
    """
    small = min(a, b)
    big = max(a, b)
    if big < STIRLING_MIN:
        return a * log_x + b * log_y - log_beta
    if small < STIRLING_MIN:
        if a >= b:
            return _large_and_small(a, b, log_x, y, log_y)
        return _large_and_small(b, a, log_y, x, log_x)
    n = a + b
    return (
        -deviances(a, b, delta, x, y)
        + 0.5 * math.log(a * (b / n))
        - HALF_LOG_2PI
        + stirling_error(n)
        - stirling_error(a)
        - stirling_error(b)
    )


@callee
def _power_of_two(v):
    """v >= 1 rounded down to a power of two."""
    return 2.0 ** math.floor(math.log2(v))


@callee
def fraction_scales(p, q):
    """The scales (lam, sig, nu) of the continued fraction of I_t(p, q) (``_fraction``): 1 unless
    p or q is above SCALE_FROM, else lam about p / sqrt(q), sig about q / p and nu about
    q / sqrt(p), powers of two (and at least 1)."""
    lam = sig = nu = 1.0
    if p > SCALE_FROM:
        lam = _power_of_two(max(p / math.sqrt(max(q, 1.0)), 1.0))
    if q > SCALE_FROM:
        nu = _power_of_two(max(q / math.sqrt(max(p, 1.0)), 1.0))
    big = max(p, 1.0)
    if q > SCALE_FROM * big:
        sig = _power_of_two(q / big)
    return lam, sig, nu


fraction_start = callee(_fraction.fraction_start)
fraction_variables = callee(_fraction.fraction_variables)
fraction_coefficients = callee(_fraction.fraction_coefficients)
fraction_step = callee(_fraction.fraction_step)


@callee
def derivative_step(
    previous, previous_derivative, current, derivative, beta, alpha, beta_d, alpha_d
):
    """One step of the derivative of the recurrence A_k = beta A_{k-1} + alpha A_{k-2}.

    From (A'_{k-2}, A'_{k-1}) to (A'_{k-1}, A'_k), A'_k = beta' A_{k-1} + beta A'_{k-1}
    + alpha' A_{k-2} + alpha A'_{k-2}; ``previous`` is A_{k-2}, ``current`` A_{k-1} (B likewise).
    Both CPU kernels step their derivatives with it.
    """
    return derivative, (
        beta_d * current + beta * derivative + alpha_d * previous + alpha * previous_derivative
    )


@callee
def convergent_derivatives(num_prev, num, den_prev, den, derivatives, step):
    """The p and q derivatives of (A_{k-1}, A_k, B_{k-1}, B_k) after step k.

    ``derivatives`` holds those before it, (A'_{k-2}, A'_{k-1}, B'_{k-2}, B'_{k-1}) in p then
    in q, and (num_prev, num, den_prev, den) the convergents (A_{k-2}, A_{k-1}, B_{k-2},
    B_{k-1}); ``step`` is ``fraction_step``'s (beta, alpha, beta_p, alpha_p, beta_q, alpha_q).
    """
    beta, alpha, beta_p, alpha_p, beta_q, alpha_q = step
    num_prev_p, num_p, den_prev_p, den_p, num_prev_q, num_q, den_prev_q, den_q = derivatives
    num_prev_p, num_p = derivative_step(
        num_prev, num_prev_p, num, num_p, beta, alpha, beta_p, alpha_p
    )
    den_prev_p, den_p = derivative_step(
        den_prev, den_prev_p, den, den_p, beta, alpha, beta_p, alpha_p
    )
    num_prev_q, num_q = derivative_step(
        num_prev, num_prev_q, num, num_q, beta, alpha, beta_q, alpha_q
    )
    den_prev_q, den_q = derivative_step(
        den_prev, den_prev_q, den, den_q, beta, alpha, beta_q, alpha_q
    )
    return num_prev_p, num_p, den_prev_p, den_p, num_prev_q, num_q, den_prev_q, den_q


@callee
def fraction_gradients(
    tail, p, q, delta, num, den, num_p, den_p, num_q, den_q, log_t, log_u, psi, lam, nu
):
    """d/dp and d/dq of ``tail`` = I_t(p, q) = t^p u^q / (p B(p, q)) * B_n / A_n, u = 1 - t.

    (num, den) are the fraction's last convergents (A_n, B_n), their p (times ``lam``) and q
    (times ``nu``: the fraction's scales) derivatives beside them, ``psi`` = (psi(p), psi(q),
    psi(p + q)), delta = p - (p + q) t: d log K = dA_n / A_n - dB_n / B_n.
    """
    psi_p, psi_q, psi_pq = psi
    log_k_p = (num_p / num - den_p / den) / lam
    log_k_q = (num_q / num - den_q / den) / nu
    ratio_p = log_ratio_to_mean(p, q, delta, log_t, psi_p, psi_pq)
    ratio_q = log_ratio_to_mean(q, p, -delta, log_u, psi_q, psi_pq)
    return tail * (ratio_p - 1.0 / p - log_k_p), tail * (ratio_q - log_k_q)


@callee
def beta_density(x, y, log_x, log_y, log_power, power, huge):
    """The Beta density x^(a-1) y^(b-1) / B(a, b) inside (0, 1), capped at ``huge``.

    From the prefactor ``power`` = x^a y^b / B(a, b) (``log_power`` its log) where it is a normal
    number, else in log space.
    """
    if log_power > LOG_SUBNORMAL:
        return min(power / (x * y), huge)
    return min(math.exp(log_power - log_x - log_y), huge)


@callee
def times_value(value, log_value, factor):
    """value * factor, value = exp(log_value) > 0; in log space where value is subnormal."""
    if log_value > LOG_SUBNORMAL or factor == 0.0:
        return value * factor
    return math.copysign(math.exp(log_value + math.log(abs(factor))), factor)


@callee
def fraction_result(power, log_power, p, num, den, log_grad_p, log_grad_q):
    """(I, dI/dp, dI/dq) = P / (p K) (1, g_p, g_q), K = num / den, g the log derivatives.

    For a scaled fraction (num / den = lam K, ``fraction_scales``) ``p`` is p / lam.

    Where P is a normal number, as products with a single rounding at the end (so that a result
    below the smallest normal number is still the correctly rounded subnormal), and without a
    logarithm; below, in log space.
    """
    if log_power > LOG_SUBNORMAL:
        factor = den / num / p
        return power * factor, power * (factor * log_grad_p), power * (factor * log_grad_q)
    log_value = log_power - math.log(p) + math.log(den / num)
    value = math.exp(log_value)
    return (
        value,
        times_value(value, log_value, log_grad_p),
        times_value(value, log_value, log_grad_q),
    )


@callee
def negligible(log_power, p, q, want_grad):
    """Whether I_t(p, q) = P / p * 2F1(p + q, 1; p + 1; t), P = exp(log_power), is below half the
    smallest subnormal: the series 2F1 is at most p + q + 2 below the mode. (p < p + q + 2:
    never where log_power >= LOG_ZERO, which spares the logarithms almost always.) With
    ``want_grad``, whether its p and q derivatives are too (NEGLIGIBLE_GRADIENT_MARGIN)."""
    if not log_power < LOG_ZERO:
        return False
    bound = log_power - math.log(p) + math.log(p + q + 2.0)
    if want_grad:
        bound += NEGLIGIBLE_GRADIENT_MARGIN - math.log(min(p, 1.0)) - math.log(min(q, 1.0))
    return bound < LOG_ZERO


@callee
def end_point_density(a, b, x, log_beta, tiny, huge):
    """The density at x = 0 or 1: where it is infinite, at the nearest normal number ``tiny``
    away, capped at ``huge``, so that gradients stay finite."""
    log_x = math.log(max(x, tiny))
    log_y = math.log(max(1.0 - x, tiny))
    return min(math.exp((a - 1.0) * log_x + (b - 1.0) * log_y - log_beta), huge)


@callee
def _small_parameter_terms(p, q, log_beta, psi_p, psi_q, psi_pq, want_grad):
    """log(p B(p, q)), psi(1 + p), psi(p + q) - psi(q) and log(p B(p, q)) + p log q: what the
    series needs to keep full accuracy in 1 - I_t(p, q) as p -> 0 (where I_t is 1 minus a
    number of order p). From p = 0.1 up the plain formulas lose less than a digit, and cost a
    fraction. The last (for p < 1 and q >= 15, where the series uses it; else NaN) is of order
    p where the others are of order p log q: the series' log, p log(q t) minus it, keeps its
    digits for huge q."""
    log_p_beta_q = NAN
    if p < 1.0 and q >= STIRLING_MIN:
        log_p_beta_q = log_gamma_1p(p) - log_gamma_difference_over_power(q, p)
    if p >= 0.1:
        log_p_beta = log_beta + math.log(p)
        if not want_grad:
            return log_p_beta, 0.0, 0.0, log_p_beta_q
        psi_diff = psi_pq - psi_q
        if q >= DIGAMMA_MIN:  # both large where p << q: their logs cancel
            psi_diff = math.log1p(p / q) + digamma_minus_log(p + q) - digamma_minus_log(q)
        return log_p_beta, psi_p + 1.0 / p, psi_diff, log_p_beta_q
    log_p_beta = log_gamma_1p(p) - log_gamma_difference(q, p)
    if not want_grad:
        return log_p_beta, 0.0, 0.0, log_p_beta_q
    return log_p_beta, digamma(1.0 + p), digamma_difference(q, p), log_p_beta_q


@callee
def parameter_terms(a, b, want_grad):
    """What all x share for one (a, b): log B(a, b), psi(a), psi(b), psi(a + b) (the psi 0
    without ``want_grad``). All NaN for parameters that are not positive finite numbers."""
    if not (a > 0.0 and b > 0.0) or math.isinf(a) or math.isinf(b) or math.isinf(a + b):
        return NAN, NAN, NAN, NAN
    log_beta = log_beta_function(a, b)
    if not want_grad:
        return log_beta, 0.0, 0.0, 0.0
    return log_beta, digamma(a), digamma(b), digamma(a + b)


@callee
def series_terms(a, b, want_grad):
    """``parameter_terms`` and what the series needs besides, with p = a and with p = b
    (``_small_parameter_terms``): (..., log(a B), psi(1 + a), psi(a + b) - psi(b),
    log(a B) + a log b, log(b B), psi(1 + b), psi(a + b) - psi(a), log(b B) + b log a)."""
    log_beta, psi_a, psi_b, psi_ab = parameter_terms(a, b, want_grad)
    if math.isnan(log_beta):
        return (NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN)
    side_a = _small_parameter_terms(a, b, log_beta, psi_a, psi_b, psi_ab, want_grad)
    side_b = _small_parameter_terms(b, a, log_beta, psi_b, psi_a, psi_ab, want_grad)
    return (log_beta, psi_a, psi_b, psi_ab) + side_a + side_b  # noqa: RUF005 (numba)
