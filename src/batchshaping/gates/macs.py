"""Multiply-accumulates per input, counted from the gates each input executed.

Every convolution and linear layer counts (batch norm, ReLU, pooling and additions do not): a
block with ``k`` channels open costs conv1's ``k`` outputs and conv2's ``k`` inputs, plus its
gate and its shortcut; the stem and the head always run. The reference is the same network
without gates, every channel executed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from batchshaping.gates.resnet import GatedResNet

__all__ = ["MacCosts", "executed_macs", "mac_costs", "mac_fraction"]


def _convolved(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class MacCosts:
    """The multiply-accumulates of one input through a ``GatedResNet``, by part.

    Attributes:
        fixed: what runs whatever the gates say: stem, shortcut convolutions, head.
        gates: the gates' own two linear layers, all blocks.
        per_channel: per block, the cost of one open channel (its conv1 output and conv2 input).
        widths: per block, the number of gated channels.
    """

    fixed: int
    gates: int
    per_channel: tuple[int, ...]
    widths: tuple[int, ...]

    @property
    def ungated(self) -> int:
        """The network without gates: every channel executed, no gate cost."""
        return self.fixed + sum(c * w for c, w in zip(self.per_channel, self.widths, strict=True))


def mac_costs(model: GatedResNet, image_size: tuple[int, int]) -> MacCosts:
    """The MAC costs of ``model`` on images of ``image_size`` (height, width).

    Example:
        >>> costs = mac_costs(GatedResNet(widths=(4,), gate_hidden=2), (8, 8))
        >>> costs.fixed, costs.gates, costs.per_channel   # stem + head; 4*2 + 2*4; 9*(4+4)*64
        (2344, 16, (4608,))
    """
    height, width = image_size
    stem = model.stem[0]
    height = _convolved(height, 3, model.stem_stride, 1)
    width = _convolved(width, 3, model.stem_stride, 1)
    fixed = 9 * stem.in_channels * stem.out_channels * height * width
    gates = 0
    per_channel = []
    widths = []
    for block in model.blocks:
        stride = block.conv1.stride[0]
        height = _convolved(height, 3, stride, 1)
        width = _convolved(width, 3, stride, 1)
        pixels = height * width
        channels_in, channels = block.conv1.in_channels, block.conv1.out_channels
        per_channel.append(9 * channels_in * pixels + 9 * channels * pixels)
        widths.append(channels)
        if not isinstance(block.shortcut, torch.nn.Identity):
            fixed += channels_in * channels * pixels
        gate = block.gate
        gates += gate.in_channels * gate.hidden + gate.hidden * gate.out_channels
    fixed += model.head.in_features * model.head.out_features
    return MacCosts(fixed, gates, tuple(per_channel), tuple(widths))


def executed_macs(
    model: GatedResNet, decisions: Sequence[Tensor], image_size: tuple[int, int]
) -> Tensor:
    """MACs each input executed, given its gates' decisions.

    Args:
        model: the ``GatedResNet`` the decisions come from.
        decisions: one (batch, width) tensor per block (bool or 0/1), e.g.
            ``model.decisions()`` after a forward.
        image_size: (height, width) of the input images.

    Returns:
        A float64 tensor of shape (batch,).
    """
    costs = mac_costs(model, image_size)
    if len(decisions) != len(costs.widths):
        raise ValueError(
            f"decisions must hold one tensor per block ({len(costs.widths)}), got {len(decisions)}"
        )
    total = torch.full(
        (decisions[0].shape[0],), float(costs.fixed + costs.gates), dtype=torch.float64
    )
    for index, (block_decisions, cost) in enumerate(zip(decisions, costs.per_channel, strict=True)):
        if block_decisions.shape[1:] != (costs.widths[index],):
            raise ValueError(
                f"decisions[{index}] must have shape (batch, {costs.widths[index]}), got "
                f"{tuple(block_decisions.shape)}"
            )
        total += cost * block_decisions.to(torch.float64).sum(dim=1).cpu()
    return total


def mac_fraction(
    model: GatedResNet, decisions: Sequence[Tensor], image_size: tuple[int, int]
) -> Tensor:
    """``executed_macs`` as a fraction of the ungated network's MACs, shape (batch,).

    The gates cost something, so with every gate open the fraction is a little over 1.

    Example:
        >>> model = GatedResNet(widths=(4,), gate_hidden=2).eval()
        >>> _ = model(torch.randn(1, 1, 8, 8))
        >>> costs = mac_costs(model, (8, 8))
        >>> opened = int(model.decisions()[0].sum())
        >>> fraction = mac_fraction(model, model.decisions(), (8, 8))
        >>> bool(fraction == (2344 + 16 + 4608 * opened) / (2344 + 4608 * 4))
        True
    """
    return executed_macs(model, decisions, image_size) / mac_costs(model, image_size).ungated
