"""Traits of torch's own distributions: their tensors, how to rebuild them, a logit-space CDF.

Registered: ``Normal``, ``Uniform``, ``Laplace``, ``Exponential``, ``Gumbel``, ``Cauchy`` and
``TransformedDistribution`` (a base with traits and transforms among ``AffineTransform``,
``PowerTransform``, ``ExpTransform``, ``SigmoidTransform``, ``TanhTransform`` and their
inverses: torch's ``LogitNormal``-style constructions; other instances get no traits and take
the loss's ordinary autograd path).

Their ``cdf`` is torch's. Their CDF at sigmoid(z), for ``logits=True``, is computed here from
formulas that keep relative precision in both tails, where torch's lose it (Normal's
1 + erf, Laplace's 0.5 + 0.5 expm1, Cauchy's 0.5 + atan / pi, Exponential's 1 - exp, all
cancel in the lower tail; so does ``torch.special.ndtr``), at sigmoid(z) with the exact slope
of the sigmoid (:mod:`~batchshaping.distributions._logit_space`). A ``TransformedDistribution``
whose last transform is the sigmoid is evaluated at z itself, through its other transforms,
with no sigmoid at all.

Bounded supports. torch's ``Uniform`` and ``Exponential`` check that the values given to their
``cdf`` lie in their support (a ``ValueError``) unless built with ``validate_args=False``;
rebuilt, they keep that choice, so every route of the loss raises alike. Without the check,
torch's Exponential CDF is negative below 0: keep validation on for values that can leave the
support, or use ``logits=True`` (sigmoid(z) > 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.distributions import (
    Cauchy,
    Distribution,
    Exponential,
    Gumbel,
    Laplace,
    Normal,
    TransformedDistribution,
    Uniform,
)
from torch.distributions.transforms import (
    AffineTransform,
    ExpTransform,
    PowerTransform,
    SigmoidTransform,
    TanhTransform,
    Transform,
    _InverseTransform,
)

from batchshaping.distributions._logit_space import normal_cdf, sigmoid_of_logits
from batchshaping.distributions.registry import prior_traits, register_prior

Tails = tuple[Tensor, Tensor]

# --- exact CDFs and survival functions: (F(x), 1 - F(x)) ---------------------------------------


def _standardised(prior: Distribution, value: Tensor) -> Tensor:
    return (value - prior.loc) / prior.scale


def _normal(prior: Normal, value: Tensor) -> Tails:
    t = _standardised(prior, value)
    return normal_cdf(t), normal_cdf(-t)


def _laplace(prior: Laplace, value: Tensor) -> Tails:
    t = _standardised(prior, value)
    below, above = 0.5 * torch.exp(t.clamp(max=0)), 0.5 * torch.exp(-t.clamp(min=0))
    return torch.where(t < 0, below, 1 - above), torch.where(t < 0, 1 - below, above)


def _cauchy(prior: Cauchy, value: Tensor) -> Tails:
    t = _standardised(prior, value)
    one = torch.ones_like(t)
    return torch.atan2(one, -t) / math.pi, torch.atan2(one, t) / math.pi


def _gumbel(prior: Gumbel, value: Tensor) -> Tails:
    decay = torch.exp(-_standardised(prior, value))
    return torch.exp(-decay), -torch.expm1(-decay)


def _exponential(prior: Exponential, value: Tensor) -> Tails:
    exponent = -prior.rate * value.clamp(min=0)
    return -torch.expm1(exponent), torch.exp(exponent)


def _uniform(prior: Uniform, value: Tensor) -> Tails:
    width = prior.high - prior.low
    return ((value - prior.low) / width).clamp(0, 1), ((prior.high - value) / width).clamp(0, 1)


_EXACT: dict[type, Callable[[Distribution, Tensor], Tails]] = {
    Normal: _normal,
    Laplace: _laplace,
    Cauchy: _cauchy,
    Gumbel: _gumbel,
    Exponential: _exponential,
    Uniform: _uniform,
}


def _register(cls: type, names: tuple[str, ...], keep_validation: bool) -> None:
    """Traits of a torch class built from ``names`` in order; its exact CDF for the logits."""
    exact = _EXACT[cls]

    def rebuild(prior, tensors):
        validate = prior._validate_args if keep_validation else False
        return cls(*(tensors[name] for name in names), validate_args=validate)

    register_prior(
        cls,
        parameters=lambda prior: {name: getattr(prior, name) for name in names},
        rebuild=rebuild,
        chunkable=True,
        cdf_from_logits=lambda prior, logits: exact(prior, sigmoid_of_logits(logits))[0],
    )


# (class, its parameters in the constructor's order, whether a rebuilt one keeps validate_args:
# on bounded supports torch's cdf checks the values, or, unchecked, is wrong outside).
for _cls, _names, _keep in (
    (Normal, ("loc", "scale"), False),
    (Laplace, ("loc", "scale"), False),
    (Cauchy, ("loc", "scale"), False),
    (Gumbel, ("loc", "scale"), False),
    (Exponential, ("rate",), True),
    (Uniform, ("low", "high"), True),
):
    _register(_cls, _names, keep_validation=_keep)


# --- TransformedDistribution -----------------------------------------------------------------

_PARAMETER_FREE = (ExpTransform, SigmoidTransform, TanhTransform)
_TENSORS = {AffineTransform: ("loc", "scale"), PowerTransform: ("exponent",)}


def _forward(transform: Transform) -> Transform:
    return transform._inv if isinstance(transform, _InverseTransform) else transform


def _accepts(prior: TransformedDistribution) -> bool:
    base = prior_traits(prior.base_dist)
    return (
        base is not None
        and not base.leading_dims
        and prior.event_shape == ()
        and all(
            type(_forward(t)) in _PARAMETER_FREE
            or (type(_forward(t)) in _TENSORS and _forward(t).event_dim == 0)
            for t in prior.transforms
        )
    )


def _transformed_parameters(prior: TransformedDistribution) -> dict[str, Tensor]:
    base = prior.base_dist
    tensors = {f"base_{n}": t for n, t in prior_traits(base).parameters(base).items()}
    for i, transform in enumerate(prior.transforms):
        forward = _forward(transform)
        for name in _TENSORS.get(type(forward), ()):
            value = getattr(forward, name)
            if isinstance(value, Tensor):
                tensors[f"transform{i}_{name}"] = value
    return tensors


def _rebuilt_transform(transform: Transform, i: int, tensors: dict[str, Tensor]) -> Transform:
    if isinstance(transform, _InverseTransform):
        return _rebuilt_transform(transform._inv, i, tensors).inv
    if isinstance(transform, AffineTransform):
        loc = tensors.get(f"transform{i}_loc", transform.loc)
        scale = tensors.get(f"transform{i}_scale", transform.scale)
        return AffineTransform(loc, scale, event_dim=transform.event_dim)
    if isinstance(transform, PowerTransform):
        return PowerTransform(tensors.get(f"transform{i}_exponent", transform.exponent))
    return transform


def _transformed_rebuild(prior: TransformedDistribution, tensors: dict[str, Tensor]):
    base = prior.base_dist
    base_tensors = {n[len("base_") :]: t for n, t in tensors.items() if n.startswith("base_")}
    new_base = prior_traits(base).rebuild(base, base_tensors)
    transforms = [_rebuilt_transform(t, i, tensors) for i, t in enumerate(prior.transforms)]
    return TransformedDistribution(new_base, transforms, validate_args=prior._validate_args)


def _transformed_cdf_from_logits(prior: TransformedDistribution, logits: Tensor) -> Tensor:
    """The CDF at sigmoid(logits): without the sigmoid where it is the last transform."""
    transforms = prior.transforms
    if not (transforms and isinstance(transforms[-1], SigmoidTransform)):
        return prior.cdf(sigmoid_of_logits(logits))
    value, sign = logits, 1
    for transform in reversed(transforms[:-1]):
        value = transform.inv(value)
        sign = sign * transform.sign
    base = prior.base_dist
    exact = _EXACT.get(type(base))
    if exact is not None:
        cdf, survival = exact(base, value)
    else:
        cdf = base.cdf(value)
        survival = 1 - cdf
    if isinstance(sign, int):
        return cdf if sign > 0 else survival
    return torch.where(sign > 0, cdf, survival)


register_prior(
    TransformedDistribution,
    parameters=_transformed_parameters,
    rebuild=_transformed_rebuild,
    chunkable=True,
    cdf_from_logits=_transformed_cdf_from_logits,
    accepts=_accepts,
)
