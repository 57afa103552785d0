"""prune() and the batch-1 path: outputs equal the gated model's; what is removed and kept."""

from __future__ import annotations

import pytest
import torch

from batchshaping.gates import (
    GatedResNet,
    GateStatistics,
    PrunedResNet,
    conditional_inference,
    gate_statistics,
    prune,
)


def _randomise_batch_norms(model: torch.nn.Module) -> None:
    """Running statistics and affine parameters away from their defaults, so folding matters."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                module.running_mean.normal_(0, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.3)


def _model_with_mixed_gates(seed: int = 0) -> tuple[GatedResNet, torch.Tensor]:
    """A model whose gates, on its images, include never-open, always-open and conditional ones."""
    torch.manual_seed(seed)
    model = GatedResNet(widths=(6, 8, 10), depth=1, stem_stride=1, gate_hidden=4).eval()
    _randomise_batch_norms(model)
    with torch.no_grad():
        for gate in model.gates:
            gate.logit.weight.mul_(20.0)  # logits that vary from input to input
            bias = gate.logit.bias
            bias.normal_(0, 0.5)
            bias[0] = -50.0  # closed for every input
            bias[1] = 50.0  # open for every input
        model.gates[1].logit.bias.fill_(-50.0)  # a block with every channel closed
    # Images whose brightness and contrast vary, so that the pooled features the gates read do.
    images = torch.randn(64, 1, 12, 12) * 3 * torch.rand(64, 1, 1, 1) + torch.randn(64, 1, 1, 1)
    return model, images


def _classes(statistics: GateStatistics) -> tuple[int, int, int]:
    fractions = statistics.all_on_fractions()
    return (
        int((fractions == 0).sum()),
        int((fractions == 1).sum()),
        int(((fractions > 0) & (fractions < 1)).sum()),
    )


def test_pruned_outputs_equal_the_gated_models_with_conditional_gates_kept():
    model, images = _model_with_mixed_gates()
    statistics = gate_statistics(model, images)
    never, always, conditional = _classes(statistics)
    assert never >= 3 + 8 and always >= 2 and conditional >= 5
    pruned = prune(model, statistics)
    assert isinstance(pruned, PrunedResNet)
    assert not pruned.training
    kept = [int((f > 0).sum()) for f in statistics.on_fraction]
    assert pruned.kept_channels == kept
    assert pruned.blocks[1].conv1 is None  # every channel of block 2 removed
    for block, fraction in zip(pruned.blocks, statistics.on_fraction, strict=True):
        # Conditional channels keep (that part of) their gate; other gates are gone.
        assert (block.gate is not None) == bool(((fraction > 0) & (fraction < 1)).any())
    assert sum(int(b.conditional.numel()) for b in pruned.blocks) == conditional
    with torch.no_grad():
        expected = model(images)
        torch.testing.assert_close(pruned(images), expected, atol=1e-5, rtol=1e-4)
        for index in range(8):
            image = images[index : index + 1]
            torch.testing.assert_close(
                conditional_inference(pruned, image),
                expected[index : index + 1],
                atol=1e-5,
                rtol=1e-4,
            )


def test_pruned_weights_are_physically_smaller():
    model, images = _model_with_mixed_gates(1)
    statistics = gate_statistics(model, images)
    pruned = prune(model, statistics)
    for block, gated, fraction in zip(
        pruned.blocks, model.blocks, statistics.on_fraction, strict=True
    ):
        kept = int((fraction > 0).sum())
        if kept:
            assert block.conv1.weight.shape == (kept, gated.conv1.in_channels, 3, 3)
            assert block.conv1.bias.shape == (kept,)  # batch norm folded, its entries sliced
            assert block.conv2.weight.shape == (gated.conv2.out_channels, kept, 3, 3)
        conditional = int(((fraction > 0) & (fraction < 1)).sum())
        if conditional:
            assert block.gate[-1].out_features == conditional
        else:
            assert block.gate is None
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in pruned.modules())


def test_a_gate_open_for_one_input_only_is_kept():
    # Such a gate counts as "always off" in the summary (<= 1%), but removing it would change
    # that input's output: prune keeps it.
    torch.manual_seed(2)
    model = GatedResNet(widths=(4,), gate_hidden=4).eval()
    _randomise_batch_norms(model)
    images = torch.randn(200, 1, 8, 8)
    with torch.no_grad():
        logits = model.gates[0].logits(model.stem(images))
        # Shift channel 0's logit so that exactly one input opens it.
        top = logits[:, 0].topk(2).values
        model.gates[0].logit.bias[0] -= (top[0] + top[1]) / 2
    statistics = gate_statistics(model, images)
    assert int(statistics.on_counts[0][0]) == 1
    assert statistics.summary()["always_off"] >= 0.25
    pruned = prune(model, statistics)
    assert pruned.kept_channels[0] == int((statistics.on_counts[0] > 0).sum())
    with torch.no_grad():
        torch.testing.assert_close(pruned(images), model(images), atol=1e-5, rtol=1e-4)


def test_batch_one_path_gathers_only_open_channels():
    model, images = _model_with_mixed_gates(3)
    pruned = prune(model, gate_statistics(model, images))
    calls = []
    original = torch.nn.functional.conv2d

    def spy(input, weight, *args, **kwargs):
        calls.append(tuple(weight.shape))
        return original(input, weight, *args, **kwargs)

    torch.nn.functional.conv2d = spy
    try:
        conditional_inference(pruned, images[:1])
    finally:
        torch.nn.functional.conv2d = original
    block = pruned.blocks[0]
    opened = int(block.open_conditional(pruned.stem(images[:1])).sum()) + block.always_on.numel()
    assert (opened, 6, 3, 3) in calls  # conv1 of block 1 with only the open output channels
    assert (6, opened, 3, 3) in calls


def test_bad_input_raises():
    model, images = _model_with_mixed_gates()
    statistics = gate_statistics(model, images)
    other = GatedResNet(widths=(6, 8))
    with pytest.raises(ValueError, match="gate_statistics"):
        prune(other, statistics)
    with pytest.raises(ValueError, match="model"):
        prune(torch.nn.Linear(2, 2), statistics)
    pruned = prune(model, statistics)
    with pytest.raises(ValueError, match="image"):
        conditional_inference(pruned, images[:2])
    with pytest.raises(ValueError, match="PrunedResNet"):
        conditional_inference(model, images[:1])
    with pytest.raises(ValueError, match="at least one input"):
        gate_statistics(model, [])
