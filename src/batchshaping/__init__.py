"""Batch-Shaping and generalized Batch-Shaping losses for PyTorch."""

from batchshaping.special import betainc

__all__ = ["betainc"]
__version__ = "0.1.0"
