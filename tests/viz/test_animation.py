"""batchshaping.viz.animation: recorded fits written as GIF or PNG (on made-up fits)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch.distributions import Normal

pytest.importorskip("matplotlib")
PIL_Image = pytest.importorskip("PIL.Image")

from batchshaping import viz  # noqa: E402


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


def test_record_fit_writes_one_gif_frame_per_step_at_700_by_850():
    values, losses = made_up_fit(steps=6, points=40)
    buffer = io.BytesIO()
    seen = []
    frames = viz.record_fit(
        Normal(torch.tensor(0.3), torch.tensor(0.1)),
        values,
        losses,
        buffer,
        format="gif",
        on_frame=seen.append,
    )
    assert frames == 6 and seen == list(range(6))
    assert frames_and_size(buffer.getvalue()) == (6, (700, 850))


def test_record_fit_png_is_the_last_frame(tmp_path):
    values, losses = made_up_fit(steps=4, points=40)
    path = tmp_path / "fit.png"
    frames = viz.record_fit(Normal(torch.tensor(0.3), torch.tensor(0.1)), values, losses, path)
    assert frames == 1
    assert frames_and_size(path.read_bytes()) == (1, (700, 850))


def test_record_generalized_fit_writes_one_frame_per_step_at_900_by_480():
    steps, points, groups = 5, 30, 8
    rng = np.random.default_rng(1)
    values = rng.uniform(0.0, 1.0, (steps, points, 6))
    probs = rng.uniform(0.1, 0.9, (steps, groups))
    temperatures = rng.uniform(0.1, 0.9, (steps, groups))
    losses = np.linspace(0.2, 0.1, steps)
    buffer = io.BytesIO()
    frames = viz.record_generalized_fit(
        Normal(torch.tensor(0.3), torch.tensor(0.1)),
        values,
        probs,
        temperatures,
        losses,
        losses / 10,
        buffer,
        format="gif",
    )
    assert frames == steps
    assert frames_and_size(buffer.getvalue()) == (steps, (900, 480))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": np.zeros((3, 5)), "losses": np.zeros(4)}, "values must be"),
        ({"format": "jpg"}, "format must be"),
        ({"fps": 0.0}, "fps must be"),
    ],
)
def test_record_fit_rejects_bad_arguments(kwargs, message):
    values, losses = made_up_fit(steps=3, points=5)
    arguments = {"values": values, "losses": losses, "format": "gif", **kwargs}
    with pytest.raises(ValueError, match=message):
        viz.record_fit(Normal(torch.tensor(0.3), torch.tensor(0.1)), out=io.BytesIO(), **arguments)


def test_record_fit_needs_a_format_for_a_file_object():
    values, losses = made_up_fit(steps=3, points=5)
    with pytest.raises(ValueError, match="format must be given"):
        viz.record_fit(Normal(torch.tensor(0.3), torch.tensor(0.1)), values, losses, io.BytesIO())
