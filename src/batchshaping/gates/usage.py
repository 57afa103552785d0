"""Which gates opened: per-gate on-fractions over a data set, and the gates' classes.

A gate (one channel of one block) is *always on* if it opened for at least 99% of the inputs,
*always off* if for at most 1%, and *conditional* in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from batchshaping.gates.resnet import GatedResNet

__all__ = ["ALWAYS_OFF", "ALWAYS_ON", "GateStatistics", "gate_statistics"]

ALWAYS_ON = 0.99
ALWAYS_OFF = 0.01


@dataclass(frozen=True)
class GateStatistics:
    """How often each gate opened over ``inputs`` inputs.

    Attributes:
        on_counts: one int64 tensor per block, shape (width,): the inputs it opened for.
        inputs: the number of inputs counted.
    """

    on_counts: tuple[Tensor, ...]
    inputs: int

    @classmethod
    def from_decisions(cls, decisions: Sequence[Tensor]) -> GateStatistics:
        """Statistics of decisions, one (inputs, width) tensor per block."""
        if len(decisions) == 0:
            raise ValueError("decisions must hold one tensor per block, got none")
        inputs = {int(d.shape[0]) for d in decisions}
        if len(inputs) != 1:
            raise ValueError(f"decisions must share their number of inputs, got {sorted(inputs)}")
        counts = tuple(d.to(torch.int64).sum(dim=0).cpu() for d in decisions)
        return cls(counts, inputs.pop())

    def __add__(self, other: GateStatistics) -> GateStatistics:
        counts = tuple(a + b for a, b in zip(self.on_counts, other.on_counts, strict=True))
        return GateStatistics(counts, self.inputs + other.inputs)

    @property
    def on_fraction(self) -> list[Tensor]:
        """Per block, the fraction of the inputs each gate opened for (float64)."""
        return [counts.double() / self.inputs for counts in self.on_counts]

    def all_on_fractions(self) -> Tensor:
        """Every gate's on-fraction, the blocks concatenated."""
        return torch.cat(self.on_fraction)

    def summary(self) -> dict[str, float]:
        """Fractions of gate decisions on, and of gates always on, always off, conditional."""
        fraction = self.all_on_fractions()
        always_on = float((fraction >= ALWAYS_ON).double().mean())
        always_off = float((fraction <= ALWAYS_OFF).double().mean())
        return {
            "gates_on": float(fraction.mean()),
            "always_on": always_on,
            "always_off": always_off,
            "conditional": 1.0 - always_on - always_off,
        }


def gate_statistics(
    model: GatedResNet, images: Tensor | Iterable[Tensor], batch_size: int = 256
) -> GateStatistics:
    """Count the gates the model opens, in evaluation mode, on ``images``.

    Args:
        model: a ``GatedResNet`` (put in evaluation mode for the count, then restored).
        images: a tensor (N, C, H, W), cut into batches of ``batch_size``, or an iterable of
            such batches.
        batch_size: batch size when ``images`` is a tensor.

    Returns:
        The ``GateStatistics`` of the N inputs.

    Example:
        >>> model = GatedResNet(widths=(4,))
        >>> statistics = gate_statistics(model, torch.randn(10, 1, 6, 6))
        >>> statistics.inputs, [tuple(c.shape) for c in statistics.on_counts]
        (10, [(4,)])
    """
    batches = images.split(batch_size) if isinstance(images, Tensor) else images
    training = model.training
    model.eval()
    total: GateStatistics | None = None
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
                counted = GateStatistics.from_decisions(model.decisions())
                total = counted if total is None else total + counted
    finally:
        model.train(training)
    if total is None:
        raise ValueError("images must hold at least one input, got none")
    return total
