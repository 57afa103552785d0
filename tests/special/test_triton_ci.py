"""The Triton kernel checked without a GPU, two ways.

1. Through the accuracy tests of ``test_betainc.py``, the whole-range oracle of
   ``test_betainc_oracle.py`` (every row of its table, float64 and float32, values and
   gradients) and the tests of ``test_triton.py``, with ``TRITON_INTERPRET=1``, on CPU tensors,
   through the kernel registry: in a process of its own, since triton reads the variable when
   the kernel is decorated.
2. An ahead-of-time compile of every variant of the kernel for sm_80 and sm_90 (Triton's whole
   pipeline, ptxas included, runs without a GPU), asserting that it compiles and spills no
   registers.

The interpreter's process is started before the compiles and works while they run: the two
checks take the time of the longer (the interpreter's, about a minute) on two cores.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None,
    reason="triton is not installed (pip install 'batchshaping[triton]')",
)

ROOT = Path(__file__).resolve().parents[2]
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
TIMEOUT = 600

# Left out under the interpreter, where every operation on a block costs ~0.1 ms of Python: the
# hypothesis properties (150 examples each, about two minutes of the interpreter).
_LEFT_OUT = ("test_reflection", "test_monotone_in_x", "test_recurrence_in_a")
_MODULES = ("test_betainc.py", "test_betainc_oracle.py", "test_triton.py")


class InterpreterRun:
    """The pytest process of the interpreter's tests, started at once, waited for on demand."""

    def __init__(self, report: Path):
        selection = " and ".join(["triton", *(f"not {name}" for name in _LEFT_OUT)])
        command = [
            sys.executable,
            "-m",
            "pytest",
            *(f"tests/special/{module}" for module in _MODULES),
            "-k",
            selection,
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
        ]
        environment = {**os.environ, "TRITON_INTERPRET": "1"}
        self.report = report
        # A file, not a pipe: a full pipe would stall the process while nobody reads it.
        self.log = report.with_suffix(".log")
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
            )

    def wait(self) -> tuple[int, str]:
        self.process.wait(timeout=TIMEOUT)
        return self.process.returncode, self.log.read_text()


@pytest.fixture(scope="module")
def interpreter_run(tmp_path_factory):
    run = InterpreterRun(tmp_path_factory.mktemp("interpreter") / "report.xml")
    yield run
    if run.process.poll() is None:
        run.process.kill()
        run.process.wait()


@pytest.fixture
def interpreter_started(request):
    """Start the interpreter's process before this test, unless pytest-xdist spreads the tests
    over workers (another worker may run the interpreter's test, which then starts it)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        request.getfixturevalue("interpreter_run")


@pytest.mark.skipif(INTERPRETED, reason="the kernel was decorated for the interpreter")
@pytest.mark.parametrize("capability", [80, 90], ids=["sm_80", "sm_90"])
def test_every_variant_compiles_without_spilling(capability, interpreter_started):
    from batchshaping.special import _triton

    for dtype, want_grad_ab in _triton.VARIANTS:
        compiled = _triton.compile_ahead_of_time(capability, dtype, want_grad_ab)
        variant = (capability, dtype, want_grad_ab, compiled)
        assert 0 < compiled.registers <= 255, variant
        assert compiled.spill_stores == compiled.spill_loads == compiled.stack_bytes == 0, variant
    assert {dtype for dtype, _ in _triton.VARIANTS} == {torch.float32, torch.float64}


@pytest.mark.skipif(INTERPRETED, reason="already under the interpreter (this test starts it)")
def test_accuracy_tests_pass_under_the_interpreter(interpreter_run):
    returncode, output = interpreter_run.wait()
    assert returncode == 0, output[-9000:]
    cases = ElementTree.parse(interpreter_run.report).getroot().iter("testcase")
    passed = {}
    for case in cases:
        if case.find("skipped") is None:
            module = case.get("classname").rsplit(".", 1)[-1]
            passed[module] = passed.get(module, 0) + 1
    # The triton kernel through the registry's fixture, the whole-range oracle (values and
    # gradients in both dtypes), and the interpreter-only tests.
    assert passed.get("test_betainc", 0) >= 40, passed
    assert passed.get("test_betainc_oracle", 0) >= 4, passed
    assert passed.get("test_triton", 0) >= 8, passed
