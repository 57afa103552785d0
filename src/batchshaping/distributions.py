"""Priors for the Batch-Shaping losses: torch distributions whose ``cdf`` has exact gradients.

Each prior is a :class:`torch.distributions.Distribution` subclass, so it keeps torch's
``batch_shape``, ``arg_constraints``, ``support``, ``validate_args`` and ``expand``. What they add
is a ``cdf`` differentiable with respect to the value and every parameter, and a
``cdf_from_logits`` that evaluates the same CDF at ``sigmoid(logits)`` without ever forming the
sigmoid, which :func:`batchshaping.batch_shaping_loss` uses when called with ``logits=True``.

Outside the support. Batch-Shaping feeds the CDF whatever values a network produces, so a value
outside the support is not an error: ``cdf`` returns 0 below the support and 1 above it, with a
zero gradient with respect to the value and the parameters. The two end points 0 and 1 of the
unit interval count as outside (the CDF is exactly 0 or 1 there, and the density may be
infinite, so the gradient is taken as the zero one-sided derivative from outside). A NaN value
gives NaN. ``cdf`` never rejects a value (``log_prob`` keeps torch's sample checks). The one
exception to the zero gradient is Beta's opt-in ``density_bounds`` surrogate, whose gradient with
respect to the value is ``low`` there.
"""

from __future__ import annotations

from numbers import Number
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Beta as _TorchBeta
from torch.distributions import Distribution, constraints
from torch.distributions import RelaxedBernoulli as _TorchRelaxedBernoulli
from torch.distributions.relaxed_bernoulli import LogitRelaxedBernoulli
from torch.distributions.transformed_distribution import TransformedDistribution
from torch.distributions.transforms import SigmoidTransform
from torch.distributions.utils import broadcast_all

from batchshaping.special import betainc

__all__ = ["ORIGINAL_DENSITY_BOUNDS", "Beta", "RelaxedBernoulli", "SymmetricBeta"]

# Beyond this |logit| the tail probability of a Beta prior is taken from the leading term of its
# series, s^p (1 - s)^q / (p B(p, q)) with s = sigmoid(-|logit|): the next term is smaller by a
# factor of about (p + q) * s <= (p + q) * 4e-18, far below float64 resolution for any sensible
# concentration, and the formula works on log-sigmoids, so it never underflows to zero.
_BETA_TAIL_LOGIT = 40.0


class _OpenInterval(constraints.Constraint):
    """lower < value < upper (torch only has the closed ``interval``)."""

    def __init__(self, lower_bound: float, upper_bound: float) -> None:
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        return (value > self.lower_bound) & (value < self.upper_bound)

    def __repr__(self) -> str:
        return f"OpenInterval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


def _validation_on(validate_args: bool | None) -> bool:
    """``None`` means on, except while torch.compile traces (checks read values on the host).

    Not torch's global default: running ``torch.compile`` once switches that off for the whole
    process, which would silently drop the parameter checks of every prior built afterwards.
    """
    if validate_args is None:
        return not torch.compiler.is_compiling()
    return validate_args


