"""CPU kernel of the regularized incomplete beta function and its derivatives (numba).

:func:`betainc_cpu` sends long runs of elements that share (a, b) to the kernel that advances
many of them together (``_incomplete_beta_lanes``), and everything else to the per-element kernel
of this module. Here each element is computed independently in float64 with its own stopping
point:

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

import itertools
import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

# Stop when a term changes the sum by less than this fraction; above float64's unit roundoff so the
# test can be met, and small enough to leave the result exact to the last bit or two.
_TOL64 = 3e-16
# float32 results need far less: stop once terms are below float32's resolution (6e-8).
_TOL32 = 1e-8
# Past this the prefactor underflows: the function is 0 (or 1) to working precision.
_LOG_UNDERFLOW = -745.0
_MAX_TERMS = 100_000
# Terms whose coefficients are tabulated once per (a, b) when the parameters repeat.
_TABLE_TERMS = 64
# The continued fraction's convergents are rescaled when B_n leaves this range.
_RESCALE_LOW, _RESCALE_HIGH = 1e-100, 1e100

_NAN = math.nan
# No Python exceptions on division by zero (the code guards its divisions), no GIL: the kernel runs
# in parallel on plain threads. Plain threads rather than numba's parallel loops cost a fraction
# of the compile time on first use.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
# Below this many elements one thread does the work.
_MIN_PER_THREAD = 16_384


@_jit
def _digamma(x: float) -> float:
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


_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# Above this, the Stirling series below is exact to float64 and lgamma differences cancel badly.
_STIRLING_MIN = 15.0


@_jit
def _stirling_error(z: float) -> float:
    """lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2), for z >= 15."""
    inv = 1.0 / z
    inv2 = inv * inv
    return inv * (
        1.0 / 12.0
        - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 / 1188.0)))
    )


@_jit
def _log_beta(a: float, b: float) -> float:
    """log B(a, b), without the cancellation of lgamma(b) - lgamma(a + b) for large b."""
    small = min(a, b)
    big = max(a, b)
    if big < _STIRLING_MIN:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    # lgamma(big) - lgamma(big + small) by Stirling's series.
    difference = (
        small
        - small * math.log(big)
        - (big + small - 0.5) * math.log1p(small / big)
        + _stirling_error(big)
        - _stirling_error(big + small)
    )
    return math.lgamma(small) + difference


@_jit
def _deviance(k: float, mean: float) -> float:
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


@_jit
def _log_power_terms(a, b, x, y, log_x, log_y, log_beta):
    """log(x^a y^b / B(a, b)) with y = 1 - x; symmetric under (a, x) <-> (b, y).

    For large a and b, the terms a log x + b log y and log B(a, b) are each large and cancel; the
    saddle-point form (Loader's deviances and Stirling errors) keeps full relative accuracy.
    """
    if min(a, b) < _STIRLING_MIN:
        return a * log_x + b * log_y - log_beta
    n = a + b
    return (
        -_deviance(a, n * x)
        - _deviance(b, n * y)
        + 0.5 * math.log(a * b / n)
        - _HALF_LOG_2PI
        + _stirling_error(n)
        - _stirling_error(a)
        - _stirling_error(b)
    )


@_jit
def _series(
    a, b, x, log_x, log_y, log_power, psi_a, psi_b, psi_ab, want_grad, tol, tables, side, length
):
    """I_x(a, b) and its a, b derivatives by the power series of B_x(a, b).

    B_x(a, b) = x^a sum_n t_n / (a + n),  t_0 = 1,  t_n = t_{n-1} (n - b) x / n.
    ``tables[side, 6, n] = 1 / (a + n)`` and ``tables[0, 7, n] = 1 / n`` for n < ``length``.
    """
    log_prefactor = log_power - b * log_y  # log(x^a / B(a, b))
    if log_prefactor < _LOG_UNDERFLOW:
        return 0.0, 0.0, 0.0
    term_coef = 1.0  # t_n
    term_coef_b = 0.0  # d t_n / d b, carried by its own recurrence (t_n may be exactly zero)
    total = 1.0 / a
    total_a = -total * total
    total_b = 0.0
    for n in range(1, _MAX_TERMS):
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


@_jit
def _fraction_coefficients(a, b, m):
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


@_jit
def _derivative_step(previous, previous_derivative, derivative, d, d_derivative):
    """One step of the derivative of the convergents' recurrence A_n = A_{n-1} + d_n A_{n-2}.

    From (A'_{n-2}, A'_{n-1}) to (A'_{n-1}, A'_n), A'_n = A'_{n-1} + d_n' A_{n-2} + d_n A'_{n-2};
    ``previous`` is A_{n-2} (B likewise). Both CPU kernels step their derivatives with it.
    """
    return derivative, derivative + d_derivative * previous + d * previous_derivative


@_jit
def _fraction_gradients(tail, p, num, den, num_p, den_p, num_q, den_q, log_t, log_u, psi):
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


@_jit
def _density(x, y, log_x, log_y, log_power, power, huge):
    """The Beta density x^(a-1) y^(b-1) / B(a, b) inside (0, 1), capped at ``huge``.

    From the prefactor ``power`` = x^a y^b / B(a, b) (``log_power`` its log) where it is a normal
    number, else in log space.
    """
    if power > 0.0:
        return min(power / (x * y), huge)
    return min(math.exp(log_power - log_x - log_y), huge)


@_jit
def _end_point_density(a, b, x, log_beta, tiny, huge):
    """The density at x = 0 or 1: where it is infinite, at the nearest normal number ``tiny``
    away, capped at ``huge``, so that gradients stay finite."""
    log_x = math.log(max(x, tiny))
    log_y = math.log(max(1.0 - x, tiny))
    return min(math.exp((a - 1.0) * log_x + (b - 1.0) * log_y - log_beta), huge)


@_jit
def _continued_fraction(
    a, b, x, log_x, log_y, power, psi_a, psi_b, psi_ab, want_grad, tol, tables, side, length
):
    """I_x(a, b) = P / K, P = x^a (1-x)^b / (a B(a, b)), K = 1 + d_1 / (1 + d_2 / (1 + ...)).

    d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)),
    d_{2m+2} = (m + 1)(b - m - 1) x / ((a + 2m + 1)(a + 2m + 2)).
    The convergents A_n / B_n follow A_n = A_{n-1} + d_n A_{n-2} (B_n likewise), their
    derivatives the differentiated recurrence; a pair of terms per pass, rescaled by 1 / B_n when
    the magnitudes drift. ``tables[side, :6, m]`` holds ``_fraction_coefficients(a, b, m)`` for
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
    for n in range(1, 2 * _MAX_TERMS + 1):
        m = (n - 1) // 2
        if n % 2 == 1:  # d_{2m+1}; its pair d_{2m+2} comes from the same coefficients
            if m < length:
                odd, odd_a, odd_b = tables[side, 0, m], tables[side, 1, m], tables[side, 2, m]
                even, even_a, even_b = tables[side, 3, m], tables[side, 4, m], tables[side, 5, m]
            else:
                odd, odd_a, odd_b, even, even_a, even_b = _fraction_coefficients(a, b, m)
            d, d_a, d_b = odd * x, odd_a * x, odd_b * x
        else:
            d, d_a, d_b = even * x, even_a * x, even_b * x
        if want_grad:
            num_prev_a, num_a = _derivative_step(num_prev, num_prev_a, num_a, d, d_a)
            den_prev_a, den_a = _derivative_step(den_prev, den_prev_a, den_a, d, d_a)
            num_prev_b, num_b = _derivative_step(num_prev, num_prev_b, num_b, d, d_b)
            den_prev_b, den_b = _derivative_step(den_prev, den_prev_b, den_b, d, d_b)
        num_prev, num = num, num + d * num_prev
        den_prev, den = den, den + d * den_prev
        if n % 2 == 1:
            continue
        # Rescale only when the convergents drift far from 1: the division stays off the
        # recurrence's critical path in the usual case.
        if not (_RESCALE_LOW < abs(den) < _RESCALE_HIGH):
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
    grad_a, grad_b = _fraction_gradients(
        result, a, num, den, num_a, den_a, num_b, den_b, log_x, log_y, (psi_a, psi_b, psi_ab)
    )
    return result, grad_a, grad_b


