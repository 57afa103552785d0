"""ChannelGate: exact hard gates, the straight-through gradient, evaluation mode, bad input."""

from __future__ import annotations

import pytest
import torch

from batchshaping import batch_shaping_loss
from batchshaping.distributions import Beta
from batchshaping.gates import ChannelGate, decide, l0_penalty, straight_through


def test_straight_through_forward_is_exactly_zero_or_one_in_float32():
    torch.manual_seed(0)
    logits = torch.randn(200_000) * 6
    probabilities = torch.sigmoid(logits)
    gates = straight_through(probabilities)
    assert gates.dtype == torch.float32
    exact = (gates == 0.0) | (gates == 1.0)
    assert bool(exact.all())
    assert torch.equal(gates, (probabilities > 0.5).float())
    # The trick this replaces is not exact: 1 + p - p rounds below 1 for some p.
    naive = (probabilities > 0.5).float() + probabilities - probabilities.detach()
    assert int(((naive != 0.0) & (naive != 1.0)).sum()) > 1000


def test_gate_outputs_in_training_are_exactly_zero_or_one():
    torch.manual_seed(1)
    gate = ChannelGate(8, 64).train()
    for _ in range(20):
        gates = gate(torch.randn(128, 8, 4, 4) * 3)
        assert bool(((gates == 0.0) | (gates == 1.0)).all())
        assert torch.equal(gates.bool(), gate.decisions)


def test_straight_through_gradient_is_the_sigmoids():
    torch.manual_seed(2)
    gate = ChannelGate(4, 6, hidden=3, temperature=0.5).train()
    x = torch.randn(32, 4, 3, 3)
    weights = torch.randn(32, 6)
    gates = gate(x)
    # d gates / d noisy logits = sigmoid'(noisy / t) / t, the chain running through the logits.
    (gates * weights).sum().backward()
    observed = gate.logit.bias.grad.clone()
    p = gate.probabilities.detach()
    expected = (weights * p * (1 - p) / gate.temperature).sum(dim=0)
    torch.testing.assert_close(observed, expected)


def test_probabilities_are_the_noisy_sigmoid_and_decisions_threshold_them():
    torch.manual_seed(3)
    gate = ChannelGate(5, 7, temperature=0.3).train()
    x = torch.randn(1000, 5, 2, 2)
    gate(x)
    assert gate.probabilities.shape == (1000, 7)
    assert gate.probabilities.requires_grad
    assert torch.equal(gate.decisions, decide(gate.probabilities))
    # In training a channel is on with probability sigmoid(z) whatever the temperature.
    with torch.no_grad():
        on = torch.sigmoid(gate.logits(x))
    observed = gate.decisions.double().mean()
    assert abs(float(observed) - float(on.double().mean())) < 0.02
    torch.testing.assert_close(gate.on_probabilities.detach(), on)


def test_evaluation_has_no_noise_and_opens_where_sigmoid_exceeds_half():
    torch.manual_seed(4)
    gate = ChannelGate(6, 10, initial_logit=0.0).eval()
    x = torch.randn(64, 6, 3, 3)
    with torch.no_grad():
        first, second = gate(x), gate(x)
    assert torch.equal(first, second)
    with torch.no_grad():
        logits = gate.logits(x)
    assert torch.equal(first.bool(), torch.sigmoid(logits) > 0.5)
    assert 0.1 < float(first.mean()) < 0.9  # both decisions occur
    torch.testing.assert_close(gate.probabilities, torch.sigmoid(logits))


def test_batch_shaping_on_exact_gates_keeps_gradients_bounded():
    # Feeding the loss the probabilities, not the hard gates: its gradient stays moderate.
    torch.manual_seed(5)
    logits = torch.randn(1024, 1, requires_grad=True)
    loss = batch_shaping_loss(torch.sigmoid(logits), Beta(0.6, 0.4), dim=0)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert float(logits.grad.abs().max()) < 0.1


def test_l0_penalty_is_the_mean_on_probability():
    torch.manual_seed(6)
    first, second = torch.rand(8, 3), torch.rand(8, 5)
    expected = (first.sum() + second.sum()) / (8 * 8)
    torch.testing.assert_close(l0_penalty([first, second]), expected)
    torch.testing.assert_close(l0_penalty(first), first.mean())
    probabilities = torch.rand(4, 2, requires_grad=True)
    l0_penalty(probabilities).backward()
    torch.testing.assert_close(probabilities.grad, torch.full((4, 2), 1 / 8))


def test_l0_penalty_counts_expected_open_gates():
    # Louizos et al.'s L0: the expected number of non-zero gates; here, divided by the count.
    torch.manual_seed(7)
    gate = ChannelGate(3, 20).train()
    x = torch.randn(4000, 3, 2, 2)
    gate(x)
    expected_fraction = float(l0_penalty(gate.on_probabilities.detach()))
    assert abs(float(gate.decisions.double().mean()) - expected_fraction) < 0.01


@pytest.mark.parametrize(
    "arguments, name",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(hidden=0), "hidden"),
        (dict(in_channels=0), "in_channels"),
        (dict(out_channels=0), "out_channels"),
    ],
)
def test_bad_arguments_raise_naming_them(arguments, name):
    settings = dict(in_channels=4, out_channels=4) | arguments
    with pytest.raises(ValueError, match=name):
        ChannelGate(**settings)


@pytest.mark.parametrize(
    "gates, name",
    [([], "gates"), (torch.rand(4), r"gates\[0\]"), ([torch.rand(2, 2), torch.rand(2)], r"\[1\]")],
)
def test_l0_penalty_rejects_bad_shapes(gates, name):
    with pytest.raises(ValueError, match=name):
        l0_penalty(gates)


def test_straight_through_works_under_vmap():
    p = torch.rand(3, 5)
    assert torch.equal(torch.func.vmap(straight_through)(p), (p > 0.5).float())
