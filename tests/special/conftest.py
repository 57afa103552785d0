"""The ``kernel`` fixture: a test that takes it runs once with every kernel that can run here."""

from __future__ import annotations

import pytest

from batchshaping import special


@pytest.fixture(params=special.available_kernels())
def kernel(request):
    with special.kernel(request.param):
        yield request.param
