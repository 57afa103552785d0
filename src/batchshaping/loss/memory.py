r"""A memory of past batches for the empirical CDF: ``batch_shaping_loss(..., memory=...)``."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from batchshaping.loss._distance import fill_masked, reduce, sample_weights, squared_distance
from batchshaping.loss._prior_cdf import cdf_samples_last

__all__ = ["ECDFMemory"]


class ECDFMemory(nn.Module):
    r"""The last ``size`` values of every group from earlier calls, joined to the empirical CDF.

    The empirical CDF of 8 values is a poor estimate of their distribution: the expected loss of
    n values drawn from the prior itself is 1 / (6 (n + 1)), 0.0185 for n = 8 against 3.2e-4
    for n = 512. Given to :func:`batchshaping.batch_shaping_loss` (``memory=``), this queue
    joins the remembered values, detached, to the current ones to form the empirical CDF, so a
    small batch is ranked among n + M values: for the current values x_1..x_n of a group, with
    R_i the rank of x_i among the n + M values (current and remembered),

    .. math::
        \mathcal{L} = \frac{1}{n} \sum_{i=1}^{n} \left(\frac{R_i}{n + M + 1} - F(x_i)\right)^2

    whose expectation for values drawn from the prior is 1 / (6 (n + M + 1)), that of a batch of
    n + M. The sum runs over the current values only: a remembered value's term would be a
    constant of x (its rank is piecewise constant and its value detached) that no step can
    reduce, and through a learned prior's parameters it would pull the prior towards the values
    of past steps. Over the current values, the loss measures this batch, the gradient with
    respect to each current value keeps the 1 / n scale of the plain loss whatever M (so a
    learning rate tuned without the memory still fits), and it is exactly the plain loss while
    the memory is empty. Gradients reach the current values and the prior's parameters; the
    remembered values are constants.

    After each call in training mode (the default; ``.eval()`` freezes it) the current values
    are pushed into the queue, the oldest dropped, M counting the samples of the last calls
    (a value masked out in its call occupies its slot but takes no part). With ``sync=True`` it
    holds the global batch, the same on every rank. Ties between a current and a remembered
    value rank the remembered one first (with ``ties=True`` both share the count of values
    <= them). The queue is a set of buffers: ``state_dict``, ``.to(...)`` and ``.double()``
    carry it; its group shape is taken from the first call (or from a loaded state).

    Args:
        size: M, the values remembered per group, an int >= 1.

    Example:
        >>> from batchshaping import ECDFMemory, batch_shaping_loss
        >>> from batchshaping.distributions import Beta
        >>> prior, memory = Beta(2.0, 6.0), ECDFMemory(64)
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> for step in range(10):  # 8 values a step, ranked among up to 64 earlier ones
        ...     loss = batch_shaping_loss(prior.sample((8,)), prior, memory=memory)
        >>> memory.counts()
        tensor(64)
    """

    values: Tensor
    valid: Tensor
    position: Tensor

    def __init__(self, size: int) -> None:
        super().__init__()
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"size must be an int >= 1, got {size!r}")
        self.size = size
        self.register_buffer("values", torch.empty(0))
        self.register_buffer("valid", torch.empty(0, dtype=torch.bool))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))

    @property
    def group_shape(self) -> torch.Size | None:
        """The group shape of the values held, or ``None`` before the first call."""
        return None if self.values.numel() == 0 else self.values.shape[:-1]

    def counts(self) -> Tensor:
        """The number of values remembered in every group, (*groups,) (0 before the first call)."""
        if self.group_shape is None:
            return torch.zeros((), dtype=torch.long, device=self.position.device)
        return self.valid.sum(-1)

    def reset(self) -> None:
        """Forget every value and the group shape."""
        self.values = self.values.new_empty(0)
        self.valid = self.valid.new_empty(0)
        self.position.zero_()

    def loss(
        self,
        values: Tensor,
        mask: Tensor | None,
        prior: Distribution,
        ties: bool,
        logits: bool,
        reduction: str,
    ) -> Tensor:
        """The loss of ``values`` (*groups, N) ranked among the memory's; then remember them.

        Called by :func:`batchshaping.batch_shaping_loss` in place of its route; plain torch
        operations on any device, without host synchronisation.
        """
        self._check(values)
        remembered = self.values.to(values.dtype) if self.group_shape is not None else None
        empirical = self._empirical_cdf(values.detach(), mask, remembered, ties)
        counts = None if mask is None else mask.sum(-1)
        weight = sample_weights(counts, values.shape[-1], values)
        modelled = cdf_samples_last(prior, fill_masked(values, mask), logits)
        result = reduce(squared_distance(empirical, modelled, weight, mask), reduction)
        if self.training:
            self._push(values.detach(), mask)
        return result

    def _check(self, values: Tensor) -> None:
        if self.group_shape is None:
            return
        if values.shape[:-1] != self.group_shape:
            raise ValueError(
                f"memory holds groups of shape {tuple(self.group_shape)}, but x has groups of "
                f"shape {tuple(values.shape[:-1])}; call memory.reset() to start over"
            )
        if values.device != self.values.device:
            raise ValueError(
                f"memory is on {self.values.device}, x on {values.device}: move it with "
                f"memory.to({str(values.device)!r})"
            )

    def _empirical_cdf(
        self, current: Tensor, mask: Tensor | None, remembered: Tensor | None, ties: bool
    ) -> Tensor:
        """R_i / (n + M + 1) for every current value (*groups, N)."""
        num_samples = current.shape[-1]
        infinity = torch.full((), math.inf, dtype=current.dtype, device=current.device)
        # Masked-out values become +inf: they sort last and count below no finite value.
        current = (current if mask is None else torch.where(mask, current, infinity)).contiguous()
        if ties:
            within = torch.searchsorted(current.sort(-1).values.contiguous(), current, right=True)
        else:
            order = current.argsort(dim=-1, stable=True)
            ranks = torch.arange(1, num_samples + 1, device=current.device).expand_as(order)
            within = torch.empty_like(order).scatter_(-1, order, ranks)
        count = within.new_full((), num_samples) if mask is None else mask.sum(-1)
        if remembered is not None:
            remembered = torch.where(self.valid, remembered, infinity).sort(-1).values.contiguous()
            within = within + torch.searchsorted(remembered, current, right=True)
            count = count + self.valid.sum(-1)
        return within.to(current.dtype) / (count.to(current.dtype) + 1).unsqueeze(-1)

    def _push(self, values: Tensor, mask: Tensor | None) -> None:
        """Write the last min(N, M) values into the oldest slots (no host synchronisation)."""
        if self.group_shape is None:
            shape = (*values.shape[:-1], self.size)
            self.values = values.new_zeros(shape)
            self.valid = torch.zeros(shape, dtype=torch.bool, device=values.device)
        keep = torch.ones_like(values, dtype=torch.bool) if mask is None else mask
        newest = min(values.shape[-1], self.size)
        slots = (self.position + torch.arange(newest, device=values.device)) % self.size
        self.values.index_copy_(-1, slots, values[..., -newest:].to(self.values.dtype))
        self.valid.index_copy_(-1, slots, keep[..., -newest:])
        self.position.copy_((self.position + newest) % self.size)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # A state of the same size replaces the queue, whatever its group shape (the buffers are
        # sized on the first call); another size is left for the size-mismatch error.
        incoming = state_dict.get(prefix + "values")
        if incoming is not None and incoming.shape[-1:] == (self.size,):
            self.values = self.values.new_empty(incoming.shape)
            self.valid = self.valid.new_empty(incoming.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        shape = self.group_shape
        return f"size={self.size}, group_shape={None if shape is None else tuple(shape)}"
