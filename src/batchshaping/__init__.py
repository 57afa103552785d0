"""Batch-Shaping and generalized Batch-Shaping losses for PyTorch.

The package is built in layers, each importing only those before it (``docs/architecture.md``):
:mod:`batchshaping.special` (``betainc`` and its kernels), :mod:`batchshaping.distributions`
(the priors), :mod:`batchshaping.loss` (the losses and their routes), what builds on them
(:mod:`batchshaping.gates`, :mod:`batchshaping.compat`), and the edges (plotting, the command
line, experiments).
"""

from importlib.metadata import PackageNotFoundError, version

from batchshaping.compat import Prior, gbas_loss
from batchshaping.distributions import Beta, RelaxedBernoulli, SymmetricBeta
from batchshaping.loss import (
    BatchShapingLoss,
    ECDFMemory,
    GeneralizedBatchShaping,
    GeneralizedBatchShapingTerms,
    batch_shaping_loss,
)
from batchshaping.special import betainc

__all__ = [
    "BatchShapingLoss",
    "Beta",
    "ECDFMemory",
    "GeneralizedBatchShaping",
    "GeneralizedBatchShapingTerms",
    "Prior",
    "RelaxedBernoulli",
    "SymmetricBeta",
    "batch_shaping_loss",
    "betainc",
    "gbas_loss",
]

try:
    __version__ = version("batchshaping")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0.0.0+unknown"
