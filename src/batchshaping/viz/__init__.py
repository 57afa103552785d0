"""Plots and animations of Batch-Shaping fits.

The pieces the ``batchshaping demo`` command and the example notebooks share, in three layers:
:mod:`~batchshaping.viz.curves` (a prior's CDF and density, as arrays and drawn on given axes),
:mod:`~batchshaping.viz.figures` (the figure of a recorded fit, able to draw any frame) and
:mod:`~batchshaping.viz.animation` (frames blitted and encoded as a GIF, or the last as a PNG).

matplotlib and Pillow are imported only when a function here is called, so importing
``batchshaping.viz`` costs nothing and the core package never needs them.
"""

from batchshaping.viz.animation import frame_steps, record_fit, record_generalized_fit
from batchshaping.viz.curves import (
    plot_prior_cdf,
    plot_prior_density,
    prior_cdf_curve,
    prior_density_curve,
)
from batchshaping.viz.style import DATA_COLOR, POINTS_COLOR, STYLE, TARGET_COLOR

__all__ = [
    "DATA_COLOR",
    "POINTS_COLOR",
    "STYLE",
    "TARGET_COLOR",
    "frame_steps",
    "plot_prior_cdf",
    "plot_prior_density",
    "prior_cdf_curve",
    "prior_density_curve",
    "record_fit",
    "record_generalized_fit",
]
