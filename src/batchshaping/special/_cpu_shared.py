"""CPU kernel of the incomplete beta function for runs of elements that share (a, b) (numba).

Kernel ``"cpu-shared"`` of the registry, and the automatic CPU choice ``"cpu"`` for long runs.
The per-element kernel (``_cpu_elementwise``) follows one element at a time through its
continued fraction: a chain of dependent multiply-adds, one element after another, bounded by
latency. When many elements share their parameters (one prior for a batch, one per group), the
continued fraction's coefficients are the same for all of them, and this kernel instead advances
a chunk of ``_LANES`` elements together, one pair of terms at a time: the update of every lane is
the same arithmetic on its own data, which the compiler turns into SIMD instructions.

The mathematics is that of the per-element kernel: the prefactor ``x^a (1-x)^b / B(a, b)`` in
log space from the exact offset delta = a - (a + b) x, the reflection past
``(a + 1) / (a + b + 2)``, the odd part of the continued fraction of Numerical Recipes (6.4.5)
as the three-term recurrence of its convergents, differentiated in a and b, with the same
stopping rule applied to every lane, tested after every fourth step. A chunk stops once all its
lanes have met it; lanes that met it earlier go on adding terms of a converged fraction, which
changes their value by less than the tolerance. The power series is not needed where the tail's
first parameter is at least 0.1: the fraction converges quickly where the series would serve
(small x). Elements whose tail has a smaller first parameter (where only the series keeps the
digits of 1 - I and of the gradients), a first parameter above 1e6 (where the convergents must
be rescaled at every step) and those of the asymptotic expansion's region (both parameters
large, x near the mean) are left to the per-element kernel, in a second pass over them alone: a
prior's first call compiles neither the series nor the expansion unless it needs them.

To keep the lanes of a chunk alike in how many terms they need, the elements of a block are
binned by where they fall between 0 and the reflection point (counting sort), and chunks are cut
from one bin at a time. Partial chunks are padded with a copy of their first element.

The kernel runs through a C entry point (:func:`_entry`, one for each kind of call), which
``threads.run_copies`` runs on torch's own OpenMP threads where torch has them (the package's
pool otherwise): the arrays travel as addresses in an int64 descriptor.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import carray
from torch import Tensor

from batchshaping._runtime.jit import c_entry, callee, inlined
from batchshaping._runtime.pointers import pointer, take
from batchshaping._runtime.threads import run_copies
from batchshaping.special._constants import (
    DIGAMMA_MIN,
    LOG_SUBNORMAL,
    LOG_ZERO,
    SMALLEST_NORMAL,
    STIRLING_MIN,
    TEMME_MIN,
    TEMME_Z,
)
from batchshaping.special._cpu_elementwise import (
    elementwise_at,
    elementwise_kernel,
)
from batchshaping.special._cpu_elementwise import workspace as elementwise_workspace
from batchshaping.special._cpu_host import (
    collapse_constant_parameters,
    prepare,
    run_in_threads,
    shared_run_length,
    threads_for,
)
from batchshaping.special._scalar import (
    MAX_TERMS,
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
    log_beta_function,
    log_power_terms,
    mean_offset,
    negligible,
    simd_exp,
    simd_log,
    simd_log1p,
)

# Elements advanced together. A compile-time constant: with fixed trip counts and rows of the
# state array a constant distance apart, the compiler can prove the rows do not overlap and
# vectorise the lane loops.
_LANES = 64
# Elements binned together: their scratch arrays stay in the L2 cache.
_BLOCK = 16_384
# Bins per side of the reflection point, at most; fewer for short blocks, so that chunks fill.
_MAX_BINS = 8
_PER_BIN = 8 * _LANES
# The bin mark of an element :func:`_sort_into_bins` must look at on its own.
_SPECIAL = -2
# Steps of the fraction each lane takes between tests of the stopping rule (its convergents
# stay in registers meanwhile). ``_fraction_lanes`` writes out the coefficients of four steps.
_STEPS = 4
# How often (in steps of the fraction, a multiple of _STEPS) the convergents are checked for drift
# and rescaled. Each step multiplies them by at most about 4 where the fraction is used, so eight
# steps move them by well under 1e10, far inside the rescaling bounds. A step may also shrink them
# by a factor of order 1 / p: tails with p above _LANES_MAX_P take the per-element path, which
# checks at every step.
_RESCALE_EVERY = 8
_LANES_MAX_P = 1e6
# Tails whose first parameter is below this take the per-element path (the series).
_SERIES_BELOW = 0.1

# Rows of the scratch array, one column per element of a block: x, 1 - x, delta, log x,
# log(1 - x), the log of the prefactor and the prefactor.
_X, _Y, _DELTA, _LOG_X, _LOG_Y, _LOG_POWER, _POWER = range(7)
_SCRATCH_ROWS = 7
# Rows of the lanes array, one column per lane of a chunk: the tail's t, s = 1 - t and delta,
# its prefactor, the prefactor's log, log t and log s; then the lane's results.
_T, _S, _OFFSET, _LANE_POWER, _LANE_LOG_POWER, _LOG_T, _LOG_S = range(7)
_TAIL, _GRAD_P, _GRAD_Q = range(7, 10)
_LANE_ROWS = 10
# Rows of the lane state: the convergents A_{n-1}, A_n, B_{n-1}, B_n and whether the lane has
# converged; of the derivative state (only where the gradients in a and b are asked for): the p
# and q derivatives of the four convergents.
_NUM_PREV, _NUM, _DEN_PREV, _DEN, _DONE = (row * _LANES for row in range(5))
_STATE_SIZE = 5 * _LANES
(
    _NUM_PREV_P,
    _NUM_P,
    _DEN_PREV_P,
    _DEN_P,
    _NUM_PREV_Q,
    _NUM_Q,
    _DEN_PREV_Q,
    _DEN_Q,
) = (row * _LANES for row in range(8))
_DERIVATIVES_SIZE = 8 * _LANES


@callee
def _prefactors(a, b, log_beta, x, begin, size, scratch, grad_x, huge, large):
    """x, 1 - x, delta, log x, log(1 - x), log P and P of every element of the block, P the
    prefactor x^a (1-x)^b / B(a, b), and the density where P is a normal number.

    Loops without branches or calls, one per quantity, which compile to SIMD instructions where
    both parameters are below STIRLING_MIN (``log_power_terms``' first form); a scalar loop over
    ``log_power_terms`` otherwise. ``large`` is None where no run has a parameter of at least
    STIRLING_MIN: the large-parameter forms are then not compiled. Values outside (0, 1), and
    densities where P is not a normal number, are left for :func:`_sort_into_bins`.
    """
    small = max(a, b) < STIRLING_MIN
    # One loop per quantity rather than one fused loop: 4 to 7 per cent off a whole call on one
    # thread, no difference seen on two (1e5 values of Beta(2, 6), ad hoc, AMD EPYC, 2026-12-04).
    for k in range(size):
        value = np.float64(x[begin + k])
        scratch[_X, k] = value
        scratch[_Y, k] = 1.0 - value
    for k in range(size):
        scratch[_LOG_X, k] = simd_log(scratch[_X, k])
    for k in range(size):
        scratch[_LOG_Y, k] = simd_log1p(-scratch[_X, k])
    for k in range(size):
        scratch[_DELTA, k] = mean_offset(a, b, scratch[_X, k], scratch[_Y, k])
    if small:
        for k in range(size):
            scratch[_LOG_POWER, k] = a * scratch[_LOG_X, k] + b * scratch[_LOG_Y, k] - log_beta
    if large is not None:
        if not small:
            for k in range(size):
                value = scratch[_X, k]
                if 0.0 < value < 1.0:
                    scratch[_LOG_POWER, k] = log_power_terms(
                        a,
                        b,
                        value,
                        scratch[_Y, k],
                        scratch[_LOG_X, k],
                        scratch[_LOG_Y, k],
                        log_beta,
                        scratch[_DELTA, k],
                    )
    for k in range(size):
        scratch[_POWER, k] = simd_exp(scratch[_LOG_POWER, k])
    if grad_x is not None:
        for k in range(size):
            # ``beta_density`` where P is a normal number.
            grad_x[begin + k] = min(scratch[_POWER, k] / (scratch[_X, k] * scratch[_Y, k]), huge)


@callee
def _bin(position, scale, last):
    """The bin of an element at ``position`` (x, or 1 - x past the reflection point) from the end
    of its side: ``position * scale`` rounded down, at most ``last``.

    Clamped before the conversion to an integer: a scale may be inf or huge where the reflection
    point (a + 1) / (a + b + 2) rounds to 1 or to 0 (a above 2^53 against a small b: the point
    is 1 - 1.2e-16, and rounds to 1), and converting inf, or a float past 2^63, to an integer
    gave a negative bin: the element was in no bin and its result never written (uninitialised
    memory at a = 9.4e15, b = 0.129, x = 1 - 2^-53, where I = 0.0300).
    """
    return int(min(position * scale, float(last)))


@callee
def _sort_into_bins(
    a, b, log_beta, begin, size, per_side, work, out, grad_a, grad_b, grad_x, tiny, huge
):
    """Finish the elements the lanes do not take, and bin the others by where they fall between
    0 and the reflection point (counting sort): bin c is ``order[counts[c - 1] : counts[c]]``.

    Finished here: the end points, values outside [0, 1], prefactors below half the smallest
    subnormal (0 or 1), and densities where the prefactor is not a normal number. Left as NaN
    for the per-element kernel (``deferred``): tails with a first parameter below 0.1 (the
    series) or above _LANES_MAX_P (rescaled at every step there) and the asymptotic expansion's
    region (both parameters large, |delta| within TEMME_Z standard deviations of the mean, as
    the per-element kernel decides).
    """
    scratch, bins, order, counts = work
    reflection = (a + 1.0) / (a + b + 2.0)
    scale_lower = per_side / reflection
    scale_upper = per_side / (1.0 - reflection)
    # A subnormal parameter's gradient is the per-element kernel's (NaN) too.
    subnormal = min(a, b) < SMALLEST_NORMAL
    expansion_offset = -1.0
    if min(a, b) >= TEMME_MIN:
        expansion_offset = TEMME_Z * math.sqrt(a) * math.sqrt(b / (a + b))
    # A first pass without branches (SIMD instructions): each element's bin, or _SPECIAL where
    # any case of :func:`_bin_of_special` may apply (the density is asked for where the
    # prefactor is not a normal number; a negligible tail has log P below LOG_ZERO).
    special_below = LOG_SUBNORMAL if grad_x is not None else LOG_ZERO
    last = per_side - 1
    for k in range(size):
        value = scratch[_X, k]
        delta = scratch[_DELTA, k]
        lower = delta >= 2.0 * value - 1.0  # x (a + b + 2) <= a + 1, from the exact delta
        first = a if lower else b
        low_bin = _bin(value, scale_lower, last)
        up_bin = per_side + _bin(scratch[_Y, k], scale_upper, last)
        special = (
            ~((value > 0.0) & (value < 1.0))
            | ~(scratch[_LOG_POWER, k] > special_below)
            | (first < _SERIES_BELOW)
            | (first > _LANES_MAX_P)
            | (abs(delta) <= expansion_offset)
            | subnormal
        )
        bins[k] = _SPECIAL if special else (low_bin if lower else up_bin)
    counts[:] = 0
    for k in range(size):
        bin_index = bins[k]
        if bin_index == _SPECIAL:
            bin_index = _bin_of_special(
                a, b, log_beta, begin + k, k, scratch, per_side, scale_lower, scale_upper,
                expansion_offset, subnormal, out, grad_a, grad_b, grad_x, tiny, huge,
            )  # fmt: skip
            bins[k] = bin_index
        if bin_index >= 0:
            counts[bin_index + 1] += 1
    for c in range(2 * per_side):
        counts[c + 1] += counts[c]
    for k in range(size):
        if bins[k] >= 0:
            order[counts[bins[k]]] = k
            counts[bins[k]] += 1
    # Now counts[c] is where bin c ends.


@callee
def _bin_of_special(
    a, b, log_beta, i, k, scratch, per_side, scale_lower, scale_upper, expansion_offset,
    subnormal, out, grad_a, grad_b, grad_x, tiny, huge,
):  # fmt: skip
    """The bin of element k of the block (element i of the outputs), or -1 where it is finished
    here or left to the per-element kernel: the cases of :func:`_sort_into_bins`, one element."""
    value = scratch[_X, k]
    if not (0.0 < value < 1.0):
        inside = value == 0.0 or value == 1.0  # False for NaN
        out[i] = value if inside else math.nan
        if grad_a is not None:
            grad_a[i] = grad_b[i] = 0.0 if inside else math.nan
        if grad_x is not None:
            grad_x[i] = end_point_density(a, b, value, log_beta, tiny, huge) if inside else math.nan
        return -1
    log_power = scratch[_LOG_POWER, k]
    if grad_x is not None and not log_power > LOG_SUBNORMAL:
        grad_x[i] = beta_density(
            value,
            scratch[_Y, k],
            scratch[_LOG_X, k],
            scratch[_LOG_Y, k],
            log_power,
            scratch[_POWER, k],
            huge,
        )
    delta = scratch[_DELTA, k]
    lower = delta >= 2.0 * value - 1.0
    first = a if lower else b
    if first < _SERIES_BELOW or first > _LANES_MAX_P or abs(delta) <= expansion_offset or subnormal:
        out[i] = math.nan
        return -1
    # 0 (or 1) to working precision, and the gradients 0 where asked for
    if negligible(log_power, first, b if lower else a, grad_a is not None):
        out[i] = 0.0 if lower else 1.0
        if grad_a is not None:
            grad_a[i] = grad_b[i] = 0.0
        return -1
    if lower:
        return _bin(value, scale_lower, per_side - 1)
    return per_side + _bin(scratch[_Y, k], scale_upper, per_side - 1)


@callee
def _gather(scratch, order, first, filled, reflected, lanes):
    """The lanes' rows for the elements ``order[first : first + filled]`` of one bin, the last
    repeated in the lanes past ``filled``; from the reflected tail (1 - x, x, -delta) if
    ``reflected``."""
    row_t, row_s = (_Y, _X) if reflected else (_X, _Y)
    row_log_t, row_log_s = (_LOG_Y, _LOG_X) if reflected else (_LOG_X, _LOG_Y)
    sign = -1.0 if reflected else 1.0
    for j in range(_LANES):
        k = order[first + min(j, filled - 1)]
        t = scratch[row_t, k]
        lanes[_T, j] = t
        lanes[_S, j] = scratch[row_s, k]
        lanes[_OFFSET, j] = sign * scratch[_DELTA, k]
        lanes[_LANE_POWER, j] = scratch[_POWER, k]
        lanes[_LANE_LOG_POWER, j] = scratch[_LOG_POWER, k]
        lanes[_LOG_T, j] = scratch[row_log_t, k]
        lanes[_LOG_S, j] = scratch[row_log_s, k]


@callee
def _fraction_lanes(p, q, lanes, tol, state, derivatives):
    """The continued fraction of I_t(p, q) in every lane, to its last convergents in ``state``.

    With ``derivatives`` (None where the gradients in a and b are not asked for: that code is
    then not compiled), their p and q derivatives too, and the stopping rule watches d log K.

    Each lane takes ``_STEPS`` steps with its convergents in registers, then the stopping rule
    compares the last two convergents of those steps (a lane may so take up to ``_STEPS - 1``
    steps of a converged fraction more than it needs).
    """
    lam, sig, nu = fraction_scales(p, q)
    ratio = lam / sig
    inv = lam * (1.0 / (p + 1.0))
    for j in range(_LANES):
        state[_NUM_PREV + j] = 1.0
        state[_NUM + j] = (1.0 + lanes[_OFFSET, j]) * inv
        state[_DEN_PREV + j] = 0.0
        state[_DEN + j] = 1.0
        state[_DONE + j] = 0.0
    if derivatives is not None:
        for j in range(_DERIVATIVES_SIZE):
            derivatives[j] = 0.0
        for j in range(_LANES):
            _, derivatives[_NUM_P + j], derivatives[_NUM_Q + j] = fraction_start(
                p, lanes[_T, j], lanes[_S, j], lanes[_OFFSET, j], lam, nu
            )
    for k in range(1, MAX_TERMS, _STEPS):
        batch = (
            fraction_coefficients(p, q, k, lam, ratio, nu),
            fraction_coefficients(p, q, k + 1, lam, ratio, nu),
            fraction_coefficients(p, q, k + 2, lam, ratio, nu),
            fraction_coefficients(p, q, k + 3, lam, ratio, nu),
        )
        remaining = 0
        for j in range(_LANES):
            t, s, offset = lanes[_T, j], lanes[_S, j], lanes[_OFFSET, j]
            tau, tau2, lam_s = fraction_variables(t, s, lam, sig)
            num_prev, num = state[_NUM_PREV + j], state[_NUM + j]
            den_prev, den = state[_DEN_PREV + j], state[_DEN + j]
            last_num, last_den = num, den
            grads = last_grads = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            if derivatives is not None:
                grads = (
                    derivatives[_NUM_PREV_P + j],
                    derivatives[_NUM_P + j],
                    derivatives[_DEN_PREV_P + j],
                    derivatives[_DEN_P + j],
                    derivatives[_NUM_PREV_Q + j],
                    derivatives[_NUM_Q + j],
                    derivatives[_DEN_PREV_Q + j],
                    derivatives[_DEN_Q + j],
                )
            for i in range(_STEPS):
                step = fraction_step(t, s, tau, tau2, offset, k + i, batch[i], sig, lam_s, nu)
                beta, alpha = step[0], step[1]
                last_num, last_den, last_grads = num, den, grads
                if derivatives is not None:
                    grads = convergent_derivatives(num_prev, num, den_prev, den, grads, step)
                num_prev, num = num, beta * num + alpha * num_prev
                den_prev, den = den, beta * den + alpha * den_prev
            # |K_k - K_{k-1}| <= tol |K_k|, cross-multiplied as in the per-element kernel.
            cross = num * last_den
            converged = abs(cross - last_num * den) <= tol * abs(cross)
            if derivatives is not None:
                # d log K = dA / A - dB / B after the last two steps, tested in every lane.
                inverse = 1.0 / (num * den)
                last_inverse = 1.0 / (last_num * last_den)
                log_k_p = (grads[1] * den - grads[3] * num) * inverse
                log_k_q = (grads[5] * den - grads[7] * num) * inverse
                last_p = (last_grads[1] * last_den - last_grads[3] * last_num) * last_inverse
                last_q = (last_grads[5] * last_den - last_grads[7] * last_num) * last_inverse
                converged = (
                    converged
                    & (abs(log_k_p - last_p) <= tol * (abs(log_k_p) + 1.0))
                    & (abs(log_k_q - last_q) <= tol * (abs(log_k_q) + 1.0))
                )
                derivatives[_NUM_PREV_P + j], derivatives[_NUM_P + j] = grads[0], grads[1]
                derivatives[_DEN_PREV_P + j], derivatives[_DEN_P + j] = grads[2], grads[3]
                derivatives[_NUM_PREV_Q + j], derivatives[_NUM_Q + j] = grads[4], grads[5]
                derivatives[_DEN_PREV_Q + j], derivatives[_DEN_Q + j] = grads[6], grads[7]
            state[_NUM_PREV + j], state[_NUM + j] = num_prev, num
            state[_DEN_PREV + j], state[_DEN + j] = den_prev, den
            done = max(state[_DONE + j], 1.0 if converged else 0.0)
            state[_DONE + j] = done
            remaining += done < 1.0
        if remaining == 0:
            return
        if (k + _STEPS - 1) % _RESCALE_EVERY == 0:
            # Divide a lane's convergents (and derivatives) by B_n where B_n has drifted far
            # from 1.
            for j in range(_LANES):
                den = state[_DEN + j]
                if not (RESCALE_LOW < abs(den) < RESCALE_HIGH):
                    scale = 1.0 / den if den != 0.0 else 1.0
                    for row in range(_NUM_PREV, _DONE, _LANES):
                        state[row + j] *= scale
                    if derivatives is not None:
                        for row in range(0, _DERIVATIVES_SIZE, _LANES):
                            derivatives[row + j] *= scale


@callee
def _lane_results(p, q, psi, lanes, state, derivatives):
    """I_t(p, q) and its p, q derivatives in every lane, from the fraction's last convergents:
    ``fraction_result`` where the prefactor is a normal number, with ``fraction_gradients``'
    log derivatives where p and q are below DIGAMMA_MIN (``log_ratio_to_mean``'s plain form).
    One pass without branches or calls (SIMD instructions); the other lanes are redone by
    :func:`_store_results`."""
    psi_p, psi_q, psi_pq = psi
    inv_p = 1.0 / p
    lam, _, nu = fraction_scales(p, q)
    p_scaled = p / lam
    for j in range(_LANES):
        num, den = state[_NUM + j], state[_DEN + j]
        factor = den / num / p_scaled
        power = lanes[_LANE_POWER, j]
        lanes[_TAIL, j] = power * factor
        if derivatives is not None:
            log_k_p = (derivatives[_NUM_P + j] / num - derivatives[_DEN_P + j] / den) / lam
            log_k_q = (derivatives[_NUM_Q + j] / num - derivatives[_DEN_Q + j] / den) / nu
            log_grad_p = (lanes[_LOG_T, j] - psi_p + psi_pq) - inv_p - log_k_p
            log_grad_q = (lanes[_LOG_S, j] - psi_q + psi_pq) - log_k_q
            lanes[_GRAD_P, j] = power * (factor * log_grad_p)
            lanes[_GRAD_Q, j] = power * (factor * log_grad_q)


@callee
def _store_results(
    p,
    q,
    psi,
    begin,
    order,
    first,
    filled,
    reflected,
    lanes,
    state,
    derivatives,
    out,
    grad_a,
    grad_b,
):
    """Write the lanes' results to their elements (I or 1 - I, and the gradients asked for),
    redoing those :func:`_lane_results` does not cover in the scalar functions."""
    plain = max(p, q) < DIGAMMA_MIN
    lam, _, nu = fraction_scales(p, q)
    for j in range(filled):
        i = begin + order[first + j]
        if plain and lanes[_LANE_LOG_POWER, j] > LOG_SUBNORMAL:
            tail, grad_p, grad_q = lanes[_TAIL, j], lanes[_GRAD_P, j], lanes[_GRAD_Q, j]
        else:
            num, den = state[_NUM + j], state[_DEN + j]
            log_grad_p = log_grad_q = 0.0
            if derivatives is not None:
                log_grad_p, log_grad_q = fraction_gradients(
                    1.0,
                    p,
                    q,
                    lanes[_OFFSET, j],
                    num,
                    den,
                    derivatives[_NUM_P + j],
                    derivatives[_DEN_P + j],
                    derivatives[_NUM_Q + j],
                    derivatives[_DEN_Q + j],
                    lanes[_LOG_T, j],
                    lanes[_LOG_S, j],
                    psi,
                    lam,
                    nu,
                )
            tail, grad_p, grad_q = fraction_result(
                lanes[_LANE_POWER, j],
                lanes[_LANE_LOG_POWER, j],
                p / lam,
                num,
                den,
                log_grad_p,
                log_grad_q,
            )
        out[i] = 1.0 - tail if reflected else tail
        if grad_a is not None:
            if reflected:
                grad_a[i], grad_b[i] = -grad_q, -grad_p
            else:
                grad_a[i], grad_b[i] = grad_p, grad_q


@inlined
def _runs_kernel(
    a,
    b,
    x,
    layout,
    run_length,
    out,
    grad_a,
    grad_b,
    grad_x,
    tol,
    tiny,
    huge,
    large,
    workspace,
    start,
    stop,
):
    """Fill ``out[start:stop]`` and the gradients asked for; (a, b) is constant along runs.

    ``x`` is read in full; parameter ``k`` (a: 0, b: 1) of element ``i`` is
    ``(i // layout[k, 0]) % layout[k, 1]``, constant on each run ``[r * run_length,
    (r + 1) * run_length)``. ``grad_a`` and ``grad_b`` (``grad_x``) are None where those
    gradients are not asked for, and ``large`` None where no parameter is as large as
    STIRLING_MIN: the code that serves them is then not compiled. ``workspace``: this call's
    own scratch arrays (``_WORKSPACE``).
    """
    scratch, bins, order, counts, lanes, state, derivatives = workspace
    work = (scratch, bins, order, counts)
    begin = start
    while begin < stop:
        run_end = min(stop, (begin // run_length + 1) * run_length)
        a_run = np.float64(a[(begin // layout[0, 0]) % layout[0, 1]])
        b_run = np.float64(b[(begin // layout[1, 0]) % layout[1, 1]])
        # What all x of the run share (``parameter_terms``).
        log_beta = math.nan if math.isinf(a_run + b_run) else log_beta_function(a_run, b_run)
        psi_a = psi_b = psi_ab = 0.0
        if grad_a is not None:
            psi_a, psi_b, psi_ab = digamma(a_run), digamma(b_run), digamma(a_run + b_run)
        for block in range(begin, run_end, _BLOCK):
            size = min(run_end, block + _BLOCK) - block
            per_side = max(1, min(_MAX_BINS, size // _PER_BIN))
            _prefactors(a_run, b_run, log_beta, x, block, size, scratch, grad_x, huge, large)
            _sort_into_bins(
                a_run,
                b_run,
                log_beta,
                block,
                size,
                per_side,
                work,
                out,
                grad_a,
                grad_b,
                grad_x,
                tiny,
                huge,
            )
            first_of_bin = 0
            for c in range(2 * per_side):
                end_of_bin = counts[c]
                reflected = c >= per_side
                p, q = (b_run, a_run) if reflected else (a_run, b_run)
                psi = (psi_b, psi_a, psi_ab) if reflected else (psi_a, psi_b, psi_ab)
                for first in range(first_of_bin, end_of_bin, _LANES):
                    filled = min(_LANES, end_of_bin - first)
                    _gather(scratch, order, first, filled, reflected, lanes)
                    _fraction_lanes(p, q, lanes, tol, state, derivatives)
                    _lane_results(p, q, psi, lanes, state, derivatives)
                    _store_results(
                        p,
                        q,
                        psi,
                        block,
                        order,
                        first,
                        filled,
                        reflected,
                        lanes,
                        state,
                        derivatives,
                        out,
                        grad_a,
                        grad_b,
                    )
                first_of_bin = end_of_bin
        begin = run_end


# The automatic CPU choice (kernel "cpu") sends runs of at least this many elements sharing
# (a, b) here; shorter runs gain nothing from the lanes.
MIN_AUTOMATIC_RUN = 256


def betainc(
    a: Tensor, b: Tensor, x: Tensor, want_grad_ab: bool, want_grad_x: bool, *, min_run: int = 1
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(value, dI/da, dI/db, dI/dx) of the broadcast shape, runs of shared (a, b) in SIMD lanes.

    Parameter arrays of the full size whose values are all equal count as one shared pair.
    Inputs this kernel does not take (x not laid out in full, a parameter that is not a
    positive finite number, runs shorter than ``min_run``) go to the per-element kernel, so any
    input gets exact results. ``a``, ``b``, ``x``: CPU tensors of one dtype (float32 or float64).
    """
    call = collapse_constant_parameters(prepare(a, b, x, want_grad_ab, want_grad_x))
    if call.numel:
        run_length = shared_run_length(call, min_run)
        if run_length:
            _run_in_lanes(call, run_length)
            _finish_deferred(call)
        else:
            kernel_args = (*call.arrays, call.layout, *call.out_arrays, *call.options)
            run_in_threads(elementwise_kernel, kernel_args, call.numel, elementwise_workspace)
    return call.outputs


# The descriptor of one call of an entry point of :func:`_runs_kernel` (int64 slots): the next
# piece and the next workspace part (counters, from 0), the number of pieces, the elements and
# the run length; the addresses of a and b with their sizes, of x, the layout, the four outputs
# and the tolerances (tol, tiny, huge); then the base address of each workspace array.
(
    _D_PIECE,
    _D_PART,
    _D_PIECES,
    _D_NUMEL,
    _D_RUN_LENGTH,
    _D_A,
    _D_A_SIZE,
    _D_B,
    _D_B_SIZE,
    _D_X,
    _D_LAYOUT,
    _D_OUT,
    _D_OUT_A,
    _D_OUT_B,
    _D_OUT_X,
    _D_OPTIONS,
) = range(16)
_D_WORK = 16
# The workspace of one thread, (shape, dtype) of each array: the block's rows, each element's
# bin, the elements in bin order, the bin boundaries, the lanes' rows, their state and their
# derivative state (used only where the gradients in a and b are asked for).
_WORKSPACE = (
    ((_SCRATCH_ROWS, _BLOCK), np.float64),
    ((_BLOCK,), np.int64),
    ((_BLOCK,), np.int64),
    ((2 * _MAX_BINS + 1,), np.int64),
    ((_LANE_ROWS, _LANES), np.float64),
    ((_STATE_SIZE,), np.float64),
    ((_DERIVATIVES_SIZE,), np.float64),
)
_DESCRIPTOR_SIZE = _D_WORK + len(_WORKSPACE)
# Bytes of each workspace array per thread (all have 8-byte elements).
_PART_BYTES = tuple(8 * math.prod(shape) for shape, _ in _WORKSPACE)


@functools.cache
def _entry(real, want_grad_ab: bool, want_grad_x: bool, large: bool):
    """The C entry point of :func:`_runs_kernel` for one kind of call: values of
    numpy type ``real``, the gradients asked for, whether some parameter is as large as
    STIRLING_MIN. Compiled (or loaded from numba's cache) on first use, one for each kind, so
    that only the code a call needs is compiled.

    Every thread that runs it takes a part of the workspace, then pieces of the elements until
    none is left. (Kept by the cache: the compiled code lives as long as this object.)
    """

    @c_entry
    def entry(data):
        d = carray(data, (_DESCRIPTOR_SIZE,), np.int64)
        numel = d[_D_NUMEL]
        a = carray(pointer(d[_D_A], real), (d[_D_A_SIZE],))
        b = carray(pointer(d[_D_B], real), (d[_D_B_SIZE],))
        x = carray(pointer(d[_D_X], real), (numel,))
        layout = carray(pointer(d[_D_LAYOUT], np.int64), (3, 2))
        out = carray(pointer(d[_D_OUT], real), (numel,))
        grad_a = carray(pointer(d[_D_OUT_A], real), (numel,)) if want_grad_ab else None
        grad_b = carray(pointer(d[_D_OUT_B], real), (numel,)) if want_grad_ab else None
        grad_x = carray(pointer(d[_D_OUT_X], real), (numel,)) if want_grad_x else None
        options = carray(pointer(d[_D_OPTIONS], np.float64), (3,))
        part = take(data, _D_PART)
        work = d[_D_WORK:]
        workspace = (
            carray(pointer(work[0] + part * _PART_BYTES[0], np.float64), (_SCRATCH_ROWS, _BLOCK)),
            carray(pointer(work[1] + part * _PART_BYTES[1], np.int64), (_BLOCK,)),
            carray(pointer(work[2] + part * _PART_BYTES[2], np.int64), (_BLOCK,)),
            carray(pointer(work[3] + part * _PART_BYTES[3], np.int64), (2 * _MAX_BINS + 1,)),
            carray(pointer(work[4] + part * _PART_BYTES[4], np.float64), (_LANE_ROWS, _LANES)),
            carray(pointer(work[5] + part * _PART_BYTES[5], np.float64), (_STATE_SIZE,)),
            carray(pointer(work[6] + part * _PART_BYTES[6], np.float64), (_DERIVATIVES_SIZE,))
            if want_grad_ab
            else None,
        )
        pieces = d[_D_PIECES]
        piece = take(data, _D_PIECE)
        while piece < pieces:
            _runs_kernel(
                a,
                b,
                x,
                layout,
                d[_D_RUN_LENGTH],
                out,
                grad_a,
                grad_b,
                grad_x,
                options[0],
                options[1],
                options[2],
                True if large else None,
                workspace,
                numel * piece // pieces,
                numel * (piece + 1) // pieces,
            )
            piece = take(data, _D_PIECE)

    return entry


def _run_in_lanes(call, run_length: int) -> None:
    """Every element of ``call`` by :func:`_runs_kernel`, on the threads ``run_copies`` picks,
    each with its own part of the workspace; more pieces than threads, so that a thread slowed
    down (a busy machine) leaves its remaining pieces to the others."""
    want_grad_ab, want_grad_x, tol, tiny, huge = call.options
    a, b, x = call.arrays
    large = bool(max(a.max(), b.max()) >= STIRLING_MIN)
    entry = _entry(x.dtype.type, want_grad_ab, want_grad_x, large)
    threads = threads_for(call.numel)
    workspace = [np.empty((threads, *shape), dtype=dtype) for shape, dtype in _WORKSPACE]
    options = np.array([tol, tiny, huge])
    descriptor = np.zeros(_DESCRIPTOR_SIZE, dtype=np.int64)
    addresses = [array.ctypes.data for array in (x, call.layout, *call.out_arrays, options)]
    pieces = 1 if threads == 1 else 4 * threads
    descriptor[_D_PIECES:_D_WORK] = [
        pieces,
        call.numel,
        run_length,
        a.ctypes.data,
        a.size,
        b.ctypes.data,
        b.size,
        *addresses,
    ]
    descriptor[_D_WORK:] = [array.ctypes.data for array in workspace]
    run_copies(entry.address, descriptor.ctypes.data, threads)


def _finish_deferred(call) -> None:
    """The elements the lanes left as NaN (tails with a first parameter below 0.1 or above
    _LANES_MAX_P, the asymptotic expansion's region; NaN inputs too, which stay NaN) by the
    per-element kernel.

    Not looked for where no parameter could have sent an element there.
    """
    a, b = call.arrays[0], call.arrays[1]
    a_max, b_max = a.max(), b.max()
    series = min(a.min(), b.min()) < _SERIES_BELOW
    past_lanes = max(a_max, b_max) > _LANES_MAX_P
    expansion = min(a_max, b_max) >= TEMME_MIN
    if not (series or past_lanes or expansion):
        return
    deferred = np.flatnonzero(np.isnan(call.out_arrays[0]))
    if deferred.size:
        kernel_args = (*call.arrays, call.layout, deferred, call.out_arrays, call.options)
        run_in_threads(elementwise_at, kernel_args, deferred.size, lambda: elementwise_workspace(1))


def betainc_automatic(
    a: Tensor, b: Tensor, x: Tensor, want_grad_ab: bool, want_grad_x: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Kernel ``"cpu"``: long runs of shared (a, b) in lanes, everything else per element."""
    return betainc(a, b, x, want_grad_ab, want_grad_x, min_run=MIN_AUTOMATIC_RUN)
