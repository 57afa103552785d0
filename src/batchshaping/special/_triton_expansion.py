"""Temme's uniform asymptotic expansion of I_x(a, b) in Triton, with its a, b derivatives.

The expansion of ``_asymptotic`` (where both parameters are at least ``TEMME_MIN`` and x is
within ``TEMME_Z`` standard deviations of the mean), written in plain ``tl.*`` operations:

    I_x(a, b) = Phi(z) - P R,   R = sqrt(n / (a b)) sum_{j >= 1} f_j(rho) U_j,

with z from Loader's deviances, P the prefactor, rho = min(a, b) / max(a, b) and U_j the
recursion of ``_asymptotic``. There, the coefficients f_j(rho) come from a recurrence over all
earlier ones, which needs an array per element; a Triton program has none. But f_j is a
polynomial of degree j in rho (the recurrence is polynomial in rho), so that here f_j(rho) and
f_j'(rho) are Horner's rule over ``COEFFICIENTS``: the polynomials' coefficients, computed once
in exact rational arithmetic by :func:`expansion_polynomials` (a test recomputes them) and
rounded to float64. On 0 <= rho <= 1 the sum of their absolute values is at most 4 times the
largest value of the polynomial, so Horner's rule keeps the accuracy of the values.

The terms are added by the stopping rule of ``_asymptotic`` (two in a row below 1e-17 of the
leading term, from the fourth on); its expansion caps the order at 40, and in its region no more
than 13 terms are ever needed (min(a, b) = 1000, |z| = 4): here the order is capped at
``ORDER`` = 24 (the portable kernel's fixed count), an element still unfinished there is NaN.

Phi(z) = erfc(w) / 2 with w = -z / sqrt(2): 1 - erf(w) for |w| < 1 (erf is at most 0.85 there,
1 - erf keeps its digits), Legendre's continued fraction of the incomplete gamma function
Gamma(1/2, w^2) beyond (at most 93 steps at |w| = 1, fewer further out).
"""

from __future__ import annotations

import math
from fractions import Fraction

import triton
import triton.language as tl

from batchshaping.special._triton_math import log1p

__all__ = ["COEFFICIENTS", "ORDER", "expansion_polynomials", "temme"]

