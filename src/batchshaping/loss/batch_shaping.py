"""The Batch-Shaping loss: the squared distance between empirical CDFs and a prior's CDF.

The public entry points are :func:`batch_shaping_loss` and its thin module
:class:`BatchShapingLoss`. The function checks its arguments, lays the samples of every group
out last, (*groups, N), with ``sync=True`` gathers them across the ranks
(:mod:`batchshaping.loss.global_batch`), picks a route once
(:func:`batchshaping.loss.routes.choose`: sorted, ranked or chunked, each in its own module) and
hands it the values; the route (or an :class:`~batchshaping.loss.ECDFMemory`) returns the
reduced loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributions import Distribution

from batchshaping._runtime.tracing import tracing
from batchshaping.loss import _checks, global_batch, routes
from batchshaping.loss._checks import Dim
from batchshaping.loss._stored_prior import StoredPrior
from batchshaping.loss.memory import ECDFMemory

__all__ = ["BatchShapingLoss", "batch_shaping_loss"]

# Computed in float32 and returned in their own dtype: sorting and the CDFs need the range.
_LOW_PRECISION = (torch.float16, torch.bfloat16)


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
    sync: bool = False,
    process_group: dist.ProcessGroup | None = None,
    memory: ECDFMemory | None = None,
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
            empirical CDF uses its own count.
        ties: give tied values their shared empirical CDF (the number of values <= x over N + 1)
            instead of consecutive ranks.
        logits: x holds pre-sigmoid values; the prior's CDF is evaluated at sigmoid(x) through
            its ``cdf_from_logits`` when it has one (exact far into the tails), else as
            ``prior.cdf(sigmoid(x))``.
        reduction: ``"mean"`` (default) or ``"sum"`` over the groups, or ``"none"``.
        validate: check for non-finite values in x and for groups left with fewer than 2 values
            by the mask. These checks read values on the host (on CUDA a synchronisation); they
            are skipped when False, and always while ``torch.compile`` traces or a ``torch.func``
            transform runs. With them off, an empty group contributes 0.
        sync: gather the samples of every group across the ranks of ``process_group`` (like
            ``SyncBatchNorm``), so that every rank computes the loss of the global batch, the
            ranks' samples concatenated in rank order: the same loss as one process on the whole
            batch. Ranks may hold different numbers of samples (none included). Each rank's x
            receives the gradient of the sum of the ranks' losses, W times its part of the
            gradient of the global loss for W ranks: DDP, which averages parameter gradients over
            the ranks, then gives the model the gradient of one process on the whole batch, and
            the prior's parameters (not gathered) get that gradient on every rank as they are.
            Without DDP, average the gradients of replicated parameters over the ranks (all_reduce
            and divide by W), and divide those of what one rank alone owns by W. Every rank must
            call the loss and its backward; the prior must be the same on every rank.
        process_group: the ranks to gather over (default: the whole world).
        memory: an :class:`~batchshaping.loss.ECDFMemory`: rank the values among those of
            earlier calls as well (the loss sums over the current values only; see there).

    The loss runs on one of three routes (sorted, ranked, chunked), chosen automatically or with
    :func:`batchshaping.loss.route`; all give the same loss and gradients. Higher derivatives
    (``create_graph=True``, :func:`torch.autograd.functional.hessian`, ``torch.func``) are exact
    on every route as far as the prior's CDF is twice differentiable, and raise where it is not
    (Beta priors: second derivatives in their concentrations).

    Returns:
        A scalar, or for ``reduction="none"`` a tensor with the group shape; in x's dtype.

    Raises:
        ValueError: naming the argument, for a bad ``dim``, ``mask`` or ``reduction``, a group of
            fewer than 2 values, non-finite values in x, or a prior whose batch shape does not
            broadcast to the groups. ``TypeError`` for an x or prior of the wrong type. With
            ``sync=True``, on every rank when one rank's arguments fail these checks or when the
            ranks disagree on the group shape, the number of groups, x's dtype, ``ties``,
            ``logits``, ``reduction`` or whether x requires a gradient (checked in one
            collective before the data moves).
        RuntimeError: for ``sync=True`` without an initialised process group.

    Example:
        >>> from torch.distributions import Normal
        >>> x = torch.tensor([[0.1, 0.5, 0.9], [-1.0, 0.0, 1.0]])
        >>> batch_shaping_loss(x, Normal(0.0, 1.0), dim=1, reduction="none")
        tensor([0.0417, 0.0056])
    """
    group = global_batch.process_group_of(process_group) if sync else None
    # A rank whose own checks fail tells the others, which would wait for its data otherwise.
    with global_batch.shared_failure(group, x):
        _checks.check_x(x)
        _checks.check_reduction(reduction)
        sample_dims = _checks.sample_dims(dim, x.ndim)
        _checks.check_mask(mask, x)
        _checks.check_prior(prior)
        _check_memory(memory)

        compute_dtype = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
        values, group_shape = _checks.samples_last(x.to(compute_dtype), sample_dims)
        _checks.check_prior_shape(prior, group_shape)
        mask_last = None if mask is None else _checks.samples_last(mask, sample_dims)[0]
        if validate and not tracing():
            _checks.check_finite(values, mask_last)
    if group is not None:
        options = (ties, logits, reduction)
        values, mask_last = global_batch.gather(values, mask_last, group, x.dtype, options)
    num_samples = values.shape[-1]
    if num_samples < 2:
        across = " across the ranks" if group is not None else ""
        raise ValueError(
            f"x: every group needs at least 2 samples, but dim={dim} gives groups of "
            f"{num_samples}{across} (x has shape {tuple(x.shape)})"
        )
    if validate and not tracing():
        _checks.check_group_sizes(mask_last)
    if memory is not None:
        return memory.loss(values, mask_last, prior, ties, logits, reduction).to(x.dtype)
    route = routes.choose(values, prior, reduction)
    return route(values, mask_last, prior, ties, logits, reduction).to(x.dtype)


