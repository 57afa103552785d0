"""Fixtures: ``kernel`` (a test that takes it runs once with every kernel that can run here) and
``betainc_oracle`` (the independent oracle of ``betainc_oracle.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from batchshaping import special


@pytest.fixture(params=special.available_kernels())
def kernel(request):
    with special.kernel(request.param):
        yield request.param


@pytest.fixture(scope="session")
def betainc_oracle():
    """The module ``betainc_oracle.py`` (the density integrated in MPFR), loaded from its path:
    the tests run with ``--import-mode=importlib``, which puts no test folder on sys.path."""
    path = Path(__file__).resolve().parent / "betainc_oracle.py"
    spec = importlib.util.spec_from_file_location("betainc_oracle", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("betainc_oracle", module)
    spec.loader.exec_module(module)
    return module
