"""The Hard Concrete prior of L0 regularisation: a stretched, clamped binary Concrete."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from batchshaping.distributions._logit_space import log_sigmoid, sigmoid_of_logits
from batchshaping.distributions._parameters import (
    expand_parameters,
    rsample_by_icdf,
    set_parameters,
)
from batchshaping.distributions._support import as_value, describe
from batchshaping.distributions.registry import register_prior

__all__ = ["HardConcrete"]

# Gauss-Legendre nodes for the mean (see HardConcrete.mean).
_MEAN_NODES = 64


class HardConcrete(Distribution):
    r"""Hard Concrete distribution (Louizos, Welling and Kingma, ICLR 2018) on [0, 1].

    A sample is Z = min(1, max(0, l + (r - l) S)) with S = sigmoid((logit(U) + log_alpha) / t)
    a binary Concrete (U uniform) stretched to the ``limits`` (l, r), l < 0 < 1 < r: Z is 0 with
    probability P(0) > 0, 1 with probability P(1) > 0, and continuous in between. With
    y(x) = (x - l) / (r - l),

    .. math::
        F(x) = \begin{cases} 0 & x < 0 \\
            \sigma\left(t\,\mathrm{logit}(y(x)) - \log\alpha\right) & 0 \le x < 1 \\
            1 & x \ge 1 \end{cases}

    right-continuous, with jumps P(0) = F(0) at 0 and P(1) = 1 - F(1^-) at 1 (``prob_zero``,
    ``prob_one``; 1 - P(0) is the expected L0 norm of Louizos et al.). Inside [0, 1) the CDF is
    differentiable in x and in both parameters; at x = 0 its gradient with respect to the
    parameters is that of P(0), and its gradient with respect to x the right derivative. Below 0
    and from 1 on it is 0 or 1 with zero gradient; NaN for NaN.

    ``cdf_from_logits`` is the CDF at sigmoid(z), which lies in (0, 1) for every finite z: it
    tends to P(0) as z goes to -inf and to 1 - P(1) as z goes to +inf (never 1, even where
    sigmoid(z) rounds to 1), with the exact slope of the sigmoid. ``log_prob`` is the log
    density of the continuous part inside (0, 1) and log P(0), log P(1) at 0 and 1.
    ``rsample`` is the clamped stretched sample, with the straight gradient of the clamp (zero
    on the atoms); ``icdf`` the generalised inverse, 0 up to P(0) and 1 from 1 - P(1).

    Atoms in the loss. Many values of a batch at exactly 0 meet a CDF that jumps to P(0)
    there. With ``ties=False`` they take ranks 1..k, whose empirical CDF i / (N + 1) climbs
    from 0 to k / (N + 1) against the constant F(0) = P(0): even a perfect sample leaves a
    floor of about (P(0)^3 + P(1)^3) / 3 in the loss. With ``ties=True`` tied values share the
    empirical CDF k / (N + 1), the right-continuous empirical CDF, which meets F(0) = P(0), and a
    sample of the prior has a loss near that of its own quantiles (tested). Use ``ties=True``
    with this prior.

    The mean, E[Z] = integral of 1 - F over [0, 1), has no closed form: it is computed by
    64-point Gauss-Legendre quadrature in w = logit(y), where the integrand
    sigmoid(log_alpha - t w) sigmoid(w) sigmoid(-w) is analytic with poles at distance
    min(pi, pi / t) from the real axis: 1e-13 relative for temperatures up to 2 (tested); it
    degrades for large temperatures (about 1e-7 at t = 10). ``mean_logit`` is the logit of the
    mean from the two integrals in log space, exact where the mean saturates.

    Args:
        log_alpha: log alpha, the location, any shape (broadcast with ``temperature``); real.
        temperature: t > 0 (default 2/3, as in Louizos et al.).
        limits: (l, r), the stretch, with l < 0 and r > 1 (default (-0.1, 1.1)).
        validate_args: check the parameters (``ValueError`` naming the bad one). ``None``
            (default) means on, except while tracing.

    Example:
        >>> from batchshaping.distributions import HardConcrete
        >>> prior = HardConcrete(torch.tensor(0.0))
        >>> prior.cdf(torch.tensor([-0.5, 0.0, 0.5, 0.99, 1.0]))
        tensor([0.0000, 0.1682, 0.5000, 0.8219, 1.0000])
        >>> prior.prob_zero, prior.prob_one
        (tensor(0.1682), tensor(0.1682))
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "log_alpha": constraints.real,
        "temperature": constraints.positive,
    }
    support = constraints.unit_interval
    has_rsample = True

    def __init__(
        self,
        log_alpha: Tensor | float,
        temperature: Tensor | float = 2.0 / 3.0,
        limits: Sequence[float] = (-0.1, 1.1),
        validate_args: bool | None = None,
    ) -> None:
        self.limits = _check_limits(limits)
        set_parameters(self, {"log_alpha": log_alpha, "temperature": temperature}, validate_args)

    def expand(self, batch_shape, _instance=None):
        new = expand_parameters(self, batch_shape, _instance)
        new.limits = self.limits
        return new

    def __repr__(self) -> str:
        lower, upper = self.limits
        return describe(self, ("log_alpha", "temperature"))[:-1] + f", limits: ({lower}, {upper}))"

    # --- the atoms and the continuous part ----------------------------------------------------

    def _stretched_logit(self, x: Tensor) -> Tensor:
        """t logit(y(x)) - log_alpha: the CDF inside [0, 1) is its sigmoid."""
        lower, upper = self.limits
        logit_y = torch.log(x - lower) - torch.log(upper - x)
        return self.temperature * logit_y - self.log_alpha

    @property
    def prob_zero(self) -> Tensor:
        """P(Z = 0) = F(0)."""
        lower, upper = self.limits
        return torch.sigmoid(self.temperature * math.log(-lower / upper) - self.log_alpha)

    @property
    def prob_one(self) -> Tensor:
        """P(Z = 1) = 1 - F(1^-)."""
        lower, upper = self.limits
        stretched_one = math.log((1 - lower) / (upper - 1))
        return torch.sigmoid(self.log_alpha - self.temperature * stretched_one)

    def cdf(self, value: Tensor | float) -> Tensor:
        """The right-continuous CDF: 0 below 0, P(0) at 0, 1 from 1 on."""
        value = as_value(value, self.log_alpha)
        inside = (value >= 0) & (value < 1)
        inner = sigmoid_of_logits(self._stretched_logit(torch.where(inside, value, 0.5)))
        edge = torch.where(value >= 1, 1.0, 0.0).to(inner.dtype)
        edge = torch.where(torch.isnan(value), value.detach().to(inner.dtype), edge)
        return torch.where(inside, inner, edge)

    def cdf_from_logits(self, logits: Tensor | float) -> Tensor:
        """The CDF at sigmoid(logits), inside the atoms: from P(0) to 1 - P(1)."""
        z = as_value(logits, self.log_alpha)
        return sigmoid_of_logits(self._stretched_logit(sigmoid_of_logits(z)))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        lower, upper = self.limits
        inside = (value > 0) & (value < 1)
        x = torch.where(inside, value, 0.5)
        t = self._stretched_logit(x)
        # f(x) = t sigmoid(s) sigmoid(-s) (r - l) / ((x - l) (r - x)), s the stretched logit.
        log_density = (
            torch.log(self.temperature)
            + log_sigmoid(t)
            + log_sigmoid(-t)
            + math.log(upper - lower)
            - torch.log(x - lower)
            - torch.log(upper - x)
        )
        atom = torch.where(value <= 0, self.prob_zero.log(), self.prob_one.log())
        return torch.where(inside, log_density, atom)

    def rsample(self, sample_shape: tuple[int, ...] | torch.Size = ()) -> Tensor:
        return rsample_by_icdf(self, sample_shape, self.log_alpha)

    def icdf(self, value: Tensor) -> Tensor:
        """clamp(l + (r - l) sigmoid((logit(value) + log_alpha) / t), 0, 1)."""
        lower, upper = self.limits
        logit_u = torch.log(value) - torch.log1p(-value)
        concrete = torch.sigmoid((logit_u + self.log_alpha) / self.temperature)
        return torch.clamp(lower + (upper - lower) * concrete, 0.0, 1.0)

    # --- the mean -------------------------------------------------------------------------------

    @property
    def mean(self) -> Tensor:
        """E[Z], by Gauss-Legendre quadrature (see the class docstring)."""
        return torch.exp(self._log_integral(above=True))

    @property
    def mean_logit(self) -> Tensor:
        """logit of the mean, log E[Z] - log(1 - E[Z]) from two integrals in log space."""
        return self._log_integral(above=True) - self._log_integral(above=False)

    def _log_integral(self, above: bool) -> Tensor:
        """log of the integral over [0, 1) of 1 - F (``above``) or of F.

        With w = logit(y(x)): (r - l) times the integral over [logit y(0), logit y(1)] of
        sigmoid(-+(t w - log_alpha)) sigmoid(w) sigmoid(-w) dw.
        """
        lower, upper = self.limits
        start, stop = math.log(-lower / upper), math.log((1 - lower) / (upper - 1))
        nodes, weights = _legendre(self.log_alpha.dtype, self.log_alpha.device)
        w = 0.5 * (stop - start) * nodes + 0.5 * (stop + start)
        log_weights = torch.log(weights) + math.log(0.5 * (stop - start) * (upper - lower))
        s = self.temperature.unsqueeze(-1) * w - self.log_alpha.unsqueeze(-1)
        terms = log_weights + log_sigmoid(-s if above else s) + log_sigmoid(w) + log_sigmoid(-w)
        return torch.logsumexp(terms, dim=-1)


@functools.cache
def _legendre_nodes() -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(_MEAN_NODES)


def _legendre(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    nodes, weights = _legendre_nodes()
    return (
        torch.as_tensor(nodes, dtype=dtype, device=device),
        torch.as_tensor(weights, dtype=dtype, device=device),
    )


def _check_limits(limits: Sequence[float]) -> tuple[float, float]:
    try:
        lower, upper = (float(limit) for limit in limits)
    except (TypeError, ValueError) as error:
        message = f"HardConcrete: limits must be two numbers (l, r), got {limits!r}"
        raise ValueError(message) from error
    if not (lower < 0 and upper > 1):
        raise ValueError(
            f"HardConcrete: limits (l, r) must satisfy l < 0 and r > 1, got ({lower}, {upper})"
        )
    return lower, upper


register_prior(
    HardConcrete,
    parameters=lambda prior: {"log_alpha": prior.log_alpha, "temperature": prior.temperature},
    rebuild=lambda prior, tensors: HardConcrete(
        tensors["log_alpha"], tensors["temperature"], prior.limits, validate_args=False
    ),
    chunkable=True,
    cdf_from_logits=HardConcrete.cdf_from_logits,
)
