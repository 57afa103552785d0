"""Kept so that ``from batchshaping.generalized import ...`` works: see :mod:`batchshaping.loss`."""

from batchshaping.loss.generalized import GeneralizedBatchShaping, GeneralizedBatchShapingTerms

__all__ = ["GeneralizedBatchShaping", "GeneralizedBatchShapingTerms"]
