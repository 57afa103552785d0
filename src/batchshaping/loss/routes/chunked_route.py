"""The chunked route: the ranked route, the prior's CDF evaluated a cache-sized chunk at a time.

For large inputs and priors whose CDF is a chain of torch's elementwise operations (declared
``chunkable`` in their traits: the relaxed Bernoulli, torch's Normal), every step of the CDF's
forward and backward is one pass over memory; evaluated ``chunk_values`` values at a time (over
all groups), a chunk's intermediates stay in the cache. Beta priors are not chunked: their CDF
is one fused ``betainc`` pass, which, called once per chunk between torch's multi-threaded
operations, lost more to the handovers between threads than it gained from the cache (measured
when it ran on the package's own pool; it now runs on torch's OpenMP threads, and chunking has
not been measured again). Exact, like the other routes.
"""

from __future__ import annotations

import math

from torch import Tensor
from torch.distributions import Distribution

from batchshaping.distributions import prior_traits
from batchshaping.loss.routes import ranked_route

# Chunks of about this many values, over all groups; the automatic choice takes this route from
# CHUNKED_MIN values on.
CHUNK_VALUES = 1 << 17
CHUNKED_MIN = 1 << 21
# Fewer samples than this in a group's part of a chunk: too many chunks.
_MIN_CHUNK_SAMPLES = 256


def chunk_samples(values: Tensor, chunk_values: int) -> int:
    """Samples of every group per chunk: about ``chunk_values`` values over all groups."""
    groups = math.prod(values.shape[:-1])
    return max(1, chunk_values // max(1, groups))


def pays(values: Tensor, prior: Distribution) -> bool:
    """Whether the automatic choice takes this route: a chunkable prior, an input large enough,
    and chunks not too thin (a chunk's fixed costs spread over enough values of each group)."""
    traits = prior_traits(prior)
    samples = chunk_samples(values, CHUNK_VALUES)
    return (
        traits is not None
        and traits.chunkable
        and values.numel() >= CHUNKED_MIN
        and values.shape[-1] > samples
        and samples >= _MIN_CHUNK_SAMPLES
    )


def applies(values: Tensor, prior: Distribution) -> bool:
    """Whether the route can run: values the ranked route takes, a prior with traits."""
    return ranked_route.applies(values) and prior_traits(prior) is not None


def loss(
    values: Tensor,
    mask: Tensor | None,
    prior: Distribution,
    ties: bool,
    logits: bool,
    reduction: str,
    *,
    chunk_values: int = CHUNK_VALUES,
) -> Tensor:
    """The loss of ``values`` (*groups, N), reduced as ``reduction`` says, in chunks."""
    step = chunk_samples(values, chunk_values)
    return ranked_route.loss(values, mask, prior, ties, logits, reduction, chunk_samples=step)
