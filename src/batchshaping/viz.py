"""Plots and animations of Batch-Shaping fits.

The pieces the ``batchshaping demo`` command and the example notebooks share: a prior's CDF and
density drawn on given axes, and a recorded fit written as a GIF (or its last frame as a PNG).

matplotlib and Pillow are imported only when a function here is called, so importing
``batchshaping.viz`` costs nothing and the core package never needs them.

Recording is fast because every frame is drawn once and only what changes is drawn: the figure
is laid out and rendered a single time with the moving artists hidden, and each frame restores
that background and draws the moving artists (points, CDF, loss curve, histogram bars, whose
heights come from fixed bins) on top. The frames are quantised to one palette shared by the whole
GIF, so that Pillow stores each frame as the rectangle that changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch
from torch.distributions import Distribution

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.text import Text
    from PIL import Image

__all__ = [
    "frame_steps",
    "plot_prior_cdf",
    "plot_prior_density",
    "prior_cdf_curve",
    "prior_density_curve",
    "record_fit",
    "record_generalized_fit",
]

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

OutputTarget = str | os.PathLike[str] | IO[bytes]
FrameCallback = Callable[[int], None]

_PANEL_MARGIN = 0.08  # data axes extend this far beyond [0, 1]
_HISTOGRAM_BINS = 20


def frame_steps(steps: int, every: int = 1) -> list[int]:
    """The steps drawn when a fit of ``steps`` steps is recorded every ``every`` steps.

    Every ``every``-th step from the first, and always the last.

    Example:
        >>> frame_steps(7, every=3)
        [0, 3, 6]
        >>> frame_steps(8, every=3)
        [0, 3, 6, 7]
    """
    if steps < 1 or every < 1:
        raise ValueError(f"steps and every must be >= 1, got {steps} and {every}")
    chosen = list(range(0, steps, every))
    if chosen[-1] != steps - 1:
        chosen.append(steps - 1)
    return chosen


def prior_cdf_curve(prior: Distribution, num_points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """The CDF of ``prior`` on an even grid of [0, 1], as NumPy arrays.

    Where the prior's support starts at 0 or ends at 1 (Beta, relaxed Bernoulli), the end points
    get their exact values 0 and 1 rather than a clipped evaluation, so that a CDF that jumps at
    an end (a relaxed Bernoulli at low temperature) is drawn touching it.

    Args:
        prior: a distribution with a ``cdf``; batch shape ``()`` or ``(G,)`` for ``G`` curves.
        num_points: number of grid points, ends included.

    Returns:
        ``(x, y)`` with ``x`` of shape ``(num_points,)`` and ``y`` of shape ``(num_points,)``
        or ``(num_points, G)``.

    Example:
        >>> from torch.distributions import Normal
        >>> x, y = prior_cdf_curve(Normal(0.5, 0.1), num_points=3)
        >>> [round(float(v), 3) for v in y]
        [0.0, 0.5, 1.0]
    """
    x = np.linspace(0.0, 1.0, num_points)
    inner = np.clip(x, 1e-6, 1 - 1e-6)
    y = _evaluate(prior, inner, lambda d, v: d.cdf(v))
    if getattr(prior.support, "lower_bound", None) == 0:
        y[0] = 0.0
    if getattr(prior.support, "upper_bound", None) == 1:
        y[-1] = 1.0
    return x, y


def prior_density_curve(
    prior: Distribution, num_points: int = 200, edge: float = 0.005
) -> tuple[np.ndarray, np.ndarray]:
    """The density of ``prior`` on an even grid of [edge, 1 - edge], as NumPy arrays.

    The ends are left out because densities such as Beta(0.9, 0.1) are infinite there.

    Args:
        prior: a distribution with a ``log_prob``; batch shape ``()`` or ``(G,)``.
        num_points: number of grid points.
        edge: distance of the first and last grid points from 0 and 1.

    Returns:
        ``(x, y)`` with ``x`` of shape ``(num_points,)`` and ``y`` of shape ``(num_points,)``
        or ``(num_points, G)``.

    Example:
        >>> from torch.distributions import Normal
        >>> x, y = prior_density_curve(Normal(0.5, 0.1), num_points=3, edge=0.0)
        >>> round(float(y[1]), 3)
        3.989
    """
    x = np.linspace(edge, 1.0 - edge, num_points)
    return x, _evaluate(prior, x, lambda d, v: d.log_prob(v).exp())


def plot_prior_cdf(
    ax: Axes, prior: Distribution, *, num_points: int = 200, **line_kwargs: Any
) -> Line2D:
    """Draw the CDF of ``prior`` over [0, 1] on ``ax``.

    Args:
        ax: matplotlib axes to draw on.
        prior: a distribution with a ``cdf`` and batch shape ``()``.
        num_points: number of grid points.
        **line_kwargs: passed to ``ax.plot``; defaults are a thick orange line labelled
            "CDF (target)".

    Returns:
        The line drawn.

    Example:
        >>> import matplotlib.figure
        >>> from torch.distributions import Normal
        >>> ax = matplotlib.figure.Figure().subplots()
        >>> line = plot_prior_cdf(ax, Normal(0.6, 0.1))
        >>> line.get_label()
        'CDF (target)'
    """
    x, y = prior_cdf_curve(prior, num_points)
    style = {"linewidth": 2.5, "color": TARGET_COLOR, "label": "CDF (target)", **line_kwargs}
    (line,) = ax.plot(x, y, **style)
    return line


def plot_prior_density(
    ax: Axes,
    prior: Distribution,
    *,
    num_points: int = 200,
    edge: float = 0.005,
    **line_kwargs: Any,
) -> Line2D:
    """Draw the density of ``prior`` over [edge, 1 - edge] on ``ax``.

    Args:
        ax: matplotlib axes to draw on.
        prior: a distribution with a ``log_prob`` and batch shape ``()``.
        num_points: number of grid points.
        edge: distance of the first and last grid points from 0 and 1.
        **line_kwargs: passed to ``ax.plot``; defaults are a thick orange line labelled
            "PDF (target)".

    Returns:
        The line drawn.

    Example:
        >>> import matplotlib.figure
        >>> from torch.distributions import Normal
        >>> ax = matplotlib.figure.Figure().subplots()
        >>> plot_prior_density(ax, Normal(0.6, 0.1)).get_label()
        'PDF (target)'
    """
    x, y = prior_density_curve(prior, num_points, edge)
    style = {"linewidth": 2.5, "color": TARGET_COLOR, "label": "PDF (target)", **line_kwargs}
    (line,) = ax.plot(x, y, **style)
    return line


def record_fit(
    prior: Distribution,
    values: np.ndarray,
    losses: Sequence[float] | np.ndarray,
    out: OutputTarget,
    *,
    fps: float = 10.0,
    dpi: float = 100.0,
    every: int = 1,
    format: str | None = None,
    last_frame_only: bool = False,
    title: str | None = None,
    on_frame: FrameCallback | None = None,
) -> int:
    """Write the animation of points fitted to ``prior``, one frame per training step.

    The layout is the original notebook's, 7 x 8.5 inches: the points (each at a fixed random
    height) with their empirical CDF against the target CDF on top, the loss curve bottom left,
    the histogram of the points against the target density bottom right.

    Args:
        prior: the target, a distribution with ``cdf`` and ``log_prob`` and batch shape ``()``.
        values: ``(steps, N)`` array of the points in [0, 1] at every step.
        losses: ``(steps,)`` losses at every step.
        out: a path, or a binary file object (then give ``format``).
        fps: frames per second of the GIF.
        dpi: pixels per inch; 100 gives 700 x 850 pixels.
        every: draw every ``every``-th step and the last (see :func:`frame_steps`); the loss
            curve keeps every step.
        format: ``"gif"`` or ``"png"``; by default taken from the suffix of ``out``.
        last_frame_only: write only the last frame (the default for PNG).
        title: optional figure title.
        on_frame: called with the frame index (0, 1, ...) after each frame is drawn.

    Returns:
        The number of frames written.

    Example:
        >>> import io
        >>> from torch.distributions import Normal
        >>> values = np.random.default_rng(0).uniform(size=(3, 50))
        >>> record_fit(Normal(0.5, 0.1), values, [0.3, 0.2, 0.1], io.BytesIO(), format="gif")
        3
    """
    values = np.asarray(values, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if values.ndim != 2 or losses.shape != values.shape[:1]:
        raise ValueError(
            f"values must be (steps, N) and losses (steps,), got {values.shape} and {losses.shape}"
        )
    format = _output_format(out, format, fps, every)
    with _style():
        frames = _FitFrames(prior, values, losses, dpi=dpi, title=title)
        return _write(frames, out, format, fps, every, last_frame_only, on_frame)


def record_generalized_fit(
    hyperprior: Distribution,
    values: np.ndarray,
    probs: np.ndarray,
    temperatures: np.ndarray,
    group_losses: Sequence[float] | np.ndarray,
    hyperprior_losses: Sequence[float] | np.ndarray,
    out: OutputTarget,
    *,
    fps: float = 25.0,
    dpi: float = 60.0,
    every: int = 1,
    format: str | None = None,
    last_frame_only: bool = False,
    on_frame: FrameCallback | None = None,
) -> int:
    """Write the animation of a generalized Batch-Shaping fit with relaxed Bernoulli groups.

    The layout is the original notebook's, 15 x 8 inches: up to six groups on the left, each
    with its points, their empirical CDF and the CDF of its learned relaxed Bernoulli prior,
    captioned with the learned probability and temperature; on the right the group loss, the
    hyperprior loss and the histogram of the learned probabilities against the hyperprior density.

    Args:
        hyperprior: the distribution of the learned probabilities, with ``log_prob``.
        values: ``(steps, N, S)`` points in [0, 1] of the ``S <= 6`` groups shown.
        probs: ``(steps, G)`` learned probabilities of all groups (the first ``S`` are shown).
        temperatures: ``(steps, G)`` learned temperatures.
        group_losses: ``(steps,)`` the Batch-Shaping term of the groups.
        hyperprior_losses: ``(steps,)`` the hyperprior term.
        out: a path, or a binary file object (then give ``format``).
        fps: frames per second of the GIF.
        dpi: pixels per inch; 60 gives 900 x 480 pixels.
        every: draw every ``every``-th step and the last (see :func:`frame_steps`); the loss
            curves keep every step.
        format: ``"gif"`` or ``"png"``; by default taken from the suffix of ``out``.
        last_frame_only: write only the last frame (the default for PNG).
        on_frame: called with the frame index (0, 1, ...) after each frame is drawn.

    Returns:
        The number of frames written.

    Example:
        >>> import io
        >>> from batchshaping.distributions import Beta
        >>> rng = np.random.default_rng(0)
        >>> probs, temperatures = rng.uniform(0.1, 0.9, size=(2, 4, 10))
        >>> record_generalized_fit(
        ...     Beta(3.0, 7.0),
        ...     rng.uniform(size=(4, 50, 6)),
        ...     probs,
        ...     temperatures,
        ...     [0.2, 0.1, 0.05, 0.02],
        ...     [0.1, 0.05, 0.02, 0.01],
        ...     io.BytesIO(),
        ...     format="gif",
        ...     every=2,
        ... )
        3
    """
    values = np.asarray(values, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    temperatures = np.asarray(temperatures, dtype=np.float64)
    group_losses = np.asarray(group_losses, dtype=np.float64)
    hyperprior_losses = np.asarray(hyperprior_losses, dtype=np.float64)
    steps = values.shape[0]
    if (
        values.ndim != 3
        or not 1 <= values.shape[2] <= 6
        or probs.shape[0] != steps
        or probs.shape != temperatures.shape
        or probs.shape[1] < values.shape[2]
        or group_losses.shape != (steps,)
        or hyperprior_losses.shape != (steps,)
    ):
        raise ValueError(
            "expected values (steps, N, S) with S <= 6, probs and temperatures (steps, G >= S), "
            f"losses (steps,); got values {values.shape}, probs {probs.shape}, temperatures "
            f"{temperatures.shape}, losses {group_losses.shape} and {hyperprior_losses.shape}"
        )
    format = _output_format(out, format, fps, every)
    with _style():
        frames = _GeneralizedFitFrames(
            hyperprior, values, probs, temperatures, group_losses, hyperprior_losses, dpi=dpi
        )
        return _write(frames, out, format, fps, every, last_frame_only, on_frame)


# --- drawing ------------------------------------------------------------------------------------


def _evaluate(
    prior: Distribution,
    x: np.ndarray,
    fn: Callable[[Distribution, torch.Tensor], torch.Tensor],
) -> np.ndarray:
    """``fn(prior, x)`` on a grid, broadcast over the prior's batch shape, as float64 NumPy."""
    dtype = _parameter_dtype(prior)
    grid = torch.as_tensor(x, dtype=dtype)
    if len(prior.batch_shape) == 1:
        grid = grid[:, None]
    elif len(prior.batch_shape) > 1:
        raise ValueError(f"prior batch_shape must be () or (G,), got {tuple(prior.batch_shape)}")
    with torch.no_grad():
        return fn(prior, grid).detach().cpu().double().numpy().copy()


