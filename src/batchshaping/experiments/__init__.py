"""Experiments run from the command line (``batchshaping gates-experiment``)."""
