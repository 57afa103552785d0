"""The named families of priors built from numbers: the command line's and the drop-in's table.

Each family lists its parameters, as the user names them (the command's options, the drop-in's
``prior_param1`` and ``prior_param2`` in order), with the condition each must meet, and builds
the prior from tensors. One table serves ``batchshaping demo`` and :func:`batchshaping.gbas_loss`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor
from torch.distributions import Distribution, Normal

from batchshaping.distributions.beta import Beta
from batchshaping.distributions.relaxed_bernoulli import RelaxedBernoulli
from batchshaping.distributions.symmetric_beta import SymmetricBeta

__all__ = ["FAMILIES", "Family", "Parameter"]


class Parameter(NamedTuple):
    """One parameter of a family, as the user gives it."""

    name: str  # the command's option: --a, --p, --std
    description: str  # what it is, for messages: "the probability"
    check: Callable[[float], bool]  # whether a number is a valid value
    condition: str  # the check in words: "> 0", "in (0, 1)"


class Family(NamedTuple):
    """A family of priors: its parameters in order, and how to build one from tensors."""

    name: str
    title: str  # with its parameters' names: "Beta(a, b)"
    parameters: tuple[Parameter, ...]
    build: Callable[..., Distribution]  # (*tensors in order, validate_args, density_bounds)
    takes_density_bounds: bool  # accepts the surrogate gradient of Beta's density_bounds


def _positive(value: float) -> bool:
    return value > 0


def _open_unit(value: float) -> bool:
    return 0 < value < 1


def _beta(a: Tensor, b: Tensor, *, validate_args: bool, density_bounds=None) -> Distribution:
    return Beta(a, b, validate_args=validate_args, density_bounds=density_bounds)


def _symmetric_beta(a: Tensor, *, validate_args: bool, density_bounds=None) -> Distribution:
    return SymmetricBeta(a, validate_args=validate_args, density_bounds=density_bounds)


def _relaxed_bernoulli(p: Tensor, temperature: Tensor, *, validate_args: bool) -> Distribution:
    return RelaxedBernoulli(temperature, probs=p, validate_args=validate_args)


def _normal(mean: Tensor, std: Tensor, *, validate_args: bool) -> Distribution:
    return Normal(mean, std, validate_args=validate_args)


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "beta",
            "Beta(a, b)",
            (
                Parameter("a", "a", _positive, "> 0"),
                Parameter("b", "b", _positive, "> 0"),
            ),
            _beta,
            True,
        ),
        Family(
            "symbeta",
            "Beta(a, 1 - a), a in (0, 1)",
            (Parameter("a", "a", _open_unit, "in (0, 1)"),),
            _symmetric_beta,
            True,
        ),
        Family(
            "relaxed-bernoulli",
            "relaxed Bernoulli (binary Concrete)",
            (
                Parameter("p", "probability", _open_unit, "in (0, 1)"),
                Parameter("temperature", "temperature", _positive, "> 0"),
            ),
            _relaxed_bernoulli,
            False,
        ),
        Family(
            "normal",
            "Normal(mean, std)",
            (
                Parameter("mean", "mean", math.isfinite, "finite"),
                Parameter("std", "standard deviation", _positive, "> 0"),
            ),
            _normal,
            False,
        ),
    )
}
