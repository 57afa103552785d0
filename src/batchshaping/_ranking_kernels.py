"""numba kernels of :mod:`batchshaping._ranking`: sort keys in, empirical CDF out.

Imported on first use only, so that importing the package does not load numba. Each kernel works
on a block of rows (groups) and releases the GIL, so blocks run in parallel on plain threads.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")

_LOW_HALF = np.int64(0xFFFFFFFF)
_MAGNITUDE = np.int64(0x7FFFFFFF)
# The largest ordered value: masked-out positions sort after every float, NaN included.
_PADDING = np.int64(0x7FFFFFFF)


@_jit
def float32_keys(bits, kept, masked, offset, keys):
    """keys[r, i] = ordered(bits[r, i]) * 2^32 + offset + i, where ordered sorts like the floats.

    ``bits`` are float32 values viewed as int32 (sign and magnitude); ``ordered`` is the signed
    magnitude as a two's complement number, so -0.0 and +0.0 both give 0 and tie, as they compare.
    Where ``masked`` and not ``kept[r, i]`` the key sorts after every float. ``offset`` is the
    position of column 0 in its row, for a block of columns.
    """
    rows, columns = bits.shape
    for r in range(rows):
        for i in range(columns):
            word = np.int64(bits[r, i])
            magnitude = word & _MAGNITUDE
            ordered = -magnitude if word < 0 else magnitude
            if masked and not kept[r, i]:
                ordered = _PADDING
            keys[r, i] = (ordered << 32) | (offset + i)


@_jit
def ranks_from_keys(keys, kept, masked, ties, out):
    """out[r, i] = rank / (n + 1) of value i of row r, from the row's sorted keys.

    ``n`` is the row length, or under ``masked`` the number of kept values; masked-out positions
    get 0. With ``ties`` the rank is the position of the last key with the same high half.
    """
    rows, columns = keys.shape
    for r in range(rows):
        count = columns
        if masked:
            count = 0
            for i in range(columns):
                count += kept[r, i]
        denominator = count + 1.0
        run_end = columns
        for j in range(columns - 1, -1, -1):
            key = keys[r, j]
            if ties and j < columns - 1 and (key >> 32) != (keys[r, j + 1] >> 32):
                run_end = j + 1
            rank = run_end if ties else j + 1
            index = key & _LOW_HALF
            if masked and not kept[r, index]:
                out[r, index] = 0.0
            else:
                out[r, index] = rank / denominator


@_jit
def ranks_from_order(order, values, kept, masked, ties, out):
    """As :func:`ranks_from_keys`, from the sorting permutation ``order`` of ``values``."""
    rows, columns = order.shape
    for r in range(rows):
        count = columns
        if masked:
            count = 0
            for i in range(columns):
                count += kept[r, i]
        denominator = count + 1.0
        run_end = columns
        for j in range(columns - 1, -1, -1):
            index = order[r, j]
            if ties and j < columns - 1 and values[r, index] != values[r, order[r, j + 1]]:
                run_end = j + 1
            rank = run_end if ties else j + 1
            if masked and not kept[r, index]:
                out[r, index] = 0.0
            else:
                out[r, index] = rank / denominator


@_jit
def ranks_from_two_runs(keys, split, kept, masked, ties, out):
    """As :func:`ranks_from_keys` for one row whose keys are sorted in two runs, [:split] and
    [split:], merged here from the top down (keys are distinct: they hold their index)."""
    columns = keys.shape[0]
    count = columns
    if masked:
        count = 0
        for i in range(columns):
            count += kept[i]
    denominator = count + 1.0
    first, second = split - 1, columns - 1
    run_end = columns
    previous = np.int64(0)
    for j in range(columns - 1, -1, -1):
        if second < split or (first >= 0 and keys[first] > keys[second]):
            key = keys[first]
            first -= 1
        else:
            key = keys[second]
            second -= 1
        if ties and j < columns - 1 and (key >> 32) != (previous >> 32):
            run_end = j + 1
        previous = key
        rank = run_end if ties else j + 1
        index = key & _LOW_HALF
        if masked and not kept[index]:
            out[index] = 0.0
        else:
            out[index] = rank / denominator
