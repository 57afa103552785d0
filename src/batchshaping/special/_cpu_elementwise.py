"""The per-element CPU kernel of the incomplete beta function and its derivatives (numba).

Kernel ``"cpu-elementwise"`` of the registry. Each element is computed on its own in float64,
with its own stopping point, exact over the whole range of a and b (tested up to the largest float;
NaN where a + b overflows):

- the prefactor ``x^a (1-x)^b / B(a, b)`` and the density are formed in log space, from the
  offset delta = a - (a + b) x computed without rounding error (``_scalar``);
- for ``x > (a + 1) / (a + b + 2)`` the reflection ``I_x(a, b) = 1 - I_{1-x}(b, a)`` keeps the
  computed quantity the small one;
- a power series serves where ``b x <= 1`` or ``a < 1`` (x <= 0.95); it gives the log of the
  result to full accuracy, so that ``1 - I`` through the reflection keeps its digits when a
  parameter is tiny (I = 1 - O(b) for b -> 0), as ``-expm1`` of that log;
- Temme's uniform asymptotic expansion (``_asymptotic``) where both parameters are at least 1000
  and x is within four standard deviations of the mean;
- the continued fraction everywhere else: the odd part of Numerical Recipes' fraction (6.4.5),
  its partial denominators written with delta so that none cancels: a few dozen terms reach
  full accuracy even where one parameter is 1e16 and the other 5; scaled by powers of two where
  a parameter is above 2^64 (``_fraction``), so that its coefficients neither underflow nor
  overflow when one parameter is 1e300 and x of order 1 / b;
- the series and the fraction are differentiated term by term in ``a`` and ``b`` (forward
  mode), and their stopping rule watches the derivative terms as well as the value: for integer
  ``b`` a series term or a fraction numerator is exactly zero, which stops the value but not its
  derivative in ``b``;
- values below the smallest normal number are formed as ``exp`` of their log, so that they are
  correctly rounded subnormals (or 0), never a wrong normal number.

The continued fraction runs as the three-term forward recurrence of its convergents, rescaled
when they drift, instead of the modified Lentz algorithm: the recurrence and its derivatives are
plain multiply-adds.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from batchshaping._runtime.jit import callee, jit
from batchshaping.special._asymptotic import TEMME_MIN, TEMME_Z, new_scratch, temme
from batchshaping.special._constants import (
    EULER_GAMMA,
    SMALLEST_NORMAL,
    STIRLING_MIN,
    VANISHING_P,
)
from batchshaping.special._cpu_host import prepare, run_in_threads
from batchshaping.special._scalar import (
    LOG_SUBNORMAL,
    MAX_TERMS,
    NAN,
    RESCALE_HIGH,
    RESCALE_LOW,
    beta_density,
    convergent_derivatives,
    digamma,
    end_point_density,
    fraction_coefficients,
    fraction_gradients,
    fraction_result,
    fraction_scales,
    fraction_start,
    fraction_step,
    fraction_variables,
    log_power_terms,
    log_ratio_to_mean,
    mean_offset,
    negligible,
    series_terms,
    times_value,
)

# Terms whose coefficients are tabulated once per (a, b) when the parameters repeat.
_TABLE_TERMS = 64
# Rows of a table: the ten coefficients of ``fraction_coefficients``, then 1 / (p + n), 1 / n.
TABLE_ROWS = 12


@callee
def _series(
    p, q, t, log_t, log_u, delta, log_power, power, sides, want_grad, tol, tables, side, length
):
    """I_t(p, q), its log and the p, q derivatives of its log by the power series of B_t(p, q).

    B_t(p, q) = t^p sum_n t_n / (p + n),  t_0 = 1,  t_n = t_{n-1} (n - q) t / n, so that
    I_t = t^p / (p B(p, q)) (1 + p T), T = sum_{n >= 1} t_n / (p + n): the log of the prefactor
    from ``sides`` (log(p B), psi(1 + p), psi(p + q) - psi(q), psi(p), psi(q), psi(p + q),
    log(p B) + p log q) to full accuracy as p -> 0, and log1p(p T).
    ``tables[side, 10, n] = 1 / (p + n)``, ``tables[0, 11, n] = 1 / n`` for n < ``length``.
    """
    log_p_beta, psi_1p, psi_diff, psi_p, _, psi_pq, log_p_beta_q = sides
    term_coef = 1.0  # t_n
    term_coef_q = 0.0  # d t_n / d q, carried by its own recurrence (t_n may be exactly zero)
    inv_p = 1.0 / p
    total = 0.0  # T
    total_p = 0.0  # dT / dp
    total_q = 0.0
    for n in range(1, MAX_TERMS):
        # t * (1 / n) whether or not 1 / n is read from the tables, so that the first element
        # of a run (no tables yet) and the next ones agree to the last bit on equal inputs.
        if n < length:
            step = t * tables[0, 11, n]
            inv = tables[side, 10, n]
        else:
            step = t * (1.0 / n)
            inv = 1.0 / (p + n)
        factor = (n - q) * step
        term_coef_q = term_coef_q * factor - term_coef * step
        term_coef = term_coef * factor
        term = term_coef * inv
        total += term
        full = inv_p + total
        if want_grad:
            term_p = term * inv
            term_q = term_coef_q * inv
            total_p -= term_p
            total_q += term_q
            # Each derivative term against its own sum (and T, where that sum vanishes): what
            # enters d log I is (T + p dT/dp) and p dT/dq, not 1/p + T.
            if (
                abs(term) <= tol * abs(full)
                and abs(term_p) <= tol * (abs(total_p) + abs(total))
                and abs(term_q) <= tol * (abs(total_q) + abs(total))
            ):
                break
        elif abs(term) <= tol * (abs(total) if p < 1.0 else abs(full)):
            # Below p = 1 the complement, -expm1(log I), is what may be asked for: it is of
            # order p, and p T in it must be exact relative to T itself, not to 1/p + T.
            break
    scaled = 1.0 + p * total
    if p < VANISHING_P:
        log_value = p * (log_t + EULER_GAMMA + digamma(q) + total)
        value = math.exp(log_value)
    elif p < 1.0:
        if q >= STIRLING_MIN:
            # p log t and log(p B) are each of order p log q: p log(q t) and log(p B) + p log q
            # are not (a subnormal q t has lost bits, and is far from 1).
            product = q * t
            log_product = math.log(product) if product > 1e-300 else math.log(q) + log_t
            log_value = p * log_product - log_p_beta_q + math.log1p(p * total)
        else:
            log_value = p * log_t - log_p_beta + math.log1p(p * total)
        value = math.exp(log_value)
    else:
        log_value = log_power - q * log_u - math.log(p) + math.log1p(p * total)
        # A product of factors with small relative errors where P is normal: the log of P is
        # large there, and adding to it would add a rounding error of order ulp(log P).
        if log_power > LOG_SUBNORMAL:
            value = power * (math.exp(-q * log_u) * (inv_p + total))
        else:
            value = math.exp(log_value)
    if not want_grad:
        return value, log_value, 0.0, 0.0
    if p < 1.0:
        log_grad_p = log_t - psi_1p + psi_pq
    else:
        log_grad_p = log_ratio_to_mean(p, q, delta, log_t, psi_p, psi_pq) - inv_p
    log_grad_q = psi_diff
    log_grad_p += (total + p * total_p) / scaled
    log_grad_q += p * total_q / scaled
    return value, log_value, log_grad_p, log_grad_q


@callee
def _continued_fraction(
    p, q, t, s, delta, log_t, log_u, log_power, power, psi, want_grad, tol, tables, side, length
):
    """I_t(p, q) = P / (p K), P = t^p s^q / B(p, q), by the odd part of the continued fraction.

    K = A_0 + alpha_1 / (beta_1 + alpha_2 / (beta_2 + ...)) (``fraction_coefficients``, as
    lam K with the scales of ``fraction_scales``, which are 1 unless p or q is huge); the
    convergents A_k / B_k follow A_k = beta_k A_{k-1} + alpha_k A_{k-2} (B_k likewise), their
    derivatives the differentiated recurrence, rescaled by 1 / B_k when the magnitudes drift.
    ``tables[side, :10, k]`` holds the scaled coefficients of (p, q, k) for k < ``length``.
    Returns (value, d/dp, d/dq).
    """
    lam, sig, nu = fraction_scales(p, q)
    ratio = lam / sig
    tau, tau2, lam_s = fraction_variables(t, s, lam, sig)
    # (A_{k-1}, A_k) and (B_{k-1}, B_k) of lam K, with their p (times lam) and q (times nu)
    # derivatives.
    num, num_p, num_q = fraction_start(p, t, s, delta, lam, nu)
    num_prev, den_prev, den = 1.0, 0.0, 1.0
    num_prev_p = den_prev_p = den_p = 0.0
    num_prev_q = den_prev_q = den_q = 0.0
    num_last, den_last = num, den  # the previous convergent
    log_k_p = log_k_q = math.inf  # d log K / dp and dq, once the value has converged
    for k in range(1, MAX_TERMS):
        if k < length:
            coefficients = (
                tables[side, 0, k],
                tables[side, 1, k],
                tables[side, 2, k],
                tables[side, 3, k],
                tables[side, 4, k],
                tables[side, 5, k],
                tables[side, 6, k],
                tables[side, 7, k],
                tables[side, 8, k],
                tables[side, 9, k],
            )
        else:
            coefficients = fraction_coefficients(p, q, k, lam, ratio, nu)
        step = fraction_step(t, s, tau, tau2, delta, k, coefficients, sig, lam_s, nu)
        beta, alpha = step[0], step[1]
        if want_grad:
            (
                num_prev_p,
                num_p,
                den_prev_p,
                den_p,
                num_prev_q,
                num_q,
                den_prev_q,
                den_q,
            ) = convergent_derivatives(
                num_prev,
                num,
                den_prev,
                den,
                (num_prev_p, num_p, den_prev_p, den_p, num_prev_q, num_q, den_prev_q, den_q),
                step,
            )
        num_prev, num = num, beta * num + alpha * num_prev
        den_prev, den = den, beta * den + alpha * den_prev
        # Rescale only when the convergents drift far from 1: the division stays off the
        # recurrence's critical path in the usual case.
        if not (RESCALE_LOW < abs(den) < RESCALE_HIGH):
            scale = 1.0 / den if den != 0.0 else 1.0
            num_prev *= scale
            num *= scale
            den_prev *= scale
            den *= scale
            num_prev_p *= scale
            num_p *= scale
            den_prev_p *= scale
            den_p *= scale
            num_prev_q *= scale
            num_q *= scale
            den_prev_q *= scale
            den_q *= scale
        # |K_k - K_{k-1}| <= tol |K_k|, cross-multiplied: no division.
        cross = num * den_last
        converged = abs(cross - num_last * den) <= tol * abs(cross)
        num_last, den_last = num, den
        if converged and want_grad:
            # d log K = d A_k / A_k - d B_k / B_k, tested once the value has converged.
            inv_num = 1.0 / num
            inv_den = 1.0 / den
            new_k_p = num_p * inv_num - den_p * inv_den
            new_k_q = num_q * inv_num - den_q * inv_den
            converged = abs(new_k_p - log_k_p) <= tol * (abs(new_k_p) + 1.0) and abs(
                new_k_q - log_k_q
            ) <= tol * (abs(new_k_q) + 1.0)
            log_k_p = new_k_p
            log_k_q = new_k_q
        if converged:
            break
    log_grad_p = log_grad_q = 0.0
    if want_grad:
        log_grad_p, log_grad_q = fraction_gradients(
            1.0, p, q, delta, num, den, num_p, den_p, num_q, den_q, log_t, log_u, psi, lam, nu
        )
    return fraction_result(power, log_power, p / lam, num, den, log_grad_p, log_grad_q)


@callee
def lower_tail(
    p,
    q,
    t,
    s,
    log_t,
    log_s,
    delta,
    log_power,
    power,
    sides,
    want_grad,
    tol,
    tables,
    side,
    length,
    scratch,
):
    """(I_t(p, q), 1 - I_t(p, q), d/dp, d/dq) for t below the mode, by the method that suits.

    ``sides`` = (log(p B), psi(1 + p), psi(p + q) - psi(q), psi(p), psi(q), psi(p + q),
    log(p B) + p log q) (see ``series_terms``); ``tables[side]`` is ``_fill_tables(p, q, ...)``
    up to ``length`` (0: none); ``scratch`` that of the asymptotic expansion. The complement is
    exact where the series gives the log of I_t (small p, where I_t may be 1 - O(p)).
    """
    psi = (sides[3], sides[4], sides[5])
    if (q * t <= 1.0 or p < 1.0) and t <= 0.95:
        value, log_value, log_grad_p, log_grad_q = _series(
            p,
            q,
            t,
            log_t,
            log_s,
            delta,
            log_power,
            power,
            sides,
            want_grad,
            tol,
            tables,
            side,
            length,
        )
        return (
            value,
            -math.expm1(log_value) if p < 1.0 else 1.0 - value,
            times_value(value, log_value, log_grad_p),
            times_value(value, log_value, log_grad_q),
        )
    if negligible(log_power, p, q, want_grad):
        return 0.0, 1.0, 0.0, 0.0
    if min(p, q) >= TEMME_MIN and abs(delta) <= TEMME_Z * math.sqrt(p) * math.sqrt(q / (p + q)):
        value, grad_p, grad_q = temme(
            p, q, t, s, delta, log_t, log_s, log_power, psi, want_grad, scratch
        )
        return value, 1.0 - value, grad_p, grad_q
    value, grad_p, grad_q = _continued_fraction(
        p, q, t, s, delta, log_t, log_s, log_power, power, psi, want_grad, tol, tables, side, length
    )
    return value, 1.0 - value, grad_p, grad_q


@callee
def _fill_tables(p, q, tables):
    """Rows 0-9: ``fraction_coefficients`` of (p, q, k), scaled by ``fraction_scales(p, q)``, by
    column k; rows 10, 11: 1 / (p + k), 1 / k."""
    lam, sig, nu = fraction_scales(p, q)
    for k in range(tables.shape[1]):
        if k:
            coefficients = fraction_coefficients(p, q, k, lam, lam / sig, nu)
            for row in range(10):
                tables[row, k] = coefficients[row]
        tables[10, k] = 1.0 / (p + k)
        tables[11, k] = 1.0 / k if k else 0.0


@callee
def betainc_scalar(
    a, b, x, terms, want_grad, want_density, tol, tiny, huge, tables, length, scratch
):
    """(I_x(a, b), dI/da, dI/db, dI/dx) for one element, following scipy outside the interior.

    ``terms`` is ``series_terms(a, b, want_grad)``, which the caller computes once for each
    distinct (a, b); ``tables[0]`` and ``tables[1]`` are ``_fill_tables`` of (a, b) and (b, a)
    up to ``length`` (0 where they are not filled); ``scratch`` that of the asymptotic expansion.

    ``tiny`` and ``huge`` are the smallest normal and largest finite number of the output dtype:
    where the density is infinite (x = 0 with a < 1, x = 1 with b < 1) dI/dx is the density at the
    nearest number ``tiny`` away, capped at ``huge``, so that gradients stay finite.
    """
    if not (a >= 0.0 and b >= 0.0 and 0.0 <= x <= 1.0):  # also catches NaN
        return NAN, NAN, NAN, NAN
    degenerate = a == 0.0 or b == 0.0 or math.isinf(a) or math.isinf(b)
    if x == 0.0 or x == 1.0:
        density = 0.0
        if want_density and not degenerate:
            density = end_point_density(a, b, x, terms[0], tiny, huge)
        return x, 0.0, 0.0, density
    if (a == 0.0 and b == 0.0) or (math.isinf(a) and math.isinf(b)):  # no limit
        return NAN, NAN, NAN, NAN
    if a == 0.0 or math.isinf(b):
        return 1.0, 0.0, 0.0, 0.0
    if b == 0.0 or math.isinf(a):
        return 0.0, 0.0, 0.0, 0.0
    if math.isinf(a + b):  # beyond the range the kernel covers
        return NAN, NAN, NAN, NAN
    y = 1.0 - x
    log_x = math.log(x)
    log_y = math.log1p(-x)
    log_beta = terms[0]
    delta = mean_offset(a, b, x, y)
    log_power = log_power_terms(a, b, x, y, log_x, log_y, log_beta, delta)
    # x^a y^b / B(a, b), shared by the density and the continued fraction's prefactor.
    power = math.exp(log_power)
    density = beta_density(x, y, log_x, log_y, log_power, power, huge) if want_density else 0.0
    # Below the mode, x (a + b + 2) <= a + 1, decided from the exact delta (the product rounds).
    lower = delta >= 2.0 * x - 1.0
    element = (x, y, log_x, log_y, delta, log_power, power)
    value, grad_a, grad_b = either_tail(
        a, b, terms, element, lower, want_grad, tol, tables, length, scratch
    )
    # Not exact here (``_constants.SMALLEST_NORMAL``); ``_tiny_parameters`` computes it for betainc.
    if a < SMALLEST_NORMAL:
        grad_a = NAN
    if b < SMALLEST_NORMAL:
        grad_b = NAN
    return value, grad_a, grad_b, density


@callee
def either_tail(a, b, terms, element, lower, want_grad, tol, tables, length, scratch):
    """(I_x(a, b), dI/da, dI/db) from the tail below the mode: of (a, b, x) if ``lower``, else
    1 minus that of (b, a, 1 - x). ``terms`` is ``series_terms(a, b, want_grad)``,
    ``element`` (x, 1 - x, log x, log(1 - x), delta, log P, P) with P the prefactor."""
    x, y, log_x, log_y, delta, log_power, power = element
    if lower:
        p, q, t, s, log_t, log_s, offset, side = a, b, x, y, log_x, log_y, delta, 0
        sides = (terms[4], terms[5], terms[6], terms[1], terms[2], terms[3], terms[7])
    else:
        p, q, t, s, log_t, log_s, offset, side = b, a, y, x, log_y, log_x, -delta, 1
        sides = (terms[8], terms[9], terms[10], terms[2], terms[1], terms[3], terms[11])
    value, complement, grad_p, grad_q = lower_tail(
        p,
        q,
        t,
        s,
        log_t,
        log_s,
        offset,
        log_power,
        power,
        sides,
        want_grad,
        tol,
        tables,
        side,
        length,
        scratch,
    )
    if lower:
        return value, grad_p, grad_q
    return complement, -grad_q, -grad_p


@jit
def elementwise_kernel(
    a,
    b,
    x,
    layout,
    out,
    grad_a,
    grad_b,
    grad_x,
    want_grad_ab,
    want_grad_x,
    tol,
    tiny,
    huge,
    workspace,
    start,
    stop,
):
    """Fill ``out[start:stop]`` (and the gradients asked for) over the broadcast of a, b, x.

    Input ``k`` of the three is read at ``(i // layout[k, 0]) % layout[k, 1]``: that covers full,
    scalar and block-broadcast inputs (per-group parameters) without materialising them.
    ``workspace``: this call's own scratch arrays (:func:`workspace`).
    """
    # Parameters usually repeat (one prior for a batch, or per group): their terms are reused,
    # and from the second element of a run on, the loops read their coefficients from tables.
    last_a = last_b = NAN
    terms = series_terms(NAN, NAN, False)
    # Read positions advance by counting, not by dividing at every element.
    tables, scratch, position, within = workspace
    tables_ready = False
    for k in range(3):
        position[k] = (start // layout[k, 0]) % layout[k, 1]
        within[k] = start % layout[k, 0]
    for i in range(start, stop):
        a_i = np.float64(a[position[0]])
        b_i = np.float64(b[position[1]])
        x_i = np.float64(x[position[2]])
        for k in range(3):
            within[k] += 1
            if within[k] == layout[k, 0]:
                within[k] = 0
                position[k] += 1
                if position[k] == layout[k, 1]:
                    position[k] = 0
        if a_i != last_a or b_i != last_b:
            terms = series_terms(a_i, b_i, want_grad_ab)
            last_a, last_b = a_i, b_i
            tables_ready = False
        elif not tables_ready and a_i > 0.0 and b_i > 0.0 and a_i + b_i < math.inf:
            # (not for an infinite parameter, whose scales have no power of two: OverflowError)
            _fill_tables(a_i, b_i, tables[0])
            _fill_tables(b_i, a_i, tables[1])
            tables_ready = True
        length = _TABLE_TERMS if tables_ready else 0
        value, da, db, dx = betainc_scalar(
            a_i,
            b_i,
            x_i,
            terms,
            want_grad_ab,
            want_grad_x,
            tol,
            tiny,
            huge,
            tables,
            length,
            scratch,
        )
        _store((out, grad_a, grad_b, grad_x), i, (value, da, db, dx), want_grad_ab, want_grad_x)


@callee
def _store(outputs, i, results, want_grad_ab, want_grad_x):
    """Element i of the value and of the gradients asked for."""
    out, grad_a, grad_b, grad_x = outputs
    value, da, db, dx = results
    out[i] = value
    if want_grad_ab:
        grad_a[i] = da
        grad_b[i] = db
    if want_grad_x:
        grad_x[i] = dx


def betainc(
    a: Tensor, b: Tensor, x: Tensor, want_grad_ab: bool, want_grad_x: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(value, dI/da, dI/db, dI/dx) of the broadcast shape, each element on its own.

    ``a``, ``b``, ``x``: CPU tensors of one dtype (float32 or float64) that broadcast together;
    gradients not asked for are returned empty.
    """
    call = prepare(a, b, x, want_grad_ab, want_grad_x)
    if call.numel:
        kernel_args = (*call.arrays, call.layout, *call.out_arrays, *call.options)
        run_in_threads(elementwise_kernel, kernel_args, call.numel, workspace)
    return call.outputs


def workspace(table_terms: int = _TABLE_TERMS) -> tuple:
    """The scratch arrays of one call of :func:`elementwise_kernel` (or, with ``table_terms``
    1, of :func:`elementwise_at`), allocated by the host (see ``run_in_threads``): the
    coefficient tables of a run of shared parameters, the asymptotic expansion's scratch, and
    the read positions in the three inputs."""
    return (
        np.empty((2, TABLE_ROWS, table_terms)),
        new_scratch(),
        np.empty(3, dtype=np.int64),
        np.empty(3, dtype=np.int64),
    )


@jit
def elementwise_at(a, b, x, layout, indices, outputs, options, workspace, start, stop):
    """As :func:`elementwise_kernel` for the elements ``indices[start:stop]`` of the broadcast;
    ``outputs`` is (out, grad_a, grad_b, grad_x), ``options`` (want_grad_ab, want_grad_x, tol,
    tiny, huge), ``workspace`` from :func:`workspace` with one table term (the tables are not
    used)."""
    want_grad_ab, want_grad_x, tol, tiny, huge = options
    last_a = last_b = NAN
    terms = series_terms(NAN, NAN, False)
    tables, scratch, _, _ = workspace
    for j in range(start, stop):
        i = indices[j]
        a_i = np.float64(a[(i // layout[0, 0]) % layout[0, 1]])
        b_i = np.float64(b[(i // layout[1, 0]) % layout[1, 1]])
        x_i = np.float64(x[(i // layout[2, 0]) % layout[2, 1]])
        if a_i != last_a or b_i != last_b:
            terms = series_terms(a_i, b_i, want_grad_ab)
            last_a, last_b = a_i, b_i
        results = betainc_scalar(
            a_i, b_i, x_i, terms, want_grad_ab, want_grad_x, tol, tiny, huge, tables, 0, scratch
        )
        _store(outputs, i, results, want_grad_ab, want_grad_x)
