"""Python's cyclic garbage collector paused around the package's numba work (no numba here).

numba's compiler, and the import of numba itself, make millions of short-lived objects; the
collections they set off each walk every object of the process, torch's among them. They were a
sixth of a first loss with an empty cache. :func:`paused_garbage_collection` is wrapped around
every compile (or load from the cache) of the package's numba functions
(:mod:`batchshaping._runtime.jit`) and around the first import of the modules that compile them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator

__all__ = ["paused_garbage_collection"]

_gc_lock = threading.Lock()
_gc_pauses = 0  # compiles under way, in all threads
_gc_was_enabled = False


@contextlib.contextmanager
def paused_garbage_collection() -> Iterator[None]:
    """Python's cyclic garbage collector off inside the block (in every thread, as ``gc.disable``
    is), back as it was when the last such block of any thread ends.

    Wrapped around every compile (or load from the cache) of the package's numba functions, a
    few seconds at most, once per process and kind of call, and around the first import of the
    modules that compile them (numba's import and theirs: 0.18 s with collections, 0.10 s
    without). The compiler's objects are nearly all freed by reference counting as it goes; the
    cycles among them wait for the first collection after the block (the peak resident memory of
    a first learned-Beta loss grew by about 36 MB). Python threads that run meanwhile see no
    collections either. A forked child whose parent was inside such a block gets the collector
    back as it was before (:func:`_restore_garbage_collection_in_child`).

    A first learned-Beta loss with an empty cache (4096 x 8, ``dim=0``), in-process, ad hoc, AMD
    EPYC, 2026-12-04: 674 collections, 0.71 to 0.77 s, the loss 4.5 to 4.7 s; with the pause 75,
    0.22 to 0.29 s (0.2 s of it the first collection after the pause), the loss 3.8 to 3.9 s.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _restore_garbage_collection_in_child() -> None:
    """In a child forked while a compile was under way: no compile goes on there (its thread
    is not in the child), so the collector is put back as it was before."""
    global _gc_lock, _gc_pauses
    _gc_lock = threading.Lock()
    if _gc_pauses and _gc_was_enabled:
        gc.enable()
    _gc_pauses = 0


os.register_at_fork(after_in_child=_restore_garbage_collection_in_child)
