"""Inference that skips closed channels: a pruned dense model and a batch-1 gathering path.

Masking a channel does not make a dense convolution cheaper: every channel is still computed,
then multiplied by zero. ``prune`` builds a smaller network instead, with the channels that never
opened removed and the gates that always opened folded away, batch norm folded into the
convolutions; ``conditional_inference`` runs it on one input, gathering the weights of the
channels that input's gates open.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from batchshaping.gates.channel_gate import decide
from batchshaping.gates.resnet import GatedBlock, GatedResNet
from batchshaping.gates.usage import GateStatistics

__all__ = ["PrunedBlock", "PrunedResNet", "conditional_inference", "prune"]


def _fold(
    conv: nn.Conv2d,
    norm: nn.BatchNorm2d,
    outputs: Tensor | None = None,
    inputs: Tensor | None = None,
) -> nn.Conv2d:
    """``norm(conv(x))`` in evaluation mode as one convolution with a bias, optionally keeping
    only the output channels ``outputs`` and the input channels ``inputs``."""
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    bias = norm.bias.double() - norm.running_mean.double() * scale
    weight = conv.weight.double() * scale[:, None, None, None]
    if outputs is not None:
        weight, bias = weight[outputs], bias[outputs]
    if inputs is not None:
        weight = weight[:, inputs]
    folded = nn.Conv2d(
        weight.shape[1],
        weight.shape[0],
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=True,
    )
    dtype = conv.weight.dtype
    with torch.no_grad():
        folded.weight.copy_(weight.to(dtype))
        folded.bias.copy_(bias.to(dtype))
    return folded.to(conv.weight.device)


class PrunedBlock(nn.Module):
    """A ``GatedBlock`` with its never-open channels removed and batch norm folded.

    ``conv1`` and ``conv2`` hold the kept channels (``None`` when no channel is kept: the
    residual branch is then the constant ``branch_bias``, conv2's folded bias). ``gate`` computes
    the logits of the conditional channels only (``None`` when there are none); ``conditional``
    holds their positions among the kept channels and ``always_on`` the positions of the others.
    """

    def __init__(self, block: GatedBlock, on_fraction: Tensor) -> None:
        super().__init__()
        kept = torch.nonzero(on_fraction > 0).flatten()
        conditional = torch.nonzero((on_fraction[kept] > 0) & (on_fraction[kept] < 1)).flatten()
        always_on = torch.nonzero(on_fraction[kept] >= 1).flatten()
        conv2 = _fold(block.conv2, block.bn2)
        self.register_buffer("branch_bias", conv2.bias.detach().clone())
        self.register_buffer("conditional", conditional)
        self.register_buffer("always_on", always_on)
        self.kept_channels = int(kept.numel())
        self.conv1: nn.Conv2d | None = None
        self.conv2: nn.Conv2d | None = None
        if self.kept_channels:
            self.conv1 = _fold(block.conv1, block.bn1, outputs=kept)
            self.conv2 = _fold(block.conv2, block.bn2, inputs=kept)
        self.gate: nn.Sequential | None = None
        if conditional.numel():
            source = block.gate
            logit = nn.Linear(source.hidden, int(conditional.numel()))
            rows = kept[conditional]
            with torch.no_grad():
                logit.weight.copy_(source.logit.weight[rows])
                logit.bias.copy_(source.logit.bias[rows])
            self.gate = nn.Sequential(
                copy.deepcopy(source.project), copy.deepcopy(source.norm), nn.ReLU(), logit
            ).to(source.logit.weight.device)
        self.shortcut: nn.Module = nn.Identity()
        if not isinstance(block.shortcut, nn.Identity):
            self.shortcut = _fold(block.shortcut[0], block.shortcut[1])
        self.stride = block.conv1.stride

    def open_conditional(self, x: Tensor) -> Tensor:
        """Decisions (batch, conditional channels) of the kept gate on the block input x."""
        assert self.gate is not None
        return decide(torch.sigmoid(self.gate(x.mean(dim=(2, 3)))))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.shortcut(x)
        if self.conv1 is None:
            return torch.relu(shortcut + self.branch_bias[:, None, None])
        hidden = torch.relu(self.conv1(x))
        if self.gate is not None:
            multiplier = hidden.new_ones(hidden.shape[:2])
            multiplier[:, self.conditional] = self.open_conditional(x).to(hidden.dtype)
            hidden = hidden * multiplier[:, :, None, None]
        return torch.relu(self.conv2(hidden) + shortcut)

    def forward_gathered(self, x: Tensor) -> Tensor:
        """The block on one input, computing only the channels its gates open."""
        if self.gate is None:
            return self(x)
        shortcut = self.shortcut(x)
        opened = self.open_conditional(x)[0]
        index = torch.cat([self.always_on, self.conditional[opened]])
        if index.numel() == 0:
            return torch.relu(shortcut + self.branch_bias[:, None, None])
        assert self.conv1 is not None and self.conv2 is not None
        weight1 = self.conv1.weight.index_select(0, index)
        bias1 = self.conv1.bias.index_select(0, index)
        hidden = torch.relu(F.conv2d(x, weight1, bias1, stride=self.stride, padding=1))
        weight2 = self.conv2.weight.index_select(1, index)
        return torch.relu(F.conv2d(hidden, weight2, self.conv2.bias, padding=1) + shortcut)


class PrunedResNet(nn.Module):
    """The dense network ``prune`` returns: folded stem, ``PrunedBlock``s, the same head."""

    def __init__(self, model: GatedResNet, statistics: GateStatistics) -> None:
        super().__init__()
        stem_conv, stem_norm = model.stem[0], model.stem[1]
        self.stem = nn.Sequential(_fold(stem_conv, stem_norm), nn.ReLU())
        self.blocks = nn.ModuleList(
            PrunedBlock(block, fraction)
            for block, fraction in zip(model.blocks, statistics.on_fraction, strict=True)
        )
        self.head = copy.deepcopy(model.head)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(dim=(2, 3)))

    @property
    def kept_channels(self) -> list[int]:
        """Channels kept per block (always on or conditional)."""
        return [block.kept_channels for block in self.blocks]


def prune(model: GatedResNet, gate_statistics: GateStatistics) -> PrunedResNet:
    """A smaller dense copy of ``model`` for inference, with fixed gates compiled away.

    A channel whose gate never opened on the statistics' inputs is removed (conv1's output, its
    batch-norm entries, conv2's input); a gate that always opened is dropped and its channel kept
    unconditionally; a gate that opened for some inputs only is kept, computing the logits of
    those channels alone. Batch norm (evaluation mode) is folded into the convolutions.

    On every input the statistics were counted on, the pruned model's output equals the gated
    model's in evaluation mode up to float rounding. Pruning uses exact counts, not the 1% and
    99% thresholds of ``GateStatistics.summary``: a channel that opened for even one of those
    inputs is conditional and stays. On other inputs a removed or folded gate might have decided
    otherwise; count the statistics on data like the data to be served.

    Args:
        model: a trained ``GatedResNet``.
        gate_statistics: its ``gate_statistics`` on representative inputs.

    Returns:
        A ``PrunedResNet`` in evaluation mode (no gradients needed; weights are copies).

    Example:
        >>> from batchshaping.gates import gate_statistics
        >>> model = GatedResNet(widths=(4, 8)).eval()
        >>> images = torch.randn(16, 1, 8, 8)
        >>> pruned = prune(model, gate_statistics(model, images))
        >>> torch.allclose(pruned(images), model(images), atol=1e-5)
        True
    """
    if not isinstance(model, GatedResNet):
        raise ValueError(f"model must be a GatedResNet, got {type(model).__name__}")
    widths = [block.conv1.out_channels for block in model.blocks]
    counted = [int(counts.numel()) for counts in gate_statistics.on_counts]
    if counted != widths:
        raise ValueError(
            f"gate_statistics must count the model's gates (widths {widths}), got widths {counted}"
        )
    with torch.no_grad():
        return PrunedResNet(model, gate_statistics)


def conditional_inference(model: PrunedResNet, image: Tensor) -> Tensor:
    """Class logits (1, classes) of one image, executing only the channels its gates open.

    Each block with conditional gates computes them first, gathers the weights of the open
    channels (conv1's output rows and conv2's input columns) and convolves with those alone, so
    a closed conditional channel costs nothing, unlike a mask.

    Args:
        model: a ``PrunedResNet`` from ``prune``.
        image: one image, shape (1, C, H, W).

    Returns:
        The logits, shape (1, classes): equal to ``model(image)`` up to float rounding.

    Example:
        >>> from batchshaping.gates import gate_statistics
        >>> model = GatedResNet(widths=(4, 8)).eval()
        >>> images = torch.randn(16, 1, 8, 8)
        >>> pruned = prune(model, gate_statistics(model, images))
        >>> torch.allclose(conditional_inference(pruned, images[:1]), model(images[:1]), atol=1e-5)
        True
    """
    if not isinstance(model, PrunedResNet):
        raise ValueError(f"model must be a PrunedResNet (see prune), got {type(model).__name__}")
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"image must have shape (1, C, H, W), got {tuple(image.shape)}")
    with torch.no_grad():
        x = model.stem(image)
        for block in model.blocks:
            x = block.forward_gathered(x)
        return model.head(x.mean(dim=(2, 3)))