ORDER = 24
# Row j - 1: the coefficients of f_j(rho), from rho^0 up to rho^j (float64 roundings of the
# exact rationals of ``expansion_polynomials(ORDER)``).
# fmt: off
COEFFICIENTS = (
    (
        -0.3333333333333333, 0.3333333333333333,
    ),
    (
        0.08333333333333333, 0.08333333333333333, 0.08333333333333333,
    ),
    (
        -0.014814814814814815, -0.022222222222222223, 0.022222222222222223, 0.014814814814814815,
    ),
    (
        0.0011574074074074073, 0.0023148148148148147, 0.003472222222222222, 0.0023148148148148147,
        0.0011574074074074073,
    ),
    (
        0.0003527336860670194, 0.0008818342151675485, 0.0003527336860670194, -0.0003527336860670194,
        -0.0008818342151675485, -0.0003527336860670194,
    ),
    (
        -0.0001787551440329218, -0.0005362654320987655, -0.0005169753086419753,
        -0.00014017489711934156, -0.0005169753086419753, -0.0005362654320987655,
        -0.0001787551440329218,
    ),
    (
        3.919263178522438e-05, 0.00013717421124828533, 0.0001763668430335097, 9.798157946306095e-05,
        -9.798157946306095e-05, -0.0001763668430335097, -0.00013717421124828533,
        -3.919263178522438e-05,
    ),
    (
        -2.185448510679992e-06, -8.741794042719968e-06, -1.5240728493043307e-05,
        -1.5125906329610034e-05, -1.5068495247893395e-05, -1.5125906329610034e-05,
        -1.5240728493043307e-05, -8.741794042719968e-06, -2.185448510679992e-06,
    ),
    (
        -1.85406221071516e-06, -8.34327994821822e-06, -1.4192483328285798e-05,
        -1.0738385223981931e-05, -2.1080885278416142e-06, 2.1080885278416142e-06,
        1.0738385223981931e-05, 1.4192483328285798e-05, 8.34327994821822e-06, 1.85406221071516e-06,
    ),
    (
        8.296711340953087e-07, 4.148355670476543e-06, 8.276475706594938e-06, 8.215768803520493e-06,
        3.986470595611359e-06, 6.273147905138278e-07, 3.986470595611359e-06, 8.215768803520493e-06,
        8.276475706594938e-06, 4.148355670476543e-06, 8.296711340953087e-07,
    ),
    (
        -1.7665952736826078e-07, -9.716274005254345e-07, -2.2016121696048537e-06,
        -2.6200492592810836e-06, -1.720171816193764e-06, -5.950966170444909e-07,
        5.950966170444909e-07, 1.720171816193764e-06, 2.6200492592810836e-06,
        2.2016121696048537e-06, 9.716274005254345e-07, 1.7665952736826078e-07,
    ),
    (
        6.707853543401498e-09, 4.024712126040899e-08, 1.0690319053053239e-07,
        1.6558400776557954e-07, 1.6554455957250576e-07, 1.113925255610447e-07,
        8.284395542458865e-08, 1.113925255610447e-07, 1.6554455957250576e-07,
        1.6558400776557954e-07, 1.0690319053053239e-07, 4.024712126040899e-08,
        6.707853543401498e-09,
    ),
    (
        1.0261809784240309e-08, 6.6701763597562e-08, 1.8220304761990481e-07, 2.6839736233629443e-07,
        2.2517613840074847e-07, 1.0089150464093308e-07, 1.3218729877775755e-08,
        -1.3218729877775755e-08, -1.0089150464093308e-07, -2.2517613840074847e-07,
        -2.6839736233629443e-07, -1.8220304761990481e-07, -6.6701763597562e-08,
        -1.0261809784240309e-08,
    ),
    (
        -4.382036018453353e-09, -3.067425212917347e-08, -9.197975732634476e-08,
        -1.5311326627881346e-07, -1.5269197846260493e-07, -9.099129383586905e-08,
        -2.956600916728304e-08, -3.2999014432068605e-09, -2.956600916728304e-08,
        -9.099129383586905e-08, -1.5269197846260493e-07, -1.5311326627881346e-07,
        -9.197975732634476e-08, -3.067425212917347e-08, -4.382036018453353e-09,
    ),
    (
        9.14769958223679e-10, 6.860774686677592e-09, 2.2358599932798845e-08, 4.1275816815249e-08,
        4.708602020615278e-08, 3.3860308211576944e-08, 1.4933314170128575e-08,
        3.753189532912183e-09, -3.753189532912183e-09, -1.4933314170128575e-08,
        -3.3860308211576944e-08, -4.708602020615278e-08, -4.1275816815249e-08,
        -2.2358599932798845e-08, -6.860774686677592e-09, -9.14769958223679e-10,
    ),
    (
        -2.5514193994946248e-11, -2.0411355195956999e-10, -7.38742076405458e-10,
        -1.5992073755457315e-09, -2.300334948875099e-09, -2.2994804253165183e-09,
        -1.6192251646270285e-09, -8.084660997248993e-10, -4.804163312833213e-10,
        -8.084660997248993e-10, -1.6192251646270285e-09, -2.2994804253165183e-09,
        -2.300334948875099e-09, -1.5992073755457315e-09, -7.38742076405458e-10,
        -2.0411355195956999e-10, -2.5514193994946248e-11,
    ),
    (
        -5.830772132550426e-11, -4.956156312667861e-10, -1.8537941903846997e-09,
        -3.991143802549525e-09, -5.420116227887653e-09, -4.7657561061203105e-09,
        -2.653797239471094e-09, -8.463521666361951e-10, -8.36984668411132e-11, 8.36984668411132e-11,
        8.463521666361951e-10, 2.653797239471094e-09, 4.7657561061203105e-09, 5.420116227887653e-09,
        3.991143802549525e-09, 1.8537941903846997e-09, 4.956156312667861e-10, 5.830772132550426e-11,
    ),
    (
        2.4361948020667415e-11, 2.1925753218600676e-10, 8.769050591656204e-10,
        2.0454030771088103e-09, 3.0660269717853394e-09, 3.062065839849733e-09,
        2.035993968776194e-09, 8.670617522515087e-10, 2.1188251043626507e-10, 1.840256555538755e-11,
        2.1188251043626507e-10, 8.670617522515087e-10, 2.035993968776194e-09, 3.062065839849733e-09,
        3.0660269717853394e-09, 2.0454030771088103e-09, 8.769050591656204e-10,
        2.1925753218600676e-10, 2.4361948020667415e-11,
    ),
    (
        -5.0276692801141755e-12, -4.776285816108467e-11, -2.032620903388946e-10,
        -5.09774884772945e-10, -8.332702163120137e-10, -9.258404593118408e-10,
        -7.062425638016302e-10, -3.6382273417357913e-10, -1.2069525283872788e-10,
        -2.381069079198818e-11, 2.381069079198818e-11, 1.2069525283872788e-10,
        3.6382273417357913e-10, 7.062425638016302e-10, 9.258404593118408e-10, 8.332702163120137e-10,
        5.09774884772945e-10, 2.032620903388946e-10, 4.776285816108467e-11, 5.0276692801141755e-12,
    ),
    (
        1.1004392031956135e-13, 1.1004392031956134e-12, 5.058827063593715e-12,
        1.4166926281268444e-11, 2.6963109405056376e-11, 3.676462458457287e-11,
        3.678286566966986e-11, 2.7124889173927336e-11, 1.4606619337275326e-11,
        5.732159677922706e-12, 2.845190970263831e-12, 5.732159677922706e-12, 1.4606619337275326e-11,
        2.7124889173927336e-11, 3.678286566966986e-11, 3.676462458457287e-11,
        2.6963109405056376e-11, 1.4166926281268444e-11, 5.058827063593715e-12,
        1.1004392031956134e-12, 1.1004392031956135e-13,
    ),
    (
        3.371763262400985e-13, 3.5403514255210345e-12, 1.679572064922444e-11, 4.74482176927994e-11,
        8.849086905663458e-11, 1.1400959103665613e-10, 1.029643640599522e-10, 6.452051311550342e-11,
        2.689542122825526e-11, 6.6643941678163835e-12, 5.309279548697569e-13,
        -5.309279548697569e-13, -6.6643941678163835e-12, -2.689542122825526e-11,
        -6.452051311550342e-11, -1.029643640599522e-10, -1.1400959103665613e-10,
        -8.849086905663458e-11, -4.74482176927994e-11, -1.679572064922444e-11,
        -3.5403514255210345e-12, -3.371763262400985e-13,
    ),
    (
        -1.392388722418162e-13, -1.5316275946599783e-12, -7.657701291076402e-12,
        -2.297004709766477e-11, -4.5928933788726906e-11, -6.427376694976187e-11,
        -6.422783495297928e-11, -4.5817861480161637e-11, -2.2850244847429534e-11,
        -7.570865530810657e-12, -1.4826518141611988e-12, -1.0563495487064e-13,
        -1.4826518141611988e-12, -7.570865530810657e-12, -2.2850244847429534e-11,
        -4.5817861480161637e-11, -6.422783495297928e-11, -6.427376694976187e-11,
        -4.5928933788726906e-11, -2.297004709766477e-11, -7.657701291076402e-12,
        -1.5316275946599783e-12, -1.392388722418162e-13,
    ),
    (
        2.8534893807047445e-14, 3.281512787810456e-13, 1.7240713966544292e-12, 5.46892543180125e-12,
        1.16566905757983e-11, 1.7570141939155863e-11, 1.9177891708069667e-11, 1.524417055149212e-11,
        8.73405248779762e-12, 3.504042458834495e-12, 9.310518199387316e-13, 1.5112866890454686e-13,
        -1.5112866890454686e-13, -9.310518199387316e-13, -3.504042458834495e-12,
        -8.73405248779762e-12, -1.524417055149212e-11, -1.9177891708069667e-11,
        -1.7570141939155863e-11, -1.16566905757983e-11, -5.46892543180125e-12,
        -1.7240713966544292e-12, -3.281512787810456e-13, -2.8534893807047445e-14,
    ),
    (
        -5.139111834242572e-16, -6.166934201091087e-15, -3.442262677354379e-14,
        -1.1860983569630753e-13, -2.821542437064993e-13, -4.904715993829482e-13,
        -6.42309532882586e-13, -6.427810826201728e-13, -4.924766097956722e-13,
        -2.8627045541488884e-13, -1.2403562018037533e-13, -3.9879153805517966e-14,
        -1.7046944381075535e-14, -3.9879153805517966e-14, -1.2403562018037533e-13,
        -2.8627045541488884e-13, -4.924766097956722e-13, -6.427810826201728e-13,
        -6.42309532882586e-13, -4.904715993829482e-13, -2.821542437064993e-13,
        -1.1860983569630753e-13, -3.442262677354379e-14, -6.166934201091087e-15,
        -5.139111834242572e-16,
    ),
)
# fmt: on


