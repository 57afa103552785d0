"""What the priors share: parameter checks that name the parameter, the CDF outside (0, 1)."""

from __future__ import annotations

from numbers import Number

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from batchshaping._runtime.tracing import plain_cpu_tensor, tracing


class OpenInterval(constraints.Constraint):
    """lower < value < upper (torch only has the closed ``interval``)."""

    def __init__(self, lower_bound: float, upper_bound: float) -> None:
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        return (value > self.lower_bound) & (value < self.upper_bound)

    def __repr__(self) -> str:
        return f"OpenInterval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


def validation_on(validate_args: bool | None) -> bool:
    """``None`` means on, except while torch.compile traces or a torch.func transform runs (the
    checks read values on the host).

    Not torch's global default: running ``torch.compile`` once switches that off for the whole
    process, which would silently drop the parameter checks of every prior built afterwards.
    """
    if validate_args is None:
        return not tracing()
    return validate_args


def check_parameter(
    distribution: str, name: str, value: Tensor | Number, constraint: constraints.Constraint
) -> None:
    """Raise a ValueError naming ``name`` when ``value`` breaks ``constraint``."""
    value = torch.as_tensor(value).detach()
    invalid = ~constraint.check(value)
    if bool(invalid.any()):
        bad = value[invalid].cpu()
        shown = ", ".join(f"{v:g}" for v in bad[:5].tolist()) + (", ..." if len(bad) > 5 else "")
        raise ValueError(
            f"{distribution}: parameter {name} must satisfy {constraint!r}, but {len(bad)} of "
            f"its {value.numel()} value(s) do not: {shown}"
        )


def unit_interval_cdf(value: Tensor, cdf_inside) -> Tensor:
    """Apply ``cdf_inside`` on (0, 1) and the clamped 0 / 1 (zero gradient) elsewhere.

    ``cdf_inside`` only ever sees values in (0, 1): outside ones are replaced by 1/2 before it
    runs, so infinite densities at the end points cannot leak NaN into the gradients.
    """
    if all_inside_on_host(value):
        return cdf_inside(value)
    inside = (value > 0) & (value < 1)
    inner = cdf_inside(torch.where(inside, value, 0.5))
    # 0 at and below 0, 1 at and above 1, NaN for NaN; detached, so no gradient outside.
    edge = value.detach().clamp(0, 1).to(inner.dtype)
    return torch.where(inside, inner, edge)


def all_inside_on_host(value: Tensor) -> bool:
    """Whether a CPU tensor lies in (0, 1) throughout, found in one pass (NaN answers no).

    The usual case, where the masking passes of :func:`unit_interval_cdf` change nothing: on the
    CPU, reading the answer costs nothing, so they are skipped. Never on other devices (a host
    synchronisation), while ``torch.compile`` traces, or for ``torch.func`` wrappers.
    """
    if value.numel() == 0 or not plain_cpu_tensor(value):
        return False
    low, high = torch.aminmax(value.detach())
    return bool(low > 0) and bool(high < 1)


def describe(distribution: Distribution, names: tuple[str, ...]) -> str:
    parts = []
    for name in names:
        value = getattr(distribution, name)
        shown = f"{value.item():g}" if value.numel() == 1 else f"{tuple(value.shape)}"
        parts.append(f"{name}: {shown}")
    return f"{type(distribution).__name__}({', '.join(parts)})"


def as_value(value: Tensor | Number, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def promote(*tensors: Tensor) -> tuple[Tensor, ...]:
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return tuple(tensor.to(dtype) for tensor in tensors)
