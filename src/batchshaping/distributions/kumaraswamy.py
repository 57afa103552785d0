"""The Kumaraswamy prior: a Beta look-alike on (0, 1) whose CDF is in closed form."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all

from batchshaping.distributions._support import (
    as_value,
    check_parameter,
    describe,
    unit_interval_cdf,
    validation_on,
)
from batchshaping.distributions.registry import register_prior

__all__ = ["Kumaraswamy"]


class Kumaraswamy(Distribution):
    r"""Kumaraswamy distribution on (0, 1), with a closed-form CDF exact in float32 too.

    .. math::
        F(x) = 1 - (1 - x^a)^b = -\mathrm{expm1}\left(b \log(1 - e^{a \log x})\right)

    with log(1 - e^u) computed without cancellation (log1p or expm1 by the size of u), so that
    neither 1 - x^a nor 1 - (1 - x^a)^b is formed by subtraction: the CDF keeps its relative
    precision where x^a is tiny (torch's own Kumaraswamy has no ``cdf``). ``cdf_from_logits`` works from log sigmoid(z), so it stays exact
    far into both tails. Outside (0, 1) the CDF is 0 or 1 with zero gradient.

    Args:
        concentration1: a > 0, any shape (broadcast with ``concentration0``).
        concentration0: b > 0.
        validate_args: check the parameters (``ValueError`` naming the bad one). ``None``
            (default) means on, except while tracing.

    Example:
        >>> from batchshaping.distributions import Kumaraswamy
        >>> Kumaraswamy(2.0, 3.0).cdf(torch.tensor([0.1, 0.5, 0.9]))
        tensor([0.0297, 0.5781, 0.9931])
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
    }
    support = constraints.unit_interval
    has_rsample = True

    def __init__(
        self,
        concentration1: Tensor | float,
        concentration0: Tensor | float,
        validate_args: bool | None = None,
    ) -> None:
        validate_args = validation_on(validate_args)
        if validate_args:
            check_parameter("Kumaraswamy", "concentration1", concentration1, constraints.positive)
            check_parameter("Kumaraswamy", "concentration0", concentration0, constraints.positive)
        self.concentration1, self.concentration0 = broadcast_all(concentration1, concentration0)
        super().__init__(self.concentration1.shape, validate_args=False)
        self._validate_args = validate_args

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Kumaraswamy, _instance)
        batch_shape = torch.Size(batch_shape)
        new.concentration1 = self.concentration1.expand(batch_shape)
        new.concentration0 = self.concentration0.expand(batch_shape)
        super(Kumaraswamy, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def __repr__(self) -> str:
        return describe(self, ("concentration1", "concentration0"))

    @property
    def mean(self) -> Tensor:
        """b B(1 + 1/a, b)."""
        a, b = self.concentration1, self.concentration0
        log_beta = torch.lgamma(1 + 1 / a) + torch.lgamma(b) - torch.lgamma(1 + 1 / a + b)
        return b * torch.exp(log_beta)

    def rsample(self, sample_shape: tuple[int, ...] | torch.Size = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        finfo = torch.finfo(self.concentration1.dtype)
        uniform = torch.rand(
            shape, dtype=self.concentration1.dtype, device=self.concentration1.device
        )
        return self.icdf(uniform.clamp(finfo.tiny, 1 - finfo.eps))

    def icdf(self, value: Tensor) -> Tensor:
        """(1 - (1 - u)^(1/b))^(1/a), through log1p and expm1."""
        a, b = self.concentration1, self.concentration0
        inner = -torch.expm1(torch.log1p(-value) / b)  # 1 - (1 - u)^(1/b) = x^a
        return torch.exp(torch.log(inner) / a)

    def log_prob(self, value: Tensor) -> Tensor:
        a, b = self.concentration1, self.concentration0
        log_x = torch.log(value)
        log_power = a * log_x
        return (
            torch.log(a) + torch.log(b) + (a - 1) * log_x + (b - 1) * _log_one_minus_exp(log_power)
        )

    def cdf(self, value: Tensor | float) -> Tensor:
        """1 - (1 - value^a)^b, clamped to 0 / 1 outside (0, 1)."""
        value = as_value(value, self.concentration1)
        return unit_interval_cdf(value, lambda x: self._cdf_from_log_x(torch.log(x)))

    def cdf_from_logits(self, logits: Tensor | float) -> Tensor:
        """The CDF at sigmoid(logits), from log sigmoid(logits): exact in both tails."""
        z = as_value(logits, self.concentration1)
        return self._cdf_from_log_x(torch.nn.functional.logsigmoid(z))

    def _cdf_from_log_x(self, log_x: Tensor) -> Tensor:
        a, b = self.concentration1, self.concentration0
        return -torch.expm1(b * _log_one_minus_exp(a * log_x))


def _log_one_minus_exp(u: Tensor) -> Tensor:
    """log(1 - exp(u)) for u < 0, without cancellation near u = 0 or underflow far below."""
    # Each branch sees only its own range, so the other's infinite slope cannot leak NaN.
    split = -math.log(2.0)
    far = torch.log1p(-torch.exp(u.clamp(max=split)))
    near = torch.log(-torch.expm1(u.clamp(min=split)))
    return torch.where(u < split, far, near)


register_prior(
    Kumaraswamy,
    parameters=lambda prior: {
        "concentration1": prior.concentration1,
        "concentration0": prior.concentration0,
    },
    rebuild=lambda prior, tensors: Kumaraswamy(
        tensors["concentration1"], tensors["concentration0"], validate_args=False
    ),
    chunkable=True,
    cdf_from_logits=Kumaraswamy.cdf_from_logits,
)
