"""The Batch-Shaping loss: the squared distance between empirical CDFs and a prior's CDF.

The public entry points are :func:`batch_shaping_loss` and its thin module
:class:`BatchShapingLoss`. The work is split into small private steps (lay the samples out last,
rank them, evaluate the prior, average), along one of two routes:

- sorted (any device, and inside ``torch.compile``): ``torch.sort`` each group and compare the
  sorted values with i / (n + 1), in torch operations without host-device synchronisation;
- ranked (plain CPU tensors): the sum over a group does not depend on the order of its values,
  so each value keeps its place and only its rank is computed, by a radix sort
  (:mod:`batchshaping._ranking`), several times faster than ``torch.sort`` on the CPU. The
  prior's CDF is then evaluated with the samples of a group contiguous, which lets ``betainc``
  reuse its per-parameter terms along a group.

Both give the same loss and the same gradients (the ranks, like the sorted positions, are
constants of the backward pass). For large inputs the ranked route reduces the loss in chunks
(:class:`_ChunkedSquaredDistance`): a chunk's CDF, its distance and the gradients of that distance
are computed while the chunk is in the cache, instead of one pass of the whole input for every
elementwise step of the prior's forward and backward.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.distributions import Distribution, Normal

from batchshaping import _ranking
from batchshaping.distributions import Beta, RelaxedBernoulli, SymmetricBeta

__all__ = ["BatchShapingLoss", "batch_shaping_loss"]

_REDUCTIONS = ("mean", "sum", "none")
# Computed in float32 and returned in their own dtype: sorting and the CDFs need the range.
_LOW_PRECISION = (torch.float16, torch.bfloat16)

Dim = int | Sequence[int] | None

# Which route computes the loss: None picks the ranked one wherever it applies (plain CPU
# tensors); the tests set True or False to force one.
_RANKED_ROUTE: bool | None = None
# The ranked route reduces inputs of at least this many values in chunks of about _CHUNK values
# (a chunk's intermediates stay in the cache); the tests lower both.
_CHUNKED_MIN = 1 << 21
_CHUNK = 1 << 17
# Fewer samples than this in a group's part of a chunk: too many chunks.
_MIN_CHUNK_SAMPLES = 256


def batch_shaping_loss(
    x: Tensor,
    prior: Distribution,
    *,
    dim: Dim = None,
    mask: Tensor | None = None,
    ties: bool = False,
    logits: bool = False,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""Batch-Shaping loss of ``x`` against ``prior`` (Bejnordi et al., ICLR 2020).

    For each group of N values sorted as x_(1) <= ... <= x_(N), with F the prior's CDF:

    .. math::
        \mathcal{L} = \frac{1}{N} \sum_{i=1}^{N} \left(\frac{i}{N + 1} - F(x_{(i)})\right)^2

    ``dim`` names the sample dimension(s), like a torch reduction; every index of the other
    dimensions is a group of its own, with its own empirical CDF, and ``prior.batch_shape`` must
    broadcast to the shape of the groups (x's shape without the ``dim`` dimensions), so one prior
    per group is a prior of that batch shape. Gradients flow to ``x`` and to any parameters of
    ``prior`` that require them; they are exact as far as the prior's ``cdf`` is (the sort is
    piecewise linear: its gradient is the permutation).

    Args:
        x: values, any floating dtype; float16 and bfloat16 are computed in float32.
        prior: a :class:`torch.distributions.Distribution` with a ``cdf`` and an empty
            ``event_shape``: :mod:`batchshaping.distributions` priors, torch's ``Normal``, ...
            Values outside its support are not an error (see the prior's ``cdf``).
        dim: sample dimension(s), an int or a tuple; ``None`` (default) puts every value of x in
            one distribution, the original Batch-Shaping.
        mask: bool tensor shaped like x; values where it is False take no part, and each group's
            empirical CDF uses its own count. No host-device synchronisation.
        ties: give tied values their shared empirical CDF (the number of values <= x over N + 1)
            instead of consecutive ranks.
        logits: x holds pre-sigmoid values; the prior's CDF is evaluated at sigmoid(x) through
            its ``cdf_from_logits`` when it has one (exact far into the tails), else as
            ``prior.cdf(sigmoid(x))``.
        reduction: ``"mean"`` (default) or ``"sum"`` over the groups, or ``"none"``.
        validate: check for non-finite values in x and for groups left with fewer than 2 values
            by the mask. These checks synchronise with the device; they are skipped when False
            and always inside ``torch.compile``. With them off, an empty group contributes 0.

    Returns:
        A scalar, or for ``reduction="none"`` a tensor with the group shape; in x's dtype.

    Raises:
        ValueError: naming the argument, for a bad ``dim``, ``mask`` or ``reduction``, a group of
            fewer than 2 values, non-finite values in x, or a prior whose batch shape does not
            broadcast to the groups. ``TypeError`` for an x or prior of the wrong type.

    Example:
        >>> from torch.distributions import Normal
        >>> x = torch.tensor([[0.1, 0.5, 0.9], [-1.0, 0.0, 1.0]])
        >>> batch_shaping_loss(x, Normal(0.0, 1.0), dim=1, reduction="none")
        tensor([0.0417, 0.0056])
    """
    _check_x(x)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    sample_dims = _sample_dims(dim, x.ndim)
    _check_mask(mask, x)
    _check_prior(prior)

    compute_dtype = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
    values, group_shape = _samples_last(x.to(compute_dtype), sample_dims)
    num_samples = values.shape[-1]
    if num_samples < 2:
        raise ValueError(
            f"x: every group needs at least 2 samples, but dim={dim} gives groups of "
            f"{num_samples} (x has shape {tuple(x.shape)})"
        )
    _check_prior_shape(prior, group_shape)
    mask_last = None if mask is None else _samples_last(mask, sample_dims)[0]
    if validate and not torch.compiler.is_compiling():
        _check_finite(values, mask_last)
        _check_group_sizes(mask_last)

    ranked = _RANKED_ROUTE
    if ranked is None:
        ranked = _ranking.host_ranking_applies(values)
    if ranked and reduction != "none" and _chunks_apply(values):
        rebuildable = _rebuildable(prior)
        if rebuildable is not None:
            loss = _loss_in_chunks(values, mask_last, rebuildable, ties, logits, reduction)
            return loss.to(x.dtype)
    if ranked:
        losses = _losses_from_ranks(values, mask_last, prior, ties, logits)
    else:
        losses = _losses_from_sorted(values, mask_last, prior, ties, logits)
    return _reduce(losses, reduction).to(x.dtype)