def expansion_polynomials(order: int) -> list[list[Fraction]]:
    """The coefficients of f_0 .. f_order as polynomials in rho, exactly (``_asymptotic``).

    The recurrence of ``_asymptotic._extend_coefficients`` with polynomials in rho for numbers:
    omega_1 = 1, (j + 2) omega_{j+1} = (1 - rho) omega_j - rho tau_j - (j + 2) / 2
    sum_{i=2}^{j} omega_i omega_{j+2-i} (tau_j = sum_{i=1}^{j-1} omega_i omega_{j-i}), and
    f_0 = 1, f_j = -sum_{i=1}^{j} omega_{i+1} f_{j-i}. Entry k of row j is the coefficient of
    rho^k in f_j.
    """

    def add(*polynomials):
        total = [Fraction(0)] * max(len(polynomial) for polynomial in polynomials)
        for polynomial in polynomials:
            for k, coefficient in enumerate(polynomial):
                total[k] += coefficient
        return total

    def multiply(left, right):
        product = [Fraction(0)] * (len(left) + len(right) - 1)
        for k, coefficient in enumerate(left):
            for m, other in enumerate(right):
                product[k + m] += coefficient * other
        return product

    def scale(polynomial, factor):
        return [factor * coefficient for coefficient in polynomial]

    zero, one = [Fraction(0)], [Fraction(1)]
    one_minus_rho, rho = [Fraction(1), Fraction(-1)], [Fraction(0), Fraction(1)]
    omega = [zero, one]
    f = [one]
    for j in range(1, order + 1):
        tau = add(zero, *(multiply(omega[i], omega[j - i]) for i in range(1, j)))
        cross = add(zero, *(multiply(omega[i], omega[j + 2 - i]) for i in range(2, j + 1)))
        k = j + 2
        omega_next = add(
            multiply(one_minus_rho, omega[j]),
            scale(multiply(rho, tau), Fraction(-1)),
            scale(cross, Fraction(-k, 2)),
        )
        omega.append(scale(omega_next, Fraction(1, k)))
        f.append(
            add(
                zero,
                *(scale(multiply(omega[i + 1], f[j - i]), Fraction(-1)) for i in range(1, j + 1)),
            )
        )
    return f


