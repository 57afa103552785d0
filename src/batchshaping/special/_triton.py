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
- the mathematics of the CPU kernels over the whole float range (``_triton_math`` and
  ``_triton_expansion`` hold it in ``tl.*`` form): delta = a - (a + b) x without rounding error,
  the prefactor ``x^a (1-x)^b / B(a, b)`` in log space in ``_scalar``'s three forms (Loader's
  deviances from delta where both parameters are large), log Gamma and digamma by shifting the
  argument up, then Stirling's series;
- the reflection ``I_x(a, b) = 1 - I_{1-x}(b, a)`` past ``x = (a + 1) / (a + b + 2)``;
- each element of the interior falls in one *region*, computed by its own loop and stored by
  it: the power series where ``b x <= 1`` and ``x <= 0.95`` (as the log of I where a parameter
  is tiny), Temme's uniform asymptotic expansion where both parameters are at least
  ``TEMME_MIN`` near the mean, the odd part of the continued fraction elsewhere. A loop runs
  while any element of its block is unfinished (a per-block early exit); finished elements stay
  frozen.
- The loops are differentiated term by term in a and b and their stopping rule watches the
  derivative terms too (for integer b a term or numerator is exactly zero, which stops the
  value but not its b derivative).

Where a loop has not finished after ``MAX_TERMS`` terms, the value and its a, b derivatives are
NaN: never a wrong finite number (no row of the whole-range oracle table, a and b up to 2.4e286,
needs that many). Broadcast inputs (one prior, per-group parameters of shape (G, 1)) are read in
place with the (divisor, modulus) layout of :func:`batchshaping.special._cpu_host.flat_layout`.
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
from triton import knobs

from batchshaping._runtime.shapes import broadcast_shapes
from batchshaping.special import _constants as constants
from batchshaping.special import _fraction
from batchshaping.special._cpu_host import TOL32, TOL64, flat_layout
from batchshaping.special._triton_expansion import temme
from batchshaping.special._triton_math import (
    both_large_deviances,
    digamma,
    digamma_difference,
    digamma_series,
    expm1,
    log1p,
    log_beta,
    log_gamma_1p,
    log_gamma_difference,
    log_gamma_difference_over_power,
    log_power_terms,
    log_ratio_to_mean,
    mean_offset,
)

# As in the CPU kernels: the cap on series terms and fraction steps, the rescaling range of the
# convergents.
MAX_TERMS = 100_000
RESCALE_LOW, RESCALE_HIGH = 1e-100, 1e100

# Elements per program on the GPU: one warp, one element per thread. A loop runs until the
# slowest element of its block has finished; within one warp the test of that is a shuffle
# reduction (no shared memory, no barrier), and the warp is the finest grain SIMT allows.
BLOCK = 32
# Fused multiply-adds (the recurrences are chains of them); the interpreter rounds each
# operation instead, so its results differ from the GPU's in the last bits. The error-free
# product of delta asks for its fused multiply-add explicitly (``tl.fma``, exact in both).
COMPILE_OPTIONS = {"num_warps": 1, "enable_fp_fusion": True}
# Under the interpreter each program costs Python overhead per operation: few, large blocks.
INTERPRETER_BLOCK = 1 << 18

_LOG_SUBNORMAL = tl.constexpr(constants.LOG_SUBNORMAL)
_LOG_ZERO = tl.constexpr(constants.LOG_ZERO)
_SMALLEST_NORMAL = tl.constexpr(constants.SMALLEST_NORMAL)
_SUBNORMAL_EVALUATED_AT = tl.constexpr(constants.SUBNORMAL_EVALUATED_AT)
_LIMIT_FORMS_BELOW = tl.constexpr(constants.LIMIT_FORMS_BELOW)
_NEGLIGIBLE_GRADIENT_MARGIN = tl.constexpr(constants.NEGLIGIBLE_GRADIENT_MARGIN)
_DIGAMMA_MIN = tl.constexpr(constants.DIGAMMA_MIN)
_STIRLING_MIN = tl.constexpr(constants.STIRLING_MIN)
_TEMME_MIN = tl.constexpr(constants.TEMME_MIN)
_TEMME_Z = tl.constexpr(constants.TEMME_Z)
_RESCALE_LOW = tl.constexpr(RESCALE_LOW)
_SCALE_FROM = tl.constexpr(constants.SCALE_FROM)
_VANISHING_P = tl.constexpr(constants.VANISHING_P)
_EULER_GAMMA = tl.constexpr(constants.EULER_GAMMA)
_RESCALE_HIGH = tl.constexpr(RESCALE_HIGH)
# Tails whose first parameter is below this take the small-parameter forms of the series' terms.
_TINY_PARAMETER = tl.constexpr(0.1)

