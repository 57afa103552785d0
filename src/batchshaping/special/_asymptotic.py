"""Temme's uniform asymptotic expansion of I_x(a, b) for large a and b, with a, b derivatives.

Where both parameters are large and x is near the mean x0 = a / n (n = a + b), the continued
fraction needs a number of terms that grows with n (over a million at n = 1e16), while

    I_x(a, b) = Phi(z) - P R,   z^2 / 2 = D,   P = x^a (1 - x)^b / B(a, b),

is exact to working precision with a dozen terms once min(a, b) >= 1000 (Temme, "Special
functions", 1996, section 11.3.3). Here D is the sum of Loader's deviances (``deviances`` in
``_scalar``: n times minus the log of (x / x0)^x0 ((1 - x) / y0)^y0), z has the sign of x - x0, and
Phi is the standard normal CDF. The derivation: with -zeta^2 / 2 = x0 log(t / x0) + y0 log((1 - t)
/ y0), I_x = C int_{-inf}^{eta} e^(-n zeta^2 / 2) g(zeta) dzeta, g = zeta / (t - x0), and repeated
integration by parts gives R = sum_k H_k(eta) / n^(k + 1), H_k = (g_k(eta) - g_k(0)) / eta,
g_{k+1} = H_k'. With the Taylor coefficients of g written in normalised variables (for x0 <= 1/2:
t - x0 = x0 w, zeta = sqrt(rho) v, rho = x0 / y0, where w w' = v (1 + w)(1 - rho w), w = v + ...),
g = (v / w) / sqrt(x0 y0) = sum_j f_j v^j / sqrt(x0 y0), and

    R = sqrt(n / (a b)) sum_{j >= 1} f_j(rho) U_j,   U_j = kappa^j Q_j(z),   kappa = sqrt(y0 / a),

Q_j = z^(j - 1) + (j - 1) Q_{j - 2} (Q_0 = 0, Q_1 = 1). The terms shrink like (kappa z)^j /
2.5^j and (kappa^2 j)^(j / 2): both small when min(a, b) is large and |z| is moderate. For
x0 > 1/2 the roles of (a, x) and (b, 1 - x) are exchanged: R(a, b, z) = -R(b, a, -z).

The derivatives in a and b are those of the expansion, term by term (z, P, rho, kappa and the
coefficients f_j(rho) all depend on a and b; f_j and df_j / drho come from the same recurrence).
"""

from __future__ import annotations

import math

import numpy as np

from batchshaping._runtime.jit import callee
from batchshaping.special._constants import TEMME_MIN, TEMME_Z
from batchshaping.special._scalar import deviances, log_ratio_to_mean

__all__ = ["TEMME_MIN", "TEMME_Z", "new_scratch", "temme"]
_MAX_ORDER = 40
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Rows of the scratch array: omega_j, d omega_j / d rho, f_j, d f_j / d rho; row 4 holds the
# rho the coefficients are for and how many are computed (reused for equal rho).
SCRATCH_SHAPE = (5, _MAX_ORDER + 2)


def new_scratch() -> np.ndarray:
    """Scratch space for :func:`temme` (one per thread), made by the host."""
    scratch = np.zeros(SCRATCH_SHAPE)
    scratch[4, 0] = math.nan
    return scratch


@callee
def _extend_coefficients(rho, order, scratch):
    """Make f_0 .. f_order (and d/drho) of g = v / w available in ``scratch`` for this rho."""
    omega, omega_rho, f, f_rho = scratch[0], scratch[1], scratch[2], scratch[3]
    if scratch[4, 0] != rho:
        scratch[4, 0] = rho
        scratch[4, 1] = 0.0
        omega[1], omega_rho[1] = 1.0, 0.0
        f[0], f_rho[0] = 1.0, 0.0
    done = int(scratch[4, 1])
    for j in range(done + 1, order + 1):
        # omega_{j+1} from w w' = v (1 + w)(1 - rho w), the coefficient of v^(j+1):
        # (j + 2) omega_{j+1} = (1 - rho) omega_j - rho tau_j - (j + 2) / 2 sum_{i=2}^{j} omega_i
        # omega_{j+2-i}, tau_j the coefficient of v^j in w^2.
        tau = tau_rho = 0.0
        for i in range(1, j):
            tau += omega[i] * omega[j - i]
            tau_rho += 2.0 * omega_rho[i] * omega[j - i]
        cross = cross_rho = 0.0
        for i in range(2, j + 1):
            cross += omega[i] * omega[j + 2 - i]
            cross_rho += 2.0 * omega_rho[i] * omega[j + 2 - i]
        k = j + 2
        omega[j + 1] = ((1.0 - rho) * omega[j] - rho * tau - 0.5 * k * cross) / k
        omega_rho[j + 1] = (
            -omega[j] + (1.0 - rho) * omega_rho[j] - tau - rho * tau_rho - 0.5 * k * cross_rho
        ) / k
        # f = 1 / h, h_i = omega_{i+1}.
        total = total_rho = 0.0
        for i in range(1, j + 1):
            total -= omega[i + 1] * f[j - i]
            total_rho -= omega_rho[i + 1] * f[j - i] + omega[i + 1] * f_rho[j - i]
        f[j], f_rho[j] = total, total_rho
    if order > done:
        scratch[4, 1] = order


