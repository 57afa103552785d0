"""GatedResNet: shapes, the gate's place in the block, training signal, bad input."""

from __future__ import annotations

import pytest
import torch

from batchshaping import batch_shaping_loss
from batchshaping.distributions import Beta
from batchshaping.gates import GatedBlock, GatedResNet, l0_penalty


def test_shapes_and_one_gate_per_block():
    model = GatedResNet(in_channels=3, num_classes=7, widths=(4, 6, 8), depth=2, stem_stride=2)
    logits = model(torch.randn(5, 3, 16, 16))
    assert logits.shape == (5, 7)
    assert len(model.blocks) == 6 and len(model.gates) == 6
    assert [tuple(p.shape) for p in model.probabilities()] == [(5, w) for w in (4, 4, 6, 6, 8, 8)]
    strides = [block.conv1.stride[0] for block in model.blocks]
    assert strides == [1, 1, 2, 1, 2, 1]


def test_a_closed_gate_removes_that_channel_of_conv1_output_and_conv2_input():
    torch.manual_seed(0)
    block = GatedBlock(4, 4).eval()
    x = torch.randn(3, 4, 6, 6)
    with torch.no_grad():
        block.gate.logit.bias.fill_(10.0)
        block.gate.logit.bias[1] = -10.0  # channel 1 closed for every input
        output = block(x)
        # The same block with channel 1 of conv1 and conv2 zeroed, no gate.
        hidden = torch.relu(block.bn1(block.conv1(x)))
        hidden[:, 1] = 0
        expected = torch.relu(block.bn2(block.conv2(hidden)) + x)
        torch.testing.assert_close(output, expected)
        changed = block.conv2.weight.clone()
        changed[:, 1] += 5.0  # conv2's weights from channel 1 no longer matter
        block.conv2.weight.copy_(changed)
        torch.testing.assert_close(block(x), output)


def test_gate_losses_train_the_gates():
    torch.manual_seed(1)
    model = GatedResNet(widths=(4, 8), gate_hidden=4)
    images = torch.randn(32, 1, 8, 8)
    model(images)
    probabilities = torch.cat(model.probabilities(), dim=1)
    loss = batch_shaping_loss(probabilities, Beta(0.6, 0.4), dim=0) + l0_penalty(
        model.on_probabilities()
    )
    loss.backward()
    for gate in model.gates:
        assert gate.logit.weight.grad is not None and gate.logit.weight.grad.abs().sum() > 0


def test_l0_penalty_closes_gates():
    torch.manual_seed(2)
    model = GatedResNet(widths=(4,), gate_hidden=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    images = torch.randn(16, 1, 6, 6)
    for _ in range(100):
        model(images)
        loss = l0_penalty(model.on_probabilities())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model(images)
    assert not model.decisions()[0].any()


def test_decisions_before_a_forward_raise():
    with pytest.raises(RuntimeError, match="forward"):
        GatedResNet(widths=(4,)).decisions()


@pytest.mark.parametrize(
    "arguments, name",
    [
        (dict(widths=()), "widths"),
        (dict(widths=(4, 0)), "widths"),
        (dict(depth=0), "depth"),
        (dict(stem_stride=0), "stem_stride"),
        (dict(gate_hidden=0), "hidden"),
        (dict(temperature=0.0), "temperature"),
        (dict(num_classes=0), "num_classes"),
    ],
)
def test_bad_arguments_raise_naming_them(arguments, name):
    with pytest.raises(ValueError, match=name):
        GatedResNet(**arguments)
