"""Broadcasting of plain shapes without torch's symbolic-shape machinery."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from batchshaping._runtime.shapes import broadcast_shapes

CASES = [
    ((), ()),
    ((3,), ()),
    ((4, 1), (3,)),
    ((2, 1, 5), (7, 1), (1,)),
    ((0,), (1,)),
    ((0, 3), (1, 3), (3,)),
    ((1, 1), (1,)),
    ((3,), (4,)),
    ((2, 3), (3, 3)),
    ((0,), (2,)),
    ((5, 1, 4), (5, 2, 3)),
]


@pytest.mark.parametrize("shapes", CASES)
def test_agrees_with_torch(shapes):
    try:
        expected = torch.broadcast_shapes(*shapes)
    except RuntimeError:
        with pytest.raises(RuntimeError, match="cannot be broadcast"):
            broadcast_shapes(*shapes)
        return
    got = broadcast_shapes(*shapes)
    assert got == expected and isinstance(got, torch.Size)


def test_a_first_loss_does_not_import_sympy():
    """torch imports sympy (0.4 s) on first use of torch.broadcast_shapes, or of autograd.grad
    given a tensor of output gradients; the loss's forward and backward use neither."""
    code = (
        "import sys, torch\n"
        "before = 'sympy' in sys.modules\n"
        "from batchshaping import Beta, batch_shaping_loss\n"
        "x = torch.rand(512, 4, requires_grad=True)\n"
        "a = torch.full((4,), 2.0, requires_grad=True)\n"
        "batch_shaping_loss(x, Beta(a, 6.0), dim=0).backward()\n"
        "print(before, 'sympy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.split()
    if before == "True":
        pytest.skip("this torch imports sympy on its own")
    assert after == "False"
