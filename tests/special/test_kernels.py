"""The kernel registry: ``kernel(name)`` and ``available_kernels()``."""

from __future__ import annotations

import threading

import pytest
import torch

from batchshaping import betainc, special
from batchshaping.special import kernels


def _spy(monkeypatch):
    """Record the name of the kernel each betainc call resolves to."""
    seen = []
    original = kernels.resolve

    def resolve(device_type):
        seen.append(kernels.chosen_kernel())
        return original(device_type)

    monkeypatch.setattr(kernels, "resolve", resolve)
    return seen


def test_the_cpu_kernels_are_available_here():
    assert {"cpu", "cpu-elementwise", "cpu-shared", "portable"} <= set(special.available_kernels())


def test_every_kernel_gives_the_same_values():
    a = torch.tensor([[0.5], [3.0]], dtype=torch.float64)
    x = torch.linspace(0.01, 0.99, 300, dtype=torch.float64).expand(2, 300)
    results = {}
    for name in special.available_kernels():
        with special.kernel(name):
            results[name] = betainc(a, 2.5, x)
    for value in results.values():
        torch.testing.assert_close(value, results["cpu-elementwise"], rtol=1e-12, atol=1e-14)
    assert not torch.equal(results["cpu-elementwise"][0], results["cpu-elementwise"][1])


def test_choice_nests_and_is_restored(monkeypatch):
    seen = _spy(monkeypatch)
    x = torch.tensor([0.3])
    betainc(2.0, 3.0, x)
    with special.kernel("portable"):
        betainc(2.0, 3.0, x)
        with special.kernel("cpu-elementwise"):
            betainc(2.0, 3.0, x)
        betainc(2.0, 3.0, x)
    betainc(2.0, 3.0, x)
    assert seen == [None, "portable", "cpu-elementwise", "portable", None]


def test_choice_is_restored_after_an_error(monkeypatch):
    seen = _spy(monkeypatch)
    with pytest.raises(RuntimeError, match="inside"), special.kernel("portable"):
        raise RuntimeError("inside")
    betainc(2.0, 3.0, torch.tensor([0.3]))
    assert seen == [None]


def test_choice_is_per_thread(monkeypatch):
    seen = _spy(monkeypatch)
    entered, done = threading.Event(), threading.Event()

    def other_thread():
        entered.wait()
        betainc(2.0, 3.0, torch.tensor([0.3]))
        done.set()

    worker = threading.Thread(target=other_thread)
    worker.start()
    with special.kernel("portable"):
        entered.set()
        done.wait(timeout=60)
        betainc(2.0, 3.0, torch.tensor([0.3]))
    worker.join()
    assert seen == [None, "portable"]


def test_unknown_kernel_is_a_value_error_listing_the_names():
    with pytest.raises(ValueError, match=r"unknown kernel 'gpu'.*portable"):
        with special.kernel("gpu"):
            pass


def test_a_kernel_on_a_device_it_does_not_run_on_names_both():
    message = "'cpu' runs on cpu tensors, not meta"
    with special.kernel("cpu"), pytest.raises(ValueError, match=message):
        kernels.resolve("meta")


def test_a_kernel_that_cannot_run_here_is_refused(monkeypatch):
    monkeypatch.setitem(kernels._CHOICE._available, "cpu-shared", lambda: False)
    assert "cpu-shared" not in special.available_kernels()
    with pytest.raises(ValueError, match="cannot run in this process"):
        with special.kernel("cpu-shared"):
            pass