@_jit
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


@_jit
def _fill_tables(a, b, tables):
    """Rows 0-5: ``_fraction_coefficients(a, b, m)`` by column m; rows 6, 7: 1 / (a + m), 1 / m."""
    for m in range(tables.shape[1]):
        (
            tables[0, m],
            tables[1, m],
            tables[2, m],
            tables[3, m],
            tables[4, m],
            tables[5, m],
        ) = _fraction_coefficients(a, b, m)
        tables[6, m] = 1.0 / (a + m)
        tables[7, m] = 1.0 / m if m else 0.0


@_jit
def parameter_terms(a, b, want_grad):
    """log B(a, b) and, for the gradients, psi(a), psi(b), psi(a + b): shared by all x."""
    if not (a > 0.0 and b > 0.0) or math.isinf(a) or math.isinf(b):
        return _NAN, _NAN, _NAN, _NAN
    log_beta = _log_beta(a, b)
    if not want_grad:
        return log_beta, 0.0, 0.0, 0.0
    return log_beta, _digamma(a), _digamma(b), _digamma(a + b)


@_jit
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
        return _NAN, _NAN, _NAN, _NAN
    degenerate = a == 0.0 or b == 0.0 or math.isinf(a) or math.isinf(b)
    if x == 0.0 or x == 1.0:
        density = 0.0
        if want_density and not degenerate:
            density = _end_point_density(a, b, x, terms[0], tiny, huge)
        return x, 0.0, 0.0, density
    if a == 0.0 and b == 0.0:
        return _NAN, _NAN, _NAN, _NAN
    if a == 0.0 or math.isinf(b):
        return 1.0, 0.0, 0.0, 0.0
    if b == 0.0 or math.isinf(a):
        return 0.0, 0.0, 0.0, 0.0
    y = 1.0 - x
    log_x = math.log(x)
    log_y = math.log1p(-x)
    log_beta, psi_a, psi_b, psi_ab = terms
    log_power = _log_power_terms(a, b, x, y, log_x, log_y, log_beta)
    # x^a y^b / B(a, b), shared by the density and the continued fraction's prefactor.
    power = math.exp(log_power) if log_power > _LOG_UNDERFLOW else 0.0
    density = _density(x, y, log_x, log_y, log_power, power, huge) if want_density else 0.0
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


