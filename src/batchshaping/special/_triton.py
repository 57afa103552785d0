"""The Triton kernel of the incomplete beta function and its derivatives (CUDA).

Kernel ``"triton"`` of the registry: one launch computes the value and, as asked, dI/da, dI/db
(constexpr ``WANT_GRAD_AB``) and dI/dx (a runtime flag), each element stopping when it has
converged. The mathematics of the per-element CPU kernel (``_cpu_elementwise``), written in plain
``tl.*`` operations (no libdevice), so that Triton's interpreter (``TRITON_INTERPRET=1``) runs on
CPU tensors exactly the code the GPU runs:

- float32 and float64 inputs are both computed in float64, as on the CPU (float32 stops at the
  looser tolerance of its dtype). Measured under the interpreter on the float32 accuracy test's
  20,000 points (a, b log-uniform in [1e-3, 1e3]) against scipy, bound 2e-7: all in float32,
  worst error 1.1e-5 (4,730 points over the bound); the prefactor and log B in float64 and the
  loops in float32, 3.2e-6 (89 over); all in float64, 3.5e-8 (none), the output's rounding;
- the prefactor ``x^a (1-x)^b / B(a, b)`` in log space, in Loader's saddle-point form when a and
  b are both large; log Gamma and digamma by shifting the argument up, then Stirling's series;
- the reflection ``I_x(a, b) = 1 - I_{1-x}(b, a)`` past ``x = (a + 1) / (a + b + 2)``;
- each element of the interior falls in one *region*, computed by its own loop and stored by
  it: the power series where ``b x <= 1`` and ``x <= 0.95``, the continued fraction elsewhere.
  A loop runs while any element of its block is unfinished (a per-block early exit); finished
  elements stay frozen. Another method (a large-parameter expansion, say) would be one more
  region: a mask, a function, a store.
- Both loops are differentiated term by term in a and b and their stopping rule watches the
  derivative terms too (for integer b a term or numerator is exactly zero, which stops the
  value but not its b derivative).

Where the series or the fraction has not converged after ``MAX_TERMS`` terms (a and b beyond
about 1e9 near the mode), the value and its a, b derivatives are NaN: never a wrong finite
number. Broadcast inputs (one prior, per-group parameters of shape (G, 1)) are read in place
with the (divisor, modulus) layout of :func:`batchshaping.special._cpu_host.flat_layout`.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from typing import NamedTuple

import numpy as np
import torch
import triton
import triton.language as tl
from torch import Tensor

from batchshaping.special._cpu_host import TOL32, TOL64, flat_layout

# As in the CPU kernels: the cap on series terms and fraction pairs, the rescaling range of the
# convergents, the log below which the prefactor underflows, where Stirling's series takes over.
MAX_TERMS = 100_000
RESCALE_LOW, RESCALE_HIGH = 1e-100, 1e100
LOG_UNDERFLOW = -745.0
STIRLING_MIN = 15.0
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

# Elements per program on the GPU: one warp, one element per thread. A loop runs until the
# slowest element of its block has finished; within one warp the test of that is a shuffle
# reduction (no shared memory, no barrier), and the warp is the finest grain SIMT allows.
BLOCK = 32
# Fused multiply-adds (the recurrences are chains of them); the interpreter rounds each
# operation instead, so its results differ from the GPU's in the last bits.
COMPILE_OPTIONS = {"num_warps": 1, "enable_fp_fusion": True}
# Once the value of the continued fraction has converged, its d log K / da and db settle to
# rounding noise that wanders by 1e-16 to 1e-13 a pair; a float64 test at 3e-16 is then met only
# by chance, much later and no more accurately. Their test uses this tolerance instead: at
# (a, b, x) = (5.5e4, 4.9, 0.9954) it stops after 93 pairs instead of 1,634, at (2.3e4, 4.7e-3,
# 0.9995) after 755 instead of 3,207, with errors against mpmath of the same order (2.7e-11
# against 4.9e-11 relative at the second).
FRACTION_GRAD_TOL = 1e-14
# Under the interpreter each program costs Python overhead per operation: few, large blocks.
INTERPRETER_BLOCK = 1 << 18

_HALF_LOG_2PI = tl.constexpr(HALF_LOG_2PI)
_LOG_UNDERFLOW = tl.constexpr(LOG_UNDERFLOW)
_RESCALE_LOW = tl.constexpr(RESCALE_LOW)
_RESCALE_HIGH = tl.constexpr(RESCALE_HIGH)
_STIRLING_MIN = tl.constexpr(STIRLING_MIN)


# --- scalar functions, elementwise on blocks ---------------------------------------------------


@triton.jit
def _log1p(x):
    """log(1 + x), exact for small x: the rounding of 1 + x is undone (Goldberg, 1991)."""
    u = 1.0 + x
    return tl.where(u == 1.0, x, tl.log(u) * (x / (u - 1.0)))


@triton.jit
def _stirling_error(z):
    """lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2), for z >= 15."""
    inv = 1.0 / z
    inv2 = inv * inv
    return inv * (
        1.0 / 12.0
        - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 / 1188.0)))
    )


@triton.jit
def _lgamma(x):
    """log Gamma(x), x > 0: Gamma(x) = Gamma(z) / (x (x + 1) ... (z - 1)) with z >= 15."""
    product = tl.zeros_like(x) + 1.0
    for _ in tl.static_range(15):
        low = x < _STIRLING_MIN
        product = tl.where(low, product * x, product)
        x = tl.where(low, x + 1.0, x)
    return (x - 0.5) * tl.log(x) - x + _HALF_LOG_2PI + _stirling_error(x) - tl.log(product)


@triton.jit
def _digamma(x):
    """psi(x), x > 0: the recurrence up to x >= 10, then the asymptotic series (its first omitted
    term, 1 / (12 x^14), is 8e-16 there; from 6, it would be 1e-12)."""
    result = tl.zeros_like(x)
    for _ in tl.static_range(10):
        low = x < 10.0
        result = tl.where(low, result - 1.0 / x, result)
        x = tl.where(low, x + 1.0, x)
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
    return result + tl.log(x) - 0.5 * inv - series


@triton.jit
def _log_beta(a, b):
    """log B(a, b), without the cancellation of lgamma(b) - lgamma(a + b) for large b."""
    small = tl.minimum(a, b)
    big = tl.maximum(a, b)
    log_gamma_small = _lgamma(small)
    direct = log_gamma_small + _lgamma(big) - _lgamma(a + b)
    big = tl.maximum(big, _STIRLING_MIN)
    # lgamma(big) - lgamma(big + small) by Stirling's series.
    difference = (
        small
        - small * tl.log(big)
        - (big + small - 0.5) * _log1p(small / big)
        + _stirling_error(big)
        - _stirling_error(big + small)
    )
    return tl.where(tl.maximum(a, b) < _STIRLING_MIN, direct, log_gamma_small + difference)


@triton.jit
def _deviance(k, mean):
    """k log(k / mean) + mean - k, accurate when k is close to mean (Loader, 2000)."""
    ratio = (k - mean) / (k + mean)
    near = tl.abs(ratio) < 0.1
    ratio = tl.where(near, ratio, 0.0)
    total = (k - mean) * ratio
    term = 2.0 * k * ratio
    ratio2 = ratio * ratio
    # ratio^2 < 0.01: eleven terms reach float64's resolution.
    for j in tl.static_range(1, 12):
        term = term * ratio2
        total = total + term * (1.0 / (2 * j + 1))
    return tl.where(near, total, k * tl.log(k / mean) + mean - k)


@triton.jit
def _log_power_terms(a, b, x, y, log_x, log_y, log_beta):
    """log(x^a y^b / B(a, b)), y = 1 - x; in saddle-point form when a and b are both large."""
    direct = a * log_x + b * log_y - log_beta
    large_a = tl.maximum(a, _STIRLING_MIN)
    large_b = tl.maximum(b, _STIRLING_MIN)
    n = large_a + large_b
    saddle = (
        -_deviance(large_a, n * x)
        - _deviance(large_b, n * y)
        + 0.5 * tl.log(large_a * (large_b / n))
        - _HALF_LOG_2PI
        + _stirling_error(n)
        - _stirling_error(large_a)
        - _stirling_error(large_b)
    )
    return tl.where(tl.minimum(a, b) >= _STIRLING_MIN, saddle, direct)


# --- the two regions of the interior -----------------------------------------------------------


@triton.jit
def _series(
    p, q, u, log_u, log_prefactor, psi_p, psi_q, psi_pq, active, max_terms, TOL, WANT_GRAD_AB
):
    """I_u(p, q) and its p, q derivatives by the power series of B_u(p, q), where ``active``.

    B_u(p, q) = u^p sum_n t_n / (p + n),  t_0 = 1,  t_n = t_{n-1} (n - q) u / n, and
    ``log_prefactor`` = log(u^p / B(p, q)). Returns the value, its p and q derivatives and the
    elements still unfinished after ``max_terms`` terms.
    """
    zero = tl.zeros_like(u)
    term_coef = zero + 1.0
    term_coef_q = zero  # d t_n / d q, by its own recurrence (t_n may be exactly zero)
    total = 1.0 / p
    total_p = -total * total
    total_q = zero
    n = tl.full([], 1, tl.int32)
    while (n < max_terms) & (tl.max(active.to(tl.int32), axis=0) > 0):
        step = u / n.to(tl.float64)
        factor = (n.to(tl.float64) - q) * step
        if WANT_GRAD_AB:
            term_coef_q = term_coef_q * factor - term_coef * step
        term_coef = term_coef * factor
        inv = 1.0 / (p + n.to(tl.float64))
        term = term_coef * inv
        total += tl.where(active, term, 0.0)
        finished = tl.abs(term) <= TOL * tl.abs(total)
        if WANT_GRAD_AB:
            term_p = term * inv
            term_q = term_coef_q * inv
            total_p -= tl.where(active, term_p, 0.0)
            total_q += tl.where(active, term_q, 0.0)
            finished = (
                finished
                & (tl.abs(term_p) <= TOL * tl.abs(total_p))
                & (tl.abs(term_q) <= TOL * (tl.abs(total_q) + tl.abs(total)))
            )
        active = active & ~finished
        n += 1
    prefactor = tl.where(log_prefactor >= _LOG_UNDERFLOW, tl.exp(log_prefactor), 0.0)
    value = prefactor * total
    grad_p = value * (log_u - psi_p + psi_pq) + prefactor * total_p
    grad_q = value * (psi_pq - psi_q) + prefactor * total_q
    return value, grad_p, grad_q, active


@triton.jit
def _continued_fraction(
    p, q, u, log_u, log_v, power, psi_p, psi_q, psi_pq, active, max_terms, TOL, GRAD_TOL,
    WANT_GRAD_AB,
):  # fmt: skip
    """I_u(p, q) = P / K, P = u^p v^q / (p B(p, q)), K = 1 + d_1 / (1 + d_2 / (1 + ...)).

    d_{2m+1} = -(p + m)(p + q + m) u / ((p + 2m)(p + 2m + 1)),
    d_{2m+2} = (m + 1)(q - m - 1) u / ((p + 2m + 1)(p + 2m + 2)); ``power`` = u^p v^q / B(p, q).
    The convergents A_n / B_n follow A_n = A_{n-1} + d_n A_{n-2} (B_n likewise), their p and q
    derivatives the differentiated recurrence, a pair of terms per pass, rescaled when B_n leaves
    [1e-100, 1e100]. A finished element's terms are zero, which leaves A_n, B_n and their
    derivatives as they were. Returns the value, its p and q derivatives and the elements still
    unfinished after ``max_terms`` pairs. (The loop body is written out, without calls: the
    interpreter pays for every call of a jit function.)
    """
    zero = tl.zeros_like(u)
    # (A_{n-2}, A_{n-1}) and (B_{n-2}, B_{n-1}), with their p and q derivatives.
    num_prev = zero + 1.0
    num = zero + 1.0
    den_prev = zero
    den = zero + 1.0
    num_prev_p = zero
    num_p = zero
    den_prev_p = zero
    den_p = zero
    num_prev_q = zero
    num_q = zero
    den_prev_q = zero
    den_q = zero
    num_last = zero + 1.0  # the previous pair's convergent K = num_last / den_last
    den_last = zero + 1.0
    log_k_p = zero + float("inf")  # d log K / dp and dq, once the value has converged
    log_k_q = zero + float("inf")
    pq = p + q
    inv_r0 = 1.0 / p
    m = tl.full([], 0, tl.int32)
    while (m < max_terms) & (tl.max(active.to(tl.int32), axis=0) > 0):
        mf = m.to(tl.float64)
        inv_r1 = 1.0 / (p + (2.0 * mf + 1.0))
        inv_r2 = 1.0 / (p + (2.0 * mf + 2.0))
        u_active = tl.where(active, u, 0.0)
        odd = -(p + mf) * (pq + mf) * inv_r0 * inv_r1
        even_q = (mf + 1.0) * inv_r1 * inv_r2
        even = (q - (mf + 1.0)) * even_q
        for step in tl.static_range(2):  # d_{2m+1}, then d_{2m+2}
            if step == 0:
                d = odd * u_active
                if WANT_GRAD_AB:
                    inv_q = 1.0 / (pq + mf)
                    d_p = odd * (1.0 / (p + mf) + inv_q - inv_r0 - inv_r1) * u_active
                    d_q = odd * inv_q * u_active
            else:
                d = even * u_active
                if WANT_GRAD_AB:
                    d_p = -d * (inv_r1 + inv_r2)
                    d_q = even_q * u_active
            if WANT_GRAD_AB:
                num_prev_p, num_p = num_p, num_p + d_p * num_prev + d * num_prev_p
                den_prev_p, den_p = den_p, den_p + d_p * den_prev + d * den_prev_p
                num_prev_q, num_q = num_q, num_q + d_q * num_prev + d * num_prev_q
                den_prev_q, den_q = den_q, den_q + d_q * den_prev + d * den_prev_q
            num_prev, num = num, num + d * num_prev
            den_prev, den = den, den + d * den_prev
        inv_r0 = inv_r2
        far = (tl.abs(den) <= _RESCALE_LOW) | (tl.abs(den) >= _RESCALE_HIGH)
        if tl.max(far.to(tl.int32), axis=0) > 0:  # rare: the division stays off the usual pass
            scale = tl.where(far & (den != 0.0), 1.0 / den, 1.0)
            num_prev *= scale
            num *= scale
            den_prev *= scale
            den *= scale
            if WANT_GRAD_AB:
                num_prev_p *= scale
                num_p *= scale
                den_prev_p *= scale
                den_p *= scale
                num_prev_q *= scale
                num_q *= scale
                den_prev_q *= scale
                den_q *= scale
        # |K_n - K_{n-2}| <= tol |K_n|, cross-multiplied: no division.
        cross = num * den_last
        finished = tl.abs(cross - num_last * den) <= TOL * tl.abs(cross)
        num_last = num
        den_last = den
        if WANT_GRAD_AB:
            # d log K = dA_n / A_n - dB_n / B_n, compared once the value has converged.
            inv_num = 1.0 / num
            inv_den = 1.0 / den
            new_k_p = num_p * inv_num - den_p * inv_den
            new_k_q = num_q * inv_num - den_q * inv_den
            settled = (tl.abs(new_k_p - log_k_p) <= GRAD_TOL * (tl.abs(new_k_p) + 1.0)) & (
                tl.abs(new_k_q - log_k_q) <= GRAD_TOL * (tl.abs(new_k_q) + 1.0)
            )
            log_k_p = tl.where(finished, new_k_p, log_k_p)
            log_k_q = tl.where(finished, new_k_q, log_k_q)
            finished = finished & settled
        active = active & ~finished
        m += 1
    value = power / p * den / num
    grad_p = value * (log_u - 1.0 / p - psi_p + psi_pq - (num_p / num - den_p / den))
    grad_q = value * (log_v - psi_q + psi_pq - (num_q / num - den_q / den))
    return value, grad_p, grad_q, active


@triton.jit
def _store_region(
    value_ptr, grad_a_ptr, grad_b_ptr, offsets, region, swap, lower, grad_p, grad_q, unfinished,
    WANT_GRAD_AB,
):  # fmt: skip
    """Store a region's elements: I_u(p, q), reflected where ``swap`` (I = 1 - I_{1-x}(b, a)),
    NaN where the loop did not finish."""
    nan = float("nan")
    value = tl.where(swap, 1.0 - lower, lower)
    tl.store(value_ptr + offsets, tl.where(unfinished, nan, value), mask=region)
    if WANT_GRAD_AB:
        grad_a = tl.where(swap, -grad_q, grad_p)
        grad_b = tl.where(swap, -grad_p, grad_q)
        tl.store(grad_a_ptr + offsets, tl.where(unfinished, nan, grad_a), mask=region)
        tl.store(grad_b_ptr + offsets, tl.where(unfinished, nan, grad_b), mask=region)


# --- the kernel ---------------------------------------------------------------------------------


@triton.jit
def betainc_kernel(
    a_ptr, b_ptr, x_ptr, value_ptr, grad_a_ptr, grad_b_ptr, grad_x_ptr, numel,
    a_inner, a_block, b_inner, b_block, x_inner, x_block, max_terms, want_grad_x,
    WANT_GRAD_AB: tl.constexpr, TOL: tl.constexpr, GRAD_TOL: tl.constexpr, TINY: tl.constexpr,
    HUGE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """(I_x(a, b), dI/da, dI/db, dI/dx) for ``BLOCK`` elements of the broadcast of a, b, x.

    Input k is read at ``(i // k_inner) % k_block``. ``TOL``: the stopping tolerance;
    ``GRAD_TOL``: the fraction's for d log K / da and db (see :func:`constants`); ``TINY``
    and ``HUGE``: the smallest normal and largest finite number of the output dtype (the x
    gradient where the density is infinite is the density ``TINY`` away, capped at ``HUGE``).
    """
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offsets < numel
    a = tl.load(a_ptr + (offsets // a_inner) % a_block, mask=in_bounds, other=1.0)
    b = tl.load(b_ptr + (offsets // b_inner) % b_block, mask=in_bounds, other=1.0)
    x = tl.load(x_ptr + (offsets // x_inner) % x_block, mask=in_bounds, other=0.5)
    a = a.to(tl.float64)
    b = b.to(tl.float64)
    x = x.to(tl.float64)
    nan = float("nan")
    inf = float("inf")

    # Outside the interior, as scipy: NaN outside the domain, x at the end points, 1 where
    # a = 0 or b = inf, 0 where b = 0 or a = inf, NaN for a = b = 0.
    valid = (a >= 0.0) & (b >= 0.0) & (x >= 0.0) & (x <= 1.0)  # false for NaN
    at_end = (x == 0.0) | (x == 1.0)
    degenerate = (a == 0.0) | (b == 0.0) | (a == inf) | (b == inf)
    regular = in_bounds & valid & ~degenerate  # a, b positive and finite
    interior = regular & ~at_end
    undefined = ~valid | (~at_end & (a == 0.0) & (b == 0.0))
    edge = tl.where(at_end, x, tl.where((a == 0.0) | (b == inf), 1.0, 0.0))
    outside = in_bounds & ~interior
    tl.store(value_ptr + offsets, tl.where(undefined, nan, edge), mask=outside)
    if WANT_GRAD_AB:
        tl.store(grad_a_ptr + offsets, tl.where(undefined, nan, 0.0), mask=outside)
        tl.store(grad_b_ptr + offsets, tl.where(undefined, nan, 0.0), mask=outside)

    # Placeholders keep the lanes not computed finite; their results are never stored.
    a = tl.where(regular, a, 1.0)
    b = tl.where(regular, b, 1.0)
    x_end = tl.where(regular, x, 0.5)
    x = tl.where(interior, x, 0.5)
    y = 1.0 - x
    log_x = tl.log(x)
    log_y = _log1p(-x)
    log_beta = _log_beta(a, b)
    log_power = _log_power_terms(a, b, x, y, log_x, log_y, log_beta)
    # x^a y^b / B(a, b), shared by the density and the continued fraction's prefactor.
    power = tl.where(log_power > _LOG_UNDERFLOW, tl.exp(log_power), 0.0)

    if want_grad_x:
        inside = tl.where(power > 0.0, power / (x * y), tl.exp(log_power - log_x - log_y))
        # At x = 0 or 1: the density at the nearest normal number where it is infinite.
        log_x_end = tl.log(tl.maximum(x_end, TINY))
        log_y_end = tl.log(tl.maximum(1.0 - x_end, TINY))
        at_end_density = tl.exp((a - 1.0) * log_x_end + (b - 1.0) * log_y_end - log_beta)
        density = tl.minimum(tl.where(at_end, at_end_density, inside), HUGE)
        density = tl.where(regular, density, 0.0)
        tl.store(grad_x_ptr + offsets, tl.where(undefined, nan, density), mask=in_bounds)

    # Reflection: compute I_u(p, q) with u below the bulk of the distribution.
    swap = x * (a + b + 2.0) > a + 1.0
    p = tl.where(swap, b, a)
    q = tl.where(swap, a, b)
    u = tl.where(swap, y, x)
    log_u = tl.where(swap, log_y, log_x)
    log_v = tl.where(swap, log_x, log_y)
    psi_p = log_u  # the digammas of p, q and p + q; unused without the parameter gradients
    psi_q = log_u
    psi_pq = log_u
    if WANT_GRAD_AB:
        psi_a = _digamma(a)
        psi_b = _digamma(b)
        psi_p = tl.where(swap, psi_b, psi_a)
        psi_q = tl.where(swap, psi_a, psi_b)
        psi_pq = _digamma(a + b)

    series = interior & (q * u <= 1.0) & (u <= 0.95)
    log_prefactor = log_power - q * log_v  # log(u^p / B(p, q)); below the underflow, I = 0
    lower, grad_p, grad_q, unfinished = _series(
        p, q, u, log_u, log_prefactor, psi_p, psi_q, psi_pq,
        series & (log_prefactor >= _LOG_UNDERFLOW), max_terms, TOL, WANT_GRAD_AB,
    )  # fmt: skip
    _store_region(
        value_ptr, grad_a_ptr, grad_b_ptr, offsets, series, swap, lower, grad_p, grad_q,
        unfinished, WANT_GRAD_AB,
    )  # fmt: skip

    fraction = interior & ~series
    lower, grad_p, grad_q, unfinished = _continued_fraction(
        p, q, u, log_u, log_v, power, psi_p, psi_q, psi_pq, fraction & (power > 0.0), max_terms,
        TOL, GRAD_TOL, WANT_GRAD_AB,
    )  # fmt: skip
    _store_region(
        value_ptr, grad_a_ptr, grad_b_ptr, offsets, fraction, swap, lower, grad_p, grad_q,
        unfinished, WANT_GRAD_AB,
    )  # fmt: skip


# --- the host side ------------------------------------------------------------------------------


def constants(dtype: torch.dtype) -> dict[str, float]:
    """The compile-time constants of the kernel for outputs of ``dtype`` (float32 or float64)."""
    finfo = torch.finfo(dtype)
    tol = TOL64 if dtype == torch.float64 else TOL32
    return {
        "TOL": tol,
        "GRAD_TOL": max(tol, FRACTION_GRAD_TOL),
        "TINY": finfo.tiny,
        "HUGE": finfo.max,
    }


# Decorated under Triton's interpreter (TRITON_INTERPRET=1 when this module was imported), the
# kernel runs on CPU tensors, one program after another.
INTERPRETED = not isinstance(betainc_kernel, triton.runtime.JITFunction)


def betainc(
    a: Tensor,
    b: Tensor,
    x: Tensor,
    want_grad_ab: bool,
    want_grad_x: bool,
    *,
    max_terms: int = MAX_TERMS,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(value, dI/da, dI/db, dI/dx) of the broadcast shape; unrequested gradients are empty.

    ``a``, ``b``, ``x``: tensors of one dtype (float32 or float64) on one CUDA device (or the
    CPU under Triton's interpreter). ``max_terms``: the cap on series terms and fraction pairs,
    past which an element is NaN.
    """
    devices = {t.device for t in (a, b, x)}
    if len(devices) > 1:
        raise ValueError(
            f"betainc: a, b and x are on different devices: {sorted(map(str, devices))}"
        )
    shape = tuple(torch.broadcast_shapes(a.shape, b.shape, x.shape))
    numel = math.prod(shape)

    def new(wanted: bool) -> Tensor:
        return torch.empty(shape if wanted else (0,), dtype=x.dtype, device=x.device)

    outputs = (new(True), new(want_grad_ab), new(want_grad_ab), new(want_grad_x))
    if numel == 0:
        return outputs
    flats, layouts = zip(*(flat_layout(t.detach(), shape) for t in (a, b, x)), strict=True)
    value, grad_a, grad_b, grad_x = outputs
    # Outputs not asked for are never written; the value's pointer stands in for them.
    pointers = (
        value,
        grad_a if want_grad_ab else value,
        grad_b if want_grad_ab else value,
        grad_x if want_grad_x else value,
    )
    if INTERPRETED:
        block = min(INTERPRETER_BLOCK, triton.next_power_of_2(numel))
        # numpy computes every lane, and lanes whose results are never stored overflow: quiet.
        context = np.errstate(all="ignore")
    else:
        block = BLOCK
        context = torch.cuda.device(x.device)
    with context:
        betainc_kernel[(triton.cdiv(numel, block),)](
            *flats,
            *pointers,
            numel,
            *(n for layout in layouts for n in layout),
            max_terms,
            want_grad_x,
            WANT_GRAD_AB=want_grad_ab,
            BLOCK=block,
            **COMPILE_OPTIONS,
            **constants(x.dtype),
        )
    return outputs


# --- ahead of time ------------------------------------------------------------------------------

# The compiled variants: the dtype of the pointers, and whether the a, b derivatives are computed.
VARIANTS = tuple(
    (dtype, grads) for dtype in (torch.float32, torch.float64) for grads in (False, True)
)


class Compiled(NamedTuple):
    """What ptxas reports of one compiled variant."""

    registers: int
    stack_bytes: int
    spill_stores: int
    spill_loads: int


def compile_ahead_of_time(capability: int, dtype: torch.dtype, want_grad_ab: bool) -> Compiled:
    """Compile a variant for NVIDIA compute ``capability`` (80: sm_80), with or without a GPU.

    Runs Triton's whole pipeline to a cubin (ptxas ships with triton), bypassing its cache, and
    returns the resource use ptxas reports. Integer arguments are typed int32, as Triton types
    them below 2^31 elements.
    """
    if INTERPRETED:
        raise RuntimeError("betainc: the kernel was decorated under TRITON_INTERPRET=1")
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    pointer = {torch.float32: "*fp32", torch.float64: "*fp64"}[dtype]

    def kind(name: str) -> str:
        if name.endswith("_ptr"):
            return pointer
        if name.isupper():
            return "constexpr"
        return "i1" if name == "want_grad_x" else "i32"

    signature = {name: kind(name) for name in betainc_kernel.arg_names}
    source = ASTSource(
        betainc_kernel,
        signature,
        constexprs={"WANT_GRAD_AB": want_grad_ab, "BLOCK": BLOCK, **constants(dtype)},
    )
    log = io.StringIO()
    with knobs.compilation.scope(), knobs.nvidia.scope(), contextlib.redirect_stdout(log):
        knobs.compilation.always_compile = True
        knobs.nvidia.dump_ptxas_log = True
        triton.compile(source, target=GPUTarget("cuda", capability, 32), options=COMPILE_OPTIONS)
    text = log.getvalue()
    registers = re.search(r"Used (\d+) registers", text)
    frame = re.search(
        r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", text
    )
    if registers is None or frame is None:
        raise RuntimeError(f"betainc: no resource use in ptxas's log: {text!r}")
    return Compiled(int(registers[1]), *(int(group) for group in frame.groups()))
