"""The look of the figures: colours, the panel style, figures bound to the Agg canvas."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TARGET_COLOR = "orange"
POINTS_COLOR = "orchid"
DATA_COLOR = "xkcd:turquoise"

# A light grey panel with a white grid, as the original's seaborn "darkgrid" style, without seaborn.
STYLE: dict[str, Any] = {
    "axes.facecolor": "#EAEAF2",
    "axes.edgecolor": "white",
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "white",
    "grid.linewidth": 1.0,
    "xtick.bottom": False,
    "ytick.left": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 11,
}

PANEL_MARGIN = 0.08  # data axes extend this far beyond [0, 1]
HISTOGRAM_BINS = 20


def style() -> AbstractContextManager[Any]:
    """matplotlib's settings for the figures of this package, for a ``with`` block."""
    import matplotlib

    return matplotlib.rc_context(STYLE)


def new_figure(width: float, height: float, dpi: float) -> Figure:
    """A figure bound to the Agg canvas, independent of pyplot and of the session's backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig
