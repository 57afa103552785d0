"""Special functions with exact derivatives in all their arguments."""

from batchshaping.special.incomplete_beta import BroadcastError, betainc

__all__ = ["BroadcastError", "betainc"]