def _parameter_dtype(prior: Distribution) -> torch.dtype:
    for name in prior.arg_constraints:
        value = getattr(prior, name, None)
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.dtype
    return torch.get_default_dtype()


def _style() -> AbstractContextManager[Any]:
    import matplotlib

    return matplotlib.rc_context(STYLE)


def _new_figure(width: float, height: float, dpi: float) -> Figure:
    """A figure bound to the Agg canvas, independent of pyplot and of the session's backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


class _Histogram:
    """Bars of a density histogram on fixed bins of [0, 1], one collection updated in place."""

    def __init__(self, ax: Axes, bins: int = _HISTOGRAM_BINS, label: str = "PDF (data)") -> None:
        from matplotlib.collections import PolyCollection

        self.bins = bins
        left = np.linspace(0.0, 1.0, bins + 1)[:-1] + 0.05 / bins
        right = left + 0.9 / bins
        # One rectangle per bin, corners (left, 0), (left, h), (right, h), (right, 0).
        self.corners = np.zeros((bins, 4, 2))
        self.corners[:, :2, 0] = left[:, None]
        self.corners[:, 2:, 0] = right[:, None]
        self.bars = PolyCollection(
            self.corners, facecolors=DATA_COLOR, edgecolors="none", label=label
        )
        ax.add_collection(self.bars)

    @staticmethod
    def heights(values: np.ndarray, bins: int = _HISTOGRAM_BINS) -> np.ndarray:
        # Values are in [0, 1]; clipping keeps 1.0 in the last bin, as np.histogram does.
        index = np.clip((values * bins).astype(np.int64), 0, bins - 1)
        return np.bincount(index, minlength=bins) * (bins / max(len(values), 1))

    def update(self, values: np.ndarray) -> None:
        self.corners[:, 1:3, 1] = self.heights(values, self.bins)[:, None]
        self.bars.set_verts(self.corners)


def _loss_axes(ax: Axes, losses: np.ndarray, ylabel: str) -> Line2D:
    ax.set_xlim(0, len(losses))
    top = float(np.nanmax(losses[:1])) if len(losses) else 1.0
    ax.set_ylim(-0.005, top + 0.05)
    ax.set_xlabel("Training step")
    ax.set_ylabel(ylabel)
    (line,) = ax.plot([], [], marker=".", markersize=4, linewidth=2, color="k")
    return line


def _density_axes(
    ax: Axes, prior: Distribution, final_values: np.ndarray, label: str = "PDF (target)"
) -> None:
    """Target density with a y-range that also holds the final histogram."""
    line = plot_prior_density(ax, prior, zorder=3, label=label)
    top = max(float(np.nanmax(line.get_ydata())), float(_Histogram.heights(final_values).max()))
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(-0.25, 1.05 * top + 0.25)


def _legend_above(ax: Axes) -> None:
    # Above the panel rather than inside it, so that the moving bars never pass under it.
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize="small")


class _FitFrames:
    """The figure of a Batch-Shaping fit, able to draw any of its frames."""

    def __init__(
        self,
        prior: Distribution,
        values: np.ndarray,
        losses: np.ndarray,
        *,
        dpi: float,
        title: str | None,
    ) -> None:
        self.values = values
        self.losses = losses
        steps, num_points = values.shape
        self.steps = steps
        self.fig = fig = _new_figure(7.0, 8.5, dpi)
        grid = fig.add_gridspec(3, 2, wspace=0.3, hspace=0.5)
        data_ax = fig.add_subplot(grid[:2, :])
        loss_ax = fig.add_subplot(grid[2, 0])
        density_ax = fig.add_subplot(grid[2, 1])
        if title:
            fig.suptitle(title)

        data_ax.set_xlim(-_PANEL_MARGIN, 1 + _PANEL_MARGIN)
        data_ax.set_ylim(-_PANEL_MARGIN, 1 + _PANEL_MARGIN)
        data_ax.set_xlabel("Data range")
        # Each point keeps one height, spread evenly, so that the points can be told apart.
        self.heights = np.linspace(0.0, 1.0, num_points)
        self.points = data_ax.scatter(
            values[0], self.heights, marker="o", alpha=0.15, color=POINTS_COLOR, label="data"
        )
        plot_prior_cdf(data_ax, prior)
        self.ecdf_heights = np.arange(1, num_points + 1) / (num_points + 1)
        (self.ecdf,) = data_ax.plot(
            [], [], linewidth=2.5, linestyle="dashed", color=DATA_COLOR, label="CDF (data)"
        )
        data_ax.legend(loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.09))

        self.loss_line = _loss_axes(loss_ax, losses, "Loss")
        self.step_text = loss_ax.text(
            0.97, 0.93, "", transform=loss_ax.transAxes, ha="right", va="top"
        )
        self.histogram = _Histogram(density_ax)
        _density_axes(density_ax, prior, values[-1])
        _legend_above(density_ax)
        self.steps_axis = np.arange(steps)

        # Drawn in this order over the static background, every frame.
        self.animated: list[Artist] = [
            self.points,
            self.ecdf,
            self.loss_line,
            self.step_text,
            self.histogram.bars,
            *density_ax.lines,
        ]
        self.cached_texts: list[Text] = []

    def update(self, step: int) -> None:
        values = self.values[step]
        self.points.set_offsets(np.column_stack((values, self.heights)))
        self.ecdf.set_data(np.sort(values), self.ecdf_heights)
        self.loss_line.set_data(self.steps_axis[: step + 1], self.losses[: step + 1])
        self.step_text.set_text(f"step {step + 1} / {self.steps}")
        self.histogram.update(values)


class _GeneralizedFitFrames:
    """The figure of a generalized Batch-Shaping fit, able to draw any of its frames."""

    def __init__(
        self,
        hyperprior: Distribution,
        values: np.ndarray,
        probs: np.ndarray,
        temperatures: np.ndarray,
        group_losses: np.ndarray,
        hyperprior_losses: np.ndarray,
        *,
        dpi: float,
    ) -> None:
        self.values = values
        self.probs = probs
        self.temperatures = temperatures
        self.group_losses = group_losses
        self.hyperprior_losses = hyperprior_losses
        steps, num_points, shown = values.shape
        self.steps = steps
        self.shown = shown
        self.fig = fig = _new_figure(15.0, 8.0, dpi)
        grid = fig.add_gridspec(
            3, 4, left=0.05, right=0.9, bottom=0.1, top=0.9, wspace=0.35, hspace=0.6
        )

        self.heights = np.linspace(0.0, 1.0, num_points)
        self.ecdf_heights = np.arange(1, num_points + 1) / (num_points + 1)
        self.cdf_grid = np.linspace(0.0, 1.0, 200)
        self.points = []
        self.ecdfs = []
        self.target_cdfs = []
        self.captions: list[Text] = []
        for group in range(shown):
            ax = fig.add_subplot(grid[group // 2, group % 2])
            ax.set_xlim(-_PANEL_MARGIN, 1 + _PANEL_MARGIN)
            ax.set_ylim(-_PANEL_MARGIN, 1 + _PANEL_MARGIN)
            ax.set_xticks([0.0, 0.5, 1.0])
            self.points.append(
                ax.scatter(
                    values[0, :, group],
                    self.heights,
                    marker="o",
                    s=8,
                    alpha=0.15,
                    color=POINTS_COLOR,
                    label="data",
                )
            )
            (ecdf,) = ax.plot(
                [], [], linewidth=2, linestyle="dashed", color=DATA_COLOR, label="CDF (data)"
            )
            (target,) = ax.plot(
                [], [], linewidth=2, color=TARGET_COLOR, label="CDF (learned prior)"
            )
            self.ecdfs.append(ecdf)
            self.target_cdfs.append(target)
            self.captions.append(
                ax.text(0.5, -0.3, "", transform=ax.transAxes, ha="center", va="top", fontsize=12)
            )
            if group == 0:
                ax.legend(loc="upper center", ncol=3, bbox_to_anchor=(1.2, 1.32))

        group_ax = fig.add_subplot(grid[0, 2:])
        self.group_line = _loss_axes(group_ax, group_losses, "Groups loss")
        self.step_text = group_ax.text(
            0.97, 0.9, "", transform=group_ax.transAxes, ha="right", va="top"
        )
        hyper_ax = fig.add_subplot(grid[1, 2:])
        self.hyper_line = _loss_axes(hyper_ax, hyperprior_losses, "Hyperprior loss")
        density_ax = fig.add_subplot(grid[2, 2:])
        self.histogram = _Histogram(density_ax, label="learned probabilities")
        _density_axes(density_ax, hyperprior, probs[-1], label="hyperprior")
        density_ax.set_xlabel("Probability")
        # Where Beta(3, 7)-like hyperpriors leave room: bars drawn there would cover it.
        density_ax.legend(loc="upper right", fontsize="small")
        self.steps_axis = np.arange(steps)

        self.animated: list[Artist] = [
            *self.points,
            *self.target_cdfs,
            *self.ecdfs,
            self.group_line,
            self.hyper_line,
            self.step_text,
            self.histogram.bars,
            *density_ax.lines,
        ]
        # Captions change only with their rounded values: their pixels are reused.
        self.cached_texts: list[Text] = self.captions

    def _learned_cdfs(self, step: int) -> np.ndarray:
        """CDFs of the shown groups' relaxed Bernoulli priors, ``(grid, shown)``."""
        from batchshaping.distributions import RelaxedBernoulli

        prior = RelaxedBernoulli(
            torch.from_numpy(self.temperatures[step, : self.shown]),
            probs=torch.from_numpy(self.probs[step, : self.shown]),
        )
        return prior_cdf_curve(prior, len(self.cdf_grid))[1]

    def update(self, step: int) -> None:
        values = self.values[step]
        sorted_values = np.sort(values, axis=0)
        cdfs = self._learned_cdfs(step)
        for group in range(self.shown):
            self.points[group].set_offsets(np.column_stack((values[:, group], self.heights)))
            self.ecdfs[group].set_data(sorted_values[:, group], self.ecdf_heights)
            self.target_cdfs[group].set_data(self.cdf_grid, cdfs[:, group])
            p = self.probs[step, group]
            t = self.temperatures[step, group]
            self.captions[group].set_text(f"group {group + 1} (p = {p:.2f}, τ = {t:.2f})")
        self.group_line.set_data(self.steps_axis[: step + 1], self.group_losses[: step + 1])
        self.hyper_line.set_data(self.steps_axis[: step + 1], self.hyperprior_losses[: step + 1])
        self.step_text.set_text(f"step {step + 1} / {self.steps}")
        self.histogram.update(self.probs[step])


