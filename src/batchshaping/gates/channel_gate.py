"""A channel gate: per input, switch each output channel of a convolution on or off.

The gate reads the block input, pools it to one vector per input, and computes one logit per
output channel. In training it samples a hard 0/1 decision per channel by thresholding the logit
plus logistic noise (a Gumbel-sigmoid at temperature ``temperature``), with the sigmoid's gradient
in the backward (straight-through); at evaluation it opens a channel where sigmoid(logit) > 0.5,
without noise.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ChannelGate", "decide", "straight_through"]


def decide(probabilities: Tensor) -> Tensor:
    """The hard decisions: True where ``probabilities > 0.5``.

    One rule for training (noisy probabilities), evaluation (sigmoid of the logits), the pruned
    model and the batch-1 path, so that they agree wherever their probabilities agree.
    """
    return probabilities > 0.5


class _StraightThrough(torch.autograd.Function):
    """Forward: ``decide(probabilities)`` as exactly 0.0 or 1.0; backward: the identity.

    The common form ``hard + soft - soft.detach()`` rounds: in float32, 1 + p - p is 0.99999994
    for a share of the values p, and a Beta(0.6, 0.4) prior's density near 1 turns that into a
    huge Batch-Shaping gradient. Here the forward value is computed, not reconstructed.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(probabilities: Tensor) -> Tensor:
        return decide(probabilities).to(probabilities.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:
        return grad_output


def straight_through(probabilities: Tensor) -> Tensor:
    """Hard gates, exactly 0.0 or 1.0, whose gradient is passed to ``probabilities`` unchanged.

    .. math::

        g = [p > 0.5], \\qquad \\partial g / \\partial p := 1

    A surrogate gradient (the straight-through estimator): the true derivative of the step is
    zero almost everywhere.

    Args:
        probabilities: gate probabilities, any shape.

    Returns:
        A tensor of the same shape and dtype holding only 0.0 and 1.0.

    Example:
        >>> p = torch.tensor([0.2, 0.7], requires_grad=True)
        >>> g = straight_through(p)
        >>> g.sum().backward()
        >>> g.detach(), p.grad
        (tensor([0., 1.]), tensor([1., 1.]))
    """
    return _StraightThrough.apply(probabilities)


class ChannelGate(nn.Module):
    """Hard per-input gates on ``out_channels`` channels, computed from a block's input.

    .. math::

        z = W_2\\,\\mathrm{ReLU}(\\mathrm{BN}(W_1\\,\\mathrm{pool}(x))) + b_2, \\qquad
        p = \\sigma\\big((z + \\log u - \\log(1 - u)) / \\tau\\big),\\; u \\sim U(0, 1), \\qquad
        g = [p > 0.5]

    in training (straight-through gradient to p); at evaluation p = σ(z), no noise. A channel is
    on in training with probability σ(z) whatever τ, which is exposed as ``on_probabilities``.

    Args:
        in_channels: channels of the block input that the gate reads.
        out_channels: channels it gates (one logit each).
        hidden: width of the hidden layer (default 16), >= 1.
        temperature: τ of the noisy sigmoid (default 2/3), > 0.
        initial_logit: bias of every logit at initialisation (default 2: gates start on with
            probability 0.88, so the network first learns with most of its channels).

    After each forward the gate holds, with shape (batch, out_channels):

    - ``probabilities``: σ((z + noise) / τ) in training, σ(z) at evaluation, attached to the
      graph; what Batch-Shaping shapes;
    - ``on_probabilities``: σ(z), the probability that each channel is on, attached to the
      graph; what the L0 penalty counts;
    - ``decisions``: the hard decisions (bool), detached.

    Example:
        >>> gate = ChannelGate(8, 4).eval()
        >>> gate(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 4])
        >>> sorted(gate(torch.randn(2, 8, 5, 5)).unique().tolist()) in ([0.0], [1.0], [0.0, 1.0])
        True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden: int = 16,
        temperature: float = 2 / 3,
        initial_logit: float = 2.0,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden = hidden
        self.temperature = float(temperature)
        self.project = nn.Linear(in_channels, hidden, bias=False)
        self.norm = nn.BatchNorm1d(hidden)
        self.logit = nn.Linear(hidden, out_channels)
        nn.init.constant_(self.logit.bias, initial_logit)
        self.probabilities: Tensor | None = None
        self.on_probabilities: Tensor | None = None
        self.decisions: Tensor | None = None

    def logits(self, x: Tensor) -> Tensor:
        """The clean logits z, shape (batch, out_channels), of a block input (batch, C, H, W)."""
        return self.logit(torch.relu(self.norm(self.project(x.mean(dim=(2, 3))))))

    def forward(self, x: Tensor) -> Tensor:
        """Gates of shape (batch, out_channels), each exactly 0.0 or 1.0."""
        logits = self.logits(x)
        self.on_probabilities = torch.sigmoid(logits)
        if self.training:
            uniform = torch.rand_like(logits).clamp_(torch.finfo(logits.dtype).tiny, 1.0)
            noise = torch.log(uniform) - torch.log1p(-uniform)
            probabilities = torch.sigmoid((logits + noise) / self.temperature)
        else:
            probabilities = self.on_probabilities
        self.probabilities = probabilities
        gates = straight_through(probabilities)
        self.decisions = gates.detach() > 0.5
        return gates

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, hidden={self.hidden}, "
            f"temperature={self.temperature:g}"
        )