class BatchShapingLoss(nn.Module):
    """Module form of :func:`batch_shaping_loss`: stores the prior and options, calls the function.

    A :class:`~torch.distributions.Distribution` computes (and some cache) tensors from its
    parameters when it is built, so a prior with learnable parameters must be rebuilt after every
    optimiser step: pass a callable that builds it, for instance an :class:`~torch.nn.Module`
    holding the parameters (then registered as a submodule, so ``parameters()`` and ``.to()``
    reach it). It is called on every forward, and gradients reach its parameters.

    Args:
        prior: a Distribution, or a callable with no arguments that returns one.
        dim, ties, logits, reduction, validate: as in :func:`batch_shaping_loss`.

    Example:
        >>> from torch.distributions import Normal
        >>> loss = BatchShapingLoss(Normal(0.0, 1.0))
        >>> loss(torch.tensor([-1.0, 0.0, 1.0]))
        tensor(0.0056)
    """

    def __init__(
        self,
        prior: Distribution | Callable[[], Distribution],
        *,
        dim: Dim = None,
        ties: bool = False,
        logits: bool = False,
        reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if not isinstance(prior, Distribution) and not callable(prior):
            raise TypeError(
                f"prior must be a torch Distribution or a callable returning one, "
                f"got {type(prior).__name__}"
            )
        self.prior = prior
        self.dim = dim
        self.ties = ties
        self.logits = logits
        self.reduction = reduction
        self.validate = validate

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The loss of ``x`` (and ``mask``) as :func:`batch_shaping_loss` gives it."""
        prior = self.prior if isinstance(self.prior, Distribution) else self.prior()
        return batch_shaping_loss(
            x,
            prior,
            dim=self.dim,
            mask=mask,
            ties=self.ties,
            logits=self.logits,
            reduction=self.reduction,
            validate=self.validate,
        )

    def extra_repr(self) -> str:
        prior = "" if isinstance(self.prior, nn.Module) else f"prior={self.prior}, "
        return (
            f"{prior}dim={self.dim}, ties={self.ties}, logits={self.logits}, "
            f"reduction={self.reduction!r}"
        )


# --- checks at the boundary -------------------------------------------------------------------


def _check_x(x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"x must have a floating dtype, got {x.dtype}")


def _check_prior(prior: Distribution) -> None:
    if not isinstance(prior, Distribution):
        raise TypeError(f"prior must be a torch.distributions.Distribution, got {type(prior)}")
    if prior.event_shape != ():
        raise ValueError(
            f"prior must be univariate (event_shape ()), got event_shape {tuple(prior.event_shape)}"
        )


def _sample_dims(dim: Dim, ndim: int) -> tuple[int, ...]:
    """The sample dimensions as sorted non-negative ints."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dims = (dim,)
    elif isinstance(dim, Sequence):
        dims = tuple(dim)
    else:
        raise ValueError(f"dim must be an int, a tuple of ints or None, got {dim!r}")
    if not dims:
        raise ValueError("dim=() names no sample dimension; use dim=None for all of them")
    normalised = []
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool):
            raise ValueError(f"dim must be an int or a tuple of ints, got {dim!r}")
        if ndim == 0 or not -ndim <= d < ndim:
            raise ValueError(f"dim {d} is out of range for x with {ndim} dimension(s)")
        normalised.append(d % ndim)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"dim {dim!r} names a dimension twice")
    return tuple(sorted(normalised))


