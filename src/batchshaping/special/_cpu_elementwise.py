"""The per-element CPU kernel of the incomplete beta function and its derivatives (numba).

Kernel ``"cpu-elementwise"`` of the registry. Each element is computed on its own in float64,
with its own stopping point:

- the prefactor ``x^a (1-x)^b / B(a, b)`` and the density are formed in log space;
- for ``x > (a + 1) / (a + b + 2)`` the reflection ``I_x(a, b) = 1 - I_{1-x}(b, a)`` keeps the
  computed quantity the small one;
- a power series serves where ``b x <= 1`` (small ``x``, or small ``b``), the continued fraction of
  Numerical Recipes (6.4.5) everywhere else;
- both are differentiated term by term in ``a`` and ``b`` (forward mode), and their stopping rule
  watches the derivative terms as well as the value: for integer ``b`` a series term or a continued
  fraction numerator is exactly zero, which stops the value but not its derivative in ``b``.

The continued fraction runs as the three-term forward recurrence of its convergents, rescaled at
every step, instead of the modified Lentz algorithm: the recurrence and its derivatives are plain
multiply-adds, where Lentz needs two divisions per term and two more per derivative.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from batchshaping._runtime.jit import jit
from batchshaping.special._cpu_host import prepare, run_in_threads
from batchshaping.special._scalar import (
    LOG_UNDERFLOW,
    MAX_TERMS,
    NAN,
    RESCALE_HIGH,
    RESCALE_LOW,
    beta_density,
    derivative_step,
    end_point_density,
    fraction_coefficients,
    fraction_gradients,
    log_power_terms,
    parameter_terms,
)

# Terms whose coefficients are tabulated once per (a, b) when the parameters repeat.
_TABLE_TERMS = 64


@jit
def _series(
    a, b, x, log_x, log_y, log_power, psi_a, psi_b, psi_ab, want_grad, tol, tables, side, length
):
    """I_x(a, b) and its a, b derivatives by the power series of B_x(a, b).

    B_x(a, b) = x^a sum_n t_n / (a + n),  t_0 = 1,  t_n = t_{n-1} (n - b) x / n.
    ``tables[side, 6, n] = 1 / (a + n)`` and ``tables[0, 7, n] = 1 / n`` for n < ``length``.
    """
    log_prefactor = log_power - b * log_y  # log(x^a / B(a, b))
    if log_prefactor < LOG_UNDERFLOW:
        return 0.0, 0.0, 0.0
    term_coef = 1.0  # t_n
    term_coef_b = 0.0  # d t_n / d b, carried by its own recurrence (t_n may be exactly zero)
    total = 1.0 / a
    total_a = -total * total
    total_b = 0.0
    for n in range(1, MAX_TERMS):
        if n < length:
            step = x * tables[0, 7, n]
            inv = tables[side, 6, n]
        else:
            step = x / n
            inv = 1.0 / (a + n)
        factor = (n - b) * step
        term_coef_b = term_coef_b * factor - term_coef * step
        term_coef = term_coef * factor
        term = term_coef * inv
        total += term
        if want_grad:
            term_a = term * inv
            term_b = term_coef_b * inv
            total_a -= term_a
            total_b += term_b
            if (
                abs(term) <= tol * abs(total)
                and abs(term_a) <= tol * abs(total_a)
                and abs(term_b) <= tol * (abs(total_b) + abs(total))
            ):
                break
        elif abs(term) <= tol * abs(total):
            break
    prefactor = math.exp(log_prefactor)
    value = prefactor * total
    if not want_grad:
        return value, 0.0, 0.0
    grad_a = value * (log_x - psi_a + psi_ab) + prefactor * total_a
    grad_b = value * (psi_ab - psi_b) + prefactor * total_b
    return value, grad_a, grad_b


@jit
def _continued_fraction(
    a, b, x, log_x, log_y, power, psi_a, psi_b, psi_ab, want_grad, tol, tables, side, length
):
    """I_x(a, b) = P / K, P = x^a (1-x)^b / (a B(a, b)), K = 1 + d_1 / (1 + d_2 / (1 + ...)).

    d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)),
    d_{2m+2} = (m + 1)(b - m - 1) x / ((a + 2m + 1)(a + 2m + 2)).
    The convergents A_n / B_n follow A_n = A_{n-1} + d_n A_{n-2} (B_n likewise), their
    derivatives the differentiated recurrence; a pair of terms per pass, rescaled by 1 / B_n when
    the magnitudes drift. ``tables[side, :6, m]`` holds ``fraction_coefficients(a, b, m)`` for
    m < ``length``.
    """
    if power == 0.0:  # underflow: the function is 0 to working precision
        return 0.0, 0.0, 0.0
    # (A_{n-2}, A_{n-1}) and (B_{n-2}, B_{n-1}), with their a and b derivatives.
    num_prev, num = 1.0, 1.0
    den_prev, den = 0.0, 1.0
    num_prev_a = num_a = den_prev_a = den_a = 0.0
    num_prev_b = num_b = den_prev_b = den_b = 0.0
    num_last, den_last = 1.0, 1.0  # the previous pair's convergent, K = num_last / den_last
    log_k_a = log_k_b = math.inf  # d log K / d a and d b, once the value has converged
    odd = odd_a = odd_b = even = even_a = even_b = 0.0
    for n in range(1, 2 * MAX_TERMS + 1):
        m = (n - 1) // 2
        if n % 2 == 1:  # d_{2m+1}; its pair d_{2m+2} comes from the same coefficients
            if m < length:
                odd, odd_a, odd_b = tables[side, 0, m], tables[side, 1, m], tables[side, 2, m]
                even, even_a, even_b = tables[side, 3, m], tables[side, 4, m], tables[side, 5, m]
            else:
                odd, odd_a, odd_b, even, even_a, even_b = fraction_coefficients(a, b, m)
            d, d_a, d_b = odd * x, odd_a * x, odd_b * x
        else:
            d, d_a, d_b = even * x, even_a * x, even_b * x
        if want_grad:
            num_prev_a, num_a = derivative_step(num_prev, num_prev_a, num_a, d, d_a)
            den_prev_a, den_a = derivative_step(den_prev, den_prev_a, den_a, d, d_a)
            num_prev_b, num_b = derivative_step(num_prev, num_prev_b, num_b, d, d_b)
            den_prev_b, den_b = derivative_step(den_prev, den_prev_b, den_b, d, d_b)
        num_prev, num = num, num + d * num_prev
        den_prev, den = den, den + d * den_prev
        if n % 2 == 1:
            continue
        # Rescale only when the convergents drift far from 1: the division stays off the
        # recurrence's critical path in the usual case.
        if not (RESCALE_LOW < abs(den) < RESCALE_HIGH):
            scale = 1.0 / den if den != 0.0 else 1.0
            num_prev *= scale
            num *= scale
            den_prev *= scale
            den *= scale
            num_prev_a *= scale
            num_a *= scale
            den_prev_a *= scale
            den_a *= scale
            num_prev_b *= scale
            num_b *= scale
            den_prev_b *= scale
            den_b *= scale
        # |K_n - K_{n-2}| <= tol |K_n|, cross-multiplied: no division.
        cross = num * den_last
        converged = abs(cross - num_last * den) <= tol * abs(cross)
        num_last, den_last = num, den
        if converged and want_grad:
            # d log K = d A_n / A_n - d B_n / B_n, tested once the value has converged.
            inv_num = 1.0 / num
            inv_den = 1.0 / den
            new_k_a = num_a * inv_num - den_a * inv_den
            new_k_b = num_b * inv_num - den_b * inv_den
            converged = abs(new_k_a - log_k_a) <= tol * (abs(new_k_a) + 1.0) and abs(
                new_k_b - log_k_b
            ) <= tol * (abs(new_k_b) + 1.0)
            log_k_a = new_k_a
            log_k_b = new_k_b
        if converged:
            break
    result = power / a * den / num
    if not want_grad:
        return result, 0.0, 0.0
    grad_a, grad_b = fraction_gradients(
        result, a, num, den, num_a, den_a, num_b, den_b, log_x, log_y, (psi_a, psi_b, psi_ab)
    )
    return result, grad_a, grad_b


@jit
def _lower_tail(
    a,
    b,
    x,
    log_x,
    log_y,
    log_power,
    power,
    psi_a,
    psi_b,
    psi_ab,
    want_grad,
    tol,
    tables,
    side,
    length,
):
    """I_x(a, b) for x below the mode region, by series or continued fraction.

    ``tables[side]`` is ``_fill_tables(a, b, ...)`` for these (a, b) up to ``length`` (0: none).
    """
    if b * x <= 1.0 and x <= 0.95:
        return _series(
            a,
            b,
            x,
            log_x,
            log_y,
            log_power,
            psi_a,
            psi_b,
            psi_ab,
            want_grad,
            tol,
            tables,
            side,
            length,
        )
    return _continued_fraction(
        a,
        b,
        x,
        log_x,
        log_y,
        power,
        psi_a,
        psi_b,
        psi_ab,
        want_grad,
        tol,
        tables,
        side,
        length,
    )


@jit
def _fill_tables(a, b, tables):
    """Rows 0-5: ``fraction_coefficients(a, b, m)`` by column m; rows 6, 7: 1 / (a + m), 1 / m."""
    for m in range(tables.shape[1]):
        (
            tables[0, m],
            tables[1, m],
            tables[2, m],
            tables[3, m],
            tables[4, m],
            tables[5, m],
        ) = fraction_coefficients(a, b, m)
        tables[6, m] = 1.0 / (a + m)
        tables[7, m] = 1.0 / m if m else 0.0


@jit
def betainc_scalar(a, b, x, terms, want_grad, want_density, tol, tiny, huge, tables, length):
    """(I_x(a, b), dI/da, dI/db, dI/dx) for one element, following scipy outside the interior.

    ``terms`` is ``parameter_terms(a, b, want_grad)``, which the caller computes once for each
    distinct (a, b); ``tables[0]`` and ``tables[1]`` are ``_fill_tables`` of (a, b) and (b, a)
    up to ``length`` (0 where they are not filled).

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
    if a == 0.0 and b == 0.0:
        return NAN, NAN, NAN, NAN
    if a == 0.0 or math.isinf(b):
        return 1.0, 0.0, 0.0, 0.0
    if b == 0.0 or math.isinf(a):
        return 0.0, 0.0, 0.0, 0.0
    y = 1.0 - x
    log_x = math.log(x)
    log_y = math.log1p(-x)
    log_beta, psi_a, psi_b, psi_ab = terms
    log_power = log_power_terms(a, b, x, y, log_x, log_y, log_beta)
    # x^a y^b / B(a, b), shared by the density and the continued fraction's prefactor.
    power = math.exp(log_power) if log_power > LOG_UNDERFLOW else 0.0
    density = beta_density(x, y, log_x, log_y, log_power, power, huge) if want_density else 0.0
    if x * (a + b + 2.0) <= a + 1.0:
        value, grad_a, grad_b = _lower_tail(
            a,
            b,
            x,
            log_x,
            log_y,
            log_power,
            power,
            psi_a,
            psi_b,
            psi_ab,
            want_grad,
            tol,
            tables,
            0,
            length,
        )
        return value, grad_a, grad_b, density
    value, grad_b, grad_a = _lower_tail(
        b,
        a,
        y,
        log_y,
        log_x,
        log_power,
        power,
        psi_b,
        psi_a,
        psi_ab,
        want_grad,
        tol,
        tables,
        1,
        length,
    )
    return 1.0 - value, -grad_a, -grad_b, density


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
    start,
    stop,
):
    """Fill ``out[start:stop]`` (and the gradients asked for) over the broadcast of a, b, x.

    Input ``k`` of the three is read at ``(i // layout[k, 0]) % layout[k, 1]``: that covers full,
    scalar and block-broadcast inputs (per-group parameters) without materialising them.
    """
    # Parameters usually repeat (one prior for a batch, or per group): their terms are reused,
    # and from the second element of a run on, the loops read their coefficients from tables.
    last_a = last_b = NAN
    terms = (NAN, NAN, NAN, NAN)
    tables = np.empty((2, 8, _TABLE_TERMS))
    tables_ready = False
    # Read positions advance by counting, not by dividing at every element.
    position = np.empty(3, dtype=np.int64)
    within = np.empty(3, dtype=np.int64)
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
            terms = parameter_terms(a_i, b_i, want_grad_ab)
            last_a, last_b = a_i, b_i
            tables_ready = False
        elif not tables_ready and a_i > 0.0 and b_i > 0.0:
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
        )
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
        run_in_threads(elementwise_kernel, kernel_args, call.numel)
    return call.outputs
