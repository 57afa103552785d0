"""Scalar mathematics shared by the CPU kernels of the incomplete beta function (numba).

Pure functions of floats, compiled with the package's one numba decorator: the log beta function
and digammas that a run of elements with the same (a, b) shares, the prefactor
``x^a (1-x)^b / B(a, b)`` in log space (Loader's saddle-point form for large a and b), the
coefficients of the continued fraction and their a, b derivatives, one step of the differentiated
recurrence of its convergents, the gradients from its last convergents, and the Beta density.
The per-element kernel (``_cpu_elementwise``) and the kernel for shared parameters
(``_cpu_shared``) both build on these, so each formula is written once.
"""

from __future__ import annotations

import math

from batchshaping._runtime.jit import jit

NAN = math.nan
# Past this the prefactor underflows: the function is 0 (or 1) to working precision.
LOG_UNDERFLOW = -745.0
MAX_TERMS = 100_000
# The continued fraction's convergents are rescaled when B_n leaves this range.
RESCALE_LOW, RESCALE_HIGH = 1e-100, 1e100
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# Above this, the Stirling series is exact to float64 and lgamma differences cancel badly.
STIRLING_MIN = 15.0


@jit
def digamma(x: float) -> float:
    """psi(x) for x > 0: recurrence up to x >= 6, then the asymptotic series."""
    result = 0.0
    while x < 6.0:
        result -= 1.0 / x
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv2 * (
        1.0 / 12.0
        - inv2
        * (
            1.0 / 120.0
            - inv2
            * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0 - inv2 * (691.0 / 32760.0))))
        )
    )
    return result + math.log(x) - 0.5 * inv - series


@jit
def stirling_error(z: float) -> float:
    """lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2), for z >= 15."""
    inv = 1.0 / z
    inv2 = inv * inv
    return inv * (
        1.0 / 12.0
        - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 / 1188.0)))
    )


@jit
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


@jit
def deviance(k: float, mean: float) -> float:
    """k log(k / mean) + mean - k, accurate when k is close to mean (Loader, 2000)."""
    if abs(k - mean) < 0.1 * (k + mean):
        ratio = (k - mean) / (k + mean)
        total = (k - mean) * ratio
        term = 2.0 * k * ratio
        ratio2 = ratio * ratio
        for j in range(1, 1000):
            term *= ratio2
            new_total = total + term / (2 * j + 1)
            if new_total == total:
                break
            total = new_total
        return total
    return k * math.log(k / mean) + mean - k


@jit
def log_power_terms(a, b, x, y, log_x, log_y, log_beta):
    """log(x^a y^b / B(a, b)) with y = 1 - x; symmetric under (a, x) <-> (b, y).

    For large a and b, the terms a log x + b log y and log B(a, b) are each large and cancel; the
    saddle-point form (Loader's deviances and Stirling errors) keeps full relative accuracy.
    """
    if min(a, b) < STIRLING_MIN:
        return a * log_x + b * log_y - log_beta
    n = a + b
    return (
        -deviance(a, n * x)
        - deviance(b, n * y)
        + 0.5 * math.log(a * b / n)
        - HALF_LOG_2PI
        + stirling_error(n)
        - stirling_error(a)
        - stirling_error(b)
    )


@jit
def fraction_coefficients(a, b, m):
    """The factors of x in d_{2m+1} and d_{2m+2}, and their a and b derivatives."""
    p = a + m
    q = a + b + m
    inv_r0 = 1.0 / (a + 2 * m)
    inv_r1 = 1.0 / (a + 2 * m + 1)
    inv_r2 = 1.0 / (a + 2 * m + 2)
    inv_q = 1.0 / q
    odd = -p * q * inv_r0 * inv_r1
    odd_a = odd * (1.0 / p + inv_q - inv_r0 - inv_r1)
    odd_b = odd * inv_q
    even_b = (m + 1) * inv_r1 * inv_r2
    even = (b - (m + 1)) * even_b
    even_a = -even * (inv_r1 + inv_r2)
    return odd, odd_a, odd_b, even, even_a, even_b


@jit
def derivative_step(previous, previous_derivative, derivative, d, d_derivative):
    """One step of the derivative of the convergents' recurrence A_n = A_{n-1} + d_n A_{n-2}.

    From (A'_{n-2}, A'_{n-1}) to (A'_{n-1}, A'_n), A'_n = A'_{n-1} + d_n' A_{n-2} + d_n A'_{n-2};
    ``previous`` is A_{n-2} (B likewise). Both CPU kernels step their derivatives with it.
    """
    return derivative, derivative + d_derivative * previous + d * previous_derivative


@jit
def fraction_gradients(tail, p, num, den, num_p, den_p, num_q, den_q, log_t, log_u, psi):
    """d/dp and d/dq of ``tail`` = I_t(p, q) = t^p u^q / (p B(p, q)) * B_n / A_n, u = 1 - t.

    (num, den) are the fraction's last convergents (A_n, B_n), their p and q derivatives beside
    them, ``psi`` = (psi(p), psi(q), psi(p + q)): d log K = dA_n / A_n - dB_n / B_n.
    """
    psi_p, psi_q, psi_pq = psi
    log_k_p = num_p / num - den_p / den
    log_k_q = num_q / num - den_q / den
    grad_p = tail * (log_t - 1.0 / p - psi_p + psi_pq - log_k_p)
    grad_q = tail * (log_u - psi_q + psi_pq - log_k_q)
    return grad_p, grad_q


@jit
def beta_density(x, y, log_x, log_y, log_power, power, huge):
    """The Beta density x^(a-1) y^(b-1) / B(a, b) inside (0, 1), capped at ``huge``.

    From the prefactor ``power`` = x^a y^b / B(a, b) (``log_power`` its log) where it is a normal
    number, else in log space.
    """
    if power > 0.0:
        return min(power / (x * y), huge)
    return min(math.exp(log_power - log_x - log_y), huge)


@jit
def end_point_density(a, b, x, log_beta, tiny, huge):
    """The density at x = 0 or 1: where it is infinite, at the nearest normal number ``tiny``
    away, capped at ``huge``, so that gradients stay finite."""
    log_x = math.log(max(x, tiny))
    log_y = math.log(max(1.0 - x, tiny))
    return min(math.exp((a - 1.0) * log_x + (b - 1.0) * log_y - log_beta), huge)


@jit
def parameter_terms(a, b, want_grad):
    """log B(a, b) and, for the gradients, psi(a), psi(b), psi(a + b): shared by all x."""
    if not (a > 0.0 and b > 0.0) or math.isinf(a) or math.isinf(b):
        return NAN, NAN, NAN, NAN
    log_beta = log_beta_function(a, b)
    if not want_grad:
        return log_beta, 0.0, 0.0, 0.0
    return log_beta, digamma(a), digamma(b), digamma(a + b)
