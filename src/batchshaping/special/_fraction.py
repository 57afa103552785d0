"""The coefficients of the continued fraction of I_t(p, q), in plain arithmetic.

Written once for every kernel: numba compiles these functions for the CPU kernels (``_scalar``),
Triton for its kernel, and the portable kernel runs them on tensors. Only arithmetic on their
arguments, so that floats, tensors and Triton blocks alike go through.
"""

from __future__ import annotations


def fraction_variables(t, s, lam, sig):
    """What ``fraction_step`` takes of an element besides t and s: sig t, (sig t)^2 and lam s."""
    tau = sig * t
    return tau, tau * tau, lam * s


def fraction_start(p, t, s, delta, lam, nu):
    """lam A_0 of the odd part, A_0 = 1 + d_1 = (1 + delta) / (p + 1) (B_0 = 1), its p derivative
    times lam and its q derivative times nu (delta = p - (p + q) t, s = 1 - t; ``lam``, ``nu``
    as in ``fraction_coefficients``)."""
    inv = 1.0 / (p + 1.0)
    scaled_inv = lam * inv
    start = (1.0 + delta) * scaled_inv
    return start, (lam * s - start) * scaled_inv, -t * (nu * scaled_inv)


def fraction_coefficients(p, q, k, lam, ratio, nu):
    """The coefficients of step k >= 1 of the odd part of the continued fraction of I_t(p, q),
    scaled.

    Numerical Recipes' fraction K = 1 + d_1 / (1 + d_2 / (1 + ...)), with
    d_{2m+1} = -(p + m)(p + q + m) t / ((p + 2m)(p + 2m + 1)) and
    d_{2m+2} = (m + 1)(q - m - 1) t / ((p + 2m + 1)(p + 2m + 2)), has the odd part
    K = (1 + d_1) + alpha_1 / (beta_1 + alpha_2 / (beta_2 + ...)) with the same values at every
    other convergent, alpha_k = -d_{2k-1} d_{2k} = e t^2 and
    beta_k = 1 + d_{2k} + d_{2k+1} = even t + c0 + c1 (delta + k s). The sum 1 + d_{2k+1}, which
    cancels near the mean, is written exactly with delta (and is positive below the mode).

    Scaled: what is evaluated is lam K, the fraction with partial denominators lam beta_k and
    numerators lam^2 alpha_k (an equivalence transformation: every convergent times lam), and
    with sig t in place of t in the terms of ``even`` and ``e`` (``fraction_step``); ``ratio``
    is lam / sig. Unscaled, the coefficients underflow where p is above about 1e150 (alpha_k is
    of order q k / p^2 there, beta_k of order k / p), and overflow where q is above about 1e154
    with t below 1 / q (e of order q^2, t^2 subnormal): the values were wrong there, finite
    and silent. With lam about p / sqrt(q) where p is huge and sig about q / p where q is
    (``fraction_scales``: powers of two, 1 below SCALE_FROM), every coefficient and step is of
    order 1 to k. The scales are constants: derivatives are scaled alike, log derivatives not.
    The p derivatives are scaled by lam once more, and the q derivatives by nu (about
    q / sqrt(p) where q is huge): they are small beside what they differentiate (of order 1 / p,
    1 / q), and would underflow, or vanish beside the stopping rule's absolute floor, at huge
    parameters (d/db was 5 to 18% off at a = 4e22, b = 2e272 for that reason);
    d log K / dp is then (dA / A - dB / B) / lam, d log K / dq the same over nu.

    Returns (c0, c1, even, e) and their p derivatives at fixed delta, then the q derivatives
    of even and e: (c0_p, c1_p, even_p, even_q, e_p, e_q), each times its scale (c: lam,
    even: lam / sig, e: (lam / sig)^2; the p derivatives times lam and the q derivatives times
    nu besides). q enters c0 and c1
    only through delta (d delta / dp = s, d delta / dq = -t).
    """
    m = k - 1
    inv_r0 = 1.0 / (p + 2 * m)
    inv_r1 = 1.0 / (p + 2 * m + 1)
    inv_r2 = 1.0 / (p + 2 * m + 2)
    inv_r3 = 1.0 / (p + 2 * m + 3)
    inv_q = 1.0 / (p + q + m)
    scaled_r1 = ratio * inv_r1
    scaled_r2 = lam * inv_r2
    scaled_r3 = lam * inv_r3
    # Grouped so that nothing overflows or underflows for p up to the largest float / 8.
    odd = -((p + m) * inv_r0) * ((p + q + m) * scaled_r1)
    odd_p = odd * (lam * (1.0 / (p + m) + inv_q - inv_r0 - inv_r1))
    odd_q = odd * (nu * inv_q)
    even_unit = (k * scaled_r1) * inv_r2  # d even / dq
    even = (q - k) * even_unit
    even_q = even_unit * nu
    even_p = -even * (lam * (inv_r1 + inv_r2))
    e = -odd * even
    e_p = -(odd_p * even + odd * even_p)
    e_q = -(odd_q * even + odd * even_q)
    c0 = ((2 * k + 1) * (p * inv_r3) + (k * (3 * k + 2)) * inv_r3) * scaled_r2
    c1 = ((p + k) * inv_r3) * scaled_r2
    growth = 2.0 + inv_r2  # (2 p + 4 k + 1) / (p + 2 m + 2)
    c0_p = ((2 * k + 1) * scaled_r2 - c0 * growth) * scaled_r3
    c1_p = (scaled_r2 - c1 * growth) * scaled_r3
    return c0, c1, even, e, c0_p, c1_p, even_p, even_q, e_p, e_q


def fraction_step(t, s, tau, tau2, delta, k, coefficients, sig, lam_s, nu):
    """lam beta_k, lam^2 alpha_k of step k and their p (times lam) and q (times nu)
    derivatives, from ``fraction_coefficients``.

    ``tau`` is sig * t, ``tau2`` tau * tau, ``lam_s`` lam * s. Returns (beta, alpha, beta_p,
    alpha_p, beta_q, alpha_q), scaled.
    """
    c0, c1, even, e, c0_p, c1_p, even_p, even_q, e_p, e_q = coefficients
    shifted = delta + k * s
    beta = even * tau + c0 + c1 * shifted
    beta_p = even_p * tau + c0_p + c1_p * shifted + c1 * lam_s
    beta_q = (even_q * sig - c1 * nu) * t
    return beta, e * tau2, beta_p, e_p * tau2, beta_q, e_q * tau2
