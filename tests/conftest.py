"""Fixtures and markers shared by the whole suite.

- ``@pytest.mark.cuda`` tests are skipped where no CUDA device is available.
- ``restore_validation``: ``torch.compile`` switches torch.distributions' global
  ``validate_args`` default off for the whole process; tests that compile put it back.
"""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def restore_validation():
    default = torch.distributions.Distribution._validate_args
    yield
    torch.distributions.Distribution.set_default_validate_args(default)
