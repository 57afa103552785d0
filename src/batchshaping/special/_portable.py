"""Portable kernel of the incomplete beta function in plain torch operations.

Kernel ``"portable"`` of the registry, for every device. The same mathematics as the per-element
CPU kernel (``_cpu_elementwise``), vectorised: every element runs the power series, the continued
fraction and the uniform asymptotic expansion for a fixed number of terms, and ``torch.where``
picks the right one. A fixed count means no data-dependent control flow, hence no host-device
synchronisation: this is the implementation registered for CUDA and every device but the CPU.
The test suite runs it on the CPU through the same accuracy tests as the CPU kernels.

- the offset delta = a - (a + b) x is formed without rounding error (error-free sums and
  Dekker's products, in separate operations that no compiler fuses), and from it the prefactor
  ``x^a (1-x)^b / B(a, b)`` in one of three forms (small parameters, one large, both large:
  Loader's saddle point), so that no two large terms cancel;
- the series (600 terms, for x <= 0.95 where b x <= 1 or a < 1) gives the log of the result, so
  that ``1 - I`` through the reflection keeps its digits when a parameter is tiny;
- the continued fraction is the odd part of Numerical Recipes' fraction, its partial
  denominators written with delta (120 steps: at most about 90 are needed outside the
  expansion's region, whatever the parameters);
- Temme's uniform asymptotic expansion (``_asymptotic``, 24 terms) where both parameters are at
  least 1000 and x is within four standard deviations of the mean.

Exact wherever a + b is finite; NaN where a + b overflows, and NaN (never a wrong finite value)
for an element whose series or fraction has not converged within its fixed number of terms
(none is known: the test suite covers a and b from the smallest subnormal to the largest
float).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from batchshaping._runtime.shapes import broadcast_shapes
from batchshaping.special import _constants as constants
from batchshaping.special._fraction import (
    fraction_coefficients,
    fraction_start,
    fraction_step,
    fraction_variables,
)

_SERIES_TERMS = 600  # the series runs where x <= 0.95: 0.95^600 < 1e-13 (and b x <= 2)
_FRACTION_STEPS = 120
_EXPANSION_ORDER = 24
# A series whose last term still moves the result by more than this has not converged: NaN
# there. The fraction's convergents (and the derivatives of their log) must settle to _TOLERANCE.
_CONVERGED = 1e-13
_TOLERANCE = 3e-16
_SERIES_BELOW = 1.0  # tails with a first parameter below this take the small-p form
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _polynomial(coefficients, z: Tensor) -> Tensor:
    total = torch.zeros_like(z)
    for coefficient in reversed(coefficients):
        total = total * z + coefficient
    return total


def _stirling_error(z: Tensor) -> Tensor:
    """lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2), for z >= 15."""
    inv = 1.0 / z
    return inv * _polynomial(constants.STIRLING, inv * inv)


def _stirling_difference(z: Tensor, h: Tensor) -> Tensor:
    """_stirling_error(z + h) - _stirling_error(z), z >= 15, to full relative accuracy."""
    ratio = torch.log1p(h / z)
    inv = 1.0 / z
    power = inv
    total = torch.zeros_like(z)
    for k, coefficient in enumerate(constants.STIRLING):
        total = total + coefficient * power * torch.expm1(-(2 * k + 1) * ratio)
        power = power * inv * inv
    return total


def log_beta(a: Tensor, b: Tensor) -> Tensor:
    """log B(a, b) of tensors, without the cancellation of lgamma differences for large a, b."""
    small = torch.minimum(a, b)
    big = torch.maximum(a, b)
    direct = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    big_safe = big.clamp_min(constants.STIRLING_MIN)
    difference = (
        small
        - small * torch.log(big_safe)
        - (big_safe + small - 0.5) * torch.log1p(small / big_safe)
        - _stirling_difference(big_safe, small)
    )
    return torch.where(big < constants.STIRLING_MIN, direct, torch.lgamma(small) + difference)


def _log_gamma_1p(p: Tensor) -> Tensor:
    """log Gamma(1 + p), p >= 0, to full relative accuracy as p -> 0."""
    small = p < 0.2
    p_small = torch.where(small, p, torch.zeros_like(p))
    series = p_small * (
        p_small * _polynomial(constants.LOG_GAMMA_1P, p_small) - constants.EULER_GAMMA
    )
    return torch.where(small, series, torch.lgamma(1.0 + p))


def _shift_up(q: Tensor, to: float, term) -> tuple[Tensor, Tensor]:
    """q shifted up by ones to at least ``to``, and the sum of term(q_k) on the way."""
    total = torch.zeros_like(q)
    for _ in range(math.ceil(to)):
        below = q < to
        total = total + torch.where(below, term(q), torch.zeros_like(q))
        q = torch.where(below, q + 1.0, q)
    return q, total


def _log_gamma_difference(q: Tensor, p: Tensor) -> Tensor:
    """log Gamma(q + p) - log Gamma(q), to within a few ulp of p log(q + p) for small p."""
    # log(v + p) - log(v) where p / v overflows (v subnormal): v + p = p there.
    q, total = _shift_up(
        q,
        constants.STIRLING_MIN,
        lambda v: -torch.where(p / v < 1e300, torch.log1p(p / v), torch.log(p) - torch.log(v)),
    )
    return total + p * torch.log(q) + _log_gamma_difference_over_power(q, p)


def _log_gamma_difference_over_power(q: Tensor, p: Tensor) -> Tensor:
    """log Gamma(q + p) - log Gamma(q) - p log q for q >= 15 (Stirling's series), without the
    p log q that would cancel."""
    return ((q + p - 0.5) * torch.log1p(p / q) - p) + _stirling_difference(q, p)


def _digamma_series(x: Tensor) -> Tensor:
    """psi(x) - log(x) for x >= 10."""
    inv = 1.0 / x
    return -0.5 * inv - _polynomial(constants.DIGAMMA, inv * inv) * inv * inv


def _digamma_minus_log(x: Tensor) -> Tensor:
    large = x >= constants.DIGAMMA_MIN
    safe = torch.where(large, x, torch.full_like(x, constants.DIGAMMA_MIN))
    return torch.where(large, _digamma_series(safe), torch.digamma(x) - torch.log(x))


def _digamma_difference(q: Tensor, p: Tensor) -> Tensor:
    """psi(q + p) - psi(q), to full relative accuracy as p -> 0."""
    q, total = _shift_up(q, constants.DIGAMMA_MIN, lambda v: (p / (v + p)) / v)
    ratio = torch.log1p(p / q)
    inv2 = 1.0 / (q * q)
    power = inv2
    series = torch.zeros_like(q)
    for k, coefficient in enumerate(constants.DIGAMMA):
        series = series + coefficient * power * torch.expm1(-(2 * k + 2) * ratio)
        power = power * inv2
    return total + ratio + p / (2.0 * q * (q + p)) - series


def _log_ratio_to_mean(p, q, delta, log_t, psi_p, psi_pq) -> Tensor:
    """log t - psi(p) + psi(p + q), accurate for large p near the mean (see ``_scalar``)."""
    large = p >= constants.DIGAMMA_MIN
    ratio = -delta / p
    log_ratio = torch.where(
        ratio.abs() < 0.5, torch.log1p(ratio), log_t + torch.log(p + q) - torch.log(p)
    )
    near = log_ratio + _digamma_minus_log(p + q) - _digamma_minus_log(p)
    return torch.where(large, near, log_t - psi_p + psi_pq)


def _two_sum(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    total = a + b
    virtual = total - a
    return total, (a - (total - virtual)) + (b - virtual)


def _split(a: Tensor) -> tuple[Tensor, Tensor]:
    c = 134217729.0 * a
    high = c - (c - a)
    return high, a - high


def _two_product(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    product = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    return product, error


def _mean_offset(a: Tensor, b: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """delta = a - (a + b) x = (a + b) y - b to a few ulp of delta (from x or the exact y)."""
    total, total_error = _two_sum(a, b)
    scale = torch.where(total > 1e290, torch.full_like(total, 2.0**-64), torch.ones_like(total))
    use_x = x <= 0.5
    product, product_error = _two_product(total * scale, torch.where(use_x, x, y))
    product, product_error = product / scale, product_error / scale
    from_x = (a - product) - product_error - total_error * x
    from_y = (product - b) + product_error + total_error * y
    return torch.where(use_x, from_x, from_y)


def _log1p_minus(v: Tensor) -> Tensor:
    """v - log(1 + v) for v > -1, to full relative accuracy near 0."""
    near = v.abs() < 0.5
    v_near = torch.where(near, v, torch.zeros_like(v))
    ratio = v_near / (2.0 + v_near)
    ratio2 = ratio * ratio
    total = ratio * v_near
    term = 2.0 * ratio * ratio2
    for j in range(1, 40):  # ratio^2 <= 1/9: 40 terms reach 1e-38
        total = total - term / (2 * j + 1)
        term = term * ratio2
    return torch.where(near, total, v - torch.log1p(v))


def _deviance(k: Tensor, offset: Tensor, mean: Tensor) -> Tensor:
    """k log(k / mean) + mean - k, offset = k - mean exact (``_scalar.deviance``)."""
    v = -offset / k
    near = v > -0.9
    return torch.where(
        near, k * _log1p_minus(torch.where(near, v, 0.0)), -offset - k * torch.log(mean / k)
    )


def _deviances(a, b, delta, x, y) -> Tensor:
    n = a + b
    return _deviance(a, delta, n * x) + _deviance(b, -delta, n * y)


def _large_and_small(big, small, log_x_big, x_small, log_x_small) -> Tensor:
    correction = (
        (big + small - 0.5) * torch.log1p(small / big) - small + _stirling_difference(big, small)
    )
    product = big * x_small
    log_product = torch.where(product > 1e-300, torch.log(product), torch.log(big) + log_x_small)
    return big * log_x_big + small * log_product - torch.lgamma(small) + correction


def _log_power_terms(a, b, x, y, log_x, log_y, log_beta_ab, delta) -> Tensor:
    """log(x^a y^b / B(a, b)) in the form of ``_scalar.log_power_terms`` that suits a, b."""
    small = torch.minimum(a, b)
    big = torch.maximum(a, b)
    direct = a * log_x + b * log_y - log_beta_ab
    fifteen = torch.full_like(a, constants.STIRLING_MIN)
    a_big = torch.where(big >= constants.STIRLING_MIN, big, fifteen)
    a_is_big = a >= b
    one_large = _large_and_small(
        a_big,
        torch.where(small < constants.STIRLING_MIN, small, torch.ones_like(small)),
        torch.where(a_is_big, log_x, log_y),
        torch.where(a_is_big, y, x),
        torch.where(a_is_big, log_y, log_x),
    )
    both = small >= constants.STIRLING_MIN
    a_l = torch.where(both, a, fifteen)
    b_l = torch.where(both, b, fifteen)
    n = a_l + b_l
    saddle = (
        -_deviances(a_l, b_l, torch.where(both, delta, 0.0), x, y)
        + 0.5 * torch.log(a_l * (b_l / n))
        - constants.HALF_LOG_2PI
        + _stirling_error(n)
        - _stirling_error(a_l)
        - _stirling_error(b_l)
    )
    return torch.where(big < constants.STIRLING_MIN, direct, torch.where(both, saddle, one_large))


def _times_value(value: Tensor, log_value: Tensor, factor: Tensor) -> Tensor:
    """value * factor, in log space where value is subnormal."""
    logged = torch.copysign(torch.exp(log_value + torch.log(factor.abs())), factor)
    return torch.where(
        (log_value > constants.LOG_SUBNORMAL) | (factor == 0), value * factor, logged
    )


def _series(p, q, t, log_t, log_s, delta, log_power, sides, grad: bool):
    """log I_t(p, q) by the power series, and d log I / dp, dq (see the CPU kernel)."""
    log_p_beta, psi_1p, psi_diff, psi_p, _, psi_pq, log_p_beta_q = sides
    coef = torch.ones_like(t)
    coef_q = torch.zeros_like(t)
    total = torch.zeros_like(t)
    total_p = torch.zeros_like(t)
    total_q = torch.zeros_like(t)
    term = total
    for n in range(1, _SERIES_TERMS):
        step = t / n
        factor = (n - q) * step
        if grad:
            coef_q = coef_q * factor - coef * step
        coef = coef * factor
        inv = 1.0 / (p + n)
        term = coef * inv
        total = total + term
        if grad:
            total_p = total_p - term * inv
            total_q = total_q + coef_q * inv
    small = p < _SERIES_BELOW
    log_scaled = torch.log1p(p * total)
    # For q >= 15 p log(q t) - (log(p B) + p log q): each of order p, not p log q.
    product = q * t
    log_product = torch.where(product > 1e-300, torch.log(product), torch.log(q) + log_t)
    small_log = torch.where(
        q >= constants.STIRLING_MIN, p * log_product - log_p_beta_q, p * log_t - log_p_beta
    )
    log_value = torch.where(small, small_log, log_power - q * log_s - torch.log(p)) + log_scaled
    # One product below VANISHING_P (see the constant); computed everywhere: no host sync.
    tiny_log = p * (log_t + constants.EULER_GAMMA + torch.digamma(q) + total)
    log_value = torch.where(p < constants.VANISHING_P, tiny_log, log_value)
    converged = term.abs() <= _CONVERGED * (1.0 / p + total).abs()
    # As in the CPU kernel: a product where P is normal (for p >= 1).
    product = torch.exp(log_power) * torch.exp(-q * log_s) * (1.0 / p + total)
    value = torch.where(
        small | (log_power <= constants.LOG_SUBNORMAL), torch.exp(log_value), product
    )
    if not grad:
        return value, log_value, None, None, converged
    scaled = 1.0 + p * total
    log_grad_p = (
        torch.where(
            small,
            log_t - psi_1p + psi_pq,
            _log_ratio_to_mean(p, q, delta, log_t, psi_p, psi_pq) - 1.0 / p,
        )
        + (total + p * total_p) / scaled
    )
    log_grad_q = psi_diff + p * total_q / scaled
    return value, log_value, log_grad_p, log_grad_q, converged


def _power_of_two(v: Tensor) -> Tensor:
    """v >= 1 rounded down to a power of two."""
    return torch.exp2(torch.floor(torch.log2(v)))


def _scale(condition: Tensor, ratio: Tensor) -> Tensor:
    """A ratio of parameters rounded down to a power of two, at least 1, where ``condition``;
    else 1."""
    one = torch.ones_like(ratio)
    return torch.where(condition, _power_of_two(torch.clamp(ratio, min=1.0)), one)


def _fraction_scales(p: Tensor, q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The scales (lam, sig, nu) of the continued fraction (``_scalar.fraction_scales``): 1
    unless p or q is above SCALE_FROM, else lam about p / sqrt(q), sig about q / p and nu about
    q / sqrt(p)."""
    big_p = torch.clamp(p, min=1.0)
    lam = _scale(p > constants.SCALE_FROM, p / torch.sqrt(torch.clamp(q, min=1.0)))
    sig = _scale(q > constants.SCALE_FROM * big_p, q / big_p)
    nu = _scale(q > constants.SCALE_FROM, q / torch.sqrt(big_p))
    return lam, sig, nu


def _continued_fraction(p, q, t, s, delta, log_t, log_s, log_power, psi, grad: bool):
    """log I_t(p, q) = log(P / (p K)) by the odd part of the fraction, and the gradients.

    The recurrence runs on lam K, with the scales of :func:`_fraction_scales`."""
    lam, sig, nu = _fraction_scales(p, q)
    ratio = lam / sig
    tau, tau2, lam_s = fraction_variables(t, s, lam, sig)
    # lam K, its p derivative times lam and its q derivative times nu
    num, num_p, num_q = fraction_start(p, t, s, delta, lam, nu)
    num_prev, den_prev, den = torch.ones_like(t), torch.zeros_like(t), torch.ones_like(t)
    zeros = torch.zeros_like(t)
    # d/dp then d/dq of (A_{k-1}, A_k, B_{k-1}, B_k)
    derivs = [zeros, num_p, zeros, zeros, zeros, num_q, zeros, zeros]
    # A converged element keeps its convergents: further steps would only add rounding errors.
    done = torch.zeros_like(t, dtype=torch.bool)
    close = done  # whether the last step moved the value by less than _CONVERGED
    log_k_p = log_k_q = torch.full_like(t, math.inf)
    for k in range(1, _FRACTION_STEPS + 1):
        beta, alpha, beta_p, alpha_p, beta_q, alpha_q = fraction_step(
            t,
            s,
            tau,
            tau2,
            delta,
            k,
            fraction_coefficients(p, q, k, lam, ratio, nu),
            sig,
            lam_s,
            nu,
        )
        new_derivs = derivs
        if grad:
            npa, na, dpa, da, npb, nb, dpb, db = derivs
            new_derivs = [
                na,
                beta_p * num + beta * na + alpha_p * num_prev + alpha * npa,
                da,
                beta_p * den + beta * da + alpha_p * den_prev + alpha * dpa,
                nb,
                beta_q * num + beta * nb + alpha_q * num_prev + alpha * npb,
                db,
                beta_q * den + beta * db + alpha_q * den_prev + alpha * dpb,
            ]
        new_num = beta * num + alpha * num_prev
        new_den = beta * den + alpha * den_prev
        scale = 1.0 / torch.where(new_den == 0, torch.ones_like(new_den), new_den)
        new_num_prev, new_num = num * scale, new_num * scale
        new_den_prev, new_den = den * scale, new_den * scale
        change = (new_num - num / den).abs()
        converged = change <= _TOLERANCE * new_num.abs()
        close = torch.where(done, close, change <= _CONVERGED * new_num.abs())
        if grad:
            new_derivs = [d * scale for d in new_derivs]
            new_k_p = new_derivs[1] / new_num - new_derivs[3]
            new_k_q = new_derivs[5] / new_num - new_derivs[7]
            converged = (
                converged
                & ((new_k_p - log_k_p).abs() <= _TOLERANCE * (new_k_p.abs() + 1.0))
                & ((new_k_q - log_k_q).abs() <= _TOLERANCE * (new_k_q.abs() + 1.0))
            )
            log_k_p = torch.where(done, log_k_p, new_k_p)
            log_k_q = torch.where(done, log_k_q, new_k_q)
            derivs = [torch.where(done, d, n) for d, n in zip(derivs, new_derivs, strict=True)]
        num_prev = torch.where(done, num_prev, new_num_prev)
        num = torch.where(done, num, new_num)
        den_prev = torch.where(done, den_prev, new_den_prev)
        den = torch.where(done, den, new_den)
        done = done | converged
    # den is 1 after the last rescaling: lam K = num.
    p_scaled = p / lam
    log_value = log_power - torch.log(p_scaled) - torch.log(num)
    # A product of numbers with small relative errors where P is a normal number (the log of
    # each factor would add an error of order ulp(log p)), P times 1 / (p K) as on the CPU: P / p
    # first could be subnormal (2e-7 off at a = 3.1e18, b = 0.09, x = 1 - 2.2e-16).
    value = torch.where(
        log_power > constants.LOG_SUBNORMAL,
        torch.exp(log_power) * (1.0 / num / p_scaled),
        torch.exp(log_value),
    )
    exact = done | close
    if not grad:
        return value, log_value, None, None, exact
    psi_p, psi_q, psi_pq = psi
    log_grad_p = _log_ratio_to_mean(p, q, delta, log_t, psi_p, psi_pq) - 1.0 / p - log_k_p / lam
    log_grad_q = _log_ratio_to_mean(q, p, -delta, log_s, psi_q, psi_pq) - log_k_q / nu
    return value, log_value, log_grad_p, log_grad_q, exact


def _expansion_coefficients(rho: Tensor, order: int, grad: bool):
    """f_j(rho) and d f_j / d rho, j = 0 .. order, of the uniform expansion (``_asymptotic``)."""
    ones, zeros = torch.ones_like(rho), torch.zeros_like(rho)
    omega, omega_rho = [zeros, ones], [zeros, zeros]
    f, f_rho = [ones], [zeros]
    for j in range(1, order + 1):
        tau = zeros
        tau_rho = zeros
        for i in range(1, j):
            tau = tau + omega[i] * omega[j - i]
            if grad:
                tau_rho = tau_rho + 2.0 * omega_rho[i] * omega[j - i]
        cross = zeros
        cross_rho = zeros
        for i in range(2, j + 1):
            cross = cross + omega[i] * omega[j + 2 - i]
            if grad:
                cross_rho = cross_rho + 2.0 * omega_rho[i] * omega[j + 2 - i]
        k = j + 2
        omega.append(((1.0 - rho) * omega[j] - rho * tau - 0.5 * k * cross) / k)
        omega_rho.append(
            (-omega[j] + (1.0 - rho) * omega_rho[j] - tau - rho * tau_rho - 0.5 * k * cross_rho) / k
            if grad
            else zeros
        )
        total, total_rho = zeros, zeros
        for i in range(1, j + 1):
            total = total - omega[i + 1] * f[j - i]
            if grad:
                total_rho = total_rho - omega_rho[i + 1] * f[j - i] - omega[i + 1] * f_rho[j - i]
        f.append(total)
        f_rho.append(total_rho)
    return f, f_rho


def _correction(p, q, z, grad: bool):
    """R*(p, q, z) for p <= q and its p, q (fixed z) and z derivatives (``_asymptotic``)."""
    n = p + q
    rho = p / q
    kappa = torch.sqrt(q / n) / torch.sqrt(p)
    factor = 1.0 / (torch.sqrt(p) * torch.sqrt(q / n))
    v = kappa * z
    kappa2 = kappa * kappa
    f, f_rho = _expansion_coefficients(rho, _EXPANSION_ORDER, grad)
    total = total_p = total_q = total_z = torch.zeros_like(p)
    u_previous, u_current = torch.zeros_like(p), kappa
    uz_previous, uz_current = torch.zeros_like(p), torch.zeros_like(p)
    v_power = torch.ones_like(p)
    for j in range(1, _EXPANSION_ORDER + 1):
        if j > 1:
            v_power_previous = v_power
            v_power = v_power * v
            u_next = kappa * v_power + (j - 1) * kappa2 * u_previous
            uz_next = (j - 1) * kappa2 * (v_power_previous + uz_previous)
            u_previous, u_current = u_current, u_next
            uz_previous, uz_current = uz_current, uz_next
        term = f[j] * u_current
        total = total + term
        if grad:
            total_p = (
                total_p
                + f_rho[j] * u_current / q
                + term * (-(j + 1) / (2.0 * p) - (j - 1) / (2.0 * n))
            )
            total_q = (
                total_q - f_rho[j] * u_current * p / (q * q) + term * ((j - 1) * p / (2.0 * q * n))
            )
            total_z = total_z + f[j] * uz_current
    return factor * total, factor * total_p, factor * total_q, factor * total_z


def _expansion(p, q, t, s, delta, log_t, log_s, log_power, psi, grad: bool):
    """I_t(p, q) and its gradients by Temme's uniform expansion (``_asymptotic``)."""
    deviance = _deviances(p, q, delta, t, s)
    root = torch.sqrt(deviance)
    z = -torch.copysign(math.sqrt(2.0) * root, delta)
    main = 0.5 * torch.erfc(torch.copysign(root, delta))
    power = torch.exp(log_power)
    flip = p > q
    small, large = torch.where(flip, q, p), torch.where(flip, p, q)
    r, r_1, r_2, r_z = _correction(small, large, torch.where(flip, -z, z), grad)
    sign = torch.where(flip, -1.0, 1.0)
    r = sign * r
    value = main - power * r
    if not grad:
        return value, None, None
    r_p = sign * torch.where(flip, r_2, r_1)
    r_q = sign * torch.where(flip, r_1, r_2)
    n = p + q
    at_mean = z == 0
    z_safe = torch.where(at_mean, torch.ones_like(z), z)
    z_p = torch.where(
        at_mean, -torch.sqrt(q / n) / torch.sqrt(p), -torch.log1p(-delta / p) / z_safe
    )
    z_q = torch.where(at_mean, torch.sqrt(p / n) / torch.sqrt(q), -torch.log1p(delta / q) / z_safe)
    psi_p, psi_q, psi_pq = psi
    log_power_p = _log_ratio_to_mean(p, q, delta, log_t, psi_p, psi_pq)
    log_power_q = _log_ratio_to_mean(q, p, -delta, log_s, psi_q, psi_pq)
    density = torch.exp(-deviance) * _INV_SQRT_2PI
    grad_p = density * z_p - power * (log_power_p * r + r_p + r_z * z_p)
    grad_q = density * z_q - power * (log_power_q * r + r_q + r_z * z_q)
    return value, grad_p, grad_q


def _small_parameter_terms(p, q, log_beta_pq, psi_p, psi_q, psi_pq, grad: bool):
    """log(p B(p, q)), psi(1 + p), psi(p + q) - psi(q), to full accuracy as p -> 0, and
    log(p B(p, q)) + p log q where q >= 15 (``_scalar._small_parameter_terms``)."""
    small = p < _SERIES_BELOW
    p_small = torch.where(small, p, torch.full_like(p, 0.5))
    log_gamma_1p = _log_gamma_1p(p_small)
    log_p_beta = torch.where(
        small,
        log_gamma_1p - _log_gamma_difference(q, p_small),
        log_beta_pq + torch.log(p),
    )
    q_large = torch.clamp(q, min=constants.STIRLING_MIN)
    log_p_beta_q = log_gamma_1p - _log_gamma_difference_over_power(q_large, p_small)
    if not grad:
        return log_p_beta, None, None, log_p_beta_q
    psi_1p = torch.where(small, torch.digamma(1.0 + p), psi_p + 1.0 / p)
    large_q = q >= constants.DIGAMMA_MIN
    q_large = torch.where(large_q, q, torch.full_like(q, constants.DIGAMMA_MIN))
    near = torch.log1p(p / q_large) + _digamma_minus_log(p + q_large) - _digamma_minus_log(q_large)
    psi_diff = torch.where(
        small, _digamma_difference(q, p_small), torch.where(large_q, near, psi_pq - psi_q)
    )
    return log_p_beta, psi_1p, psi_diff, log_p_beta_q


def _lower_tail(p, q, t, s, log_t, log_s, delta, log_power, log_beta_pq, psi, grad: bool):
    """(I_t(p, q), 1 - I_t(p, q), d/dp, d/dq) for t below the mode, and where it is exact."""
    psi_p, psi_q, psi_pq = psi if grad else (None, None, None)
    log_p_beta, psi_1p, psi_diff, log_p_beta_q = _small_parameter_terms(
        p, q, log_beta_pq, psi_p, psi_q, psi_pq, grad
    )
    sides = (log_p_beta, psi_1p, psi_diff, psi_p, psi_q, psi_pq, log_p_beta_q)
    use_series = ((q * t <= 1.0) | (p < 1.0)) & (t <= 0.95)
    n = p + q
    use_expansion = (
        ~use_series
        & (torch.minimum(p, q) >= constants.TEMME_MIN)
        & (delta.abs() <= constants.TEMME_Z * torch.sqrt(p) * torch.sqrt(q / n))
    )
    s_value, s_log, s_grad_p, s_grad_q, s_ok = _series(
        p, q, t, log_t, log_s, delta, log_power, sides, grad
    )
    c_value, c_log, c_grad_p, c_grad_q, c_ok = _continued_fraction(
        p, q, t, s, delta, log_t, log_s, log_power, psi, grad
    )
    e_value, e_grad_p, e_grad_q = _expansion(p, q, t, s, delta, log_t, log_s, log_power, psi, grad)
    log_value = torch.where(use_series, s_log, c_log)
    value = torch.where(use_series, s_value, c_value)
    s_complement = torch.where(p < _SERIES_BELOW, -torch.expm1(s_log), 1.0 - s_value)
    complement = torch.where(use_series, s_complement, 1.0 - c_value)
    # Below half the smallest subnormal (see ``_scalar.negligible``): 0, whatever the fraction
    # did with such numbers.
    bound = log_power - torch.log(p) + torch.log(p + q + 2.0)
    negligible = ~use_series & (bound < constants.LOG_ZERO)
    # Where the gradients are asked for, they may be normal numbers where the value is not.
    if grad:
        bound = (
            bound
            + constants.NEGLIGIBLE_GRADIENT_MARGIN
            - torch.log(torch.clamp(p, max=1.0))
            - torch.log(torch.clamp(q, max=1.0))
        )
    negligible_grad = ~use_series & (bound < constants.LOG_ZERO)
    value = torch.where(negligible, 0.0, value)
    complement = torch.where(negligible, 1.0, complement)
    log_value = torch.where(negligible, -math.inf, log_value)
    value = torch.where(use_expansion, e_value, value)
    complement = torch.where(use_expansion, 1.0 - e_value, complement)
    exact = torch.where(use_series, s_ok, use_expansion | c_ok | negligible_grad)
    if not grad:
        return value, complement, None, None, exact
    log_grad_p = torch.where(use_series, s_grad_p, c_grad_p)
    log_grad_q = torch.where(use_series, s_grad_q, c_grad_q)
    # The fraction's log where the value is negligible but the gradients may not be.
    log_value = torch.where(negligible & ~negligible_grad, c_log, log_value)
    grad_p = torch.where(negligible_grad, 0.0, _times_value(value, log_value, log_grad_p))
    grad_q = torch.where(negligible_grad, 0.0, _times_value(value, log_value, log_grad_q))
    grad_p = torch.where(use_expansion, e_grad_p, grad_p)
    grad_q = torch.where(use_expansion, e_grad_q, grad_q)
    return value, complement, grad_p, grad_q, exact


def betainc(
    a: Tensor, b: Tensor, x: Tensor, want_grad_ab: bool, want_grad_x: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(value, dI/da, dI/db, dI/dx) of the broadcast shape; unrequested gradients are empty.

    ``a``, ``b``, ``x``: tensors of one dtype on one device, any device. NaN where a + b
    overflows and wherever a fixed term count would not be exact (see the module docstring).
    """
    out_dtype = x.dtype
    work = torch.float32 if x.device.type == "mps" else torch.float64
    shape = broadcast_shapes(a.shape, b.shape, x.shape)
    a, b, x = (t.to(work).expand(shape) for t in (a, b, x))
    finfo = torch.finfo(out_dtype)

    valid = (a >= 0) & (b >= 0) & (x >= 0) & (x <= 1)
    interior = valid & (x > 0) & (x < 1) & (a > 0) & (b > 0) & (a < math.inf) & (b < math.inf)
    beyond = interior & ((a + b) == math.inf)  # beyond the range the kernel covers
    interior = interior & ~beyond
    # Keep every lane finite: computations on placeholder values are discarded below.
    a_s = torch.where(interior, a, torch.ones_like(a))
    b_s = torch.where(interior, b, torch.ones_like(b))
    x_s = torch.where(interior, x, torch.full_like(x, 0.5))
    y_s = 1.0 - x_s
    log_x, log_y = torch.log(x_s), torch.log1p(-x_s)
    log_beta_ab = log_beta(a_s, b_s)
    delta = _mean_offset(a_s, b_s, x_s, y_s)
    log_power = _log_power_terms(a_s, b_s, x_s, y_s, log_x, log_y, log_beta_ab, delta)

    swap = delta < 2.0 * x_s - 1.0  # x (a + b + 2) > a + 1, from the exact delta
    p = torch.where(swap, b_s, a_s)
    q = torch.where(swap, a_s, b_s)
    t = torch.where(swap, y_s, x_s)
    s = torch.where(swap, x_s, y_s)
    log_t = torch.where(swap, log_y, log_x)
    log_s = torch.where(swap, log_x, log_y)
    delta_t = torch.where(swap, -delta, delta)
    psi = None
    if want_grad_ab:
        psi_pq = torch.digamma(p + q)
        psi = (torch.digamma(p), torch.digamma(q), psi_pq)
    lower, upper, g_p, g_q, exact = _lower_tail(
        p, q, t, s, log_t, log_s, delta_t, log_power, log_beta_ab, psi, want_grad_ab
    )
    value = torch.where(swap, upper, lower).clamp(0.0, 1.0)

    degenerate_one = (x == 1) | ((x > 0) & ((a == 0) | (b == math.inf)))
    value = torch.where(interior, value, degenerate_one.to(work))
    nan = torch.full_like(value, math.nan)
    no_limit = ((a == 0) & (b == 0)) | ((a == math.inf) & (b == math.inf))
    invalid = ~valid | (no_limit & (x > 0) & (x < 1)) | beyond | (interior & ~exact)
    value = torch.where(invalid, nan, value)

    grad_a, grad_b, grad_x = (torch.empty((0,), dtype=out_dtype, device=x.device) for _ in "abx")
    if want_grad_ab:
        zero = torch.zeros_like(value)
        grad_a = torch.where(swap, -g_q, g_p)
        grad_b = torch.where(swap, -g_p, g_q)
        # NaN in a subnormal parameter (``constants.SMALLEST_NORMAL``): not exact here;
        # ``_tiny_parameters`` computes it for betainc.
        subnormal_a = interior & (a < constants.SMALLEST_NORMAL)
        subnormal_b = interior & (b < constants.SMALLEST_NORMAL)
        grad_a = torch.where(invalid | subnormal_a, nan, torch.where(interior, grad_a, zero))
        grad_b = torch.where(invalid | subnormal_b, nan, torch.where(interior, grad_b, zero))
        grad_a, grad_b = grad_a.to(out_dtype), grad_b.to(out_dtype)
    if want_grad_x:
        positive = (a > 0) & (b > 0) & (a < math.inf) & (b < math.inf) & valid
        a_d = torch.where(positive, a, torch.ones_like(a))
        b_d = torch.where(positive, b, torch.ones_like(b))
        x_c = x.clamp(finfo.tiny, 1.0)
        y_c = (1.0 - x).clamp_min(finfo.tiny)
        at_end = (a_d - 1.0) * torch.log(x_c) + (b_d - 1.0) * torch.log(y_c) - log_beta(a_d, b_d)
        log_density = torch.where(interior, log_power - log_x - log_y, at_end)
        density = torch.exp(log_density).clamp_max(finfo.max)
        density = torch.where(positive, density, torch.zeros_like(density))
        grad_x = torch.where(invalid, nan, density).to(out_dtype)
    return value.to(out_dtype), grad_a, grad_b, grad_x
