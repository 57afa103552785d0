"""MACs from the executed gates, against a hand count and against counting hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from batchshaping.gates import GatedResNet, executed_macs, mac_costs, mac_fraction


def test_against_a_hand_count():
    # 1 x 8 x 8 images; stem 3x3 to 4 channels (stride 1); block 1: 4 -> 4, stride 1, identity
    # shortcut; block 2: 4 -> 6, stride 2 (4 x 4 outputs), 1x1 shortcut; gates with 2 hidden
    # units; head 6 -> 10.
    model = GatedResNet(widths=(4, 6), gate_hidden=2)
    stem = 9 * 1 * 4 * 64
    block1_channel = 9 * 4 * 64 + 9 * 4 * 64  # one conv1 output + one conv2 input
    block2_channel = 9 * 4 * 16 + 9 * 6 * 16
    shortcut = 4 * 6 * 16
    gates = (4 * 2 + 2 * 4) + (4 * 2 + 2 * 6)
    head = 6 * 10
    decisions = [
        torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool),
        torch.tensor(
            [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]], dtype=torch.bool
        ),
    ]
    fixed = stem + shortcut + head + gates
    expected = torch.tensor(
        [
            fixed + 2 * block1_channel + 3 * block2_channel,
            fixed + 4 * block1_channel + 6 * block2_channel,
            fixed + 0 * block1_channel + 1 * block2_channel,
        ],
        dtype=torch.float64,
    )
    assert torch.equal(executed_macs(model, decisions, (8, 8)), expected)
    ungated = stem + shortcut + head + 4 * block1_channel + 6 * block2_channel
    assert mac_costs(model, (8, 8)).ungated == ungated
    torch.testing.assert_close(mac_fraction(model, decisions, (8, 8)), expected / ungated)


def _hooked_macs(model: nn.Module, image: torch.Tensor) -> int:
    """MACs of one image through every Conv2d and Linear, counted from their shapes at run time."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += k * module.in_channels * output.shape[1] * output.shape[2] * output.shape[3]
        else:
            total += module.in_features * module.out_features

    handles = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    with torch.no_grad():
        model(image)
    for handle in handles:
        handle.remove()
    return total


@pytest.mark.parametrize("size", [(8, 8), (28, 28), (9, 13)])
def test_all_gates_open_costs_the_dense_network_plus_the_gates(size):
    model = GatedResNet(widths=(4, 8, 16), depth=2, stem_stride=2).eval()
    image = torch.randn(1, 1, *size)
    hooked = _hooked_macs(model, image)  # every channel runs in the dense forward
    costs = mac_costs(model, size)
    assert costs.ungated + costs.gates == hooked
    everything = [torch.ones(1, w, dtype=torch.bool) for w in costs.widths]
    assert float(executed_macs(model, everything, size)) == hooked
    nothing = [torch.zeros(1, w, dtype=torch.bool) for w in costs.widths]
    assert float(executed_macs(model, nothing, size)) == costs.fixed + costs.gates


def test_decisions_of_the_wrong_shape_raise():
    model = GatedResNet(widths=(4, 6))
    with pytest.raises(ValueError, match="one tensor per block"):
        executed_macs(model, [torch.ones(2, 4)], (8, 8))
    with pytest.raises(ValueError, match=r"decisions\[1\]"):
        executed_macs(model, [torch.ones(2, 4), torch.ones(2, 5)], (8, 8))
