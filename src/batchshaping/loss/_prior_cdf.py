"""The prior's CDF at the samples of every group, laid out last: (*groups, N)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from batchshaping.distributions import prior_traits


def cdf(prior: Distribution, values: Tensor, logits: bool) -> Tensor:
    """``prior.cdf(values)``, or with ``logits`` its CDF at ``sigmoid(values)``.

    ``values`` broadcasts with ``prior.batch_shape`` as torch's ``cdf`` expects. With ``logits``,
    the prior's own logit-space CDF is used when it declares one (exact far into the tails).
    """
    try:
        if not logits:
            return prior.cdf(values)
        traits = prior_traits(prior)
        if traits is not None and traits.cdf_from_logits is not None:
            return traits.cdf_from_logits(prior, values)
        return prior.cdf(torch.sigmoid(values))
    except NotImplementedError as error:
        raise NotImplementedError(
            f"prior {type(prior).__name__}: cdf is not implemented ({error}); the loss needs a "
            f"prior with a cdf (see batchshaping.distributions)"
        ) from error


def samples_last(prior: Distribution, tensors: dict[str, Tensor]) -> Distribution:
    """The prior rebuilt on ``tensors`` with a dimension added last, to meet (*groups, N) values."""
    traits = prior_traits(prior)
    return traits.rebuild(prior, {name: t.unsqueeze(-1) for name, t in tensors.items()})


def cdf_samples_last(prior: Distribution, values: Tensor, logits: bool) -> Tensor:
    """The prior's CDF at ``values`` (*groups, N), whose groups match ``prior.batch_shape``.

    A prior with traits is rebuilt with its parameters shaped (*batch, 1), so each group's
    samples stay contiguous (``betainc`` computes log B(a, b) and digammas once per run of equal
    parameters: once per group instead of once per value); any other prior sees the samples
    moved first, as torch's ``cdf`` expects them.
    """
    if prior.batch_shape == ():
        return cdf(prior, values, logits)
    traits = prior_traits(prior)
    if traits is not None:
        return cdf(samples_last(prior, traits.parameters(prior)), values, logits)
    return cdf(prior, values.movedim(-1, 0), logits).movedim(0, -1)
