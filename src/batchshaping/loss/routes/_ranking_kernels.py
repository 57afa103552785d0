"""numba kernels of :mod:`batchshaping.loss.routes.ranking`: sort keys, their radix sort, ranks.

Imported on first use only, so that importing the package does not load numba. Each kernel works
on a block of rows (groups) and releases the GIL, so blocks run in parallel on plain threads.
"""

from __future__ import annotations

import numpy as np

from batchshaping._runtime.jit import callee, jit

_LOW_HALF = np.int64(0xFFFFFFFF)
_MAGNITUDE = np.int64(0x7FFFFFFF)
# The largest ordered value: masked-out positions sort after every float, NaN included.
_PADDING = np.int64(0x7FFFFFFF)


@callee
def _key(bits, padding, index):
    """ordered(bits) * 2^32 + index, where ordered sorts like the float32 the bits hold.

    ``bits`` is a float32 viewed as int32 (sign and magnitude); ``ordered`` is the signed
    magnitude as a two's complement number, so -0.0 and +0.0 both give 0 and tie, as they compare.
    ``padding`` gives the largest key instead, after every float.
    """
    word = np.int64(bits)
    magnitude = word & _MAGNITUDE
    ordered = -magnitude if word < 0 else magnitude
    if padding:
        ordered = _PADDING
    return (ordered << 32) | index


@jit
def float32_keys_split(bits, kept, masked, pivot, keys):
    """The keys of one row (1, n), those below ``pivot`` first, the others from the end.

    Returns how many are below: sorting the two parts apart then sorts the row.
    """
    columns = bits.shape[1]
    below, above = 0, columns - 1
    for i in range(columns):
        key = _key(bits[0, i], masked and not kept[0, i], i)
        # Without a branch, which random data would mispredict half the time: the key goes to
        # both ends of the unwritten middle, and only its own end moves past it.
        keys[0, below] = key
        keys[0, above] = key
        is_below = np.int64(key < pivot)
        below += is_below
        above -= 1 - is_below
    return below


# The high word of a key (the ordered float) is sorted a byte at a time, least significant first.
_DIGIT_BITS = 8
_DIGITS = 32 // _DIGIT_BITS
_BUCKETS = 1 << _DIGIT_BITS
_SIGN = np.int64(1 << 31)


def digit_counts() -> np.ndarray:
    """Scratch for the digit counts of :func:`_sort_keys`."""
    return np.empty((_DIGITS, _BUCKETS), dtype=np.int64)


@callee
def _digit(key, shift):
    """A digit of the high word of ``key``, shifted so that digits order like the signed word."""
    return (((key >> 32) + _SIGN) >> shift) & (_BUCKETS - 1)


@callee
def _sort_keys(keys, buffer, backwards, counts):
    """Sort a row of keys by their high words, in place, by a stable LSD radix sort.

    Keys with equal high words keep their order, and their low words (indices) are in increasing
    order when the keys are (or, with ``backwards``, when they are in decreasing order: the
    first pass then reads them from the end), so the result is the order of the whole keys.
    ``buffer`` is scratch space of the same length (an array of the same layout, so that the
    passes both ways are one compiled function). The passes go from ``keys`` to ``buffer`` and
    back, an even number of them, so the sorted keys end where they started. ``counts`` is
    (_DIGITS, _BUCKETS) int64 scratch (allocated by the caller: numba's ``np.zeros`` costs a
    compile of its own on first use).
    """
    size = keys.size
    counts[:] = 0
    for i in range(size):
        for d in range(_DIGITS):
            counts[d, _digit(keys[i], d * _DIGIT_BITS)] += 1
    # Both passes read their flag from a run-time expression: a constant would be typed as a
    # literal, and each distinct literal compiles the pass once more on first use.
    for d in range(0, _DIGITS, 2):
        _scatter(keys, buffer, counts[d], d * _DIGIT_BITS, backwards and d == 0)
        _scatter(buffer, keys, counts[d + 1], (d + 1) * _DIGIT_BITS, backwards and d < 0)


@callee
def _scatter(source, target, counts, shift, backwards):
    """One stable pass: each key to the next free place of its digit's bucket."""
    total = 0
    for c in range(_BUCKETS):  # counts become the buckets' first places
        count = counts[c]
        counts[c] = total
        total += count
    size = source.size
    for step in range(size):
        key = source[size - 1 - step] if backwards else source[step]
        bucket = _digit(key, shift)
        target[counts[bucket]] = key
        counts[bucket] += 1


@callee
def _ranks_of_part(keys, first, count, kept, row, masked, ties, out):
    """The ranks of sorted keys that hold positions ``first`` on of a row of ``count`` values.

    Writes ``out[index]`` for each key: rank / (count + 1), or 0 where ``kept[row, index]`` is
    False under ``masked``. A run of equal high words must not go on past the part's end.
    """
    denominator = count + 1.0
    size = keys.size
    run_end = first + size
    for j in range(size - 1, -1, -1):
        key = keys[j]
        if ties and j < size - 1 and (key >> 32) != (keys[j + 1] >> 32):
            run_end = first + j + 1
        rank = run_end if ties else first + j + 1
        index = key & _LOW_HALF
        if masked and not kept[row, index]:
            out[index] = 0.0
        else:
            out[index] = rank / denominator


@jit
def rank_float32_rows(bits, kept, masked, ties, keys, buffer, counts, out):
    """out[r, i] = rank / (n + 1) of value i of row r of ``bits`` (float32 viewed as int32).

    ``n`` is the row length, or under ``masked`` the number of kept values; masked-out positions
    get 0. With ``ties`` the rank is the position of the last value equal to it. Each row's keys
    are formed in ``keys[r]``, sorted with ``buffer`` (n,) and ``counts`` as scratch, and ranked:
    one kernel, so that a first call compiles (or loads from the cache) one function.
    """
    rows, columns = bits.shape
    for r in range(rows):
        row_keys = keys[r]
        count = r - r  # 0 as an int64: a literal 0 compiled _ranks_of_part once more for it
        for i in range(columns):
            padding = masked and not kept[r, i]
            row_keys[i] = _key(bits[r, i], padding, i)
            count += not padding
        # ``r < 0``: False, typed as a run-time bool and ``r - r`` as an int64, as the other
        # caller passes them (a literal would compile the callee once more).
        _sort_keys(row_keys, buffer, r < 0, counts)
        _ranks_of_part(row_keys, r - r, count, kept, r, masked, ties, out[r])


@jit
def sort_and_rank_part(keys, buffer, backwards, counts, first, count, kept, masked, ties, out):
    """Sort one part of a row's keys (:func:`_sort_keys`) and write its ranks
    (:func:`_ranks_of_part`, row 0): the work of one thread on one long row."""
    _sort_keys(keys, buffer, backwards, counts)
    row = first - first  # 0, typed as an int64 like the other caller's row (one compile)
    _ranks_of_part(keys, first, count, kept, row, masked, ties, out)


@jit
def ranks_from_order(order, values, kept, masked, ties, out):
    """As :func:`rank_float32_rows`, from the sorting permutation ``order`` of ``values``."""
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
