"""The one numba decorator of the package.

Importing this module imports numba; the modules that use it are loaded on first use, so that
``import batchshaping`` does not load numba.

- ``cache=True``: compiled code is kept on disk beside the package and reused by later processes;
- ``nogil=True``: kernels release the GIL and run in parallel on the threads of
  :mod:`batchshaping._runtime.threads` (plain threads cost a fraction of the compile time of
  numba's parallel loops on first use);
- ``error_model="numpy"``: no Python exceptions on division by zero (the kernels guard their
  divisions), so the compiled loops have no exception checks.
"""

from __future__ import annotations

import numba

jit = numba.njit(cache=True, nogil=True, error_model="numpy")
