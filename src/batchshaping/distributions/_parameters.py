"""What the plain priors share of torch's protocol: checked, broadcast parameters, ``expand``,
and ``rsample`` through a closed-form ``icdf``."""

from __future__ import annotations

from numbers import Number

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all

from batchshaping.distributions._support import check_parameter, validation_on

LOC_SCALE = {"loc": constraints.real, "scale": constraints.positive}


def set_parameters(
    distribution: Distribution,
    values: dict[str, Tensor | Number],
    validate_args: bool | None,
) -> None:
    """Check ``values`` against the class's ``arg_constraints`` (a ``ValueError`` naming the
    parameter), broadcast them, set them as attributes and the batch shape from them."""
    validate = validation_on(validate_args)
    name = type(distribution).__name__
    if validate:
        for parameter, value in values.items():
            check_parameter(name, parameter, value, distribution.arg_constraints[parameter])
    tensors = broadcast_all(*values.values())
    for parameter, tensor in zip(values, tensors, strict=True):
        setattr(distribution, parameter, tensor)
    Distribution.__init__(distribution, tensors[0].shape, validate_args=False)
    distribution._validate_args = validate


def expand_parameters(distribution: Distribution, batch_shape, _instance=None) -> Distribution:
    """``distribution.expand``: every parameter of ``arg_constraints`` expanded."""
    new = distribution._get_checked_instance(type(distribution), _instance)
    batch_shape = torch.Size(batch_shape)
    for parameter in distribution.arg_constraints:
        setattr(new, parameter, getattr(distribution, parameter).expand(batch_shape))
    Distribution.__init__(new, batch_shape, validate_args=False)
    new._validate_args = distribution._validate_args
    return new


def rsample_by_icdf(distribution: Distribution, sample_shape, like: Tensor) -> Tensor:
    """``icdf`` at uniforms in [tiny, 1 - eps] (both tails finite), shaped as torch samples."""
    shape = distribution._extended_shape(sample_shape)
    finfo = torch.finfo(like.dtype)
    uniform = torch.rand(shape, dtype=like.dtype, device=like.device)
    return distribution.icdf(uniform.clamp(finfo.tiny, 1 - finfo.eps))