# The continued fraction's coefficients, written once in plain arithmetic for every kernel
# (``_fraction``): compiled as Triton device functions for the GPU; under the interpreter called
# as they are, on its tensors (it would decorate only functions whose module imports triton).
if knobs.runtime.interpret:
    fraction_variables = _fraction.fraction_variables
    fraction_start = _fraction.fraction_start
    fraction_coefficients = _fraction.fraction_coefficients
    fraction_step = _fraction.fraction_step
else:
    fraction_variables = triton.jit(_fraction.fraction_variables)
    fraction_start = triton.jit(_fraction.fraction_start)
    fraction_coefficients = triton.jit(_fraction.fraction_coefficients)
    fraction_step = triton.jit(_fraction.fraction_step)


@triton.jit
def _power_of_two(v):
    """v >= 1 rounded down to a power of two."""
    return tl.exp2(tl.floor(tl.log2(v)))


@triton.jit
def _fraction_scales(p, q):
    """The scales (lam, sig, nu) of the continued fraction (``_scalar.fraction_scales``): 1
    unless p or q is above SCALE_FROM, else lam about p / sqrt(q), sig about q / p and nu about
    q / sqrt(p)."""
    big_p = tl.maximum(p, 1.0)
    lam = tl.where(
        p > _SCALE_FROM, _power_of_two(tl.maximum(p / tl.sqrt(tl.maximum(q, 1.0)), 1.0)), 1.0
    )
    sig = tl.where(q > _SCALE_FROM * big_p, _power_of_two(tl.maximum(q / big_p, 1.0)), 1.0)
    nu = tl.where(q > _SCALE_FROM, _power_of_two(tl.maximum(q / tl.sqrt(big_p), 1.0)), 1.0)
    return lam, sig, nu


# --- the power series ---------------------------------------------------------------------------


