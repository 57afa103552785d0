"""The L0 penalty on gates; Batch-Shaping on gates needs no code of its own.

Batch-Shaping of a gate layer's distribution over the batch is the library's loss with the
paper's prior, one group per channel::

    batch_shaping_loss(gate.probabilities, Beta(0.6, 0.4), dim=0)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["l0_penalty"]


def l0_penalty(gates: Tensor | Sequence[Tensor]) -> Tensor:
    """The mean probability that a gate is on: the expected fraction of channels executed.

    .. math::

        L_0 = \\frac{1}{N C} \\sum_{n, c} P(g_{nc} = 1)

    Louizos, Welling and Kingma (2018) penalise a network's expected number of non-zero
    parameters, Σ P(gate ≠ 0), which their hard-concrete gates give in closed form. For a
    ``ChannelGate`` the same expectation is exact and simpler: a channel is on in training when
    z + logistic noise > 0, which happens with probability σ(z) (its ``on_probabilities``), so
    this penalty is their expected L0 norm of the gates divided by the number of gates, averaged
    over the inputs of the batch. It is differentiable without the straight-through estimator.
    Fed the noisy ``probabilities`` instead, it is a smoothed count of the sampled gates.

    Args:
        gates: probabilities in [0, 1] of shape (batch, channels), or a sequence of such
            tensors (one per gated layer, same batch size): every gate of every layer counts
            once.

    Returns:
        A scalar tensor in [0, 1].

    Example:
        >>> l0_penalty([torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5, 0.5]])])
        tensor(0.5000)
    """
    if isinstance(gates, Tensor):
        gates = [gates]
    if len(gates) == 0:
        raise ValueError("gates must hold at least one tensor, got an empty sequence")
    for index, tensor in enumerate(gates):
        if tensor.dim() != 2:
            raise ValueError(
                f"gates[{index}] must have shape (batch, channels), got {tuple(tensor.shape)}"
            )
    return torch.cat([tensor.flatten(1) for tensor in gates], dim=1).mean()
