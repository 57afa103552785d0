"""Portable kernel of the incomplete beta function in plain torch operations.

Kernel ``"portable"`` of the registry, for every device. The same mathematics as the per-element
CPU kernel (``_cpu_elementwise``), vectorised: every element runs
the power series and the continued fraction for a fixed number of terms, and ``torch.where`` picks
the right one. A fixed count means no data-dependent control flow, hence no host-device
synchronisation: this is the implementation registered for CUDA and every device but the CPU.
The test suite runs it on the CPU through the same accuracy tests as the CPU kernel.

The term counts were chosen by measurement: 400 pairs of continued-fraction terms reach float64
accuracy for a and b up to 1e5 (a = b = 1e5 at the mode included); beyond that, near the mode, the
fraction stops short of convergence (at a = b = 1e6 the error is of order 1e-3), while the value
stays in [0, 1] and the gradients finite.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_SERIES_TERMS = 600  # the series runs where b x <= 1 and x <= 0.95: 0.95^600 < 1e-13
_FRACTION_PAIRS = 400
_STIRLING_MIN = 15.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _stirling_error(z: Tensor) -> Tensor:
    inv = 1.0 / z
    inv2 = inv * inv
    return inv * (
        1.0 / 12.0
        - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 / 1188.0)))
    )


def log_beta(a: Tensor, b: Tensor) -> Tensor:
    """log B(a, b) of tensors, without the cancellation of lgamma differences for large a, b."""
    small = torch.minimum(a, b)
    big = torch.maximum(a, b)
    direct = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    big_safe = big.clamp_min(_STIRLING_MIN)
    difference = (
        small
        - small * torch.log(big_safe)
        - (big_safe + small - 0.5) * torch.log1p(small / big_safe)
        + _stirling_error(big_safe)
        - _stirling_error(big_safe + small)
    )
    return torch.where(big < _STIRLING_MIN, direct, torch.lgamma(small) + difference)


def _deviance(k: Tensor, mean: Tensor) -> Tensor:
    """k log(k / mean) + mean - k (Loader), accurate when k is close to mean."""
    ratio = (k - mean) / (k + mean)
    near = ratio.abs() < 0.1
    ratio = torch.where(near, ratio, torch.zeros_like(ratio))
    total = (k - mean) * ratio
    term = 2.0 * k * ratio
    ratio2 = ratio * ratio
    for j in range(1, 9):  # ratio^2 < 0.01: eight terms reach 1e-16
        term = term * ratio2
        total = total + term / (2 * j + 1)
    far = k * torch.log(k / mean) + mean - k
    return torch.where(near, total, far)


def _log_power_terms(a, b, x, y, log_x, log_y) -> Tensor:
    """log(x^a y^b / B(a, b)), in saddle-point form when a and b are both large."""
    direct = a * log_x + b * log_y - log_beta(a, b)
    large = torch.minimum(a, b) >= _STIRLING_MIN
    a_l = torch.where(large, a, torch.full_like(a, _STIRLING_MIN))
    b_l = torch.where(large, b, torch.full_like(b, _STIRLING_MIN))
    n = a_l + b_l
    saddle = (
        -_deviance(a_l, n * x)
        - _deviance(b_l, n * y)
        + 0.5 * torch.log(a_l * b_l / n)
        - _HALF_LOG_2PI
        + _stirling_error(n)
        - _stirling_error(a_l)
        - _stirling_error(b_l)
    )
    return torch.where(large, saddle, direct)


def _series(a, b, x, log_x, log_y, log_power, grad: bool):
    """Power series of B_x(a, b), differentiated term by term (see the CPU kernel)."""
    coef = torch.ones_like(x)
    coef_b = torch.zeros_like(x)
    total = 1.0 / a
    total_a = -total * total
    total_b = torch.zeros_like(x)
    for n in range(1, _SERIES_TERMS):
        step = x / n
        factor = (n - b) * step
        if grad:
            coef_b = coef_b * factor - coef * step
        coef = coef * factor
        inv = 1.0 / (a + n)
        term = coef * inv
        total = total + term
        if grad:
            total_a = total_a - term * inv
            total_b = total_b + coef_b * inv
    prefactor = torch.exp(log_power - b * log_y)
    value = prefactor * total
    if not grad:
        return value, None, None
    psi_ab = torch.digamma(a + b)
    grad_a = value * (log_x - torch.digamma(a) + psi_ab) + prefactor * total_a
    grad_b = value * (psi_ab - torch.digamma(b)) + prefactor * total_b
    return value, grad_a, grad_b


def _continued_fraction(a, b, x, log_x, log_y, log_power, grad: bool):
    """Continued fraction of Numerical Recipes 6.4.5 by forward recurrence (see the CPU kernel)."""
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    num_prev, num, den_prev, den = ones, ones, zeros, ones
    derivs = [zeros] * 8  # num_prev, num, den_prev, den: d/da then d/db
    ab = a + b
    inv_r0 = 1.0 / a

    def step(d, d_a, d_b, state, derivs):
        num_prev, num, den_prev, den = state
        if grad:
            npa, na, dpa, da, npb, nb, dpb, db = derivs
            derivs = [
                na,
                na + d_a * num_prev + d * npa,
                da,
                da + d_a * den_prev + d * dpa,
                nb,
                nb + d_b * num_prev + d * npb,
                db,
                db + d_b * den_prev + d * dpb,
            ]
        return (num, num + d * num_prev, den, den + d * den_prev), derivs

    state = (num_prev, num, den_prev, den)
    for m in range(_FRACTION_PAIRS):
        p = a + m
        q = ab + m
        inv_r1 = 1.0 / (a + (2 * m + 1))
        d = -p * q * x * inv_r0 * inv_r1
        d_a = d * (1.0 / p + 1.0 / q - inv_r0 - inv_r1) if grad else None
        d_b = d / q if grad else None
        state, derivs = step(d, d_a, d_b, state, derivs)
        inv_r2 = 1.0 / (a + (2 * m + 2))
        d_b = (m + 1) * x * inv_r1 * inv_r2
        d = (b - (m + 1)) * d_b
        d_a = -d * (inv_r1 + inv_r2) if grad else None
        state, derivs = step(d, d_a, d_b, state, derivs)
        inv_r0 = inv_r2
        den = state[3]
        scale = 1.0 / torch.where(den == 0, torch.ones_like(den), den)
        state = tuple(s * scale for s in state)
        if grad:
            derivs = [s * scale for s in derivs]
    value_k = state[1]
    result = torch.exp(log_power - torch.log(a)) / value_k
    if not grad:
        return result, None, None
    log_k_a = derivs[1] / value_k - derivs[3]
    log_k_b = derivs[5] / value_k - derivs[7]
    psi_ab = torch.digamma(ab)
    grad_a = result * (log_x - 1.0 / a - torch.digamma(a) + psi_ab - log_k_a)
    grad_b = result * (log_y - torch.digamma(b) + psi_ab - log_k_b)
    return result, grad_a, grad_b


def betainc(
    a: Tensor, b: Tensor, x: Tensor, want_grad_ab: bool, want_grad_x: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(value, dI/da, dI/db, dI/dx) of the broadcast shape; unrequested gradients are empty.

    ``a``, ``b``, ``x``: tensors of one dtype on one device, any device.
    """
    out_dtype = x.dtype
    work = torch.float32 if x.device.type == "mps" else torch.float64
    shape = torch.broadcast_shapes(a.shape, b.shape, x.shape)
    a, b, x = (t.to(work).expand(shape) for t in (a, b, x))
    finfo = torch.finfo(out_dtype)

    valid = (a >= 0) & (b >= 0) & (x >= 0) & (x <= 1)
    interior = valid & (x > 0) & (x < 1) & (a > 0) & (b > 0) & (a < math.inf) & (b < math.inf)
    # Keep every lane finite: computations on placeholder values are discarded below.
    a_s = torch.where(interior, a, torch.ones_like(a))
    b_s = torch.where(interior, b, torch.ones_like(b))
    x_s = torch.where(interior, x, torch.full_like(x, 0.5))
    y_s = 1.0 - x_s
    log_x, log_y = torch.log(x_s), torch.log1p(-x_s)
    log_power = _log_power_terms(a_s, b_s, x_s, y_s, log_x, log_y)

    swap = x_s * (a_s + b_s + 2.0) > a_s + 1.0
    p = torch.where(swap, b_s, a_s)
    q = torch.where(swap, a_s, b_s)
    u = torch.where(swap, y_s, x_s)
    log_u = torch.where(swap, log_y, log_x)
    log_v = torch.where(swap, log_x, log_y)
    use_series = (q * u <= 1.0) & (u <= 0.95)
    s_value, s_grad_p, s_grad_q = _series(p, q, u, log_u, log_v, log_power, want_grad_ab)
    c_value, c_grad_p, c_grad_q = _continued_fraction(
        p, q, u, log_u, log_v, log_power, want_grad_ab
    )
    lower = torch.where(use_series, s_value, c_value)
    value = torch.where(swap, 1.0 - lower, lower).clamp(0.0, 1.0)

    degenerate_one = (x == 1) | ((x > 0) & ((a == 0) | (b == math.inf)))
    value = torch.where(interior, value, degenerate_one.to(work))
    nan = torch.full_like(value, math.nan)
    invalid = ~valid | ((a == 0) & (b == 0) & (x > 0) & (x < 1))
    value = torch.where(invalid, nan, value)

    grad_a, grad_b, grad_x = (torch.empty((0,), dtype=out_dtype, device=x.device) for _ in "abx")
    if want_grad_ab:
        g_p = torch.where(use_series, s_grad_p, c_grad_p)
        g_q = torch.where(use_series, s_grad_q, c_grad_q)
        zero = torch.zeros_like(value)
        grad_a = torch.where(swap, -g_q, g_p)
        grad_b = torch.where(swap, -g_p, g_q)
        grad_a = torch.where(invalid, nan, torch.where(interior, grad_a, zero)).to(out_dtype)
        grad_b = torch.where(invalid, nan, torch.where(interior, grad_b, zero)).to(out_dtype)
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
