"""A small residual CNN whose blocks gate the channels of their first convolution."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from batchshaping.gates.channel_gate import ChannelGate

__all__ = ["GatedBlock", "GatedResNet"]


class GatedBlock(nn.Module):
    """A basic residual block with a channel gate between its two convolutions.

    .. math::

        y = \\mathrm{ReLU}\\big(\\mathrm{BN}_2(\\mathrm{conv}_2(g(x) \\odot
            \\mathrm{ReLU}(\\mathrm{BN}_1(\\mathrm{conv}_1 x)))) + \\mathrm{shortcut}(x)\\big)

    The gate g reads the block input x and multiplies the output channels of conv1: a closed gate
    removes that channel of conv1's output and of conv2's input. The shortcut is the identity, or
    a strided 1x1 convolution with batch norm where the shape changes.

    Args:
        in_channels: channels of x.
        width: channels of both convolutions' outputs (and of the gate).
        stride: stride of conv1 and of the shortcut.
        gate_hidden: hidden width of the gate.
        temperature: the gate's temperature.
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        gate_hidden: int = 16,
        temperature: float = 2 / 3,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.gate = ChannelGate(in_channels, width, hidden=gate_hidden, temperature=temperature)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
            )

    def forward(self, x: Tensor) -> Tensor:
        gates = self.gate(x)
        hidden = torch.relu(self.bn1(self.conv1(x))) * gates[:, :, None, None]
        return torch.relu(self.bn2(self.conv2(hidden)) + self.shortcut(x))


class GatedResNet(nn.Module):
    """A residual CNN of gated blocks: stem, stages of ``depth`` blocks, pooling, linear head.

    The stem is a 3x3 convolution (stride ``stem_stride``) with batch norm and ReLU to
    ``widths[0]`` channels; stage i has ``depth`` ``GatedBlock``s of width ``widths[i]``, the first
    of each stage after the first with stride 2; global average pooling and a linear layer give
    the class logits.

    Args:
        in_channels: channels of the images (default 1).
        num_classes: classes (default 10).
        widths: width of each stage (default (16, 32, 64)).
        depth: blocks per stage (default 1), >= 1.
        stem_stride: stride of the stem (default 1).
        gate_hidden: hidden width of every gate (default 16).
        temperature: temperature of every gate (default 2/3).

    Example:
        >>> model = GatedResNet(widths=(4, 8)).eval()
        >>> model(torch.randn(3, 1, 8, 8)).shape
        torch.Size([3, 10])
        >>> [tuple(d.shape) for d in model.decisions()]
        [(3, 4), (3, 8)]
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (16, 32, 64),
        depth: int = 1,
        stem_stride: int = 1,
        gate_hidden: int = 16,
        temperature: float = 2 / 3,
    ) -> None:
        super().__init__()
        widths = tuple(int(width) for width in widths)
        if len(widths) == 0 or min(widths) < 1:
            raise ValueError(f"widths must be one or more integers >= 1, got {widths}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if stem_stride < 1:
            raise ValueError(f"stem_stride must be >= 1, got {stem_stride}")
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.widths = widths
        self.depth = depth
        self.stem_stride = stem_stride
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        blocks = []
        channels = widths[0]
        for stage, width in enumerate(widths):
            for index in range(depth):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(GatedBlock(channels, width, stride, gate_hidden, temperature))
                channels = width
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(channels, num_classes)

    @property
    def gates(self) -> list[ChannelGate]:
        """The gate of every block, in order."""
        return [block.gate for block in self.blocks]

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (batch, num_classes) of images (batch, in_channels, H, W)."""
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(dim=(2, 3)))

    def probabilities(self) -> list[Tensor]:
        """The last forward's gate probabilities, one (batch, width) tensor per block."""
        return [_last(gate, "probabilities") for gate in self.gates]

    def on_probabilities(self) -> list[Tensor]:
        """The last forward's probabilities that each gate is on, one tensor per block."""
        return [_last(gate, "on_probabilities") for gate in self.gates]

    def decisions(self) -> list[Tensor]:
        """The last forward's hard decisions (bool), one (batch, width) tensor per block."""
        return [_last(gate, "decisions") for gate in self.gates]


def _last(gate: ChannelGate, name: str) -> Tensor:
    value = getattr(gate, name)
    if value is None:
        raise RuntimeError(f"no {name} yet: run the model forward first")
    return value
