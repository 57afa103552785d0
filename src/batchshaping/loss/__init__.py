"""The losses: Batch-Shaping (:func:`batch_shaping_loss`, :class:`BatchShapingLoss`) and
generalized Batch-Shaping (:class:`GeneralizedBatchShaping`), the memory of past batches
(:class:`ECDFMemory`), and the choice of the loss's route (:func:`route`, :func:`available_routes`;
see :mod:`batchshaping.loss.routes`). ``sync=True`` gathers the global batch across
``torch.distributed`` ranks (:mod:`batchshaping.loss.global_batch`)."""

from batchshaping.loss._stored_prior import StoredPrior
from batchshaping.loss.batch_shaping import BatchShapingLoss, batch_shaping_loss
from batchshaping.loss.generalized import GeneralizedBatchShaping, GeneralizedBatchShapingTerms
from batchshaping.loss.memory import ECDFMemory
from batchshaping.loss.routes import available_routes, route
from batchshaping.loss.routes.ranking import (
    release_workspace,
    set_workspace_limit,
    workspace_bytes,
)

__all__ = [
    "BatchShapingLoss",
    "ECDFMemory",
    "GeneralizedBatchShaping",
    "GeneralizedBatchShapingTerms",
    "StoredPrior",
    "available_routes",
    "batch_shaping_loss",
    "release_workspace",
    "route",
    "set_workspace_limit",
    "workspace_bytes",
]
