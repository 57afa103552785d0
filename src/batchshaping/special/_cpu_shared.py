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
stopping rule applied to every lane. A chunk stops once all its lanes have met it; lanes that met
it earlier go on adding terms of a converged fraction, which changes their value by less than
the tolerance. The power series is not needed where the tail's first parameter is at least 0.1:
the fraction converges quickly where the series would serve (small x). Elements whose tail has a
smaller first parameter (where only the series keeps the digits of 1 - I and of the gradients)
and those of the asymptotic expansion's region (both parameters large, x near the mean) are left
to the per-element kernel, in a second pass over them alone: a prior's first call compiles
neither the series nor the expansion unless it needs them.

To keep the lanes of a chunk alike in how many terms they need, the elements of a block are
binned by where they fall between 0 and the reflection point (counting sort), and chunks are cut
from one bin at a time. Partial chunks are padded with a copy of their first element.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from batchshaping._runtime.jit import jit
from batchshaping.special._constants import TEMME_MIN, TEMME_Z
from batchshaping.special._cpu_elementwise import elementwise_at, elementwise_kernel
from batchshaping.special._cpu_host import (
    collapse_constant_parameters,
    prepare,
    run_in_threads,
    shared_run_length,
)
from batchshaping.special._scalar import (
    MAX_TERMS,
    RESCALE_HIGH,
    RESCALE_LOW,
    beta_density,
    convergent_derivatives,
    end_point_density,
    fraction_coefficients,
    fraction_gradients,
    fraction_result,
    fraction_start,
    fraction_step,
    log_power_terms,
    mean_offset,
    negligible,
    parameter_terms,
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
# How often (in steps of the fraction) the convergents are checked for drift and rescaled. Each
# step multiplies them by at most about 4 where the fraction is used, so eight steps move them
# by well under 1e10, far inside the rescaling bounds. For large p a step may also shrink them by
# a factor of order 1 / p: there they are checked at every step.
_RESCALE_EVERY = 8
_RESCALE_EVERY_STEP = 1e6
# Tails whose first parameter is below this take the per-element path (the series).
_SERIES_BELOW = 0.1

# Rows of the lane state: the convergents A_{n-1}, A_n, B_{n-1}, B_n, the previous pair's A and B
# (the convergence test), whether the lane has converged, and for the gradients the a and b
# derivatives of the four convergents and of log K at the previous pair.
(
    _NUM_PREV,
    _NUM,
    _DEN_PREV,
    _DEN,
    _NUM_LAST,
    _DEN_LAST,
    _DONE,
    _NUM_PREV_A,
    _NUM_A,
    _DEN_PREV_A,
    _DEN_A,
    _NUM_PREV_B,
    _NUM_B,
    _DEN_PREV_B,
    _DEN_B,
    _LOG_K_A,
    _LOG_K_B,
) = (row * _LANES for row in range(17))
_STATE_SIZE = 17 * _LANES


@jit
def _fraction_lanes(p, q, lanes, want_grad, tol, state):
    """The continued fraction of I_t(p, q) in every lane (``lanes`` = rows t, s, t^2, delta).

    Leaves the final convergents (and their p, q derivatives) in ``state``.
    """
    inv = 1.0 / (p + 1.0)
    for j in range(_LANES):
        start = (1.0 + lanes[3, j]) * inv
        state[_NUM_PREV + j] = 1.0
        state[_NUM + j] = start
        state[_DEN_PREV + j] = 0.0
        state[_DEN + j] = 1.0
        state[_NUM_LAST + j] = start
        state[_DEN_LAST + j] = 1.0
        state[_DONE + j] = 0.0
        state[_LOG_K_A + j] = math.inf
        state[_LOG_K_B + j] = math.inf
    for row in range(_NUM_PREV_A, _LOG_K_A, _LANES):
        for j in range(_LANES):
            state[row + j] = 0.0
    for j in range(_LANES):
        _, state[_NUM_A + j], state[_NUM_B + j] = fraction_start(
            p, q, lanes[0, j], lanes[1, j], lanes[3, j]
        )
    every = 1 if p > _RESCALE_EVERY_STEP else _RESCALE_EVERY
    for k in range(1, MAX_TERMS):
        coefficients = fraction_coefficients(p, q, k)
        if want_grad:
            remaining = _step_with_gradients(coefficients, k, lanes, tol, state)
        else:
            remaining = _step(coefficients, k, lanes, tol, state)
        if remaining == 0:
            return
        if k % every == 0:
            _rescale(state)


@jit
def _step(coefficients, k, lanes, tol, state):
    """Step k of the fraction in every lane, values only; returns how many lanes go on."""
    remaining = 0
    for j in range(_LANES):
        num_prev, num = state[_NUM_PREV + j], state[_NUM + j]
        den_prev, den = state[_DEN_PREV + j], state[_DEN + j]
        beta, alpha, _, _, _, _ = fraction_step(
            lanes[0, j], lanes[1, j], lanes[2, j], lanes[3, j], k, coefficients
        )
        num_prev, num = num, beta * num + alpha * num_prev
        den_prev, den = den, beta * den + alpha * den_prev
        converged = _value_converged(num, den, tol, state, j)
        remaining += _store_values(num_prev, num, den_prev, den, converged, state, j)
    return remaining


@jit
def _value_converged(num, den, tol, state, j):
    """|K_k - K_{k-1}| <= tol |K_k| in lane j, cross-multiplied as in the per-element kernel."""
    cross = num * state[_DEN_LAST + j]
    return abs(cross - state[_NUM_LAST + j] * den) <= tol * abs(cross)


@jit
def _store_values(num_prev, num, den_prev, den, converged, state, j):
    """Store lane j's convergents and whether it has converged; 1 if it goes on, else 0."""
    state[_NUM_PREV + j], state[_NUM + j] = num_prev, num
    state[_DEN_PREV + j], state[_DEN + j] = den_prev, den
    state[_NUM_LAST + j], state[_DEN_LAST + j] = num, den
    done = max(state[_DONE + j], 1.0 if converged else 0.0)
    state[_DONE + j] = done
    return done < 1.0


@jit
def _step_with_gradients(coefficients, k, lanes, tol, state):
    """As :func:`_step`, carrying the p and q derivatives of the convergents."""
    remaining = 0
    for j in range(_LANES):
        num_prev, num = state[_NUM_PREV + j], state[_NUM + j]
        den_prev, den = state[_DEN_PREV + j], state[_DEN + j]
        num_prev_a, num_a = state[_NUM_PREV_A + j], state[_NUM_A + j]
        den_prev_a, den_a = state[_DEN_PREV_A + j], state[_DEN_A + j]
        num_prev_b, num_b = state[_NUM_PREV_B + j], state[_NUM_B + j]
        den_prev_b, den_b = state[_DEN_PREV_B + j], state[_DEN_B + j]
        step = fraction_step(lanes[0, j], lanes[1, j], lanes[2, j], lanes[3, j], k, coefficients)
        beta, alpha = step[0], step[1]
        (
            num_prev_a,
            num_a,
            den_prev_a,
            den_a,
            num_prev_b,
            num_b,
            den_prev_b,
            den_b,
        ) = convergent_derivatives(
            num_prev,
            num,
            den_prev,
            den,
            (num_prev_a, num_a, den_prev_a, den_a, num_prev_b, num_b, den_prev_b, den_b),
            step,
        )
        num_prev, num = num, beta * num + alpha * num_prev
        den_prev, den = den, beta * den + alpha * den_prev
        converged = _value_converged(num, den, tol, state, j)
        # d log K = dA / A - dB / B over one division, tested in every lane at every step.
        inverse = 1.0 / (num * den)
        log_k_a = (num_a * den - den_a * num) * inverse
        log_k_b = (num_b * den - den_b * num) * inverse
        converged = (
            converged
            & (abs(log_k_a - state[_LOG_K_A + j]) <= tol * (abs(log_k_a) + 1.0))
            & (abs(log_k_b - state[_LOG_K_B + j]) <= tol * (abs(log_k_b) + 1.0))
        )
        state[_NUM_PREV_A + j], state[_NUM_A + j] = num_prev_a, num_a
        state[_DEN_PREV_A + j], state[_DEN_A + j] = den_prev_a, den_a
        state[_NUM_PREV_B + j], state[_NUM_B + j] = num_prev_b, num_b
        state[_DEN_PREV_B + j], state[_DEN_B + j] = den_prev_b, den_b
        state[_LOG_K_A + j], state[_LOG_K_B + j] = log_k_a, log_k_b
        remaining += _store_values(num_prev, num, den_prev, den, converged, state, j)
    return remaining


@jit
def _rescale(state):
    """Divide a lane's convergents (and derivatives) by B_n where B_n has drifted far from 1."""
    for j in range(_LANES):
        den = state[_DEN + j]
        if not (RESCALE_LOW < abs(den) < RESCALE_HIGH):
            scale = 1.0 / den if den != 0.0 else 1.0
            for row in range(_NUM_PREV, _LOG_K_A, _LANES):
                if row != _DONE:
                    state[row + j] *= scale


@jit
def _block(a, b, terms, x, begin, end, outputs, options, work):
    """Fill ``out[begin:end]`` (and the gradients asked for) for one (a, b).

    ``outputs`` is (out, grad_a, grad_b, grad_x), ``options`` (want_grad, want_density, tol,
    tiny, huge) as in :func:`betainc_runs_kernel`, ``work`` the scratch arrays it allocates.
    """
    out, grad_a, grad_b, grad_x = outputs
    want_grad, want_density, tol, tiny, huge = options
    scratch, bins, order, counts, lanes, state = (
        work[0],
        work[1],
        work[2],
        work[3],
        work[4],
        work[5],
    )
    log_beta, psi_a, psi_b, psi_ab = terms[0], terms[1], terms[2], terms[3]
    size = end - begin
    per_side = max(1, min(_MAX_BINS, size // _PER_BIN))
    reflection = (a + 1.0) / (a + b + 2.0)
    scale_lower = per_side / reflection
    scale_upper = per_side / (1.0 - reflection)
    # The asymptotic expansion's region: both parameters large, |delta| within TEMME_Z standard
    # deviations of the mean (as the per-element kernel decides).
    expansion_offset = -1.0
    if min(a, b) >= TEMME_MIN:
        expansion_offset = TEMME_Z * math.sqrt(a) * math.sqrt(b / (a + b))
    counts[:] = 0
    # The prefactor, the density and the bin of each element; the end points, values outside
    # [0, 1], prefactors that underflow and the elements of the per-element path are finished
    # here.
    for k in range(size):
        i = begin + k
        value = np.float64(x[i])
        bins[k] = -1
        if not (0.0 < value < 1.0):
            inside = value == 0.0 or value == 1.0  # False for NaN
            out[i] = value if inside else math.nan
            if want_grad:
                grad_a[i] = grad_b[i] = 0.0 if inside else math.nan
            if want_density:
                grad_x[i] = (
                    end_point_density(a, b, value, log_beta, tiny, huge) if inside else math.nan
                )
            continue
        y = 1.0 - value
        log_x = math.log(value)
        log_y = math.log1p(-value)
        delta = mean_offset(a, b, value, y)
        log_power = log_power_terms(a, b, value, y, log_x, log_y, log_beta, delta)
        power = math.exp(log_power)
        if want_density:
            grad_x[i] = beta_density(value, y, log_x, log_y, log_power, power, huge)
        lower = delta >= 2.0 * value - 1.0  # x (a + b + 2) <= a + 1, from the exact delta
        first = a if lower else b
        if first < _SERIES_BELOW or abs(delta) <= expansion_offset:
            # Left to the per-element kernel (``deferred``): compiled only where needed.
            out[i] = math.nan
            continue
        if negligible(log_power, first, b if lower else a):  # 0 (or 1) to working precision
            out[i] = 0.0 if lower else 1.0
            if want_grad:
                grad_a[i] = grad_b[i] = 0.0
            continue
        if lower:
            scratch[0, k] = value
            scratch[5, k] = y
            scratch[4, k] = delta
            bin_index = min(per_side - 1, int(value * scale_lower))
        else:
            scratch[0, k] = y
            scratch[5, k] = value
            scratch[4, k] = -delta
            bin_index = per_side + min(per_side - 1, int(y * scale_upper))
        scratch[1, k] = log_power
        scratch[6, k] = power
        scratch[2, k] = log_x
        scratch[3, k] = log_y
        bins[k] = bin_index
        counts[bin_index + 1] += 1
    # Counting sort of the elements by bin: bin c is order[counts[c] : counts[c + 1]].
    for c in range(2 * per_side):
        counts[c + 1] += counts[c]
    for k in range(size):
        if bins[k] >= 0:
            order[counts[bins[k]]] = k
            counts[bins[k]] += 1
    # Now counts[c] is where bin c ends.
    start = 0
    for c in range(2 * per_side):
        stop = counts[c]
        reflected = c >= per_side
        p, q = (b, a) if reflected else (a, b)
        psi = (psi_b, psi_a, psi_ab) if reflected else (psi_a, psi_b, psi_ab)
        for first in range(start, stop, _LANES):
            filled = min(_LANES, stop - first)
            for j in range(_LANES):
                k = order[first + min(j, filled - 1)]
                t = scratch[0, k]
                lanes[0, j] = t
                lanes[1, j] = scratch[5, k]
                lanes[2, j] = t * t
                lanes[3, j] = scratch[4, k]
            _fraction_lanes(p, q, lanes, want_grad, tol, state)
            for j in range(filled):
                k = order[first + j]
                i = begin + k
                num, den = state[_NUM + j], state[_DEN + j]
                log_grad_p = log_grad_q = 0.0
                if want_grad:
                    log_x, log_y = scratch[2, k], scratch[3, k]
                    log_t, log_u = (log_y, log_x) if reflected else (log_x, log_y)
                    log_grad_p, log_grad_q = fraction_gradients(
                        1.0,
                        p,
                        q,
                        lanes[3, j],
                        num,
                        den,
                        state[_NUM_A + j],
                        state[_DEN_A + j],
                        state[_NUM_B + j],
                        state[_DEN_B + j],
                        log_t,
                        log_u,
                        psi,
                    )
                tail, grad_p, grad_q = fraction_result(
                    scratch[6, k], scratch[1, k], p, num, den, log_grad_p, log_grad_q
                )
                out[i] = 1.0 - tail if reflected else tail
                if not want_grad:
                    continue
                if reflected:
                    grad_a[i], grad_b[i] = -grad_q, -grad_p
                else:
                    grad_a[i], grad_b[i] = grad_p, grad_q
        start = stop


@jit
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
    want_grad,
    want_density,
    tol,
    tiny,
    huge,
    start,
    stop,
):
    """Fill ``out[start:stop]`` and the gradients asked for; (a, b) is constant along runs.

    ``x`` is read in full; parameter ``k`` (a: 0, b: 1) of element ``i`` is
    ``(i // layout[k, 0]) % layout[k, 1]``, constant on each run ``[r * run_length,
    (r + 1) * run_length)``.
    """
    work = (
        # per element: t (x or 1 - x), log prefactor, log x, log(1 - x), the tail's delta, 1 - t,
        # prefactor
        np.empty((7, _BLOCK)),
        np.empty(_BLOCK, dtype=np.int64),  # its bin
        np.empty(_BLOCK, dtype=np.int64),  # the elements in bin order
        np.empty(2 * _MAX_BINS + 1, dtype=np.int64),  # bin boundaries
        np.empty((4, _LANES)),  # one chunk's t, 1 - t, t^2, delta
        np.empty(_STATE_SIZE),  # the lanes' state
    )
    outputs = (out, grad_a, grad_b, grad_x)
    options = (want_grad, want_density, tol, tiny, huge)
    begin = start
    while begin < stop:
        run_end = min(stop, (begin // run_length + 1) * run_length)
        a_run = np.float64(a[(begin // layout[0, 0]) % layout[0, 1]])
        b_run = np.float64(b[(begin // layout[1, 0]) % layout[1, 1]])
        terms = parameter_terms(a_run, b_run, want_grad)
        for block in range(begin, run_end, _BLOCK):
            end = min(run_end, block + _BLOCK)
            _block(a_run, b_run, terms, x, block, end, outputs, options, work)
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
            kernel, extra = _runs_kernel, (run_length,)
        else:
            kernel, extra = elementwise_kernel, ()
        kernel_args = (*call.arrays, call.layout, *extra, *call.out_arrays, *call.options)
        run_in_threads(kernel, kernel_args, call.numel)
        if run_length:
            _finish_deferred(call)
    return call.outputs


def _finish_deferred(call) -> None:
    """The elements the lanes left as NaN (tails with a first parameter below 0.1, the
    asymptotic expansion's region; NaN inputs too, which stay NaN) by the per-element kernel.

    Not looked for where no parameter could have sent an element there.
    """
    a, b = call.arrays[0], call.arrays[1]
    small = min(a.min(), b.min()) < _SERIES_BELOW
    if not small and not (np.minimum(a.max(), b.max()) >= TEMME_MIN):
        return
    deferred = np.flatnonzero(np.isnan(call.out_arrays[0]))
    if deferred.size:
        kernel_args = (*call.arrays, call.layout, deferred, call.out_arrays, call.options)
        run_in_threads(elementwise_at, kernel_args, deferred.size)


def betainc_automatic(
    a: Tensor, b: Tensor, x: Tensor, want_grad_ab: bool, want_grad_x: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Kernel ``"cpu"``: long runs of shared (a, b) in lanes, everything else per element."""
    return betainc(a, b, x, want_grad_ab, want_grad_x, min_run=MIN_AUTOMATIC_RUN)