@triton.jit
def _series(
    p, q, t, log_t, log_s, log_p, log_power, power, log_beta_pq, psi_p, psi_q, psi_pq,
    log_power_p, active, max_terms, TOL: tl.constexpr, WANT_GRAD_AB: tl.constexpr,
):  # fmt: skip
    """I_t(p, q) by the power series of B_t(p, q) where ``active`` (``_cpu_elementwise._series``):
    (I, 1 - I, log I, d log I / dp, d log I / dq, the elements unfinished after ``max_terms``).

    B_t(p, q) = t^p sum_n t_n / (p + n), t_0 = 1, t_n = t_{n-1} (n - q) t / n, so that
    I_t = t^p / (p B(p, q)) (1 + p T), T = sum_{n >= 1} t_n / (p + n). For p < 1 the result is
    formed from its log, with log(p B), psi(1 + p) and psi(p + q) - psi(q) exact as p -> 0, and
    1 - I as -expm1(log I): it keeps its digits where I = 1 - O(p). ``log_power_p`` is
    log t - psi(p) + psi(p + q) (``log_ratio_to_mean``).
    """
    # log(p B(p, q)), psi(1 + p), psi(p + q) - psi(q) (``_scalar._small_parameter_terms``).
    inv_p = 1.0 / p
    log_p_beta = log_beta_pq + log_p
    psi_1p = psi_p + inv_p
    psi_diff = psi_pq - psi_q
    if WANT_GRAD_AB:
        large_q = active & (q >= _DIGAMMA_MIN)  # both large where p << q: their logs cancel
        if tl.max(large_q.to(tl.int32), axis=0) > 0:
            q_large = tl.where(large_q, q, _DIGAMMA_MIN)
            near = log1p(p / q_large) + digamma_series(p + q_large) - digamma_series(q_large)
            psi_diff = tl.where(large_q, near, psi_diff)
    tiny = active & (p < _TINY_PARAMETER)
    if tl.max(tiny.to(tl.int32), axis=0) > 0:
        p_tiny = tl.where(tiny, p, 0.05)
        tiny_log_p_beta = log_gamma_1p(p_tiny) - log_gamma_difference(q, p_tiny)
        log_p_beta = tl.where(tiny, tiny_log_p_beta, log_p_beta)
        if WANT_GRAD_AB:
            psi_1p = tl.where(tiny, digamma(1.0 + p_tiny), psi_1p)
            psi_diff = tl.where(tiny, digamma_difference(q, p_tiny), psi_diff)

    zero = tl.zeros_like(t)
    large_q = active & (p < 1.0) & (q >= _STIRLING_MIN)  # before ``active`` narrows below
    term_coef = zero + 1.0  # t_n
    term_coef_q = zero  # d t_n / d q, by its own recurrence (t_n may be exactly zero)
    total = zero  # T
    total_p = zero
    total_q = zero
    n = tl.full([], 1, tl.int32)
    while (n < max_terms) & (tl.max(active.to(tl.int32), axis=0) > 0):
        nf = n.to(tl.float64)
        step = t / nf
        factor = (nf - q) * step
        if WANT_GRAD_AB:
            term_coef_q = term_coef_q * factor - term_coef * step
        term_coef = term_coef * factor
        inv = 1.0 / (p + nf)
        term = term_coef * inv
        total += tl.where(active, term, 0.0)
        # Below p = 1 against T itself: the complement, of order p, holds p T (as on the CPU).
        finished = tl.abs(term) <= TOL * tl.abs(tl.where(p < 1.0, total, inv_p + total))
        if WANT_GRAD_AB:
            term_p = term * inv
            term_q = term_coef_q * inv
            total_p -= tl.where(active, term_p, 0.0)
            total_q += tl.where(active, term_q, 0.0)
            # Each derivative term against its own sum (and T, where that sum vanishes).
            finished = (
                finished
                & (tl.abs(term_p) <= TOL * (tl.abs(total_p) + tl.abs(total)))
                & (tl.abs(term_q) <= TOL * (tl.abs(total_q) + tl.abs(total)))
            )
        active = active & ~finished
        n += 1
    below_one = p < 1.0
    small_log = p * log_t - log_p_beta
    if tl.max(large_q.to(tl.int32), axis=0) > 0:
        # p log(q t) - (log(p B) + p log q): each of order p, not p log q (as on the CPU).
        q_large = tl.where(large_q, q, _STIRLING_MIN)
        p_small = tl.where(large_q, p, 0.5)
        log_p_beta_q = log_gamma_1p(p_small) - log_gamma_difference_over_power(q_large, p_small)
        product = q * t
        log_product = tl.where(product > 1e-300, tl.log(product), tl.log(q) + log_t)
        small_log = tl.where(large_q, p * log_product - log_p_beta_q, small_log)
    log_value = tl.where(below_one, small_log, log_power - q * log_s - log_p)
    log_value += log1p(p * total)
    vanishing = p < _VANISHING_P  # one product (``constants.VANISHING_P``)
    if tl.max(vanishing.to(tl.int32), axis=0) > 0:
        tiny_log = p * (log_t + _EULER_GAMMA + digamma(tl.where(vanishing, q, 1.0)) + total)
        log_value = tl.where(vanishing, tiny_log, log_value)
    # A product of factors with small relative errors where P is normal (adding to the large
    # log of P would add a rounding error of order ulp(log P)).
    product = power * (tl.exp(-q * log_s) * (inv_p + total))
    value = tl.where(below_one | (log_power <= _LOG_SUBNORMAL), tl.exp(log_value), product)
    complement = tl.where(below_one, -expm1(log_value), 1.0 - value)
    log_grad_p = log_value
    log_grad_q = log_value
    if WANT_GRAD_AB:
        scaled = 1.0 + p * total
        log_grad_p = tl.where(below_one, log_t - psi_1p + psi_pq, log_power_p - inv_p)
        log_grad_p += (total + p * total_p) / scaled
        log_grad_q = psi_diff + p * total_q / scaled
    return value, complement, log_value, log_grad_p, log_grad_q, active


# --- the continued fraction ---------------------------------------------------------------------


