"""The Triton kernel checked without a GPU, two ways.

1. Through the accuracy tests of ``test_betainc.py`` and the tests of ``test_triton.py``, with
   ``TRITON_INTERPRET=1``, on CPU tensors, through the kernel registry: in a process of its own,
   since triton reads the variable when the kernel is decorated.
2. An ahead-of-time compile of every variant of the kernel for sm_80 and sm_90 (Triton's whole
   pipeline, ptxas included, runs without a GPU), asserting that it compiles and spills no
   registers.
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

# Left out under the interpreter, where every operation on a block costs ~0.1 ms of Python: the
# hypothesis properties (150 examples each, about two minutes of the interpreter).
_LEFT_OUT = ("test_reflection", "test_monotone_in_x", "test_recurrence_in_a")


@pytest.mark.skipif(INTERPRETED, reason="already under the interpreter (this test starts it)")
def test_accuracy_tests_pass_under_the_interpreter(tmp_path):
    report = tmp_path / "report.xml"
    selection = " and ".join(["triton", *(f"not {name}" for name in _LEFT_OUT)])
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/special/test_betainc.py",
        "tests/special/test_triton.py",
        "-k",
        selection,
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
    ]
    environment = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    cases = ElementTree.parse(report).getroot().iter("testcase")
    passed = {}
    for case in cases:
        if case.find("skipped") is None:
            module = case.get("classname").rsplit(".", 1)[-1]
            passed[module] = passed.get(module, 0) + 1
    # The triton kernel through the registry's fixture, and the interpreter-only tests.
    assert passed.get("test_betainc", 0) >= 40, passed
    assert passed.get("test_triton", 0) >= 5, passed


@pytest.mark.skipif(INTERPRETED, reason="the kernel was decorated for the interpreter")
@pytest.mark.parametrize("capability", [80, 90], ids=["sm_80", "sm_90"])
def test_every_variant_compiles_without_spilling(capability):
    from batchshaping.special import _triton

    for dtype, want_grad_ab in _triton.VARIANTS:
        compiled = _triton.compile_ahead_of_time(capability, dtype, want_grad_ab)
        variant = (capability, dtype, want_grad_ab, compiled)
        assert 0 < compiled.registers <= 255, variant
        assert compiled.spill_stores == compiled.spill_loads == compiled.stack_bytes == 0, variant
    assert {dtype for dtype, _ in _triton.VARIANTS} == {torch.float32, torch.float64}
