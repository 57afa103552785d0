"""The training loops behind ``batchshaping demo`` and the example notebooks.

Points are fitted to a prior as in the original notebooks: ``points`` values drawn uniformly in
[-init_range, init_range], passed through a sigmoid so that they live in [0, 1], and moved by
Adam to minimise the Batch-Shaping loss. Every step records the loss computed before that step's
update (the value the original printed) and, when asked, the points, so that the fit can be
animated afterwards by :mod:`batchshaping.viz`.

This module needs only torch and NumPy; progress reporting is a callback, so that the command
line can attach a progress bar and a notebook nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.distributions import Distribution

from batchshaping.distributions import Beta
from batchshaping.loss import GeneralizedBatchShaping, batch_shaping_loss

__all__ = [
    "FitHistory",
    "GeneralizedFitHistory",
    "fit_generalized",
    "fit_points",
    "initial_points",
]

StepCallback = Callable[[int, float], None]


@dataclass(frozen=True)
class FitHistory:
    """What :func:`fit_points` recorded.

    Attributes:
        losses: ``(steps,)`` loss at every step, computed before that step's update.
        values: ``(steps, N)`` the points (after the sigmoid) at every step, or ``None`` when
            not recorded.
    """

    losses: np.ndarray
    values: np.ndarray | None

    @property
    def final_loss(self) -> float:
        """The loss of the last step."""
        return float(self.losses[-1])


@dataclass(frozen=True)
class GeneralizedFitHistory:
    """What :func:`fit_generalized` recorded.

    Attributes:
        losses: ``(steps,)`` total loss (group term + hyperprior term + temperature penalty).
        group_losses: ``(steps,)`` the Batch-Shaping term of the groups.
        hyperprior_losses: ``(steps,)`` the hyperprior term.
        probs: ``(steps, G)`` learned relaxed Bernoulli probabilities of every group.
        temperatures: ``(steps, G)`` learned temperatures.
        values: ``(steps, N, S)`` points (after the sigmoid) of the first ``S`` groups, or
            ``None`` when not recorded.
    """

    losses: np.ndarray
    group_losses: np.ndarray
    hyperprior_losses: np.ndarray
    probs: np.ndarray
    temperatures: np.ndarray
    values: np.ndarray | None

    @property
    def final_loss(self) -> float:
        """The total loss of the last step."""
        return float(self.losses[-1])


def initial_points(points: int, init_range: float, seed: int) -> torch.Tensor:
    """``points`` pre-sigmoid values uniform in [-init_range, init_range].

    The same values as the original notebooks' ``(torch.rand(points) * 2 - 1) * init_range``
    right after seeding torch with ``seed``, without touching torch's global generator.

    Example:
        >>> initial_points(3, 4.0, seed=42)
        tensor([ 3.0582,  3.3200, -0.9371])
    """
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(points, generator=generator) * 2 - 1) * init_range


def fit_points(
    prior: Distribution,
    *,
    points: int = 500,
    steps: int = 100,
    lr: float = 0.1,
    init_range: float = 4.0,
    seed: int = 42,
    logits: bool = False,
    record: bool = True,
    on_step: StepCallback | None = None,
) -> FitHistory:
    """Fit ``points`` values, through a sigmoid, to ``prior`` with Adam and Batch-Shaping.

    Args:
        prior: the target distribution, with a ``cdf`` (and a ``cdf_from_logits`` for
            ``logits=True``).
        points: number of values fitted.
        steps: number of Adam steps.
        lr: Adam learning rate.
        init_range: the pre-sigmoid values start uniform in [-init_range, init_range].
        seed: seed of the initial values.
        logits: feed the loss the pre-sigmoid values (``batch_shaping_loss(..., logits=True)``)
            rather than the sigmoid of them.
        record: keep the points of every step (for an animation).
        on_step: called with the step index and its loss after every step.

    Returns:
        A :class:`FitHistory`.

    Example:
        >>> from torch.distributions import Normal
        >>> history = fit_points(Normal(0.5, 0.1), points=50, steps=3)
        >>> history.values.shape
        (3, 50)
    """
    data = initial_points(points, init_range, seed).requires_grad_()
    optimizer = torch.optim.Adam([data], lr=lr)
    losses = np.empty(steps)
    values = np.empty((steps, points), dtype=np.float32) if record else None
    for step in range(steps):
        optimizer.zero_grad()
        squashed = torch.sigmoid(data)
        loss = batch_shaping_loss(data if logits else squashed, prior, logits=logits)
        loss.backward()
        optimizer.step()
        losses[step] = loss.item()
        if values is not None:
            values[step] = squashed.detach().numpy()
        if on_step is not None:
            on_step(step, losses[step])
    return FitHistory(losses=losses, values=values)


def fit_generalized(
    *,
    groups: int = 30,
    points: int = 500,
    steps: int = 350,
    lr: float = 0.3,
    warmup: int = 20,
    init_range: float = 4.0,
    seed: int = 42,
    hyperprior: Distribution | None = None,
    temperature_weight: float = 0.1,
    logits: bool = False,
    shown: int = 6,
    record: bool = True,
    on_step: StepCallback | None = None,
) -> GeneralizedFitHistory:
    """The original generalized Batch-Shaping example: ``groups`` sets of ``points`` values.

    Each group starts clustered around its own random mean (values drawn from
    N(mean, 0.05) clipped to [0, 1], mapped to [-init_range, init_range] before the sigmoid)
    and is fitted to a relaxed Bernoulli prior whose probability and temperature are learned,
    the probabilities held to ``hyperprior`` (Beta(3, 7) by default) and the temperatures
    pulled down by an L1 penalty. Adam with a linear warm-up of the rate over ``warmup`` steps.

    Args:
        groups: number of groups G.
        points: values per group N.
        steps: number of Adam steps.
        lr: Adam learning rate after the warm-up.
        warmup: steps of the linear warm-up: the rate at step k < warmup is
            max(1e-4, lr * k / warmup), then lr.
        init_range: scale of the pre-sigmoid values.
        seed: seed of the initial values and prior parameters.
        hyperprior: distribution of the learned probabilities; default Beta(3, 7).
        temperature_weight: weight of the L1 penalty on the temperatures.
        logits: feed the loss the pre-sigmoid values.
        shown: number of groups whose points are recorded (the first ``shown``).
        record: keep the points of the shown groups at every step.
        on_step: called with the step index and its total loss after every step.

    Returns:
        A :class:`GeneralizedFitHistory`.

    Example:
        >>> history = fit_generalized(groups=4, points=20, steps=2)
        >>> history.probs.shape, history.values.shape
        ((2, 4), (2, 20, 4))
    """
    generator = torch.Generator().manual_seed(seed)
    means = torch.rand(groups, 1, generator=generator)
    noise = torch.randn(groups, points, generator=generator)
    start = ((means + 0.05 * noise).clamp(0.0, 1.0) * 2 - 1) * init_range
    data = start.T.contiguous().requires_grad_()  # (points, groups): samples along dim 0

    if hyperprior is None:
        hyperprior = Beta(torch.tensor(3.0), torch.tensor(7.0))
    # As the original: probabilities sigmoid(N(0, 0.01)) and temperatures sigmoid(0) = 0.5.
    criterion = GeneralizedBatchShaping(
        groups,
        hyperprior,
        dim=0,
        temperature_weight=temperature_weight,
        init_probs=torch.sigmoid(0.01 * torch.randn(groups, generator=generator)),
        init_temperature=0.5,
        logits=logits,
    )
    optimizer = torch.optim.Adam([data, *criterion.parameters()], lr=lr)
    # The original's warm-up (rate lr * k / warmup, at least 1e-4), as a factor of lr: the
    # original returned the rate itself to LambdaLR, which multiplied lr by it once more.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: max(1e-4 / lr, k / warmup) if k < warmup else 1.0
    )

    shown = min(shown, groups)
    losses = np.empty(steps)
    group_losses = np.empty(steps)
    hyperprior_losses = np.empty(steps)
    probs = np.empty((steps, groups))
    temperatures = np.empty((steps, groups))
    values = np.empty((steps, points, shown), dtype=np.float32) if record else None
    for step in range(steps):
        optimizer.zero_grad()
        squashed = torch.sigmoid(data)
        terms = criterion.terms(data if logits else squashed)
        probs[step] = criterion.probs.detach().numpy()
        temperatures[step] = criterion.temperature.detach().numpy()
        terms.total.backward()
        optimizer.step()
        schedule.step()
        losses[step] = terms.total.item()
        group_losses[step] = terms.groups.item()
        hyperprior_losses[step] = terms.hyperprior.item()
        if values is not None:
            values[step] = squashed[:, :shown].detach().numpy()
        if on_step is not None:
            on_step(step, losses[step])
    return GeneralizedFitHistory(
        losses=losses,
        group_losses=group_losses,
        hyperprior_losses=hyperprior_losses,
        probs=probs,
        temperatures=temperatures,
        values=values,
    )
