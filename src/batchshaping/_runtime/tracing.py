"""Whether the values of tensors can be read on the host now.

Checks that read values (``bool(t.any())``) and fast paths that hand a tensor's memory to numpy
cannot run while ``torch.compile`` traces (the values do not exist yet) or under a ``torch.func``
transform (``vmap``'s batched tensors have no single value; ``grad``'s wrappers have no host
memory). Both skip themselves then, as the checks of ``torch.distributions`` do under compile.
"""

from __future__ import annotations

import torch
from torch import Tensor


def transforming() -> bool:
    """True while a ``torch.func`` transform (``vmap``, ``grad``, ``jacrev``, ...) runs."""
    return torch._C._functorch.peek_interpreter_stack() is not None


def tracing() -> bool:
    """True while ``torch.compile`` traces or a ``torch.func`` transform runs."""
    return torch.compiler.is_compiling() or transforming()


def plain_cpu_tensor(tensor: Tensor) -> bool:
    """A CPU tensor of torch's own class, outside any tracing: its memory can go to numpy."""
    return (
        type(tensor) is Tensor
        and tensor.device.type == "cpu"
        and not tracing()
        and not torch._C._functorch.is_functorch_wrapped_tensor(tensor)
    )


def eager_tensors(*tensors: Tensor) -> bool:
    """Plain tensors (any device) outside any tracing: a kernel may be called on them directly,
    without going through the custom op's dispatch (which ``torch.compile`` and the ``torch.func``
    transforms need, and which imports torch's compiler on its first call)."""
    if tracing():
        return False
    return all(
        type(t) is Tensor and not torch._C._functorch.is_functorch_wrapped_tensor(t)
        for t in tensors
    )
