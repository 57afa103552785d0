"""The kernels of :func:`batchshaping.betainc` and the choice among them.

Every kernel has one entry point with one signature,

    kernel(a, b, x, want_grad_ab: bool, want_grad_x: bool) -> (value, grad_a, grad_b, grad_x)

with ``a``, ``b``, ``x`` tensors of one dtype (float32 or float64) on one device that broadcast
together (never expanded by the caller: a kernel reads broadcast inputs in place), and outputs of
the broadcast shape in that dtype; the gradients not asked for are returned as empty tensors.
Each lives in its own module, imported on first use, and is registered here:

========================  ==========================================================  =========
name                      what                                                        devices
========================  ==========================================================  =========
``"cpu"``                 numba: runs of shared (a, b) in SIMD lanes, else per element  cpu
``"cpu-elementwise"``     numba: each element on its own, with its own stopping point   cpu
``"cpu-shared"``          numba: SIMD lanes wherever (a, b) repeat at all               cpu
``"portable"``            plain torch operations, fixed term counts, no host sync       any
``"triton"``              Triton: one launch, each element with its own stopping point  cuda
========================  ==========================================================  =========

``"triton"`` is available where triton is installed and CUDA is (and, with the environment
variable ``TRITON_INTERPRET=1`` set before batchshaping is imported, on CPU tensors under
Triton's interpreter, which runs the same kernel code; slowly, for tests).

Outside any :func:`kernel` block the choice is automatic: ``"cpu"`` for CPU tensors,
``"triton"`` for CUDA tensors where it is available, ``"portable"`` elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from batchshaping._runtime.choice import Choice
from batchshaping._runtime.collector import paused_garbage_collection
from batchshaping.special._tiny_parameters import exact_at_tiny_parameters

__all__ = ["available_kernels", "kernel"]

KernelFunction = Callable[
    [Tensor, Tensor, Tensor, bool, bool], tuple[Tensor, Tensor, Tensor, Tensor]
]


class KernelEntry(NamedTuple):
    """A registered kernel: where its entry point lives and where it runs."""

    name: str
    module: str  # imported on first use
    function: str
    devices: tuple[str, ...] | None  # device types it runs on; None for every device
    # Whether the kernel itself is exact at tiny parameters; if not, the registry wraps it in
    # :func:`batchshaping.special._tiny_parameters.exact_at_tiny_parameters`.
    exact_at_tiny_parameters: bool


_CHOICE = Choice("kernel")
_ENTRIES: dict[str, KernelEntry] = {}


def register(
    name: str,
    module: str,
    function: str = "betainc",
    *,
    devices: tuple[str, ...] | None,
    available: Callable[[], bool] = lambda: True,
    exact_at_tiny_parameters: bool = False,
) -> None:
    """Register kernel ``name``: ``module.function``, for ``devices`` (device types).

    ``exact_at_tiny_parameters``: the kernel handles subnormal parameters, and both below
    2^-100, itself (as :mod:`batchshaping.special._tiny_parameters` says); else the registry
    wraps its entry point in that module's treatment, which needs only the kernel's results at
    normal parameters."""
    _CHOICE.add(name, available)
    _ENTRIES[name] = KernelEntry(name, module, function, devices, exact_at_tiny_parameters)


@contextlib.contextmanager
def kernel(name: str) -> Iterator[None]:
    """Compute :func:`batchshaping.betainc` with kernel ``name`` inside the block.

    Thread-local and nestable (the innermost block wins). Calls on a device the kernel does not
    run on raise a ``ValueError`` naming both.

    Raises:
        ValueError: an unknown name, or a kernel that cannot run in this process (see
            :func:`available_kernels`).

    Example:
        >>> import torch
        >>> from batchshaping import betainc
        >>> from batchshaping.special import kernel
        >>> with kernel("portable"):
        ...     betainc(2.0, 6.0, torch.tensor([0.1, 0.25]))
        tensor([0.1497, 0.5551])
    """
    with _CHOICE.use(name):
        yield


def available_kernels() -> tuple[str, ...]:
    """The names of the kernels that can run in this process.

    Example:
        >>> from batchshaping.special import available_kernels
        >>> "portable" in available_kernels()
        True
    """
    return _CHOICE.available()


def chosen_kernel() -> str | None:
    """The kernel this thread asked for with :func:`kernel`, or ``None`` (automatic)."""
    return _CHOICE.current()


def resolve(device_type: str) -> KernelFunction:
    """The entry point that computes ``betainc`` for tensors on ``device_type`` now."""
    name = _CHOICE.current()
    if name is None:
        name = _AUTOMATIC.get(device_type, "portable")
        if name not in available_kernels():
            name = "portable"
    entry = _ENTRIES[name]
    if entry.devices is not None and device_type not in entry.devices:
        raise ValueError(
            f"betainc: kernel {name!r} runs on {', '.join(entry.devices)} tensors, not "
            f"{device_type}"
        )
    return _load(name)


@functools.cache
def _load(name: str) -> KernelFunction:
    entry = _ENTRIES[name]
    with paused_garbage_collection():  # the first import of numba and the kernel's module
        function = getattr(importlib.import_module(entry.module), entry.function)
    if entry.exact_at_tiny_parameters:
        return function
    return exact_at_tiny_parameters(function)


def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


# Triton's interpreter runs kernels on CPU tensors; triton reads the variable when the kernel is
# decorated, that is when its module is first imported, after this one.
_TRITON_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@functools.cache
def _triton_runs_here() -> bool:
    if importlib.util.find_spec("triton") is None:
        return False
    return _TRITON_INTERPRETED or torch.cuda.is_available()


# The automatic choice for each device type, where that kernel is available.
_AUTOMATIC = {"cpu": "cpu", "cuda": "triton"}


register(
    "cpu",
    "batchshaping.special._cpu_shared",
    "betainc_automatic",
    devices=("cpu",),
    available=_numba_installed,
)
register(
    "cpu-elementwise",
    "batchshaping.special._cpu_elementwise",
    devices=("cpu",),
    available=_numba_installed,
)
register(
    "cpu-shared", "batchshaping.special._cpu_shared", devices=("cpu",), available=_numba_installed
)
register("portable", "batchshaping.special._portable", devices=None)
register(
    "triton",
    "batchshaping.special._triton",
    devices=("cuda", "cpu") if _TRITON_INTERPRETED else ("cuda",),
    available=_triton_runs_here,
    exact_at_tiny_parameters=True,
)
