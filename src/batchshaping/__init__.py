"""Batch-Shaping and generalized Batch-Shaping losses for PyTorch."""

from batchshaping.compat import Prior, gbas_loss
from batchshaping.distributions import Beta, RelaxedBernoulli, SymmetricBeta
from batchshaping.generalized import GeneralizedBatchShaping, GeneralizedBatchShapingTerms
from batchshaping.loss import BatchShapingLoss, batch_shaping_loss
from batchshaping.special import betainc

__all__ = [
    "BatchShapingLoss",
    "Beta",
    "GeneralizedBatchShaping",
    "GeneralizedBatchShapingTerms",
    "Prior",
    "RelaxedBernoulli",
    "SymmetricBeta",
    "batch_shaping_loss",
    "betainc",
    "gbas_loss",
]
__version__ = "0.1.0"