def _check_mask(mask: Tensor | None, x: Tensor) -> None:
    if mask is None:
        return
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        kind = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor, got {kind}")
    if mask.shape != x.shape:
        raise ValueError(
            f"mask must have the shape of x, {tuple(x.shape)}, got {tuple(mask.shape)}"
        )


def _check_prior_shape(prior: Distribution, group_shape: torch.Size) -> None:
    try:
        fits = torch.broadcast_shapes(prior.batch_shape, group_shape) == group_shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"prior batch_shape {tuple(prior.batch_shape)} does not broadcast to the group "
            f"shape {tuple(group_shape)} (the shape of x without its sample dimensions)"
        )


def _check_finite(values: Tensor, mask: Tensor | None) -> None:
    # One sum answers the common case in one pass: it is finite when every term is. A finite sum
    # proves nothing bad; a non-finite one (or an overflow) is checked value by value.
    kept = values if mask is None else torch.where(mask, values, 0)
    if torch.isfinite(kept.sum()):
        return
    bad = ~torch.isfinite(values)
    if mask is not None:
        bad &= mask
    count = int(bad.sum())
    if count:
        where = " where mask is True" if mask is not None else ""
        raise ValueError(f"x has {count} non-finite value(s) (NaN or infinite){where}")


def _check_group_sizes(mask: Tensor | None) -> None:
    if mask is None or mask.numel() == 0:
        return
    counts = mask.sum(-1)
    small = int((counts < 2).sum())
    if small:
        raise ValueError(
            f"mask leaves {small} group(s) with fewer than 2 samples "
            f"(the smallest has {int(counts.min())})"
        )


# --- the loss, step by step -------------------------------------------------------------------


