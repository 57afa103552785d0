"""The sorted route: ``torch.sort`` each group and compare its sorted values with i / (n + 1).

The route of every device, and of every call while ``torch.compile`` traces or a ``torch.func``
transform runs: plain torch operations, without host-device synchronisation, differentiable to
any order that the prior's CDF is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution

from batchshaping.loss._distance import reduce, sample_weights, squared_distance
from batchshaping.loss._prior_cdf import cdf_samples_last


def loss(
    values: Tensor,
    mask: Tensor | None,
    prior: Distribution,
    ties: bool,
    logits: bool,
    reduction: str,
) -> Tensor:
    """The loss of ``values`` (*groups, N), reduced as ``reduction`` says."""
    num_samples = values.shape[-1]
    if mask is None:
        sorted_values, counts, valid = torch.sort(values, dim=-1).values, None, None
        empirical = empirical_cdf_of_sorted(sorted_values, counts, ties)
    else:
        # Masked-out values become +inf and sort to the end of their group.
        padded = torch.where(mask, values, torch.full_like(values, math.inf))
        sorted_values, counts = torch.sort(padded, dim=-1).values, mask.sum(-1)
        empirical = empirical_cdf_of_sorted(sorted_values, counts, ties)
        valid = torch.arange(num_samples, device=values.device) < counts.unsqueeze(-1)
        # Padding must not reach the prior: any value works, as its terms are dropped.
        sorted_values = torch.where(valid, sorted_values, sorted_values[..., :1])
    modelled = cdf_samples_last(prior, sorted_values, logits)
    weight = sample_weights(counts, num_samples, modelled)
    return reduce(squared_distance(empirical, modelled, weight, valid), reduction)


def empirical_cdf_of_sorted(sorted_values: Tensor, counts: Tensor | None, ties: bool) -> Tensor:
    """i / (n + 1) at the i-th sorted value, or with ties the count of values <= it over n + 1.

    Broadcasts against the sorted values (*groups, N); no gradient (it is piecewise constant).
    """
    num_samples = sorted_values.shape[-1]
    if ties:
        detached = sorted_values.detach().contiguous()
        ranks = torch.searchsorted(detached, detached, right=True)
    else:
        ranks = torch.arange(1, num_samples + 1, device=sorted_values.device)
    ranks = ranks.to(sorted_values.dtype)
    if counts is None:
        return ranks / (num_samples + 1)
    return ranks / (counts.to(sorted_values.dtype) + 1).unsqueeze(-1)
