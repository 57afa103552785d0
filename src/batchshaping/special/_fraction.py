"""The coefficients of the continued fraction of I_t(p, q), in plain arithmetic.

Written once for both kinds of kernel: numba compiles these functions for the CPU kernels
(``_scalar``), and the portable kernel runs them on tensors. Only arithmetic on their arguments,
so that floats and tensors alike go through.
"""

from __future__ import annotations


def fraction_coefficients(p, q, k):
    """The coefficients of step k >= 1 of the odd part of the continued fraction of I_t(p, q).

    Numerical Recipes' fraction K = 1 + d_1 / (1 + d_2 / (1 + ...)), with
    d_{2m+1} = -(p + m)(p + q + m) t / ((p + 2m)(p + 2m + 1)) and
    d_{2m+2} = (m + 1)(q - m - 1) t / ((p + 2m + 1)(p + 2m + 2)), has the odd part
    K = (1 + d_1) + alpha_1 / (beta_1 + alpha_2 / (beta_2 + ...)) with the same values at every
    other convergent, alpha_k = -d_{2k-1} d_{2k} = e t^2 and
    beta_k = 1 + d_{2k} + d_{2k+1} = even t + c0 + c1 (delta + k s). The sum 1 + d_{2k+1}, which
    cancels near the mean, is written exactly with delta (and is positive below the mode).

    Returns (c0, c1, even, e) and their p derivatives at fixed delta, then the q derivatives
    of even and e: (c0_p, c1_p, even_p, even_q, e_p, e_q). q enters c0 and c1 only through
    delta (d delta / dp = s, d delta / dq = -t).
    """
    m = k - 1
    inv_r0 = 1.0 / (p + 2 * m)
    inv_r1 = 1.0 / (p + 2 * m + 1)
    inv_r2 = 1.0 / (p + 2 * m + 2)
    inv_r3 = 1.0 / (p + 2 * m + 3)
    inv_q = 1.0 / (p + q + m)
    # Grouped so that nothing overflows or underflows for p up to 1e300.
    odd = -((p + m) * inv_r0) * ((p + q + m) * inv_r1)
    odd_p = odd * (1.0 / (p + m) + inv_q - inv_r0 - inv_r1)
    odd_q = odd * inv_q
    even_q = (k * inv_r1) * inv_r2
    even = (q - k) * even_q
    even_p = -even * (inv_r1 + inv_r2)
    e = -odd * even
    e_p = -(odd_p * even + odd * even_p)
    e_q = -(odd_q * even + odd * even_q)
    c0 = ((p * (2 * k + 1) + k * (3 * k + 2)) * inv_r2) * inv_r3
    c1 = ((p + k) * inv_r2) * inv_r3
    growth = 2.0 * p + 4 * k + 1
    c0_p = (((2 * k + 1) - c0 * growth) * inv_r2) * inv_r3
    c1_p = ((1.0 - c1 * growth) * inv_r2) * inv_r3
    return c0, c1, even, e, c0_p, c1_p, even_p, even_q, e_p, e_q


def fraction_step(t, s, t2, delta, k, coefficients):
    """beta_k, alpha_k of step k and their p and q derivatives, from ``fraction_coefficients``.

    ``t2`` is t * t. Returns (beta, alpha, beta_p, alpha_p, beta_q, alpha_q).
    """
    c0, c1, even, e, c0_p, c1_p, even_p, even_q, e_p, e_q = coefficients
    shifted = delta + k * s
    beta = even * t + c0 + c1 * shifted
    beta_p = even_p * t + c0_p + c1_p * shifted + c1 * s
    beta_q = (even_q - c1) * t
    return beta, e * t2, beta_p, e_p * t2, beta_q, e_q * t2
