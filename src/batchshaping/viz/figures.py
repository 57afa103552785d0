"""The figures of a recorded fit: built once, each able to draw any of its frames.

A figure class lays out its axes, draws what never changes, and lists the artists that move
(``animated``); ``update(step)`` sets them to a step of the fit. Turning frames into a file is
:mod:`batchshaping.viz.animation`'s work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.distributions import Distribution

from batchshaping.viz.curves import plot_prior_cdf, plot_prior_density, prior_cdf_curve
from batchshaping.viz.style import (
    DATA_COLOR,
    HISTOGRAM_BINS,
    PANEL_MARGIN,
    POINTS_COLOR,
    TARGET_COLOR,
    new_figure,
)

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D
    from matplotlib.text import Text


class Histogram:
    """Bars of a density histogram on fixed bins of [0, 1], one collection updated in place."""

    def __init__(self, ax: Axes, bins: int = HISTOGRAM_BINS, label: str = "PDF (data)") -> None:
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
    def heights(values: np.ndarray, bins: int = HISTOGRAM_BINS) -> np.ndarray:
        # Values are in [0, 1]; clipping keeps 1.0 in the last bin, as np.histogram does.
        index = np.clip((values * bins).astype(np.int64), 0, bins - 1)
        return np.bincount(index, minlength=bins) * (bins / max(len(values), 1))

    def update(self, values: np.ndarray) -> None:
        self.corners[:, 1:3, 1] = self.heights(values, self.bins)[:, None]
        self.bars.set_verts(self.corners)


def loss_axes(ax: Axes, losses: np.ndarray, ylabel: str) -> Line2D:
    ax.set_xlim(0, len(losses))
    top = float(np.nanmax(losses[:1])) if len(losses) else 1.0
    ax.set_ylim(-0.005, top + 0.05)
    ax.set_xlabel("Training step")
    ax.set_ylabel(ylabel)
    (line,) = ax.plot([], [], marker=".", markersize=4, linewidth=2, color="k")
    return line


def density_axes(
    ax: Axes, prior: Distribution, final_values: np.ndarray, label: str = "PDF (target)"
) -> None:
    """Target density with a y-range that also holds the final histogram."""
    line = plot_prior_density(ax, prior, zorder=3, label=label)
    top = max(float(np.nanmax(line.get_ydata())), float(Histogram.heights(final_values).max()))
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(-0.25, 1.05 * top + 0.25)


def legend_above(ax: Axes) -> None:
    # Above the panel rather than inside it, so that the moving bars never pass under it.
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize="small")


class FitFrames:
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
        self.fig = fig = new_figure(7.0, 8.5, dpi)
        grid = fig.add_gridspec(3, 2, wspace=0.3, hspace=0.5)
        data_ax = fig.add_subplot(grid[:2, :])
        loss_ax = fig.add_subplot(grid[2, 0])
        density_ax = fig.add_subplot(grid[2, 1])
        if title:
            fig.suptitle(title)

        data_ax.set_xlim(-PANEL_MARGIN, 1 + PANEL_MARGIN)
        data_ax.set_ylim(-PANEL_MARGIN, 1 + PANEL_MARGIN)
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

        self.loss_line = loss_axes(loss_ax, losses, "Loss")
        self.step_text = loss_ax.text(
            0.97, 0.93, "", transform=loss_ax.transAxes, ha="right", va="top"
        )
        self.histogram = Histogram(density_ax)
        density_axes(density_ax, prior, values[-1])
        legend_above(density_ax)
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


class GeneralizedFitFrames:
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
        self.fig = fig = new_figure(15.0, 8.0, dpi)
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
            ax.set_xlim(-PANEL_MARGIN, 1 + PANEL_MARGIN)
            ax.set_ylim(-PANEL_MARGIN, 1 + PANEL_MARGIN)
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
        self.group_line = loss_axes(group_ax, group_losses, "Groups loss")
        self.step_text = group_ax.text(
            0.97, 0.9, "", transform=group_ax.transAxes, ha="right", va="top"
        )
        hyper_ax = fig.add_subplot(grid[1, 2:])
        self.hyper_line = loss_axes(hyper_ax, hyperprior_losses, "Hyperprior loss")
        density_ax = fig.add_subplot(grid[2, 2:])
        self.histogram = Histogram(density_ax, label="learned probabilities")
        density_axes(density_ax, hyperprior, probs[-1], label="hyperprior")
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
