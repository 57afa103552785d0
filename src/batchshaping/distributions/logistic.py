"""The logistic prior on the real line, whose CDF is a sigmoid."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from batchshaping.distributions._logit_space import sigmoid_of_logits
from batchshaping.distributions._parameters import (
    LOC_SCALE,
    expand_parameters,
    rsample_by_icdf,
    set_parameters,
)
from batchshaping.distributions._support import as_value, describe
from batchshaping.distributions.registry import register_prior

__all__ = ["Logistic"]


class Logistic(Distribution):
    r"""Logistic distribution on the real line (torch has none).

    .. math::
        F(x) = \sigma\left(\frac{x - \mu}{s}\right), \qquad
        f(x) = \frac{1}{s}\, \sigma(t)\, \sigma(-t), \quad t = \frac{x - \mu}{s}

    The CDF keeps its relative precision in the lower tail (torch's sigmoid) and its slope
    sigmoid(t) sigmoid(-t) in both; at x = ±inf it is 0 or 1 with zero gradient, NaN for NaN.
    ``cdf_from_logits`` evaluates it at sigmoid(z) with the exact slope of the sigmoid (see
    :mod:`~batchshaping.distributions._logit_space`).

    Args:
        loc: mu, any shape (broadcast with ``scale``); real.
        scale: s > 0.
        validate_args: check the parameters (``ValueError`` naming the bad one). ``None``
            (default) means on, except while tracing.

    Example:
        >>> from batchshaping.distributions import Logistic
        >>> Logistic(0.5, 0.1).cdf(torch.tensor([0.3, 0.5, 0.9]))
        tensor([0.1192, 0.5000, 0.9820])
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = LOC_SCALE
    support = constraints.real
    has_rsample = True

    def __init__(
        self, loc: Tensor | float, scale: Tensor | float, validate_args: bool | None = None
    ) -> None:
        set_parameters(self, {"loc": loc, "scale": scale}, validate_args)

    def expand(self, batch_shape, _instance=None):
        return expand_parameters(self, batch_shape, _instance)

    def __repr__(self) -> str:
        return describe(self, ("loc", "scale"))

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        return (math.pi * self.scale) ** 2 / 3

    def entropy(self) -> Tensor:
        return torch.log(self.scale) + 2

    def rsample(self, sample_shape: tuple[int, ...] | torch.Size = ()) -> Tensor:
        return rsample_by_icdf(self, sample_shape, self.loc)

    def icdf(self, value: Tensor) -> Tensor:
        """loc + scale * logit(value)."""
        return self.loc + self.scale * (torch.log(value) - torch.log1p(-value))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        t = (value - self.loc) / self.scale
        softplus = torch.nn.functional.softplus
        return -softplus(t) - softplus(-t) - self.scale.log()

    def cdf(self, value: Tensor | float) -> Tensor:
        """sigmoid((value - loc) / scale); 0 at -inf and 1 at +inf, with zero gradient."""
        value = as_value(value, self.loc)
        finite = torch.isfinite(value)
        # Infinite values are replaced before they meet the parameters: inf * 0 gradients are NaN.
        t = (torch.where(finite, value, 0.0) - self.loc) / self.scale
        # -inf -> 0, inf -> 1, NaN stays NaN; detached, so no gradient there.
        return torch.where(finite, sigmoid_of_logits(t), value.detach().clamp(0, 1).to(t.dtype))

    def cdf_from_logits(self, logits: Tensor | float) -> Tensor:
        """The CDF at sigmoid(logits), with the exact slope of the sigmoid in both tails."""
        return self.cdf(sigmoid_of_logits(as_value(logits, self.loc)))


register_prior(
    Logistic,
    parameters=lambda prior: {"loc": prior.loc, "scale": prior.scale},
    rebuild=lambda prior, tensors: Logistic(tensors["loc"], tensors["scale"], validate_args=False),
    chunkable=True,
    cdf_from_logits=Logistic.cdf_from_logits,
)
