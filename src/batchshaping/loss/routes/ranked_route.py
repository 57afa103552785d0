"""The ranked route (plain CPU tensors): each value keeps its place, only its rank is computed.

The sum over a group does not depend on the order of its values, so the loss needs the rank of
each value, not the sorted values: :mod:`~batchshaping.loss.routes.ranking` finds them by a radix
sort several times faster than ``torch.sort`` on the CPU. The prior's CDF is then evaluated with
the samples of each group contiguous, and for a prior with traits (see
:mod:`batchshaping.distributions.registry`) reduced by
:class:`~batchshaping.loss._distance.EagerSquaredDistance` in one pass; any other prior through
ordinary autograd. The empirical CDF is piecewise constant in x, so it takes no part in the
backward pass, just as the positions i / (n + 1) of the sorted route do not: the loss and its
gradients are those of the sorted route.
"""

from __future__ import annotations

from torch import Tensor
from torch.distributions import Distribution

from batchshaping.distributions import prior_traits
from batchshaping.loss._distance import (
    EagerSquaredDistance,
    PriorModel,
    fill_masked,
    reduce,
    sample_weights,
    squared_distance,
)
from batchshaping.loss._prior_cdf import cdf, cdf_samples_last, samples_last
from batchshaping.loss.routes import ranking


def applies(values: Tensor) -> bool:
    """Whether the values can be ranked on the host (see :func:`ranking.host_ranking_applies`)."""
    return ranking.host_ranking_applies(values)


def loss(
    values: Tensor,
    mask: Tensor | None,
    prior: Distribution,
    ties: bool,
    logits: bool,
    reduction: str,
    *,
    chunk_samples: int | None = None,
) -> Tensor:
    """The loss of ``values`` (*groups, N), reduced as ``reduction`` says.

    ``chunk_samples``: evaluate the prior this many samples of every group at a time (the
    chunked route; needs a prior with traits); ``None`` for all at once.
    """
    # Groups gathered from another dimension (dim=0 of (N, groups), say) are strided views:
    # one copy here serves the ranking, the prior's CDF and its gradient, which would each make
    # their own. The copy is differentiable; its backward hands the gradient on as it is.
    values = values.contiguous()
    mask = None if mask is None else mask.contiguous()
    empirical = ranking.empirical_cdf(values, mask, ties)
    counts = None if mask is None else mask.sum(-1)
    weight = sample_weights(counts, values.shape[-1], values)
    traits = prior_traits(prior)
    if traits is None:
        modelled = cdf_samples_last(prior, fill_masked(values, mask), logits)
        return reduce(squared_distance(empirical, modelled, weight, mask), reduction)
    tensors = traits.parameters(prior)
    names = tuple(tensors)

    def prior_cdf(parameters: dict[str, Tensor], chunk: Tensor) -> Tensor:
        return cdf(samples_last(prior, parameters), chunk, logits)

    def recompute_empirical() -> Tensor:
        return ranking.empirical_cdf(values, mask, ties)

    model = PriorModel(
        cdf=prior_cdf,
        names=names,
        leading_dims=tuple(traits.leading_dims.get(name, 0) for name in names),
        step=values.shape[-1] if chunk_samples is None else chunk_samples,
        reduction=reduction,
        recompute_empirical=recompute_empirical,
    )
    return EagerSquaredDistance.apply(values, empirical, weight, mask, model, *tensors.values())