def _samples_last(tensor: Tensor, sample_dims: tuple[int, ...]) -> tuple[Tensor, torch.Size]:
    """Move the sample dimensions to the end and flatten them: (*groups, samples)."""
    group_dims = [d for d in range(tensor.ndim) if d not in sample_dims]
    group_shape = torch.Size([tensor.shape[d] for d in group_dims])
    num_samples = math.prod([tensor.shape[d] for d in sample_dims])
    moved = tensor.permute([*group_dims, *sample_dims])
    return moved.reshape(*group_shape, num_samples), group_shape


def _losses_from_sorted(
    values: Tensor, mask: Tensor | None, prior: Distribution, ties: bool, logits: bool
) -> Tensor:
    """The loss of each group from its sorted values (*groups, N): the route of every device."""
    sorted_values, counts = _sort_samples(values, mask)
    empirical = _empirical_cdf(sorted_values, counts, ties)
    valid = _valid_positions(counts, values.shape[-1])
    if valid is not None:
        # Padding must not reach the prior: any value works, as its terms are dropped below.
        sorted_values = torch.where(valid, sorted_values, sorted_values[..., :1])
    modelled = _prior_cdf(prior, sorted_values, logits)
    return _group_losses(empirical, modelled, counts, valid)


def _losses_from_ranks(
    values: Tensor, mask: Tensor | None, prior: Distribution, ties: bool, logits: bool
) -> Tensor:
    """The loss of each group from the rank of each value, left in place (plain CPU tensors).

    The empirical CDF is piecewise constant in x, so it takes no part in the backward pass, just
    as the positions i / (n + 1) of the sorted route do not.
    """
    empirical, values, counts = _ranked_inputs(values, mask, ties)
    modelled = _prior_cdf_samples_last(prior, values, logits)
    return _MeanSquaredDistance.apply(empirical, modelled, counts, mask)