@triton.jit
def _continued_fraction(
    p, q, t, s, delta, log_p, log_power, power, log_power_p, log_power_q, active, max_terms,
    TOL: tl.constexpr, WANT_GRAD_AB: tl.constexpr,
):  # fmt: skip
    """I_t(p, q) = P / (p K), P = t^p s^q / B(p, q), by the odd part of the continued fraction
    (``_cpu_elementwise._continued_fraction``) where ``active``: (I, log I, d log I / dp,
    d log I / dq, the elements unfinished after ``max_terms`` steps).

    K = A_0 + alpha_1 / (beta_1 + alpha_2 / (beta_2 + ...)) with the coefficients of
    ``_fraction`` (the partial denominators written with delta, so that none cancels near the
    mean), evaluated as lam K with the scales of ``_fraction_scales`` (1 unless p or q is huge);
    the convergents A_k / B_k follow A_k = beta_k A_{k-1} + alpha_k A_{k-2} (B_k
    likewise), their p and q derivatives the differentiated recurrence, rescaled by 1 / B_k when
    B_k leaves [1e-100, 1e100]. A finished element's steps are beta = 1, alpha = 0, which leave
    A_k, B_k and their derivatives as they were. ``log_power_p``, ``log_power_q``: the p and q
    derivatives of log P (``log_ratio_to_mean``).
    """
    lam, sig, nu = _fraction_scales(p, q)
    lam_over_sig = lam / sig
    tau, tau2, lam_s = fraction_variables(t, s, lam, sig)
    zero = tl.zeros_like(t)
    # (A_{k-1}, A_k) and (B_{k-1}, B_k) of lam K, with their p (times lam) and q (times nu)
    # derivatives; A_0 = 1 + d_1.
    num, num_p, num_q = fraction_start(p, t, s, delta, lam, nu)
    num_prev = zero + 1.0
    den_prev = zero
    den = zero + 1.0
    num_prev_p = zero
    den_prev_p = zero
    den_p = zero
    num_prev_q = zero
    den_prev_q = zero
    den_q = zero
    num_last = num  # the previous convergent
    den_last = den
    log_k_p = zero + float("inf")  # d log K / dp and dq, once the value has converged
    log_k_q = zero + float("inf")
    k = tl.full([], 1, tl.int32)
    while (k < max_terms) & (tl.max(active.to(tl.int32), axis=0) > 0):
        kf = k.to(tl.float64)
        beta, alpha, beta_p, alpha_p, beta_q, alpha_q = fraction_step(
            t,
            s,
            tau,
            tau2,
            delta,
            kf,
            fraction_coefficients(p, q, kf, lam, lam_over_sig, nu),
            sig,
            lam_s,
            nu,
        )
        beta = tl.where(active, beta, 1.0)
        alpha = tl.where(active, alpha, 0.0)
        if WANT_GRAD_AB:
            beta_p = tl.where(active, beta_p, 0.0)
            alpha_p = tl.where(active, alpha_p, 0.0)
            beta_q = tl.where(active, beta_q, 0.0)
            alpha_q = tl.where(active, alpha_q, 0.0)
            num_prev_p, num_p = (
                num_p,
                beta_p * num + beta * num_p + alpha_p * num_prev + alpha * num_prev_p,
            )
            den_prev_p, den_p = (
                den_p,
                beta_p * den + beta * den_p + alpha_p * den_prev + alpha * den_prev_p,
            )
            num_prev_q, num_q = (
                num_q,
                beta_q * num + beta * num_q + alpha_q * num_prev + alpha * num_prev_q,
            )
            den_prev_q, den_q = (
                den_q,
                beta_q * den + beta * den_q + alpha_q * den_prev + alpha * den_prev_q,
            )
        num_prev, num = num, beta * num + alpha * num_prev
        den_prev, den = den, beta * den + alpha * den_prev
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
        # |K_k - K_{k-1}| <= tol |K_k|, cross-multiplied: no division.
        cross = num * den_last
        finished = tl.abs(cross - num_last * den) <= TOL * tl.abs(cross)
        num_last = num
        den_last = den
        if WANT_GRAD_AB:
            # d log K = dA_k / A_k - dB_k / B_k, compared once the value has converged.
            inv_num = 1.0 / num
            inv_den = 1.0 / den
            new_k_p = num_p * inv_num - den_p * inv_den
            new_k_q = num_q * inv_num - den_q * inv_den
            settled = (tl.abs(new_k_p - log_k_p) <= TOL * (tl.abs(new_k_p) + 1.0)) & (
                tl.abs(new_k_q - log_k_q) <= TOL * (tl.abs(new_k_q) + 1.0)
            )
            log_k_p = tl.where(finished, new_k_p, log_k_p)
            log_k_q = tl.where(finished, new_k_q, log_k_q)
            finished = finished & settled
        active = active & ~finished
        k += 1
    # I = P / (p K): a product with one rounding at the end where P is a normal number
    # (``_scalar.fraction_result``), else from its log.
    ratio = den / num
    log_value = log_power - (log_p - tl.log(lam)) + tl.log(ratio)
    value = tl.where(log_power > _LOG_SUBNORMAL, power * (ratio / (p / lam)), tl.exp(log_value))
    log_grad_p = log_value
    log_grad_q = log_value
    if WANT_GRAD_AB:
        # ``_scalar.fraction_gradients``
        log_grad_p = log_power_p - 1.0 / p - (num_p / num - den_p / den) / lam
        log_grad_q = log_power_q - (num_q / num - den_q / den) / nu
    return value, log_value, log_grad_p, log_grad_q, active


