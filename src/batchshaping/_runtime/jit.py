"""The one numba decorator of the package, and a cache that notices every kernel source.

Importing this module imports numba; the modules that use it are loaded on first use, so that
``import batchshaping`` does not load numba.

- ``cache=True``: compiled code is kept on disk (beside the package, or in ``NUMBA_CACHE_DIR``)
  and reused by later processes;
- ``nogil=True``: kernels release the GIL and run in parallel on the threads of
  :mod:`batchshaping._runtime.threads` (plain threads cost a fraction of the compile time of
  numba's parallel loops on first use);
- ``error_model="numpy"``: no Python exceptions on division by zero (the kernels guard their
  divisions), so the compiled loops have no exception checks.

numba keys a cached function on its own source file only. A kernel compiled together with the
helpers it calls in other files (``special/_scalar.py`` for every betainc kernel) would then be
loaded stale after a change to a helper alone: wrong numbers from an upgraded package. The cache
of this package's functions is keyed on the contents of every source file of the package's
kernels instead (:func:`kernel_sources_stamp`).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numba
from numba.core import caching

_PACKAGE = Path(__file__).resolve().parent.parent


def kernel_sources() -> list[Path]:
    """The source files whose code numba compiles into the package's kernels."""
    return sorted(
        [
            *(_PACKAGE / "special").glob("*.py"),
            *(_PACKAGE / "loss" / "routes").glob("*.py"),
            *(_PACKAGE / "_runtime").glob("*.py"),
        ]
    )


@functools.cache
def kernel_sources_stamp() -> str:
    """A hash of the contents of every kernel source file (computed once per process)."""
    digest = hashlib.sha256()
    for path in kernel_sources():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class _PackageSourcesStamp:
    """A locator of numba's cache for the package's own functions, stamped with every kernel
    source file rather than the function's own file alone."""

    def get_source_stamp(self):
        return ("batchshaping", kernel_sources_stamp())

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            Path(py_file).resolve().relative_to(_PACKAGE)
        except ValueError:
            return None  # another library's function: numba's own locators
        return super().from_function(py_func, py_file)


class _UserProvidedLocator(_PackageSourcesStamp, caching.UserProvidedCacheLocator):
    pass


class _InTreeLocator(_PackageSourcesStamp, caching.InTreeCacheLocator):
    pass


_locators = caching.CompileResultCacheImpl._locator_classes
if _UserProvidedLocator not in _locators:
    _locators[:0] = [_UserProvidedLocator, _InTreeLocator]

jit = numba.njit(cache=True, nogil=True, error_model="numpy")