def _ranked_inputs(
    values: Tensor, mask: Tensor | None, ties: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The empirical CDF of every value, the values for the prior, and the counts under a mask."""
    empirical = _ranking.empirical_cdf(values, mask, ties)
    if mask is None:
        return empirical, values, None
    # Padding must not reach the prior: it takes the first kept value of its group.
    first_kept = mask.to(torch.uint8).argmax(-1, keepdim=True)
    values = torch.where(mask, values, values.detach().gather(-1, first_kept))
    return empirical, values, mask.sum(-1)


def _rebuildable(prior: Distribution):
    """``(build, parameters)`` for the priors that gain from chunks, else None.

    ``parameters`` are the tensors the prior's cdf reads; ``build(tensors)`` makes the same prior
    on other tensors of those shapes. The priors whose CDF is a chain of torch's elementwise
    operations gain: each step is one pass over memory, in the cache once chunked. Beta priors
    do not: their CDF is one fused ``betainc`` call on its own threads, which, called once per
    chunk between torch's multi-threaded operations, loses more to the handovers between the
    two thread pools than it gains from the cache.
    """
    kind = type(prior)
    if kind is RelaxedBernoulli:

        def build_relaxed_bernoulli(tensors):
            return RelaxedBernoulli(tensors[0], logits=tensors[1], validate_args=False)

        return build_relaxed_bernoulli, (prior.temperature, prior.logits)
    if kind is Normal:
        validate = prior._validate_args

        def build_normal(tensors):
            return Normal(*tensors, validate_args=validate)

        return build_normal, (prior.loc, prior.scale)
    return None


def _chunk_samples(values: Tensor) -> int:
    """Samples per chunk: about _CHUNK values over all groups."""
    groups = math.prod(values.shape[:-1])
    return max(1, _CHUNK // max(1, groups))


def _chunks_apply(values: Tensor) -> bool:
    """Large enough to gain from chunks (for a prior that gains: :func:`_rebuildable`), and chunks
    that are not too thin (a chunk's fixed costs spread over enough values of each group)."""
    samples = _chunk_samples(values)
    return (
        values.numel() >= _CHUNKED_MIN
        and values.shape[-1] > samples
        and samples >= _MIN_CHUNK_SAMPLES
    )


def _loss_in_chunks(
    values: Tensor,
    mask: Tensor | None,
    rebuildable,
    ties: bool,
    logits: bool,
    reduction: str,
) -> Tensor:
    """The reduced loss (mean or sum over groups) of the ranked route, in chunks.

    ``rebuildable`` is :func:`_rebuildable` of the prior.
    """
    empirical, values, counts = _ranked_inputs(values, mask, ties)
    groups = math.prod(values.shape[:-1])
    if counts is None:
        weight = torch.full((), 1 / values.shape[-1], dtype=values.dtype)
    else:
        weight = counts.clamp(min=1).to(values.dtype).reciprocal().unsqueeze(-1)
    if reduction == "mean":
        weight = weight / max(1, groups)
    build, parameters = rebuildable
    return _ChunkedSquaredDistance.apply(
        values, empirical, weight, mask, build, logits, *parameters
    )


class _ChunkedSquaredDistance(torch.autograd.Function):
    r"""sum_g w_g sum_i (E_gi - F(x_gi))^2, computed a chunk of samples at a time.

    Each chunk's CDF is evaluated on detached copies of the values and the prior's parameters,
    and its gradients are taken at once with :func:`torch.autograd.grad`, weighted by
    -2 w_g (E - F), while the chunk is still in the cache. The gradient of the whole is then
    known after the forward: the backward only scales it by the incoming gradient (a scalar), so
    it keeps one tensor the size of x and one the size of each parameter. Exact, like the
    unchunked route; ``w`` is 1 / n_g (and 1 / G for the mean), with masked-out values at zero.
    """

    @staticmethod
    def forward(ctx, values, empirical, weight, mask, build, logits, *parameters):
        wanted = ctx.needs_input_grad
        want_values, want_parameters = wanted[0], wanted[6:]
        grad_values = torch.empty_like(values) if want_values else None
        grad_parameters = [
            torch.zeros_like(p) if want else None
            for p, want in zip(parameters, want_parameters, strict=True)
        ]
        total = values.new_zeros(())
        step = _chunk_samples(values)
        for start in range(0, values.shape[-1], step):
            part = slice(start, start + step)
            chunk = values[..., part].detach().requires_grad_(want_values)
            leaves = [
                p.detach().requires_grad_(want)
                for p, want in zip(parameters, want_parameters, strict=True)
            ]
            with torch.enable_grad():
                modelled = _prior_cdf_samples_last(build(leaves), chunk, logits)
            difference = empirical[..., part] - modelled.detach()
            if mask is not None:
                difference.mul_(mask[..., part])
            weighted = difference * weight
            total += torch.linalg.vecdot(weighted, difference).sum()
            inputs = [t for t in (chunk, *leaves) if t.requires_grad]
            if not (inputs and modelled.requires_grad):
                if want_values:
                    grad_values[..., part] = 0
                continue
            slope = weighted.mul_(-2).to(modelled.dtype)
            grads = torch.autograd.grad(modelled, inputs, slope, allow_unused=True)
            found = dict(zip(map(id, inputs), grads, strict=True))
            if want_values:
                gradient = found[id(chunk)]
                grad_values[..., part] = 0 if gradient is None else gradient
            for accumulated, leaf in zip(grad_parameters, leaves, strict=True):
                if leaf.requires_grad and found[id(leaf)] is not None:
                    accumulated += found[id(leaf)]
        ctx.save_for_backward(grad_values, *grad_parameters)
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        scaled = [None if g is None else g * grad for g in ctx.saved_tensors]
        return scaled[0], None, None, None, None, None, *scaled[1:]


class _MeanSquaredDistance(torch.autograd.Function):
    r"""Per group, the mean of (E - F)^2 over its values; differentiable in F only.

    .. math::
        \ell_g = \frac{1}{n_g} \sum_i (E_i - F_i)^2, \qquad
        \frac{\partial \ell_g}{\partial F_i} = -\frac{2}{n_g} (E_i - F_i)

    E (*groups, N) is the empirical CDF, a constant that the forward overwrites with E - F, the
    one tensor kept for the backward. Under a mask, n_g is the group's count and masked-out
    positions count as zero.
    """

    @staticmethod
    def forward(ctx, empirical, modelled, counts, mask):
        if empirical.dtype == torch.promote_types(empirical.dtype, modelled.dtype):
            difference = empirical.sub_(modelled)
        else:
            difference = empirical - modelled
        if mask is not None:
            difference.mul_(mask)
            scale = counts.clamp(min=1).to(difference.dtype).reciprocal()
        else:
            scale = torch.full((), 1 / difference.shape[-1], dtype=difference.dtype)
        ctx.save_for_backward(difference, scale)
        return torch.linalg.vecdot(difference, difference) * scale

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        difference, scale = ctx.saved_tensors
        return None, difference * (-2 * grad * scale).unsqueeze(-1), None, None


def _sort_samples(values: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Sort each group; masked-out values become +inf and sort to the end.

    Returns the sorted values (*groups, N) and, under a mask, the per-group counts (*groups,).
    """
    if mask is None:
        return torch.sort(values, dim=-1).values, None
    padded = torch.where(mask, values, torch.full_like(values, math.inf))
    return torch.sort(padded, dim=-1).values, mask.sum(-1)


def _empirical_cdf(sorted_values: Tensor, counts: Tensor | None, ties: bool) -> Tensor:
    """i / (n + 1) at the i-th sorted value, or with ties the count of values <= it over n + 1.

    Broadcasts against the sorted values (*groups, N).
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


def _valid_positions(counts: Tensor | None, num_samples: int) -> Tensor | None:
    """Under a mask, which sorted positions hold real values: (*groups, N) bool."""
    if counts is None:
        return None
    return torch.arange(num_samples, device=counts.device) < counts.unsqueeze(-1)


def _prior_cdf(prior: Distribution, values: Tensor, logits: bool) -> Tensor:
    """The prior's CDF at every value (*groups, N), the samples laid out first as torch expects."""
    return _cdf(prior, values.movedim(-1, 0), logits).movedim(0, -1)


def _prior_cdf_samples_last(prior: Distribution, values: Tensor, logits: bool) -> Tensor:
    """As :func:`_prior_cdf`, keeping each group's samples contiguous where the prior allows.

    ``betainc`` computes log B(a, b) (and digammas) once per run of equal parameters: with one
    Beta prior per group and the groups laid out samples last, once per group instead of once
    per value. Other priors are elementwise torch operations, indifferent to the layout.
    """
    if prior.batch_shape == ():
        return _cdf(prior, values, logits)
    if type(prior) in (Beta, SymmetricBeta):
        per_group = Beta(
            prior.concentration1.unsqueeze(-1),
            prior.concentration0.unsqueeze(-1),
            validate_args=False,
            density_bounds=prior.density_bounds,
        )
        return _cdf(per_group, values, logits)
    return _prior_cdf(prior, values, logits)


def _cdf(prior: Distribution, values: Tensor, logits: bool) -> Tensor:
    try:
        if not logits:
            return prior.cdf(values)
        if hasattr(prior, "cdf_from_logits"):
            return prior.cdf_from_logits(values)
        return prior.cdf(torch.sigmoid(values))
    except NotImplementedError as error:
        raise NotImplementedError(
            f"prior {type(prior).__name__}: cdf is not implemented ({error}); "
            f"batchshaping.distributions has Beta, SymmetricBeta and RelaxedBernoulli with one"
        ) from error


def _group_losses(
    empirical: Tensor, modelled: Tensor, counts: Tensor | None, valid: Tensor | None
) -> Tensor:
    """Mean squared difference over each group's values: (*groups,)."""
    squared = (empirical - modelled) ** 2
    if valid is None:
        return squared.mean(-1)
    squared = torch.where(valid, squared, torch.zeros_like(squared))
    return squared.sum(-1) / counts.clamp(min=1).to(squared.dtype)


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses
