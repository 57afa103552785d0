"""Special functions with exact derivatives in all their arguments, and the choice of kernel.

``betainc`` is computed by one of several kernels (see :mod:`batchshaping.special.kernels`):
:func:`available_kernels` lists those that can run here, and ``with kernel(name): ...`` picks
one for a block of code (thread-local, nestable); outside such a block the fastest exact kernel
for the device and the input layout is chosen.
"""

from batchshaping.special._portable import log_beta
from batchshaping.special.incomplete_beta import BroadcastError, betainc
from batchshaping.special.kernels import available_kernels, kernel

__all__ = ["BroadcastError", "available_kernels", "betainc", "kernel", "log_beta"]
