"""What a prior offers the loss, declared by the prior's own module, in the style of torch's
``register_kl``.

The loss never asks what type a prior is. It asks the registry for the prior's *traits*:

- ``parameters(prior)``: the tensors its ``cdf`` reads, by name;
- ``rebuild(prior, tensors)``: the same prior on other tensors of compatible shapes (the
  parameters detached, moved to another device, or with a dimension added so that the samples
  of a group can lie last and contiguous, which lets ``betainc`` share its work along a group);
- ``chunkable``: its CDF is a chain of torch's elementwise operations, so that evaluating it a
  cache-sized chunk at a time pays (``betainc``'s one fused kernel does not gain);
- ``cdf_from_logits(prior, logits)``: its CDF at ``sigmoid(logits)``, computed without forming
  the sigmoid (``None``: ``cdf(sigmoid(logits))``);
- ``accepts(prior)``: whether these traits fit this instance (``None``: every instance). A class
  whose instances vary in structure (a ``TransformedDistribution`` of any base and transforms)
  declares the instances its traits can rebuild; for the others :func:`prior_traits` answers
  ``None``, and the loss takes them through their ``cdf`` and ordinary autograd;
- ``leading_dims``: how many leading dimensions of a named parameter are not batch dimensions
  (``Empirical``'s reference samples, laid out (M, *batch): 1); its batch dimensions follow
  them, and adding a dimension last (as the loss does to lay the samples of a group last)
  adds a batch dimension to it as to every other parameter.

A prior with no traits still works everywhere, through its ``cdf`` and ordinary autograd; the
traits open the fast routes and let modules keep the prior's tensors as buffers. Traits belong to
one class exactly: a subclass (which may change ``cdf``) registers its own.

Example:
    >>> from torch.distributions import Normal
    >>> from batchshaping.distributions import Beta, prior_traits
    >>> prior_traits(Normal(0.0, 1.0)).chunkable, prior_traits(Beta(2.0, 6.0)).chunkable
    (True, False)
    >>> prior_traits(Beta(2.0, 6.0)).parameters(Beta(2.0, 6.0))
    {'concentration1': tensor(2.), 'concentration0': tensor(6.)}

A new prior registers itself at the end of its own module (see ``docs/architecture.md``)::

    register_prior(
        LogNormal,
        parameters=lambda prior: {"loc": prior.loc, "scale": prior.scale},
        rebuild=lambda prior, tensors: LogNormal(**tensors, validate_args=False),
        chunkable=True,
    )
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

from torch import Tensor
from torch.distributions import Distribution

__all__ = ["PriorTraits", "prior_traits", "register_prior"]


class PriorTraits(NamedTuple):
    """What a prior class offers the loss (see the module's docstring)."""

    parameters: Callable[[Distribution], dict[str, Tensor]]
    rebuild: Callable[[Distribution, dict[str, Tensor]], Distribution]
    chunkable: bool = False
    cdf_from_logits: Callable[[Distribution, Tensor], Tensor] | None = None
    accepts: Callable[[Distribution], bool] | None = None
    leading_dims: Mapping[str, int] = MappingProxyType({})


_TRAITS: dict[type, PriorTraits] = {}


def register_prior(
    cls: type,
    *,
    parameters: Callable[[Distribution], dict[str, Tensor]],
    rebuild: Callable[[Distribution, dict[str, Tensor]], Distribution],
    chunkable: bool = False,
    cdf_from_logits: Callable[[Distribution, Tensor], Tensor] | None = None,
    accepts: Callable[[Distribution], bool] | None = None,
    leading_dims: Mapping[str, int] | None = None,
) -> None:
    """Declare the traits of priors of class ``cls`` (replacing any earlier declaration).

    Args:
        cls: a :class:`torch.distributions.Distribution` subclass.
        parameters: the tensors its ``cdf`` reads, by name, each broadcastable to its batch shape
            (after its ``leading_dims``).
        rebuild: the prior built on new tensors for those names (with ``validate_args=False``:
            the tensors come from a valid prior).
        chunkable: whether its CDF gains from being evaluated a chunk at a time.
        cdf_from_logits: its CDF at sigmoid(logits), without forming the sigmoid, if it has one.
        accepts: which instances of ``cls`` the traits fit (``None``: all of them).
        leading_dims: for each parameter that has them, its leading non-batch dimensions.
    """
    if not (isinstance(cls, type) and issubclass(cls, Distribution)):
        raise TypeError(f"cls must be a Distribution subclass, got {cls!r}")
    _TRAITS[cls] = PriorTraits(
        parameters,
        rebuild,
        chunkable,
        cdf_from_logits,
        accepts,
        MappingProxyType(dict(leading_dims or {})),
    )


def prior_traits(prior: Distribution) -> PriorTraits | None:
    """The traits declared for ``type(prior)`` if they accept ``prior``, or ``None``."""
    traits = _TRAITS.get(type(prior))
    if traits is None or (traits.accepts is not None and not traits.accepts(prior)):
        return None
    return traits
