"""The Beta(a, 1 - a) prior of the original Batch-Shaping paper."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import constraints

from batchshaping.distributions._support import (
    OpenInterval,
    check_parameter,
    describe,
    validation_on,
)
from batchshaping.distributions.beta import Beta
from batchshaping.distributions.registry import register_prior

__all__ = ["SymmetricBeta"]


class SymmetricBeta(Beta):
    r"""The Beta(a, 1 - a) prior of the original Batch-Shaping paper, for a in (0, 1).

    Its mean is a: a = 0.9 puts 90% of the mass near 1. Gradients reach ``a`` through both
    concentrations.

    Args:
        a: the first concentration and the mean, in the open interval (0, 1); any shape.
        validate_args, density_bounds: as for :class:`Beta`.

    Example:
        >>> from batchshaping.distributions import SymmetricBeta
        >>> SymmetricBeta(torch.tensor(0.9)).cdf(torch.tensor([0.5, 0.99]))
        tensor([0.0773, 0.3793])
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {"a": OpenInterval(0.0, 1.0)}

    def __init__(
        self,
        a: Tensor | float,
        validate_args: bool | None = None,
        *,
        density_bounds: tuple[float, float] | None = None,
    ) -> None:
        validate_args = validation_on(validate_args)
        if validate_args:
            check_parameter("SymmetricBeta", "a", a, OpenInterval(0.0, 1.0))
        if not isinstance(a, Tensor):
            a = torch.tensor(float(a))
        super().__init__(a, 1 - a, validate_args=validate_args, density_bounds=density_bounds)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(SymmetricBeta, _instance)
        return super().expand(batch_shape, _instance=new)

    def __repr__(self) -> str:
        return describe(self, ("a",))

    @property
    def a(self) -> Tensor:
        """The first concentration, a = mean."""
        return self.concentration1


register_prior(
    SymmetricBeta,
    parameters=lambda prior: {"a": prior.a},
    rebuild=lambda prior, tensors: SymmetricBeta(
        tensors["a"], validate_args=False, density_bounds=prior.density_bounds
    ),
    cdf_from_logits=SymmetricBeta.cdf_from_logits,
)
