"""batchshaping.viz.curves: prior curves and the plotting helpers; viz imports nothing heavy."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.distributions import Normal

pytest.importorskip("matplotlib")
PIL_Image = pytest.importorskip("PIL.Image")

from batchshaping import viz  # noqa: E402
from batchshaping.distributions import RelaxedBernoulli  # noqa: E402


def made_up_fit(steps: int, points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points moving from uniform towards 0.3, and a decreasing loss: enough to draw frames."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.0, 1.0, points)
    weights = np.linspace(0.0, 0.8, steps)[:, None]
    values = (1 - weights) * start + weights * 0.3
    return values, 0.1 * np.exp(-np.arange(steps) / 5)


def frames_and_size(data: bytes) -> tuple[int, tuple[int, int]]:
    with PIL_Image.open(io.BytesIO(data)) as image:
        return getattr(image, "n_frames", 1), image.size


def test_importing_viz_leaves_matplotlib_unloaded():
    code = "import sys, batchshaping.viz; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_prior_cdf_curve_ends_of_a_unit_interval_support_are_exact():
    # At temperature 0.01 the CDF is near 1 - p = 0.2 almost everywhere: a clipped evaluation
    # would leave the drawn curve hanging above 0 at x = 0 and below 1 at x = 1.
    prior = RelaxedBernoulli(torch.tensor(0.01), probs=torch.tensor(0.8))
    x, y = viz.prior_cdf_curve(prior, num_points=11)
    assert x[0] == 0.0 and x[-1] == 1.0
    assert y[0] == 0.0 and y[-1] == 1.0
    assert np.allclose(y[5], 0.2, atol=1e-3)


def test_prior_cdf_curve_of_an_unbounded_prior_is_evaluated_at_the_ends():
    _, y = viz.prior_cdf_curve(Normal(torch.tensor(0.5), torch.tensor(0.5)), num_points=3)
    assert y == pytest.approx([0.1587, 0.5, 0.8413], abs=1e-3)


def test_curves_of_a_batch_of_priors_have_one_column_per_prior():
    prior = RelaxedBernoulli(torch.tensor([0.2, 0.5, 1.0]), probs=torch.tensor([0.1, 0.5, 0.9]))
    assert viz.prior_cdf_curve(prior, num_points=7)[1].shape == (7, 3)
    assert viz.prior_density_curve(prior, num_points=7)[1].shape == (7, 3)


def test_density_curve_integrates_to_about_one():
    x, y = viz.prior_density_curve(Normal(torch.tensor(0.5), torch.tensor(0.1)), num_points=400)
    assert np.trapezoid(y, x) == pytest.approx(1.0, abs=1e-3)


def test_plot_helpers_draw_on_given_axes():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    prior = Normal(torch.tensor(0.6), torch.tensor(0.1))
    cdf = viz.plot_prior_cdf(ax, prior, color="red")
    density = viz.plot_prior_density(ax, prior, label="target")
    assert list(ax.lines) == [cdf, density]
    assert cdf.get_color() == "red" and cdf.get_label() == "CDF (target)"
    assert density.get_label() == "target"