_COEFFICIENTS = tl.constexpr(COEFFICIENTS)
_ORDER = tl.constexpr(ORDER)
_INV_SQRT_2PI = tl.constexpr(1.0 / math.sqrt(2.0 * math.pi))
_INV_SQRT_PI = tl.constexpr(1.0 / math.sqrt(math.pi))
_SQRT_2 = tl.constexpr(math.sqrt(2.0))
# Legendre's continued fraction: at most 93 steps where it serves (|w| >= 1).
_FRACTION_STEPS = tl.constexpr(200)


@triton.jit
def _erfc_by_fraction(w, active):
    """erfc(w) for w >= 1 where ``active``: Gamma(1/2, w^2) / sqrt(pi) by Legendre's continued
    fraction (the even form of Numerical Recipes' ``gcf``, modified Lentz)."""
    x = w * w
    b = x + 0.5
    c = tl.zeros_like(w) + 1e300
    d = 1.0 / b
    h = d
    i = tl.full([], 1, tl.int32)
    while (i < _FRACTION_STEPS) & (tl.max(active.to(tl.int32), axis=0) > 0):
        fi = i.to(tl.float64)
        an = -fi * (fi - 0.5)
        b = b + 2.0
        d = an * d + b
        d = tl.where(d == 0.0, 1e-300, d)
        c = b + an / c
        c = tl.where(c == 0.0, 1e-300, c)
        d = 1.0 / d
        change = d * c
        h = tl.where(active, h * change, h)
        active = active & (tl.abs(change - 1.0) > 1e-16)
        i += 1
    return tl.exp(-x) * w * h * _INV_SQRT_PI


@triton.jit
def normal_cdf(root, delta, region):
    """Phi(z) = erfc(w) / 2, w = sqrt(D) with the sign of delta (z = -sqrt(2) w)."""
    w = tl.where(delta < 0.0, -root, root)
    central = root < 1.0
    by_erf = 1.0 - tl.erf(tl.where(central, w, 0.0))
    tail = _erfc_by_fraction(tl.where(central, 1.0, root), region & ~central)
    return 0.5 * tl.where(central, by_erf, tl.where(w >= 0.0, tail, 2.0 - tail))