# --- the kernel ---------------------------------------------------------------------------------


@triton.jit
def _times_value(value, log_value, factor):
    """value * factor, value = exp(log_value) > 0; in log space where value is subnormal."""
    plain = (log_value > _LOG_SUBNORMAL) | (factor == 0.0)
    magnitude = tl.exp(log_value + tl.log(tl.where(plain, 1.0, tl.abs(factor))))
    return tl.where(plain, value * factor, tl.where(factor < 0.0, -magnitude, magnitude))


@triton.jit
def betainc_kernel(
    a_ptr, b_ptr, x_ptr, value_ptr, grad_a_ptr, grad_b_ptr, grad_x_ptr, numel,
    a_inner, a_block, b_inner, b_block, x_inner, x_block, max_terms, want_grad_x,
    WANT_GRAD_AB: tl.constexpr, TOL: tl.constexpr, TINY: tl.constexpr, HUGE: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    """(I_x(a, b), dI/da, dI/db, dI/dx) for ``BLOCK`` elements of the broadcast of a, b, x.

    Input k is read at ``(i // k_inner) % k_block``. ``TOL``: the stopping tolerance; ``TINY``
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

    # Tiny parameters, as ``_tiny_parameters`` says: a subnormal one against the other at least
    # 2^-100 is evaluated at 2^-1000 and what is of its order scaled by it over 2^-1000 (exact);
    # where both are below 2^-100, I = b / (a + b) and its limit forms.
    moved_a = (a > 0.0) & (a < _SMALLEST_NORMAL) & (b >= _LIMIT_FORMS_BELOW)
    moved_b = (b > 0.0) & (b < _SMALLEST_NORMAL) & (a >= _LIMIT_FORMS_BELOW)
    scale_a = tl.where(moved_a, a / _SUBNORMAL_EVALUATED_AT, 1.0)
    scale_b = tl.where(moved_b, b / _SUBNORMAL_EVALUATED_AT, 1.0)
    limit = (a > 0.0) & (b > 0.0) & (a < _LIMIT_FORMS_BELOW) & (b < _LIMIT_FORMS_BELOW)
    limit_total = tl.where(limit, a + b, 1.0)
    limit_value = b / limit_total
    limit_grad_a = -limit_value / limit_total
    limit_grad_b = (a / limit_total) / limit_total
    a = tl.where(moved_a, _SUBNORMAL_EVALUATED_AT, a)
    b = tl.where(moved_b, _SUBNORMAL_EVALUATED_AT, b)

    # Outside the interior, as scipy: NaN outside the domain, x at the end points, 1 where
    # a = 0 or b = inf, 0 where b = 0 or a = inf, NaN for a = b = 0 and for a = b = inf; NaN
    # inside (0, 1) where a + b overflows (beyond the range of the kernels), and the density
    # there.
    valid = (a >= 0.0) & (b >= 0.0) & (x >= 0.0) & (x <= 1.0)  # false for NaN
    at_end = (x == 0.0) | (x == 1.0)
    degenerate = (a == 0.0) | (b == 0.0) | (a == inf) | (b == inf)
    regular = in_bounds & valid & ~degenerate  # a, b positive and finite
    beyond = regular & (a + b == inf)
    interior = regular & ~at_end & ~beyond
    no_limit = ((a == 0.0) & (b == 0.0)) | ((a == inf) & (b == inf))
    undefined = ~valid | (~at_end & no_limit) | (beyond & ~at_end)
    edge = tl.where(at_end, x, tl.where((a == 0.0) | (b == inf), 1.0, 0.0))
    outside = in_bounds & ~interior
    tl.store(value_ptr + offsets, tl.where(undefined, nan, edge), mask=outside)
    if WANT_GRAD_AB:
        tl.store(grad_a_ptr + offsets, tl.where(undefined, nan, 0.0), mask=outside)
        tl.store(grad_b_ptr + offsets, tl.where(undefined, nan, 0.0), mask=outside)

    # Placeholders keep the lanes not computed finite; their results are never stored.
    a = tl.where(regular & ~beyond, a, 1.0)
    b = tl.where(regular & ~beyond, b, 1.0)
    x_end = tl.where(regular, x, 0.5)
    x = tl.where(interior, x, 0.5)
    y = 1.0 - x
    log_x = tl.log(x)
    log_y = log1p(-x)
    log_beta_ab = log_beta(a, b)
    delta = mean_offset(a, b, x, y)
    deviance = both_large_deviances(a, b, delta, x, y)
    log_power = log_power_terms(a, b, x, y, log_x, log_y, log_beta_ab, deviance)
    # x^a y^b / B(a, b), shared by the density and the prefactors of the regions.
    power = tl.exp(log_power)

    if want_grad_x:
        # From the prefactor where it is a normal number, else in log space.
        inside = tl.where(
            log_power > _LOG_SUBNORMAL, power / (x * y), tl.exp(log_power - log_x - log_y)
        )
        # At x = 0 or 1: the density at the nearest normal number where it is infinite.
        log_x_end = tl.log(tl.maximum(x_end, TINY))
        log_y_end = tl.log(tl.maximum(1.0 - x_end, TINY))
        at_end_density = tl.exp((a - 1.0) * log_x_end + (b - 1.0) * log_y_end - log_beta_ab)
        density = tl.minimum(tl.where(at_end, at_end_density, inside), HUGE)
        density = tl.where(beyond, nan, tl.where(regular, density, 0.0)) * (scale_a * scale_b)
        tl.store(grad_x_ptr + offsets, tl.where(undefined, nan, density), mask=in_bounds)

    # The tail below the mode, x (a + b + 2) <= a + 1, decided from the exact delta (the
    # product rounds): I_t(p, q) with (p, q, t) = (a, b, x) there, (b, a, 1 - x) above.
    lower = delta >= 2.0 * x - 1.0
    p = tl.where(lower, a, b)
    q = tl.where(lower, b, a)
    t = tl.where(lower, x, y)
    s = tl.where(lower, y, x)
    log_t = tl.where(lower, log_x, log_y)
    log_s = tl.where(lower, log_y, log_x)
    offset = tl.where(lower, delta, -delta)  # p - (p + q) t
    log_p = tl.log(p)
    # The digammas of p, q and p + q, and the p and q derivatives of log P; unused without
    # the parameter gradients.
    psi_p = log_t
    psi_q = log_t
    psi_pq = log_t
    log_power_p = log_t
    log_power_q = log_t
    if WANT_GRAD_AB:
        psi_a = digamma(a)
        psi_b = digamma(b)
        psi_p = tl.where(lower, psi_a, psi_b)
        psi_q = tl.where(lower, psi_b, psi_a)
        psi_pq = digamma(a + b)
        log_power_p = log_ratio_to_mean(p, q, offset, log_t, psi_p, psi_pq)
        log_power_q = log_ratio_to_mean(q, p, -offset, log_s, psi_q, psi_pq)

    # The regions of ``_cpu_elementwise.lower_tail``, each computed only where some element of
    # the block falls in it (a loop's early exit, or a test of the whole block). Each gives
    # I_t, 1 - I_t, log I_t and d log I_t / dp, dq (the expansion: dI_t / dp, dq).
    series = interior & ((q * t <= 1.0) | (p < 1.0)) & (t <= 0.95)
    rest = interior & ~series
    # Below half the smallest subnormal: 0, and so are the gradients where they are asked for
    # (``_scalar.negligible``).
    bound = log_power - log_p + tl.log(p + q + 2.0)
    if WANT_GRAD_AB:
        bound += (
            _NEGLIGIBLE_GRADIENT_MARGIN - tl.log(tl.minimum(p, 1.0)) - tl.log(tl.minimum(q, 1.0))
        )
    negligible = rest & (log_power < _LOG_ZERO) & (bound < _LOG_ZERO)
    rest = rest & ~negligible
    expansion = (
        rest
        & (tl.minimum(p, q) >= _TEMME_MIN)
        & (tl.abs(offset) <= _TEMME_Z * tl.sqrt(p) * tl.sqrt(q / (p + q)))
    )
    fraction = rest & ~expansion

    zero = tl.zeros_like(x)
    value = zero
    complement = zero + 1.0
    log_value = zero
    log_grad_p = zero
    log_grad_q = zero
    unfinished = interior & (zero != zero)
    if tl.max(series.to(tl.int32), axis=0) > 0:
        s_value, s_complement, s_log, s_grad_p, s_grad_q, s_unfinished = _series(
            p, q, t, log_t, log_s, log_p, log_power, power, log_beta_ab, psi_p, psi_q, psi_pq,
            log_power_p, series, max_terms, TOL, WANT_GRAD_AB,
        )  # fmt: skip
        value = tl.where(series, s_value, value)
        complement = tl.where(series, s_complement, complement)
        log_value = tl.where(series, s_log, log_value)
        log_grad_p = tl.where(series, s_grad_p, log_grad_p)
        log_grad_q = tl.where(series, s_grad_q, log_grad_q)
        unfinished = unfinished | s_unfinished

    f_value, f_log, f_grad_p, f_grad_q, f_unfinished = _continued_fraction(
        p, q, t, s, offset, log_p, log_power, power, log_power_p, log_power_q, fraction,
        max_terms, TOL, WANT_GRAD_AB,
    )  # fmt: skip
    value = tl.where(fraction, f_value, value)
    complement = tl.where(fraction, 1.0 - f_value, complement)
    log_value = tl.where(fraction, f_log, log_value)
    log_grad_p = tl.where(fraction, f_grad_p, log_grad_p)
    log_grad_q = tl.where(fraction, f_grad_q, log_grad_q)
    unfinished = unfinished | f_unfinished

    grad_p = zero
    grad_q = zero
    if WANT_GRAD_AB:
        computed = series | fraction
        grad_p = tl.where(computed, _times_value(value, log_value, log_grad_p), 0.0)
        grad_q = tl.where(computed, _times_value(value, log_value, log_grad_q), 0.0)

    if tl.max(expansion.to(tl.int32), axis=0) > 0:
        e_value, e_grad_p, e_grad_q, e_unfinished = temme(
            p, q, t, s, offset, deviance, power, log_power_p, log_power_q, expansion,
            WANT_GRAD_AB,
        )  # fmt: skip
        value = tl.where(expansion, e_value, value)
        complement = tl.where(expansion, 1.0 - e_value, complement)
        grad_p = tl.where(expansion, e_grad_p, grad_p)
        grad_q = tl.where(expansion, e_grad_q, grad_q)
        unfinished = unfinished | e_unfinished

    # I_x(a, b) = I_t(p, q) below the mode, 1 - I_{1-x}(b, a) above; NaN where a loop did not
    # finish. Negligible elements keep the 0 (1 above) they started with.
    result = tl.where(unfinished, nan, tl.where(lower, value, complement) * scale_b)
    tl.store(value_ptr + offsets, tl.where(limit, limit_value, result), mask=interior)
    if WANT_GRAD_AB:
        grad_a = tl.where(unfinished, nan, tl.where(lower, grad_p, -grad_q) * scale_b)
        grad_b = tl.where(unfinished, nan, tl.where(lower, grad_q, -grad_p) * scale_a)
        tl.store(grad_a_ptr + offsets, tl.where(limit, limit_grad_a, grad_a), mask=interior)
        tl.store(grad_b_ptr + offsets, tl.where(limit, limit_grad_b, grad_b), mask=interior)


# --- the host side ------------------------------------------------------------------------------


def constants(dtype: torch.dtype) -> dict[str, float]:
    """The compile-time constants of the kernel for outputs of ``dtype`` (float32 or float64)."""
    finfo = torch.finfo(dtype)
    tol = TOL64 if dtype == torch.float64 else TOL32
    return {"TOL": tol, "TINY": finfo.tiny, "HUGE": finfo.max}


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
    shape = tuple(broadcast_shapes(a.shape, b.shape, x.shape))
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
