"""The empirical CDF of each value within its group, ranked on the host by a radix sort.

Used by the ranked and chunked routes of the loss (plain CPU tensors).

The Batch-Shaping loss sums (rank / (n + 1) - F(x))^2 over the values of a group, a sum that does
not depend on their order: it needs each value's rank, not the sorted values. A float32 value is
turned into a key that carries its own index: its bits mapped to an int32 that orders like the
float, in the high half of an int64, its index in the group in the low half. The keys are sorted
by their high halves with a stable LSD radix sort (four passes of one byte, in linear time), so
ties stay in index order and the low halves of the sorted keys are the permutation. That is
several times faster than ``torch.sort`` or numpy's sorts on the CPU, and its cost grows
linearly with the group. float64 values do not leave room for an index and go through
``np.argsort``.

The kernels are numba functions that release the GIL; groups are shared out over the package's
threads (torch's intra-op thread count), and one long group is split about a sampled median into
two parts sorted on two threads. Everything here runs on CPU tensors only: the routes check
:func:`host_ranking_applies` first.
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np
import torch
from torch import Tensor

from batchshaping._runtime.collector import paused_garbage_collection
from batchshaping._runtime.threads import default_threads, run_ranges, run_tasks
from batchshaping._runtime.tracing import plain_cpu_tensor

__all__ = [
    "empirical_cdf",
    "host_ranking_applies",
    "release_workspace",
    "set_workspace_limit",
    "workspace_bytes",
]


class _Holder:
    """One thread's kept workspace; freed with the thread."""

    __slots__ = ("__weakref__", "array")

    def __init__(self) -> None:
        self.array: np.ndarray | None = None


# Indices live in the low 32 bits of a key.
_MAX_GROUP_SIZE = 2**32
# Below this many values per thread, one thread does the work.
_MIN_PER_THREAD = 32_768
# Values whose median splits one long row in two.
_PIVOT_SAMPLE = 4096

_kernels = None

# The workspace each thread keeps between calls (see ``_scratch``), and the most bytes one may
# keep (512 MiB unless ``set_workspace_limit`` says otherwise).
_workspace = threading.local()
_holders: weakref.WeakSet[_Holder] = weakref.WeakSet()
_limit_bytes = 1 << 29


def host_ranking_applies(values: Tensor) -> bool:
    """Whether :func:`empirical_cdf` can rank ``values`` (samples last): a plain CPU tensor.

    Not on other devices (the loss keeps them on torch ops, free of host synchronisation), not
    while ``torch.compile`` traces or a ``torch.func`` transform runs, and not for tensor
    subclasses, which have no host memory to hand to numpy.
    """
    return (
        plain_cpu_tensor(values)
        and values.dtype in (torch.float32, torch.float64)
        and values.shape[-1] <= _MAX_GROUP_SIZE
    )


def empirical_cdf(values: Tensor, mask: Tensor | None = None, ties: bool = False) -> Tensor:
    """rank / (n + 1) for every value of every group, the groups along the last dimension.

    The rank of a value is its position in its sorted group, counting from 1, ties broken by
    index; with ``ties`` it is the number of values of the group <= it. Under ``mask`` only the
    kept values count (n is the number kept); masked-out positions get 0.

    Args:
        values: a CPU float32 or float64 tensor (*groups, n); never differentiated.
        mask: bool tensor of the same shape, or ``None``.
        ties: tied values share the empirical CDF of the last of them.

    Returns:
        A tensor like ``values``, without gradient.
    """
    kernels = _load_kernels()
    num_samples = values.shape[-1]
    rows = values.detach().reshape(-1, num_samples)
    if rows.dtype == torch.float32:
        rows = rows.contiguous()
    else:
        # No room for an index beside a float64 in a key: argsort. Padding becomes NaN, which
        # numpy sorts after every number, infinities included.
        if mask is not None:
            rows = torch.where(mask.reshape(-1, num_samples), rows, math.nan)
        rows = rows.contiguous()
    masked = mask is not None
    kept = (
        mask.reshape(-1, num_samples).contiguous().numpy()
        if masked
        else np.empty((0, 0), dtype=np.bool_)
    )
    result = torch.empty_like(rows)
    array, out = rows.numpy(), result.numpy()

    if array.dtype == np.float32 and rows.shape[0] == 1 and _threads(1, num_samples) > 1:
        _rank_one_row_in_halves(kernels, array, kept, masked, ties, out)
        return result.reshape(values.shape)

    def rank_rows(start: int, stop: int) -> None:
        if array.dtype == np.float32:
            scratch = _scratch((stop - start + 1) * num_samples)
            keys = scratch[num_samples:].reshape(stop - start, num_samples)
            bits = array[start:stop].view(np.int32)
            kernels.rank_float32_rows(
                bits,
                kept[start:stop],
                masked,
                ties,
                keys,
                scratch[:num_samples],
                kernels.digit_counts(),
                out[start:stop],
            )
        else:
            order = np.argsort(array[start:stop], axis=-1)
            kernels.ranks_from_order(
                order, array[start:stop], kept[start:stop], masked, ties, out[start:stop]
            )

    _in_threads(rank_rows, rows.shape[0], num_samples)
    return result.reshape(values.shape)


