"""The Beta prior, with an exact CDF differentiable in the value and both concentrations."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Beta as _TorchBeta
from torch.distributions import constraints

from batchshaping.distributions._support import (
    as_value,
    check_parameter,
    describe,
    promote,
    unit_interval_cdf,
    validation_on,
)
from batchshaping.distributions.registry import register_prior
from batchshaping.special import betainc, log_beta

__all__ = ["ORIGINAL_DENSITY_BOUNDS", "Beta"]

# Beyond this |logit| the tail probability of a Beta prior is taken from the leading term of its
# series, s^p (1 - s)^q / (p B(p, q)) with s = sigmoid(-|logit|): the next term is smaller by a
# factor of about (p + q) * s <= (p + q) * 4e-18, far below float64 resolution for any sensible
# concentration, and the formula works on log-sigmoids, so it never underflows to zero.
_BETA_TAIL_LOGIT = 40.0


#: The original release's clamp of the Beta density used as the gradient in x (``density_bounds``).
ORIGINAL_DENSITY_BOUNDS = (1e-3, 100.0)


class Beta(_TorchBeta):
    r"""Beta distribution with an exact, differentiable CDF.

    .. math::
        F(x; a, b) = I_x(a, b) = \frac{1}{B(a, b)} \int_0^x t^{a - 1} (1 - t)^{b - 1} dt

    Everything but ``cdf`` and ``cdf_from_logits`` is :class:`torch.distributions.Beta`.
    The gradients of the CDF with respect to ``x``, ``a`` and ``b`` are exact (from
    :func:`batchshaping.betainc`). Outside (0, 1) the CDF is 0 or 1 with zero gradient.

    Surrogate gradient (opt-in). The exact gradient with respect to x is the density, which
    vanishes in the tails: a point far out in a tail barely moves, and with Adam it stops once
    its gradient falls under Adam's ``eps``. With ``density_bounds=(low, high)`` the gradient of
    ``cdf`` with respect to the value is the density clamped to [low, high] (``low`` also outside
    the support), as the original release did with (1e-3, 100); the CDF's value and its
    gradients with respect to a and b stay exact. ``cdf_from_logits`` clamps the density the same
    way before multiplying by dx/dz = x (1 - x).

    Args:
        concentration1: a > 0, any shape (broadcast with ``concentration0``).
        concentration0: b > 0.
        validate_args: check the parameters (``ValueError`` naming the bad one). ``None``
            (default) means on, except while ``torch.compile`` traces; unlike torch's priors it
            does not follow torch's global default, which ``torch.compile`` switches off.
        density_bounds: ``None`` (default) for the exact gradient, or (low, high) with
            0 <= low <= high for the surrogate above.

    Example:
        >>> from batchshaping.distributions import Beta
        >>> prior = Beta(torch.tensor(2.0), torch.tensor(6.0))
        >>> prior.cdf(torch.tensor([0.1, 0.25, 0.5]))
        tensor([0.1497, 0.5551, 0.9375])
    """

    def __init__(
        self,
        concentration1: Tensor | float,
        concentration0: Tensor | float,
        validate_args: bool | None = None,
        *,
        density_bounds: tuple[float, float] | None = None,
    ) -> None:
        validate_args = validation_on(validate_args)
        if validate_args:
            check_parameter("Beta", "concentration1", concentration1, constraints.positive)
            check_parameter("Beta", "concentration0", concentration0, constraints.positive)
        if density_bounds is not None:
            low, high = (float(bound) for bound in density_bounds)
            if not 0 <= low <= high:
                raise ValueError(
                    f"density_bounds must be (low, high) with 0 <= low <= high, "
                    f"got {density_bounds!r}"
                )
            density_bounds = (low, high)
        self.density_bounds = density_bounds
        super().__init__(concentration1, concentration0, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Beta, _instance)
        new.density_bounds = self.density_bounds
        return super().expand(batch_shape, _instance=new)

    def __repr__(self) -> str:
        return describe(self, ("concentration1", "concentration0"))

    def cdf(self, value: Tensor | float) -> Tensor:
        """I_value(a, b), shaped like ``value`` broadcast with ``batch_shape``."""
        value = as_value(value, self.concentration1)
        a, b = self.concentration1, self.concentration0
        if self.density_bounds is None:
            return unit_interval_cdf(value, lambda x: betainc(*promote(a, b, x)))
        fixed = value.detach()
        cdf = unit_interval_cdf(fixed, lambda x: betainc(*promote(a, b, x)))
        inside = (fixed > 0) & (fixed < 1)
        safe = torch.where(inside, fixed, torch.full_like(fixed, 0.5))
        log_density = self._log_density(torch.log(safe), torch.log1p(-safe))
        density = torch.where(inside, log_density.exp(), torch.zeros_like(log_density))
        return cdf + (value - fixed) * density.clamp(*self.density_bounds)

    def _log_density(self, log_x: Tensor, log_one_minus_x: Tensor) -> Tensor:
        """log of the density from log x and log(1 - x), detached from the parameters."""
        a, b, log_x, log_one_minus_x = promote(
            self.concentration1.detach(), self.concentration0.detach(), log_x, log_one_minus_x
        )
        return (a - 1) * log_x + (b - 1) * log_one_minus_x - log_beta(a, b)

    def cdf_from_logits(self, logits: Tensor | float) -> Tensor:
        r"""The CDF at ``sigmoid(logits)``, computed without forming the sigmoid.

        With s = sigmoid(-|z|) <= 1/2, the smaller tail is evaluated and the CDF built from it:

        .. math::
            F = I_s(a, b) \text{ for } z \le 0, \qquad F = 1 - I_s(b, a) \text{ for } z > 0,

        so ``1 - sigmoid(z)`` is never formed by subtraction and values whose sigmoid rounds to 1
        keep an exact CDF and finite gradients. Far out (|z| > 40) the tail is the leading term
        s^p (1 - s)^q / (p B(p, q)) of its series, evaluated on log-sigmoids.
        """
        z = as_value(logits, self.concentration1)
        if self.density_bounds is None:
            return self._cdf_at_logits(z)
        # The surrogate: d cdf / dz = clamp(density(x)) * x (1 - x), with x = sigmoid(z).
        fixed = z.detach()
        log_x = torch.nn.functional.logsigmoid(fixed)
        log_one_minus_x = torch.nn.functional.logsigmoid(-fixed)
        density = self._log_density(log_x, log_one_minus_x).exp().clamp(*self.density_bounds)
        slope = density * torch.exp(log_x + log_one_minus_x)
        return self._cdf_at_logits(fixed) + (z - fixed) * slope

    def _cdf_at_logits(self, z: Tensor) -> Tensor:
        a, b, z = promote(self.concentration1, self.concentration0, z)
        lower = z <= 0
        first = torch.where(lower, a, b)
        second = torch.where(lower, b, a)
        distance = z.abs()
        near = distance <= _BETA_TAIL_LOGIT
        tail_near = betainc(first, second, torch.sigmoid(-distance.clamp(max=_BETA_TAIL_LOGIT)))
        log_tail_far = (
            first * torch.nn.functional.logsigmoid(-distance)
            + second * torch.nn.functional.logsigmoid(distance)
            - torch.log(first)
            - log_beta(first, second)
        )
        tail = torch.where(near, tail_near, torch.exp(log_tail_far))
        return torch.where(lower, tail, 1 - tail)


register_prior(
    Beta,
    parameters=lambda prior: {
        "concentration1": prior.concentration1,
        "concentration0": prior.concentration0,
    },
    rebuild=lambda prior, tensors: Beta(
        tensors["concentration1"],
        tensors["concentration0"],
        validate_args=False,
        density_bounds=prior.density_bounds,
    ),
    cdf_from_logits=Beta.cdf_from_logits,
)
