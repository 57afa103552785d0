"""Checks at the boundary of the loss, and the layout of its groups: (*groups, samples).

Every check raises before anything is computed, with a message that names the argument. The two
that read values on the host (non-finite values, group sizes under a mask) are the caller's to
skip (``validate=False``); they skip themselves while ``torch.compile`` traces or a ``torch.func``
transform runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution

from batchshaping._runtime.shapes import broadcast_shapes

Dim = int | Sequence[int] | None

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_x(x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"x must have a floating dtype, got {x.dtype}")


def check_prior(prior: Distribution) -> None:
    if not isinstance(prior, Distribution):
        raise TypeError(f"prior must be a torch.distributions.Distribution, got {type(prior)}")
    if prior.event_shape != ():
        raise ValueError(
            f"prior must be univariate (event_shape ()), got event_shape {tuple(prior.event_shape)}"
        )


def sample_dims(dim: Dim, ndim: int) -> tuple[int, ...]:
    """The sample dimensions as sorted non-negative ints."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dims = (dim,)
    elif isinstance(dim, Sequence):
        dims = tuple(dim)
    else:
        raise ValueError(f"dim must be an int, a tuple of ints or None, got {dim!r}")
    if not dims:
        raise ValueError("dim=() names no sample dimension; use dim=None for all of them")
    normalised = []
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool):
            raise ValueError(f"dim must be an int or a tuple of ints, got {dim!r}")
        if ndim == 0 or not -ndim <= d < ndim:
            raise ValueError(f"dim {d} is out of range for x with {ndim} dimension(s)")
        normalised.append(d % ndim)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"dim {dim!r} names a dimension twice")
    return tuple(sorted(normalised))


def check_mask(mask: Tensor | None, x: Tensor) -> None:
    if mask is None:
        return
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        kind = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor, got {kind}")
    if mask.shape != x.shape:
        raise ValueError(
            f"mask must have the shape of x, {tuple(x.shape)}, got {tuple(mask.shape)}"
        )


def check_prior_shape(prior: Distribution, group_shape: torch.Size) -> None:
    try:
        fits = broadcast_shapes(prior.batch_shape, group_shape) == group_shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"prior batch_shape {tuple(prior.batch_shape)} does not broadcast to the group "
            f"shape {tuple(group_shape)} (the shape of x without its sample dimensions)"
        )


def check_finite(values: Tensor, mask: Tensor | None) -> None:
    # One sum answers the common case in one pass: it is finite when every term is. A finite sum
    # proves nothing bad; a non-finite one (or an overflow) is checked value by value.
    kept = values if mask is None else torch.where(mask, values, 0)
    if torch.isfinite(kept.sum()):
        return
    bad = ~torch.isfinite(values)
    if mask is not None:
        bad &= mask
    count = int(bad.sum())
    if count:
        where = " where mask is True" if mask is not None else ""
        raise ValueError(f"x has {count} non-finite value(s) (NaN or infinite){where}")


def check_group_sizes(mask: Tensor | None) -> None:
    if mask is None or mask.numel() == 0:
        return
    counts = mask.sum(-1)
    small = int((counts < 2).sum())
    if small:
        raise ValueError(
            f"mask leaves {small} group(s) with fewer than 2 samples "
            f"(the smallest has {int(counts.min())})"
        )


def samples_last(tensor: Tensor, sample_dims: tuple[int, ...]) -> tuple[Tensor, torch.Size]:
    """Move the sample dimensions to the end and flatten them: (*groups, samples)."""
    group_dims = [d for d in range(tensor.ndim) if d not in sample_dims]
    group_shape = torch.Size([tensor.shape[d] for d in group_dims])
    num_samples = math.prod([tensor.shape[d] for d in sample_dims])
    moved = tensor.permute([*group_dims, *sample_dims])
    return moved.reshape(*group_shape, num_samples), group_shape
