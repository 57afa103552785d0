"""Broadcasting of concrete shapes, without torch's symbolic-shape machinery.

``torch.broadcast_shapes`` (and ``torch.autograd.grad`` given a tensor of output gradients)
import ``torch.fx.experimental.symbolic_shapes`` and with it sympy on first use: 0.4 s of the
first loss of a process. The package's own checks broadcast plain integer shapes here instead,
and hand symbolic ones (under ``torch.compile``) to torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def broadcast_shapes(*shapes: Sequence[int]) -> torch.Size:
    """The shape that ``shapes`` broadcast to, as ``torch.broadcast_shapes`` computes it.

    Raises RuntimeError, as torch does, where two sizes of one dimension differ and neither is 1.
    """
    if torch.compiler.is_compiling() or not all(
        type(size) is int for shape in shapes for size in shape
    ):
        return torch.broadcast_shapes(*shapes)  # traced or symbolic: torch's rules and guards
    length = max((len(shape) for shape in shapes), default=0)
    result = [1] * length
    for shape in shapes:
        for dim, size in enumerate(shape, start=length - len(shape)):
            if size == 1 or size == result[dim]:
                continue
            if result[dim] != 1:
                raise RuntimeError(
                    "shape mismatch: objects cannot be broadcast to a single shape: "
                    + ", ".join(str(tuple(s)) for s in shapes)
                )
            result[dim] = size
    return torch.Size(result)
