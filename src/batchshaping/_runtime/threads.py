"""The one thread pool of the package, shared by every CPU kernel, and safe across ``fork``.

The numba kernels release the GIL, so plain threads run them in parallel. :func:`run_tasks` hands
a list of tasks to at most ``threads`` workers, the calling thread among them, each taking the
next task as soon as it is free: on a busy machine, where some thread loses its core for a
while, the others take over its share instead of waiting for it.

Threads do not survive ``os.fork()``: a child inherits the pool's bookkeeping but none of its
threads, and would wait forever for them. The pool is dropped in the child
(``os.register_at_fork``), which starts a fresh one on its first parallel call.

Kernels with a C entry point (:func:`run_copies`) run on torch's own OpenMP threads instead,
where torch uses GNU OpenMP (``GOMP_parallel``, which LLVM's and Intel's runtimes also export):
after each of its parallel regions, GNU OpenMP keeps its threads spinning for a while (its
default wait policy), and a second pool's threads, woken on the same cores meanwhile, wait for
them: in a loop of torch operations and betainc calls on two cores, the package's pool did half
its share of the work or less. torch's threads, already spinning, take the work at once. A
forked child does not use them (GNU OpenMP's threads do not survive fork either): it runs on
its own fresh pool.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from batchshaping._runtime.choice import Choice

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


_override = threading.local()


def default_threads() -> int:
    """Threads a kernel may use: torch's intra-op thread count (``torch.set_num_threads``), so
    that ``torch.set_num_threads(1)`` pins the package to one core too; or :func:`limit`'s."""
    chosen = getattr(_override, "threads", None)
    return max(1, torch.get_num_threads() if chosen is None else chosen)


@contextlib.contextmanager
def limit(threads: int) -> Iterator[None]:
    """Use ``threads`` threads in this thread's calls inside the block, whatever torch's count.

    The package follows ``torch.set_num_threads``; this sets its own count apart from torch's
    (a forked child may need torch on one thread while the package uses several).
    """
    if not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    saved = getattr(_override, "threads", None)
    _override.threads = threads
    try:
        yield
    finally:
        _override.threads = saved


def _submit(function: Callable[[], None], copies: int) -> list[Future]:
    """``copies`` calls of ``function`` on the pool, grown to at least that many threads."""
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < copies:
            # The old pool's threads finish what they were given and exit.
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=copies, thread_name_prefix="batchshaping")
            _pool_size = copies
        return [_pool.submit(function) for _ in range(copies)]


def run_tasks(tasks: Sequence[Callable[[], None]], threads: int | None = None) -> None:
    """Run every task, on at most ``threads`` threads (default :func:`default_threads`).

    The calling thread works too; tasks are taken in order by whichever thread is free. The
    first exception raised by a task is raised here, after every started task has finished.
    """
    threads = default_threads() if threads is None else threads
    helpers = min(threads, len(tasks)) - 1
    if helpers <= 0:
        for task in tasks:
            task()
        return
    pending = iter(tasks)
    take = threading.Lock()

    def drain() -> None:
        while True:
            with take:
                task = next(pending, None)
            if task is None:
                return
            task()

    futures = _submit(drain, helpers)
    try:
        drain()
    finally:
        errors = [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error


def run_ranges(
    work: Callable[[int, int], None], total: int, pieces: int, threads: int | None = None
) -> None:
    """Run ``work(start, stop)`` over ``pieces`` contiguous ranges covering ``range(total)``."""
    pieces = max(1, min(pieces, total))
    bounds = [total * k // pieces for k in range(pieces + 1)]
    tasks = [
        (lambda lo=lo, hi=hi: work(lo, hi)) for lo, hi in itertools.pairwise(bounds) if hi > lo
    ]
    run_tasks(tasks, threads)


# A C function taking one pointer, as the C entry points of the kernels are.
_C_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_forked = False
# The OpenMP runtimes that export GOMP_parallel: GNU's, LLVM's, Intel's.
_OPENMP_LIBRARY = re.compile(r"\s(/\S*/lib(?:gomp|omp|iomp5)[^/\s]*\.so[^/\s]*)$", re.MULTILINE)


@functools.cache
def _openmp_parallel():
    """``GOMP_parallel`` of the OpenMP runtime torch has loaded, or None (no such runtime: the
    package's pool serves). Found among the process's mapped libraries (Linux), the one in
    torch's own directory first where another library has brought a second runtime."""
    try:
        with open("/proc/self/maps") as maps:
            paths = set(_OPENMP_LIBRARY.findall(maps.read()))
    except OSError:
        return None
    torch_directory = os.path.dirname(torch.__file__) + os.sep
    for path in sorted(paths, key=lambda path: (not path.startswith(torch_directory), path)):
        try:
            function = ctypes.CDLL(path).GOMP_parallel
        except (OSError, AttributeError):
            continue
        function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        function.restype = None
        return function
    return None


# Where :func:`run_copies` runs its copies: automatically torch's OpenMP threads where there are
# any (``"openmp"``), else the package's pool (``"pool"``); ``with team.use("pool"): ...``
# chooses in one thread.
team = Choice("team")
team.add("openmp", lambda: not _forked and _openmp_parallel() is not None)
team.add("pool")


def run_copies(entry: int, argument: int, threads: int) -> None:
    """Call the C function at address ``entry`` with ``argument``, once on each of ``threads``
    threads at the same time (the calling thread among them); return when all have returned.

    The copies share out the work themselves (the kernels' entry points take pieces from a
    counter in their argument). They run on the threads :data:`team` chooses. The GIL is
    released meanwhile; the function must not touch Python objects.
    """
    function = _C_ENTRY(entry)
    if threads <= 1:
        function(argument)
        return
    chosen = team.current()
    if chosen is None:
        chosen = "openmp" if team.available()[0] == "openmp" else "pool"
    if chosen == "openmp":
        _openmp_parallel()(entry, argument, threads, 0)
        return
    run_tasks([lambda: function(argument)] * threads, threads)


def _forget_pool_in_child() -> None:
    global _pool, _pool_size, _lock, _forked
    _pool = None
    _pool_size = 0
    _lock = threading.Lock()
    _forked = True


os.register_at_fork(after_in_child=_forget_pool_in_child)
