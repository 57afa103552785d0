"""Conditionally gated networks: channel gates, the L0 penalty, a gated ResNet, MACs, pruning.

Batch-Shaping on a layer of gates is the library's loss with the paper's prior, one
distribution per channel over the batch::

    from batchshaping import batch_shaping_loss
    from batchshaping.distributions import Beta

    loss = batch_shaping_loss(gate.probabilities, Beta(0.6, 0.4), dim=0)
"""

from batchshaping.gates.channel_gate import ChannelGate, decide, straight_through
from batchshaping.gates.macs import MacCosts, executed_macs, mac_costs, mac_fraction
from batchshaping.gates.penalties import l0_penalty
from batchshaping.gates.pruning import PrunedBlock, PrunedResNet, conditional_inference, prune
from batchshaping.gates.resnet import GatedBlock, GatedResNet
from batchshaping.gates.usage import ALWAYS_OFF, ALWAYS_ON, GateStatistics, gate_statistics

__all__ = [
    "ALWAYS_OFF",
    "ALWAYS_ON",
    "ChannelGate",
    "GateStatistics",
    "GatedBlock",
    "GatedResNet",
    "MacCosts",
    "PrunedBlock",
    "PrunedResNet",
    "conditional_inference",
    "decide",
    "executed_macs",
    "gate_statistics",
    "l0_penalty",
    "mac_costs",
    "mac_fraction",
    "prune",
    "straight_through",
]
