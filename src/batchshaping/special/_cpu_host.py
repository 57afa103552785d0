"""The host side of the CPU kernels: read broadcast inputs in place, allocate, split over threads.

Both CPU kernels take numpy views of a, b and x with a *layout*: input ``k`` of element ``i`` of
the broadcast is read at ``(i // layout[k, 0]) % layout[k, 1]``. That covers full, scalar and
block-broadcast inputs (per-group parameters of shape ``(G, 1)`` against ``(G, N)`` values)
without materialising them at the full shape.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from batchshaping._runtime.shapes import broadcast_shapes
from batchshaping._runtime.threads import default_threads, run_ranges

# Stop when a term changes the sum by less than this fraction; above float64's unit roundoff so
# the test can be met, and small enough to leave the result exact to the last bit or two.
TOL64 = 3e-16
# float32 results need less: stop once terms are far below float32's resolution (6e-8), so that
# the float64 result rounds to the float32 nearest the exact value (but within 1e-10 of a
# midpoint between two float32 numbers).
TOL32 = 1e-10
# Below this many elements per thread, fewer threads do the work.
_MIN_PER_THREAD = 16_384


class HostCall(NamedTuple):
    """One call's inputs as numpy arrays with their layout, and its outputs.

    ``outputs`` are the torch tensors returned (value, dI/da, dI/db, dI/dx; the gradients not
    asked for are empty), ``out_arrays`` flat numpy views of them, ``options`` the kernels'
    ``(want_grad_ab, want_grad_x, tol, tiny, huge)``.
    """

    numel: int
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray]
    layout: np.ndarray
    outputs: tuple[Tensor, Tensor, Tensor, Tensor]
    out_arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    options: tuple[bool, bool, float, float, float]


def flat_layout(t: Tensor, shape: tuple[int, ...]) -> tuple[Tensor, tuple[int, int]]:
    """A 1-D view of ``t`` and its (divisor, modulus) read pattern within ``shape``.

    ``t`` broadcasts to ``shape``; where its own dimensions of full size are not one contiguous
    block (say a (G, 1, M) tensor against (G, N, M)), it is expanded and copied.
    """
    numel = math.prod(shape)
    if t.numel() == 1:
        return t.reshape(1), (1, 1)
    padded = (1,) * (len(shape) - t.dim()) + tuple(t.shape)
    pairs = enumerate(zip(padded, shape, strict=True))
    real = [d for d, (own, full) in pairs if own == full and full != 1]
    if real and real == list(range(real[0], real[-1] + 1)):
        inner = math.prod(shape[real[-1] + 1 :])
        block = math.prod(shape[real[0] : real[-1] + 1])
        return t.contiguous().view(-1), (inner, block)
    return torch.broadcast_to(t, shape).contiguous().view(-1), (1, numel)


def prepare(a: Tensor, b: Tensor, x: Tensor, want_grad_ab: bool, want_grad_x: bool) -> HostCall:
    """The arrays, layout and outputs of one call; a, b, x share a dtype (float32 or float64)."""
    shape = tuple(broadcast_shapes(a.shape, b.shape, x.shape))
    dtype = x.dtype
    arrays, layout = [], np.empty((3, 2), dtype=np.int64)
    for k, t in enumerate((a, b, x)):
        flat, layout[k] = flat_layout(t.detach(), shape)
        arrays.append(flat.numpy())

    def new(wanted: bool) -> Tensor:
        return torch.empty(shape if wanted else (0,), dtype=dtype)

    outputs = (new(True), new(want_grad_ab), new(want_grad_ab), new(want_grad_x))
    finfo = torch.finfo(dtype)
    tol = TOL64 if dtype == torch.float64 else TOL32
    return HostCall(
        numel=math.prod(shape),
        arrays=tuple(arrays),
        layout=layout,
        outputs=outputs,
        out_arrays=tuple(t.view(-1).numpy() for t in outputs),
        options=(want_grad_ab, want_grad_x, tol, finfo.tiny, finfo.max),
    )


def collapse_constant_parameters(call: HostCall) -> HostCall:
    """``call`` with each parameter that is laid out in full but equal everywhere read as one
    value: parameter arrays of the full size that repeat one (a, b) (a prior's parameters
    expanded to the batch) then take the kernel for shared parameters, like a broadcast pair."""
    arrays, layout = list(call.arrays), call.layout
    for k in (0, 1):
        parameter = arrays[k]
        if tuple(layout[k]) != (1, 1) and parameter.size > 1 and (parameter == parameter[0]).all():
            if layout is call.layout:
                layout = layout.copy()
            arrays[k], layout[k] = parameter[:1], (1, 1)
    if layout is call.layout:
        return call
    return call._replace(arrays=tuple(arrays), layout=layout)


def threads_for(numel: int) -> int:
    """Threads for ``numel`` elements: at most the package's count, at least _MIN_PER_THREAD
    elements each."""
    return max(1, min(default_threads(), numel // _MIN_PER_THREAD))


def run_in_threads(kernel, kernel_args: tuple, numel: int, workspace=None) -> None:
    """Run ``kernel(*kernel_args, start, stop)`` over ``range(numel)`` on the package's threads.

    More pieces than threads: elements differ in cost, and a thread that is slowed down (a busy
    machine) leaves its remaining pieces to the others. ``workspace``: a function that returns
    the scratch arrays of one piece, passed before ``start`` (every piece gets its own); they
    are allocated here rather than in the kernel, where numba's ``np.empty`` and ``np.zeros``
    add to the compile time of a first call.
    """

    def piece(lo: int, hi: int) -> None:
        if workspace is None:
            kernel(*kernel_args, lo, hi)
        else:
            kernel(*kernel_args, workspace(), lo, hi)

    threads = threads_for(numel)
    if threads == 1:
        piece(0, numel)
        return
    run_ranges(piece, numel, 4 * threads, threads)


def shared_run_length(call: HostCall, min_run: int) -> int:
    """The length of the runs of elements that share (a, b), or 0 if shorter than ``min_run``.

    Parameters are read at ``(i // inner) % block``: constant along runs of ``inner`` elements
    (all of them for a single value). Also 0 where x is not laid out in full, or where some
    parameter is not a positive finite number (the per-element kernel handles those cases).
    """
    numel, layout = call.numel, call.layout
    if tuple(layout[2]) != (1, numel):
        return 0
    run = numel
    for k in (0, 1):
        inner, block = layout[k]
        if block > 1:
            run = math.gcd(run, int(inner))
    if run < min_run:
        return 0
    for parameter in call.arrays[:2]:
        if not np.all((parameter > 0) & (parameter < math.inf)):
            return 0
    return run