@_jit
def _betainc_kernel(
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
    last_a = last_b = _NAN
    terms = (_NAN, _NAN, _NAN, _NAN)
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


_pool: ThreadPoolExecutor | None = None


def _run_in_threads(kernel, kernel_args, numel: int) -> None:
    """Split ``range(numel)`` over torch's intra-op thread count, the GIL released."""
    global _pool
    threads = max(1, min(torch.get_num_threads(), numel // _MIN_PER_THREAD))
    if threads == 1:
        kernel(*kernel_args, 0, numel)
        return
    if _pool is None or _pool._max_workers < threads:
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="betainc")
    # More chunks than threads: elements differ in cost, so finish times even out.
    bounds = np.linspace(0, numel, 4 * threads + 1).astype(np.int64)
    futures = [
        _pool.submit(kernel, *kernel_args, lo, hi) for lo, hi in itertools.pairwise(bounds.tolist())
    ]
    for future in futures:
        future.result()


def _flat_layout(t, shape):
    """A 1-D numpy view of ``t`` and its (divisor, modulus) read pattern within ``shape``."""
    numel = math.prod(shape)
    if t.numel() == 1:
        return t.reshape(1).numpy(), (1, 1)
    padded = (1,) * (len(shape) - t.dim()) + tuple(t.shape)
    pairs = enumerate(zip(padded, shape, strict=True))
    real = [d for d, (own, full) in pairs if own == full and full != 1]
    if real and real == list(range(real[0], real[-1] + 1)):
        inner = math.prod(shape[real[-1] + 1 :])
        block = math.prod(shape[real[0] : real[-1] + 1])
        return t.contiguous().view(-1).numpy(), (inner, block)
    return torch.broadcast_to(t, shape).contiguous().view(-1).numpy(), (1, numel)


def betainc_cpu(a, b, x, want_grad_ab: bool, want_grad_x: bool):
    """(value, dI/da, dI/db, dI/dx) as torch tensors of the broadcast shape, on the CPU.

    ``a``, ``b``, ``x`` share one floating dtype (float32 or float64). Gradients not asked for are
    returned as empty tensors.
    """
    shape = tuple(torch.broadcast_shapes(a.shape, b.shape, x.shape))
    dtype = x.dtype
    numel = math.prod(shape)
    arrays, layout = [], np.empty((3, 2), dtype=np.int64)
    for k, t in enumerate((a, b, x)):
        array, layout[k] = _flat_layout(t.detach(), shape)
        arrays.append(array)

    def new(wanted):
        return torch.empty(shape if wanted else (0,), dtype=dtype)

    out, grad_a, grad_b, grad_x = new(True), new(want_grad_ab), new(want_grad_ab), new(want_grad_x)
    if numel:
        tol = _TOL64 if dtype == torch.float64 else _TOL32
        finfo = torch.finfo(dtype)
        outputs = (
            out.view(-1).numpy(),
            grad_a.view(-1).numpy(),
            grad_b.view(-1).numpy(),
            grad_x.view(-1).numpy(),
        )
        options = (want_grad_ab, want_grad_x, tol, finfo.tiny, finfo.max)
        run_length = _shared_parameter_runs(arrays, layout, numel)
        if run_length:
            from batchshaping.special._incomplete_beta_lanes import betainc_runs_kernel

            kernel_args = (*arrays, layout, run_length, *outputs, *options)
            _run_in_threads(betainc_runs_kernel, kernel_args, numel)
        else:
            _run_in_threads(_betainc_kernel, (*arrays, layout, *outputs, *options), numel)
    return out, grad_a, grad_b, grad_x


# Runs of at least this many elements sharing (a, b) go to the kernel that advances many
# elements together (``_incomplete_beta_lanes``); the tests lower it to send everything there.
MIN_SHARED_RUN = 256


def _shared_parameter_runs(arrays, layout, numel: int) -> int:
    """The length of the runs of elements that share (a, b), or 0 if they are too short.

    Parameters are read at ``(i // inner) % block``: constant along runs of ``inner`` elements
    (all of them for a single value). Also 0 where x is not laid out in full, or where some
    parameter is not a positive finite number (the per-element kernel handles those cases).
    """
    if tuple(layout[2]) != (1, numel):
        return 0
    run = numel
    for k in (0, 1):
        inner, block = layout[k]
        if block > 1:
            run = math.gcd(run, int(inner))
    if run < MIN_SHARED_RUN:
        return 0
    for parameter in arrays[:2]:
        if not np.all((parameter > 0) & (parameter < math.inf)):
            return 0
    return run