def _check_memory(memory: object) -> None:
    if memory is not None and not isinstance(memory, ECDFMemory):
        raise TypeError(f"memory must be an ECDFMemory or None, got {type(memory).__name__}")


class BatchShapingLoss(nn.Module):
    """Module form of :func:`batch_shaping_loss`: stores the prior and options, calls the function.

    A :class:`~torch.distributions.Distribution` computes (and some cache) tensors from its
    parameters when it is built, so a prior with learnable parameters must be rebuilt after every
    optimiser step: pass a callable that builds it, for instance an :class:`~torch.nn.Module`
    holding the parameters (then registered as a submodule, so ``parameters()`` and ``.to()``
    reach it). It is called on every forward, and gradients reach its parameters.

    A Distribution given as it is is kept in a :class:`~batchshaping.loss.StoredPrior`, its
    tensors as buffers, so that ``.to(...)``, ``.double()`` and ``state_dict`` carry it; ``prior()``
    returns it (for a prior whose traits are registered; see
    :func:`batchshaping.distributions.register_prior`).

    Args:
        prior: a Distribution, or a callable with no arguments that returns one.
        dim, ties, logits, reduction, validate, sync, process_group: as in
            :func:`batch_shaping_loss`.
        memory: an :class:`~batchshaping.loss.ECDFMemory`, registered as a submodule (so
            ``state_dict`` and ``.to()`` reach it), or ``None``.

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
        sync: bool = False,
        process_group: dist.ProcessGroup | None = None,
        memory: ECDFMemory | None = None,
    ) -> None:
        super().__init__()
        _checks.check_reduction(reduction)
        _check_memory(memory)
        if isinstance(prior, Distribution):
            prior = StoredPrior(prior)
        elif not callable(prior):
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
        self.sync = sync
        self.process_group = process_group
        self.memory = memory

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The loss of ``x`` (and ``mask``) as :func:`batch_shaping_loss` gives it."""
        return batch_shaping_loss(
            x,
            self.prior(),
            dim=self.dim,
            mask=mask,
            ties=self.ties,
            logits=self.logits,
            reduction=self.reduction,
            validate=self.validate,
            sync=self.sync,
            process_group=self.process_group,
            memory=self.memory,
        )

    def extra_repr(self) -> str:
        prior = "" if isinstance(self.prior, nn.Module) else f"prior={self.prior}, "
        return (
            f"{prior}dim={self.dim}, ties={self.ties}, logits={self.logits}, "
            f"reduction={self.reduction!r}" + (", sync=True" if self.sync else "")
        )