@callee
def _correction(p, q, z, main, scale, want_grad, scratch):
    """R*(p, q, z) for p <= q and its p, q (at fixed z) and z derivatives.

    Terms are added until two in a row are below 1e-17 of ``main`` / ``scale`` (the leading term
    Phi(z) in the units of R's sum).
    """
    n = p + q
    rho = p / q
    kappa = math.sqrt(q / n) / math.sqrt(p)  # no product of two parameters: they reach 1e300
    factor = 1.0 / (math.sqrt(p) * math.sqrt(q / n))
    v = kappa * z
    kappa2 = kappa * kappa
    threshold = 1e-17 * abs(main) / (scale * factor)
    total = total_p = total_q = total_z = 0.0
    u_previous, u_current = 0.0, kappa  # U_{j-1}, U_j for j = 1
    uz_previous, uz_current = 0.0, 0.0
    v_power = 1.0  # v^(j-1)
    small = 0
    for j in range(1, _MAX_ORDER + 1):
        if j > 1:
            v_power_previous = v_power
            v_power *= v
            u_next = kappa * v_power + (j - 1) * kappa2 * u_previous
            uz_next = (j - 1) * kappa2 * (v_power_previous + uz_previous)
            u_previous, u_current = u_current, u_next
            uz_previous, uz_current = uz_current, uz_next
        _extend_coefficients(rho, j, scratch)
        f_j, f_rho_j = scratch[2, j], scratch[3, j]
        term = f_j * u_current
        total += term
        if want_grad:
            total_p += f_rho_j * u_current / q + term * (-(j + 1) / (2.0 * p) - (j - 1) / (2.0 * n))
            total_q += -f_rho_j * u_current * p / (q * q) + term * ((j - 1) * p / (2.0 * q * n))
            total_z += f_j * uz_current
        small = small + 1 if abs(term) <= threshold else 0
        if small >= 2 and j >= 4:
            break
    return factor * total, factor * total_p, factor * total_q, factor * total_z


@callee
def temme(p, q, t, s, delta, log_t, log_s, log_power, psi, want_grad, scratch):
    """(I_t(p, q), d/dp, d/dq) by the uniform expansion; ``psi`` = (psi(p), psi(q), psi(p + q)).

    ``delta`` = p - (p + q) t (``mean_offset``), s = 1 - t, ``log_power`` =
    log(t^p s^q / B(p, q)) (``log_power_terms``). For min(p, q) >= TEMME_MIN and |z| <= TEMME_Z.
    """
    deviance = deviances(p, q, delta, t, s)
    root = math.sqrt(deviance)
    z = -math.copysign(math.sqrt(2.0) * root, delta)
    main = 0.5 * math.erfc(math.copysign(root, delta))  # Phi(z)
    power = math.exp(log_power)
    flip = p > q
    if flip:
        r, r_1, r_2, r_z = _correction(q, p, -z, main, power, want_grad, scratch)
        r, r_p, r_q = -r, -r_2, -r_1
    else:
        r, r_p, r_q, r_z = _correction(p, q, z, main, power, want_grad, scratch)
    value = main - power * r
    if not want_grad:
        return value, 0.0, 0.0
    n = p + q
    if z != 0.0:
        z_p = -math.log1p(-delta / p) / z
        z_q = -math.log1p(delta / q) / z
    else:
        z_p = -math.sqrt(q / n) / math.sqrt(p)
        z_q = math.sqrt(p / n) / math.sqrt(q)
    psi_p, psi_q, psi_pq = psi
    log_power_p = log_ratio_to_mean(p, q, delta, log_t, psi_p, psi_pq)
    log_power_q = log_ratio_to_mean(q, p, -delta, log_s, psi_q, psi_pq)
    density = math.exp(-deviance) * _INV_SQRT_2PI  # the normal density at z
    grad_p = density * z_p - power * (log_power_p * r + r_p + r_z * z_p)
    grad_q = density * z_q - power * (log_power_q * r + r_q + r_z * z_q)
    return value, grad_p, grad_q
