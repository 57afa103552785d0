"""The relaxed Bernoulli (binary Concrete) prior, with a closed-form CDF exact in logit space."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import RelaxedBernoulli as _TorchRelaxedBernoulli
from torch.distributions import constraints
from torch.distributions.relaxed_bernoulli import LogitRelaxedBernoulli
from torch.distributions.transformed_distribution import TransformedDistribution
from torch.distributions.transforms import SigmoidTransform
from torch.distributions.utils import broadcast_all

from batchshaping.distributions._logit_space import sigmoid_of_logits
from batchshaping.distributions._support import (
    as_value,
    check_parameter,
    describe,
    unit_interval_cdf,
    validation_on,
)
from batchshaping.distributions.registry import register_prior

__all__ = ["RelaxedBernoulli"]


class RelaxedBernoulli(_TorchRelaxedBernoulli):
    r"""Relaxed Bernoulli (binary Concrete) distribution with a closed-form CDF.

    A sample is sigmoid((l + L) / t) with l = logit(p) and L standard logistic, so

    .. math::
        F(x) = \sigma\left(t \,\mathrm{logit}(x) - l\right), \qquad
        F(\sigma(z)) = \sigma(t z - l).

    Exact in float32 at any temperature when fed logits (``cdf_from_logits``): in value space,
    float32 can only represent x in about [1e-45, 1 - 6e-8], which at t = 0.01 covers CDF values
    0.08 to 0.23 of RelaxedBernoulli(0.01, probs=0.8). No clipping anywhere.
    Unlike torch's, ``temperature`` is validated and broadcast with ``probs`` / ``logits`` (so
    per-group temperatures shape the batch).

    Args:
        temperature: t > 0, any shape.
        probs: p in [0, 1], or ``logits`` l (exactly one of the two).
        validate_args: as for :class:`Beta`.

    Example:
        >>> from batchshaping.distributions import RelaxedBernoulli
        >>> prior = RelaxedBernoulli(torch.tensor(0.25), probs=torch.tensor(0.2))
        >>> prior.cdf(torch.tensor([0.1, 0.5, 0.9]))
        tensor([0.6978, 0.8000, 0.8739])
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "temperature": constraints.positive,
        "probs": constraints.unit_interval,
        "logits": constraints.real,
    }

    def __init__(
        self,
        temperature: Tensor | float,
        probs: Tensor | float | None = None,
        logits: Tensor | float | None = None,
        validate_args: bool | None = None,
    ) -> None:
        if (probs is None) == (logits is None):
            raise ValueError("RelaxedBernoulli: give exactly one of probs or logits")
        validate_args = validation_on(validate_args)
        if validate_args:
            check_parameter("RelaxedBernoulli", "temperature", temperature, constraints.positive)
            if probs is not None:
                check_parameter("RelaxedBernoulli", "probs", probs, constraints.unit_interval)
        if probs is not None:
            temperature, probs = broadcast_all(temperature, probs)
        else:
            temperature, logits = broadcast_all(temperature, logits)
        base = LogitRelaxedBernoulli(temperature, probs, logits, validate_args=validate_args)
        TransformedDistribution.__init__(self, base, SigmoidTransform(), validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(RelaxedBernoulli, _instance)
        new = super().expand(batch_shape, _instance=new)
        new.base_dist.temperature = self.temperature.expand(torch.Size(batch_shape))
        return new

    def __repr__(self) -> str:
        return describe(self, ("temperature", "probs"))

    def cdf(self, value: Tensor | float) -> Tensor:
        """sigmoid(t logit(value) - l), clamped to 0 / 1 outside (0, 1)."""
        value = as_value(value, self.logits)
        return unit_interval_cdf(
            value, lambda x: self.cdf_from_logits(torch.log(x) - torch.log1p(-x))
        )

    def cdf_from_logits(self, logits: Tensor | float) -> Tensor:
        """The CDF at ``sigmoid(logits)``: sigmoid(t * logits - l), exact at any temperature.

        Its gradient is exact too: sigmoid(u) sigmoid(-u) (torch's sigmoid differentiates as
        s (1 - s), which loses its digits where s rounds near 1).
        """
        z = as_value(logits, self.logits)
        return sigmoid_of_logits(self.temperature * z - self.logits)


register_prior(
    RelaxedBernoulli,
    parameters=lambda prior: {"temperature": prior.temperature, "logits": prior.logits},
    rebuild=lambda prior, tensors: RelaxedBernoulli(
        tensors["temperature"], logits=tensors["logits"], validate_args=False
    ),
    chunkable=True,
    cdf_from_logits=RelaxedBernoulli.cdf_from_logits,
)
