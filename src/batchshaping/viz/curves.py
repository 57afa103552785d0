"""A prior's CDF and density: as arrays on a grid, and drawn on given axes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.distributions import Distribution

from batchshaping.viz.style import TARGET_COLOR

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D

__all__ = ["plot_prior_cdf", "plot_prior_density", "prior_cdf_curve", "prior_density_curve"]


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
