"""The losses: Batch-Shaping (:func:`batch_shaping_loss`, :class:`BatchShapingLoss`) and
generalized Batch-Shaping (:class:`GeneralizedBatchShaping`), and the choice of the loss's route
(:func:`route`, :func:`available_routes`; see :mod:`batchshaping.loss.routes`)."""

from batchshaping.loss._stored_prior import StoredPrior
from batchshaping.loss.batch_shaping import BatchShapingLoss, batch_shaping_loss
from batchshaping.loss.generalized import GeneralizedBatchShaping, GeneralizedBatchShapingTerms
from batchshaping.loss.routes import available_routes, route

__all__ = [
    "BatchShapingLoss",
    "GeneralizedBatchShaping",
    "GeneralizedBatchShapingTerms",
    "StoredPrior",
    "available_routes",
    "batch_shaping_loss",
    "route",
]
