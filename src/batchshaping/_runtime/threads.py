"""The one thread pool of the package, shared by every CPU kernel, and safe across ``fork``.

The numba kernels release the GIL, so plain threads run them in parallel. :func:`run_tasks` hands
a list of tasks to at most ``threads`` workers, the calling thread among them, each taking the
next task as soon as it is free: on a busy machine, where some thread loses its core for a
while, the others take over its share instead of waiting for it.

Threads do not survive ``os.fork()``: a child inherits the pool's bookkeeping but none of its
threads, and would wait forever for them. The pool is dropped in the child
(``os.register_at_fork``), which starts a fresh one on its first parallel call.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch

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


def _forget_pool_in_child() -> None:
    global _pool, _pool_size, _lock
    _pool = None
    _pool_size = 0
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)