def _rank_one_row_in_halves(kernels, array, kept, masked, ties, out) -> None:
    """One long float32 row (1, n): keys split about a sampled median value, each part sorted
    and ranked on its own thread; the parts in order are the sorted row."""
    size = array.shape[1]
    bits = array.view(np.int32)
    # Any pivot sorts the row right; the median of a sample of keys balances the two parts. The
    # sample's keys are formed in numpy, as the kernel forms them: a few thousand values are not
    # worth another kernel compiled on first use. Its index half is cleared, so that equal
    # values all fall on one side (a run of ties is ranked within one part).
    sample = np.arange(0, size, max(1, size // _PIVOT_SAMPLE))
    words = bits[0, sample].astype(np.int64)
    ordered = np.where(words < 0, -(words & 0x7FFFFFFF), words)
    if masked:
        ordered[~kept[0, sample]] = 0x7FFFFFFF
    pivot = np.partition(ordered, len(sample) // 2)[len(sample) // 2] << 32
    count = int(np.count_nonzero(kept)) if masked else size

    scratch = _scratch(2 * size)
    keys = scratch[:size].reshape(1, size)
    split = kernels.float32_keys_split(bits, kept, masked, pivot, keys)
    buffer = scratch[size:]

    def sort_and_rank(lo: int, hi: int, backwards: bool) -> None:
        # The part above the pivot was written from the end: in decreasing index order.
        kernels.sort_and_rank_part(
            keys[0, lo:hi],
            buffer[lo:hi],
            backwards,
            kernels.digit_counts(),
            lo,
            count,
            kept,
            masked,
            ties,
            out[0],
        )

    run_tasks([lambda: sort_and_rank(0, split, False), lambda: sort_and_rank(split, size, True)])


def _scratch(count: int) -> np.ndarray:
    """``count`` int64 values of this thread's workspace, which is kept from call to call.

    Fresh memory costs a page fault for every page on first touch: for one group of 1e7 values,
    allocating its keys and their radix buffer (160 MB) anew took a quarter of the ranking's
    time. The workspace grows to the largest request and is then reused, as torch's CUDA
    allocator keeps its blocks: each thread that ranks keeps 16 bytes per value of the largest
    input it ranked (the main thread for one long group, the pool's threads for many groups), up
    to the limit (:func:`set_workspace_limit`); a larger request gets memory of its own, freed
    after the call. :func:`release_workspace` frees what is kept.
    """
    holder = getattr(_workspace, "holder", None)
    if holder is None:
        holder = _workspace.holder = _Holder()
        _holders.add(holder)
    array = holder.array
    if array is not None and array.size >= count:
        return array[:count]
    array = np.empty(count, dtype=np.int64)
    if array.nbytes <= _limit_bytes:
        holder.array = array
    return array


def workspace_bytes() -> int:
    """The bytes the ranking keeps between calls, over all threads.

    Example:
        >>> import torch
        >>> from batchshaping import batch_shaping_loss
        >>> from batchshaping.loss import release_workspace, workspace_bytes
        >>> from torch.distributions import Normal
        >>> _ = batch_shaping_loss(torch.rand(100_000), Normal(0.5, 0.2))
        >>> workspace_bytes() >= 16 * 100_000
        True
        >>> release_workspace() >= 16 * 100_000, workspace_bytes()
        (True, 0)
    """
    return sum(holder.array.nbytes for holder in list(_holders) if holder.array is not None)


def release_workspace() -> int:
    """Free the workspace the ranking keeps between calls (every thread's); returns its bytes.

    The next call allocates (and faults in) its workspace again.
    """
    freed = 0
    for holder in list(_holders):
        if holder.array is not None:
            freed += holder.array.nbytes
            holder.array = None
    return freed


def set_workspace_limit(nbytes: int) -> None:
    """Keep at most ``nbytes`` of workspace per thread between calls (default 512 MiB).

    0 keeps nothing: every call allocates afresh (slower: fresh memory costs a page fault per
    page). Workspace kept beyond a lowered limit is freed now.
    """
    global _limit_bytes
    if not (isinstance(nbytes, int) and nbytes >= 0):
        raise ValueError(f"nbytes must be an int >= 0, got {nbytes!r}")
    _limit_bytes = nbytes
    for holder in list(_holders):
        if holder.array is not None and holder.array.nbytes > nbytes:
            holder.array = None


def _threads(num_rows: int, row_size: int) -> int:
    """How many threads share ``num_rows`` rows of ``row_size`` values (at most torch's)."""
    return max(1, min(default_threads(), num_rows * row_size // _MIN_PER_THREAD))


def _in_threads(work, num_rows: int, row_size: int) -> None:
    """Run ``work(start, stop)`` over row ranges covering ``range(num_rows)``, in parallel."""
    threads = min(_threads(num_rows, row_size), num_rows)
    if threads <= 1:
        work(0, num_rows)
        return
    run_ranges(work, num_rows, threads, threads)


def _load_kernels():
    """The numba kernels, compiled (or loaded from numba's cache) on first use."""
    global _kernels
    if _kernels is None:
        with paused_garbage_collection():  # the first import of numba and the kernels' module
            from batchshaping.loss.routes import _ranking_kernels

        _kernels = _ranking_kernels
    return _kernels
