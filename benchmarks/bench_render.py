"""Time the demo animation: 100 frames of the Beta(2, 6) fit, 500 points, 700 x 850 pixels.

Two ways of making the same GIF, timed in the same run:

- ``original``: the original notebooks' approach, re-created: ``FuncAnimation`` whose frame
  function takes a training step, moves the points and the empirical CDF, then clears the
  density panel and draws the target density (scipy), the histogram (``ax.hist``) and its legend
  again; saved with matplotlib's ``PillowWriter``, which draws the whole figure for every frame
  and lets Pillow pick a palette per frame.
- ``batchshaping``: ``batchshaping.demo.fit_points`` then ``batchshaping.viz.record_fit``: the
  figure is drawn once, each frame redraws only the moving artists over it (histogram bars on
  fixed bins), and all frames share one palette.

Both train with ``batchshaping.batch_shaping_loss`` (100 Adam steps, a few milliseconds each)
on ``Beta(2, 6, density_bounds=(1e-3, 100))``, the original's clamped-density gradient, so that
the fit moves as the original's did; the difference is the rendering. The original used
seaborn's "darkgrid" style; both use the same look here through ``batchshaping.viz.STYLE``
(seaborn is not a dependency).

Run: ``python benchmarks/bench_render.py`` (about three minutes on two cores).
"""

from __future__ import annotations

import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from _harness import format_table, median_time, write_results
from PIL import Image

from batchshaping import batch_shaping_loss
from batchshaping.demo import fit_points, initial_points
from batchshaping.distributions import Beta

A, B = 2.0, 6.0
DENSITY_BOUNDS = (1e-3, 100.0)
STEPS = 100
POINTS = 500
LR = 0.1
INIT_RANGE = 4.0
SEED = 42
FPS = 10


def ours(path: Path) -> float:
    """Train and write the GIF with batchshaping; returns the final loss."""
    from batchshaping import viz

    prior = Beta(torch.tensor(A), torch.tensor(B), density_bounds=DENSITY_BOUNDS)
    history = fit_points(prior, points=POINTS, steps=STEPS, lr=LR, init_range=INIT_RANGE, seed=SEED)
    viz.record_fit(prior, history.values, history.losses, path, fps=FPS)
    return history.final_loss


def original(path: Path) -> float:
    """Train and write the GIF the way the original notebook did; returns the final loss."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    from scipy import stats

    from batchshaping import viz

    prior = Beta(torch.tensor(A), torch.tensor(B), density_bounds=DENSITY_BOUNDS)
    with matplotlib.rc_context(viz.STYLE):
        margin = 0.08
        fig = plt.figure(figsize=(7, 8.5))
        grid = plt.GridSpec(3, 2, wspace=0.3, hspace=0.4)
        data_ax = plt.subplot(grid[:2, :])
        data_ax.set_xlim([-margin, 1 + margin])
        data_ax.set_ylim([-margin, 1 + margin])
        data_ax.set_xlabel("Data range", fontsize=16)
        points = data_ax.scatter([], [], marker="o", alpha=0.15, label="data", color="orchid")
        (ecdf,) = data_ax.plot(
            [], [], linewidth=2.5, linestyle="dashed", color="xkcd:turquoise", label="CDF (data)"
        )
        loss_ax = plt.subplot(grid[2:, 0])
        loss_ax.set_xlim([0, STEPS])
        loss_ax.set_ylabel("Loss", fontsize=16)
        loss_ax.set_xlabel("Training step", fontsize=16)
        (loss_line,) = loss_ax.plot([], [], marker=".", linewidth=2, color="k")
        density_ax = plt.subplot(grid[2:, 1])
        density_ax.set_xlim([0, 1.0])

        data = torch.nn.Parameter(initial_points(POINTS, INIT_RANGE, SEED))
        heights = np.linspace(0.0, 1.0, POINTS)
        optimizer = torch.optim.Adam([data], lr=LR)
        losses: list[float] = []

        def init() -> None:
            grid_x = np.linspace(0.0, 1.0, 100)
            data_ax.plot(
                grid_x,
                stats.beta.cdf(grid_x, A, B),
                linewidth=2.5,
                color="orange",
                label="CDF (target)",
            )
            data_ax.legend(loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.09))
            first = batch_shaping_loss(torch.sigmoid(data), prior)
            loss_ax.set_ylim([-0.005, first.item() + 0.05])

        def step(i: int) -> None:
            optimizer.zero_grad()
            values = torch.sigmoid(data)
            loss = batch_shaping_loss(values, prior)
            losses.append(loss.item())
            loss.backward()
            optimizer.step()

            loss_line.set_data(np.arange(i + 1), losses[: i + 1])
            array = values.detach().numpy()
            points.set_offsets(np.vstack((array, heights)).T)
            sorted_values = np.sort(array)
            ecdf.set_data(sorted_values, np.arange(POINTS) / POINTS)
            density_ax.cla()
            grid_x = np.linspace(0.005, 0.995, 100)
            density = stats.beta.pdf(grid_x, A, B)
            density_ax.set_ylim([-0.25, np.amax(density) + 0.25])
            density_ax.plot(grid_x, density, linewidth=2.5, color="orange", label="PDF (target)")
            density_ax.hist(
                sorted_values,
                label="PDF (data)",
                color="xkcd:turquoise",
                rwidth=0.9,
                bins=20,
                density=True,
                stacked=True,
            )
            density_ax.legend(loc="upper center")

        animation = FuncAnimation(fig, step, frames=STEPS, init_func=init)
        plt.close(fig)
        animation.save(path, writer=PillowWriter(fps=FPS))
    return losses[-1]


def main() -> None:
    """Time both ways, print a table and write ``benchmarks/results/render.json``."""
    with tempfile.TemporaryDirectory() as folder:
        paths = {"batchshaping": Path(folder) / "ours.gif", "original": Path(folder) / "orig.gif"}
        runs = {"batchshaping": ours, "original": original}
        repeats = {"batchshaping": 5, "original": 3}
        rows = []
        for name, run in runs.items():
            path = paths[name]
            final_loss = run(path)  # also the warm-up
            seconds = median_time(partial(run, path), repeats=repeats[name], warmup=0)
            with Image.open(path) as image:
                frames, size = image.n_frames, image.size
            rows.append(
                {
                    "method": name,
                    "seconds": seconds,
                    "repeats": repeats[name],
                    "frames": frames,
                    "pixels": f"{size[0]} x {size[1]}",
                    "gif_MB": path.stat().st_size / 1e6,
                    "final_loss": final_loss,
                }
            )
    ratio = rows[0]["seconds"] / rows[1]["seconds"]
    columns = ["method", "seconds", "repeats", "frames", "pixels", "gif_MB", "final_loss"]
    print("Beta(2, 6) demo, 100 frames, 500 points: median wall time of train + render + write")
    print(format_table(rows, columns))
    print(f"batchshaping / original: {ratio:.3f} (target <= 0.333)")
    path = write_results("render", rows, ratio=ratio)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