# --- frames to files ----------------------------------------------------------------------------


class _Blitter:
    """Renders the static part of a figure once, then each frame's moving artists over it.

    ``cached_texts`` are moving texts drawn where nothing else moves (captions outside the
    axes): the pixels of each string they show are kept and pasted back when it shows again,
    since drawing text is the slowest part of a frame.
    """

    def __init__(
        self, fig: Figure, animated: Sequence[Artist], cached_texts: Sequence[Text] = ()
    ) -> None:
        self.fig = fig
        self.canvas = fig.canvas
        self.animated = list(animated)
        self.cached_texts = list(cached_texts)
        for artist in [*self.animated, *self.cached_texts]:
            artist.set_animated(True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(fig.bbox)
        self.text_pixels: dict[tuple[int, str], Any] = {}

    def render(self) -> Image.Image:
        """The current frame as an RGB image (a copy)."""
        from PIL import Image

        self.canvas.restore_region(self.background)
        for artist in self.animated:
            self.fig.draw_artist(artist)
        for index, text in enumerate(self.cached_texts):
            key = (index, text.get_text())
            pixels = self.text_pixels.get(key)
            if pixels is None:
                self.fig.draw_artist(text)
                extent = text.get_window_extent(self.canvas.get_renderer())
                pixels = self.canvas.copy_from_bbox(extent.expanded(1.0, 1.0).padded(2))
                self.text_pixels[key] = pixels
            else:
                self.canvas.restore_region(pixels)
        width, height = self.canvas.get_width_height(physical=True)
        rgba = Image.frombuffer(
            "RGBA", (width, height), self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1
        )
        return rgba.convert("RGB")


def _output_format(out: OutputTarget, format: str | None, fps: float, every: int) -> str:
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if format is None:
        if not isinstance(out, str | os.PathLike):
            raise ValueError("format must be given when out is a file object")
        format = os.path.splitext(os.fspath(out))[1].lstrip(".")
    format = format.lower()
    if format not in ("gif", "png"):
        raise ValueError(f"format must be 'gif' or 'png', got {format!r}")
    return format


def _write(
    frames: _FitFrames | _GeneralizedFitFrames,
    out: OutputTarget,
    format: str,
    fps: float,
    every: int,
    last_frame_only: bool,
    on_frame: FrameCallback | None,
) -> int:
    blitter = _Blitter(frames.fig, frames.animated, frames.cached_texts)
    steps = frame_steps(frames.steps, every)
    if format == "png" or last_frame_only:
        frames.update(steps[-1])
        image = blitter.render()
        if on_frame is not None:
            on_frame(0)
        image.save(out, format=format.upper())
        return 1

    from PIL import Image

    # One palette for every frame, taken from the first and last frames (between them they
    # hold the colours of the whole fit), so that unchanged pixels keep their index and Pillow
    # stores each frame as the rectangle that changed since the previous one.
    frames.update(steps[-1])
    last_image = blitter.render()
    frames.update(steps[0])
    first_image = blitter.render()
    both = Image.new("RGB", (first_image.width, 2 * first_image.height))
    both.paste(first_image, (0, 0))
    both.paste(last_image, (0, first_image.height))
    palette = both.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)

    def indexed(image: Image.Image) -> Image.Image:
        return image.quantize(palette=palette, dither=Image.Dither.NONE)

    encoded = [indexed(first_image)]
    if on_frame is not None:
        on_frame(0)
    for index, step in enumerate(steps[1:], start=1):
        frames.update(step)
        encoded.append(indexed(blitter.render()))
        if on_frame is not None:
            on_frame(index)
    encoded[0].save(
        out,
        format="GIF",
        save_all=True,
        append_images=encoded[1:],
        duration=round(1000 / fps),
        loop=0,
    )
    return len(encoded)