def _check_parameter(
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


def _unit_interval_cdf(value: Tensor, cdf_inside) -> Tensor:
    """Apply ``cdf_inside`` on (0, 1) and the clamped 0 / 1 (zero gradient) elsewhere.

    ``cdf_inside`` only ever sees values in (0, 1): outside ones are replaced by 1/2 before it
    runs, so infinite densities at the end points cannot leak NaN into the gradients.
    """
    if _all_inside_on_host(value):
        return cdf_inside(value)
    inside = (value > 0) & (value < 1)
    inner = cdf_inside(torch.where(inside, value, 0.5))
    # 0 at and below 0, 1 at and above 1, NaN for NaN; detached, so no gradient outside.
    edge = value.detach().clamp(0, 1).to(inner.dtype)
    return torch.where(inside, inner, edge)


def _all_inside_on_host(value: Tensor) -> bool:
    """Whether a CPU tensor lies in (0, 1) throughout, found in one pass (NaN answers no).

    The usual case, where the masking passes of :func:`_unit_interval_cdf` change nothing: on the
    CPU, reading the answer costs nothing, so they are skipped. Never on other devices (a host
    synchronisation), while ``torch.compile`` traces, or for ``torch.func`` wrappers.
    """
    if (
        value.device.type != "cpu"
        or value.numel() == 0
        or torch.compiler.is_compiling()
        or torch._C._functorch.is_functorch_wrapped_tensor(value)
    ):
        return False
    low, high = torch.aminmax(value.detach())
    return bool(low > 0) and bool(high < 1)


def _describe(distribution: Distribution, names: tuple[str, ...]) -> str:
    parts = []
    for name in names:
        value = getattr(distribution, name)
        shown = f"{value.item():g}" if value.numel() == 1 else f"{tuple(value.shape)}"
        parts.append(f"{name}: {shown}")
    return f"{type(distribution).__name__}({', '.join(parts)})"


def _as_value(value: Tensor | Number, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


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
        validate_args = _validation_on(validate_args)
        if validate_args:
            _check_parameter("Beta", "concentration1", concentration1, constraints.positive)
            _check_parameter("Beta", "concentration0", concentration0, constraints.positive)
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
        return _describe(self, ("concentration1", "concentration0"))

    def cdf(self, value: Tensor | float) -> Tensor:
        """I_value(a, b), shaped like ``value`` broadcast with ``batch_shape``."""
        value = _as_value(value, self.concentration1)
        a, b = self.concentration1, self.concentration0
        if self.density_bounds is None:
            return _unit_interval_cdf(value, lambda x: betainc(*_promote(a, b, x)))
        fixed = value.detach()
        cdf = _unit_interval_cdf(fixed, lambda x: betainc(*_promote(a, b, x)))
        inside = (fixed > 0) & (fixed < 1)
        safe = torch.where(inside, fixed, torch.full_like(fixed, 0.5))
        log_density = self._log_density(torch.log(safe), torch.log1p(-safe))
        density = torch.where(inside, log_density.exp(), torch.zeros_like(log_density))
        return cdf + (value - fixed) * density.clamp(*self.density_bounds)

    def _log_density(self, log_x: Tensor, log_one_minus_x: Tensor) -> Tensor:
        """log of the density from log x and log(1 - x), detached from the parameters."""
        a, b, log_x, log_one_minus_x = _promote(
            self.concentration1.detach(), self.concentration0.detach(), log_x, log_one_minus_x
        )
        log_beta = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
        return (a - 1) * log_x + (b - 1) * log_one_minus_x - log_beta

    def cdf_from_logits(self, logits: Tensor | float) -> Tensor:
        r"""The CDF at ``sigmoid(logits)``, computed without forming the sigmoid.

        With s = sigmoid(-|z|) <= 1/2, the smaller tail is evaluated and the CDF built from it:

        .. math::
            F = I_s(a, b) \text{ for } z \le 0, \qquad F = 1 - I_s(b, a) \text{ for } z > 0,

        so ``1 - sigmoid(z)`` is never formed by subtraction and values whose sigmoid rounds to 1
        keep an exact CDF and finite gradients. Far out (|z| > 40) the tail is the leading term
        s^p (1 - s)^q / (p B(p, q)) of its series, evaluated on log-sigmoids.
        """
        z = _as_value(logits, self.concentration1)
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
        a, b, z = _promote(self.concentration1, self.concentration0, z)
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
            - (torch.lgamma(first) + torch.lgamma(second) - torch.lgamma(first + second))
        )
        tail = torch.where(near, tail_near, torch.exp(log_tail_far))
        return torch.where(lower, tail, 1 - tail)


def _promote(*tensors: Tensor) -> tuple[Tensor, ...]:
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return tuple(tensor.to(dtype) for tensor in tensors)


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

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {"a": _OpenInterval(0.0, 1.0)}

    def __init__(
        self,
        a: Tensor | float,
        validate_args: bool | None = None,
        *,
        density_bounds: tuple[float, float] | None = None,
    ) -> None:
        validate_args = _validation_on(validate_args)
        if validate_args:
            _check_parameter("SymmetricBeta", "a", a, _OpenInterval(0.0, 1.0))
        if not isinstance(a, Tensor):
            a = torch.tensor(float(a))
        super().__init__(a, 1 - a, validate_args=validate_args, density_bounds=density_bounds)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(SymmetricBeta, _instance)
        return super().expand(batch_shape, _instance=new)

    def __repr__(self) -> str:
        return _describe(self, ("a",))

    @property
    def a(self) -> Tensor:
        """The first concentration, a = mean."""
        return self.concentration1


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
        validate_args = _validation_on(validate_args)
        if validate_args:
            _check_parameter("RelaxedBernoulli", "temperature", temperature, constraints.positive)
            if probs is not None:
                _check_parameter("RelaxedBernoulli", "probs", probs, constraints.unit_interval)
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
        return _describe(self, ("temperature", "probs"))

    def cdf(self, value: Tensor | float) -> Tensor:
        """sigmoid(t logit(value) - l), clamped to 0 / 1 outside (0, 1)."""
        value = _as_value(value, self.logits)
        return _unit_interval_cdf(
            value, lambda x: self.cdf_from_logits(torch.log(x) - torch.log1p(-x))
        )

    def cdf_from_logits(self, logits: Tensor | float) -> Tensor:
        """The CDF at ``sigmoid(logits)``: sigmoid(t * logits - l), exact at any temperature."""
        z = _as_value(logits, self.logits)
        return torch.sigmoid(self.temperature * z - self.logits)
