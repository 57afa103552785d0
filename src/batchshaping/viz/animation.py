"""Recorded fits written as GIF animations (or their last frame as a PNG), fast.

Every frame is drawn once and only what changes is drawn: the figure is laid out and rendered a
single time with the moving artists hidden (:class:`Blitter`), and each frame restores that
background and draws the moving artists on top. The frames are quantised to one palette shared
by the whole GIF, so that Pillow stores each frame as the rectangle that changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from torch.distributions import Distribution

from batchshaping.viz.figures import FitFrames, GeneralizedFitFrames
from batchshaping.viz.style import style

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.figure import Figure
    from matplotlib.text import Text
    from PIL import Image

__all__ = ["frame_steps", "record_fit", "record_generalized_fit"]

OutputTarget = str | os.PathLike[str] | IO[bytes]
FrameCallback = Callable[[int], None]


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
    with style():
        frames = FitFrames(prior, values, losses, dpi=dpi, title=title)
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
    with style():
        frames = GeneralizedFitFrames(
            hyperprior, values, probs, temperatures, group_losses, hyperprior_losses, dpi=dpi
        )
        return _write(frames, out, format, fps, every, last_frame_only, on_frame)


class Blitter:
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
    frames: FitFrames | GeneralizedFitFrames,
    out: OutputTarget,
    format: str,
    fps: float,
    every: int,
    last_frame_only: bool,
    on_frame: FrameCallback | None,
) -> int:
    blitter = Blitter(frames.fig, frames.animated, frames.cached_texts)
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
