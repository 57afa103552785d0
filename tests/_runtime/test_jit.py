"""numba's cache of the package's kernels is keyed on every kernel source file."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

import pytest
import torch

from batchshaping import betainc
from batchshaping._runtime import collector, jit


def test_the_package_kernels_cache_on_all_kernel_sources():
    betainc(2.0, 6.0, torch.tensor([0.3]))  # compiled (or loaded) with the package's locator
    from batchshaping.special import _cpu_elementwise

    locator = _cpu_elementwise.elementwise_kernel._cache._impl._locator
    assert isinstance(locator, jit._PackageSourcesStamp)
    assert locator.get_source_stamp() == ("batchshaping", jit.kernel_sources_stamp())


def test_the_stamp_follows_the_contents_of_every_source(tmp_path, monkeypatch):
    files = [tmp_path / "kernel.py", tmp_path / "helper.py"]
    for path in files:
        path.write_text("x = 1\n")
    monkeypatch.setattr(jit, "kernel_sources", lambda: files)
    jit.kernel_sources_stamp.cache_clear()
    try:
        before = jit.kernel_sources_stamp()
        jit.kernel_sources_stamp.cache_clear()
        assert jit.kernel_sources_stamp() == before  # the same contents, the same stamp
        files[1].write_text("x = 2\n")  # a helper changes, the kernel's own file does not
        jit.kernel_sources_stamp.cache_clear()
        assert jit.kernel_sources_stamp() != before
    finally:
        jit.kernel_sources_stamp.cache_clear()


def test_the_kernel_sources_are_the_files_numba_compiles():
    names = {path.name for path in jit.kernel_sources()}
    assert {"_scalar.py", "_cpu_elementwise.py", "_cpu_shared.py", "_ranking_kernels.py"} <= names


def test_a_callee_called_from_python_raises_instead_of_crashing():
    """Helpers compiled without a wrapper for Python (``callee``) raise TypeError when Python
    calls them, and work from compiled code."""

    @jit.callee
    def twice(value):
        return 2.0 * value

    @jit.jit
    def caller(value):
        return twice(value) + 1.0

    assert caller(3.0) == 7.0
    with pytest.raises(TypeError, match="twice is compiled only to be called"):
        twice(3.0)


def test_a_callee_is_compiled_into_its_callers_only():
    """A callee (here one calling another, both using numba's own overloads) gets a
    :class:`jit._LinkedOnlyLibrary`, optimised and compiled only inside its callers, and gives
    the right results there; the entry point that calls it gets numba's ordinary library."""
    import math

    import numpy as np

    @jit.callee
    def inner(value):
        return math.exp(min(value, 1.0))

    @jit.callee
    def outer(values, i):
        return inner(values[i]) + max(values[i], 0.0)

    @jit.jit
    def caller(values, out):
        for i in range(values.size):
            out[i] = outer(values, i)

    values = np.linspace(-3.0, 3.0, 13)
    out = np.empty_like(values)
    caller(values, out)
    expected = np.exp(np.minimum(values, 1.0)) + np.maximum(values, 0.0)
    np.testing.assert_allclose(out, expected, rtol=1e-15)
    for helper in (inner, outer):
        (compiled,) = helper.overloads.values()
        assert isinstance(compiled.library, jit._LinkedOnlyLibrary)
    (compiled,) = caller.overloads.values()
    assert not isinstance(compiled.library, jit._LinkedOnlyLibrary)


_WARM_LOAD_SCRIPT = """
import hashlib, sys
import torch
import batchshaping
from batchshaping import betainc
torch.manual_seed(0)
digest = hashlib.sha256()
x = torch.rand(100_000).requires_grad_()
loss = batchshaping.batch_shaping_loss(x, batchshaping.Beta(2.0, 6.0))
loss.backward()
digest.update(loss.detach().numpy().tobytes() + x.grad.numpy().tobytes())
x = torch.rand(4096, 8).requires_grad_()
a = torch.full((8,), 2.0, requires_grad=True)
b = torch.full((8,), 6.0, requires_grad=True)
loss = batchshaping.batch_shaping_loss(x, batchshaping.Beta(a, b), dim=0)
loss.backward()
for tensor in (loss.detach(), x.grad, a.grad, b.grad):
    digest.update(tensor.numpy().tobytes())
a = torch.rand(300, dtype=torch.float64) * 3 + 0.01  # per-element parameters
digest.update(betainc(a, a.flip(0), torch.rand(300, dtype=torch.float64)).numpy().tobytes())
print(digest.hexdigest(), "numba.np.arraymath" in sys.modules)
"""


def test_kernels_load_from_a_warm_cache_without_numba_registries(tmp_path):
    """A second process loads every kernel the first compiled (a loss on one long group, on
    groups along dim 0 with learned parameters, betainc per element) from numba's cache,
    without numba's registries (:class:`jit._PackageFunctionCache`), and computes the same bits."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}

    def run() -> tuple[str, str]:
        done = subprocess.run(
            [sys.executable, "-c", _WARM_LOAD_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        digest, registries = done.stdout.split()
        return digest, registries

    compiled, registries_to_compile = run()
    loaded, registries_to_load = run()
    assert registries_to_compile == "True"  # numba compiled, with its registries
    assert registries_to_load == "False"  # loaded from the cache alone
    assert loaded == compiled


def test_a_load_that_fails_without_the_registries_is_tried_again_numbas_way(monkeypatch):
    betainc(2.0, 6.0, torch.tensor([0.3]))  # numba's runtime is started
    from batchshaping.special import _cpu_elementwise

    cache = _cpu_elementwise.elementwise_kernel._cache
    assert isinstance(cache, jit._PackageFunctionCache)
    attempts = []

    def load(sig, target_context):
        attempts.append(sig)
        if len(attempts) == 1:
            raise KeyError("a registry's type")
        return "loaded"

    class Target:
        refreshed = 0

        def refresh(self):
            self.refreshed += 1

    target = Target()
    monkeypatch.setattr(cache, "_load_overload", load)
    assert cache.load_overload("signature", target) == "loaded"
    assert attempts == ["signature", "signature"]
    assert target.refreshed == 1  # the second attempt refreshed numba's registries first


def test_a_compile_pauses_the_garbage_collector_and_puts_it_back(monkeypatch):
    """numba compiles the package's functions with Python's cyclic garbage collector off (its
    collections took a sixth of a first loss), and the collector is as it was afterwards: on,
    or off where the user had turned it off."""
    seen = []
    numba_dispatcher = jit._PackageDispatcher.__mro__[1]
    original = numba_dispatcher.compile

    def watched(self, sig):
        seen.append(gc.isenabled())
        return original(self, sig)

    monkeypatch.setattr(numba_dispatcher, "compile", watched)
    for user_choice in (True, False):

        @jit.jit
        def kernel(value):
            return value + 1.0

        (gc.enable if user_choice else gc.disable)()
        try:
            assert kernel(1.0) == 2.0
            assert gc.isenabled() is user_choice
        finally:
            gc.enable()
    assert seen == [False, False]


@contextlib.contextmanager
def _paused_in_another_thread() -> Iterator[None]:
    """A pause of the collector in another thread (a compile there) for the block's duration."""
    entered, release = threading.Event(), threading.Event()

    def compile_elsewhere():
        with collector.paused_garbage_collection():
            entered.set()
            release.wait(30)

    other = threading.Thread(target=compile_elsewhere)
    other.start()
    try:
        assert entered.wait(30)
        yield
    finally:
        release.set()
        other.join(30)


def test_pauses_of_the_collector_nest_and_span_threads():
    """The collector comes back when the last pause of any thread ends, not the first."""
    assert gc.isenabled()
    with _paused_in_another_thread():
        with collector.paused_garbage_collection():
            with collector.paused_garbage_collection():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert not gc.isenabled()  # the other thread's pause goes on
    assert gc.isenabled()


def _report_collector(connection):
    connection.send(gc.isenabled())
    connection.close()


def test_a_child_forked_during_a_compile_gets_the_collector_back(forked_child):
    """A child forked while another thread of the parent compiled: that thread is not in the
    child, so nothing would turn the collector back on there."""
    with _paused_in_another_thread():
        assert forked_child(_report_collector) is True