@triton.jit
def _correction(p, q, z, main, scale, active, WANT_GRAD_AB: tl.constexpr):
    """R*(p, q, z) for p <= q, its p, q (at fixed z) and z derivatives, and the elements still
    unfinished after ``ORDER`` terms (``_asymptotic._correction``)."""
    n = p + q
    rho = p / q
    kappa = tl.sqrt(q / n) / tl.sqrt(p)  # no product of two parameters: they reach 1e300
    factor = 1.0 / (tl.sqrt(p) * tl.sqrt(q / n))
    v = kappa * z
    kappa2 = kappa * kappa
    threshold = 1e-17 * tl.abs(main) / (scale * factor)
    inv_p = 1.0 / p
    inv_q = 1.0 / q
    inv_n = 1.0 / n
    rho_q = rho * inv_q  # p / q^2
    zero = tl.zeros_like(p)
    total = zero
    total_p = zero
    total_q = zero
    total_z = zero
    u_previous = zero  # U_{j-1}, U_j for j = 1
    u_current = kappa
    uz_previous = zero
    uz_current = zero
    v_power = zero + 1.0  # v^(j-1)
    small = zero.to(tl.int32)
    for j in tl.static_range(1, _ORDER + 1):
        # A block whose elements have all stopped (from the fourth term on) skips the rest.
        if tl.max(active.to(tl.int32), axis=0) > 0:
            if j > 1:
                v_power_previous = v_power
                v_power = v_power * v
                u_next = kappa * v_power + (j - 1) * kappa2 * u_previous
                uz_next = (j - 1) * kappa2 * (v_power_previous + uz_previous)
                u_previous = u_current
                u_current = u_next
                uz_previous = uz_current
                uz_current = uz_next
            # f_j(rho) and f_j'(rho) by Horner's rule.
            f = zero + _COEFFICIENTS[j - 1][j]
            f_rho = zero
            for i in tl.static_range(j):
                f_rho = f_rho * rho + f
                f = f * rho + _COEFFICIENTS[j - 1][j - 1 - i]
            term = f * u_current
            total += tl.where(active, term, 0.0)
            if WANT_GRAD_AB:
                term_p = f_rho * u_current * inv_q - term * (
                    (0.5 * (j + 1)) * inv_p + (0.5 * (j - 1)) * inv_n
                )
                term_q = term * ((0.5 * (j - 1)) * rho * inv_n) - f_rho * u_current * rho_q
                total_p += tl.where(active, term_p, 0.0)
                total_q += tl.where(active, term_q, 0.0)
                total_z += tl.where(active, f * uz_current, 0.0)
            small = tl.where(tl.abs(term) <= threshold, small + 1, 0)
            if j >= 4:
                active = active & (small < 2)
    return factor * total, factor * total_p, factor * total_q, factor * total_z, active


@triton.jit
def temme(
    p, q, t, s, delta, deviance, power, log_power_p, log_power_q, region,
    WANT_GRAD_AB: tl.constexpr,
):  # fmt: skip
    """(I_t(p, q), d/dp, d/dq) by the uniform expansion where ``region``, and the elements
    unfinished after ``ORDER`` terms (``_asymptotic.temme``).

    ``delta`` = p - (p + q) t, s = 1 - t, ``deviance`` Loader's deviances (z^2 / 2),
    ``power`` the prefactor P = t^p s^q / B(p, q), ``log_power_p`` and ``log_power_q`` the p
    and q derivatives of log P.
    """
    root = tl.sqrt(deviance)
    z = tl.where(delta < 0.0, _SQRT_2 * root, -_SQRT_2 * root)
    main = normal_cdf(root, delta, region)
    flip = p > q
    sign = tl.where(flip, -1.0, 1.0)
    r, r_1, r_2, r_z, unfinished = _correction(
        tl.where(flip, q, p), tl.where(flip, p, q), sign * z, main, power, region, WANT_GRAD_AB
    )
    r = sign * r
    value = main - power * r
    grad_p = value
    grad_q = value
    if WANT_GRAD_AB:
        r_p = sign * tl.where(flip, r_2, r_1)
        r_q = sign * tl.where(flip, r_1, r_2)
        n = p + q
        at_mean = z == 0.0
        z_safe = tl.where(at_mean, 1.0, z)
        z_p = tl.where(at_mean, -tl.sqrt(q / n) / tl.sqrt(p), -log1p(-delta / p) / z_safe)
        z_q = tl.where(at_mean, tl.sqrt(p / n) / tl.sqrt(q), -log1p(delta / q) / z_safe)
        density = tl.exp(-deviance) * _INV_SQRT_2PI  # the normal density at z
        grad_p = density * z_p - power * (log_power_p * r + r_p + r_z * z_p)
        grad_q = density * z_q - power * (log_power_q * r + r_q + r_z * z_q)
    return value, grad_p, grad_q, unfinished
