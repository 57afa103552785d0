"""The empirical prior: the CDF of a reference sample, for Batch-Shaping towards a sample."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from batchshaping._runtime.shapes import broadcast_shapes
from batchshaping.distributions._logit_space import sigmoid_of_logits
from batchshaping.distributions._support import as_value, validation_on
from batchshaping.distributions.registry import register_prior

__all__ = ["Empirical"]


class Empirical(Distribution):
    r"""The distribution of a reference sample: its empirical CDF, interpolated linearly.

    With the M reference values of a group sorted, s_1 <= ... <= s_M (sorted once, when the
    prior is built),

    .. math::
        F(x) = \frac{k - 1 + (x - s_k) / (s_{k+1} - s_k)}{M - 1}
        \quad \text{for } s_k \le x < s_{k+1}, \qquad
        F(x) = 0 \text{ below } s_1, \quad F(x) = 1 \text{ from } s_M \text{ on}.

    Piecewise linear, not the step function k / M: the step function is flat between the
    reference values, so the loss would have no gradient with respect to x (nor to the
    reference values) anywhere. The interpolation passes through (s_k, (k - 1) / (M - 1)): it is
    the CDF of a mixture of M - 1 uniform distributions, one on each gap between consecutive
    order statistics, a continuous distribution on [s_1, s_M] within 1 / (M - 1) of the step
    function everywhere, with closed-form ``icdf``, ``rsample`` and ``mean``. Tied reference
    values are atoms (the CDF jumps there by their share, right-continuously). With a target
    sample the loss becomes a two-sample distance: the gates of a teacher network, or last
    month's model.

    Gradients. With respect to x, 1 / ((M - 1)(s_{k+1} - s_k)), the density of the gap x
    falls in; with respect to the reference values (when they require grad) through the two
    order statistics around x, and back through the sort to the values as given. Outside
    [s_1, s_M] the CDF is 0 or 1 with zero gradient; NaN for NaN. In the loss, gradients reach
    the reference values on every route and with every reduction.

    ``cdf_from_logits`` evaluates the CDF at sigmoid(z) with the distance to the order
    statistics taken from 1 - sigmoid(z) = sigmoid(-z) for z > 0, so reference values just
    below 1 keep their resolution, and with the exact slope of the sigmoid.

    Args:
        samples: the reference sample(s), shape (*batch_shape, M): the last dimension holds the
            M >= 2 values of each group, the others are the batch shape (one reference sample
            per group). Finite; any real values.
        validate_args: check that the samples are finite (``ValueError`` naming them; reads
            the values on the host). ``None`` (default) means on, except while tracing. The
            shape is always checked.

    Example:
        >>> from batchshaping.distributions import Empirical
        >>> prior = Empirical(torch.tensor([0.1, 0.3, 0.2, 0.6, 0.4]))
        >>> prior.cdf(torch.tensor([0.0, 0.15, 0.3, 0.5, 0.7]))
        tensor([0.0000, 0.1250, 0.5000, 0.8750, 1.0000])
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "samples": constraints.independent(constraints.real, 1)
    }
    has_rsample = True

    def __init__(self, samples: Tensor, validate_args: bool | None = None) -> None:
        validate_args = validation_on(validate_args)
        samples = _check_samples(samples, validate_args)
        self._init_sorted(torch.sort(samples, dim=-1).values, validate_args)

    @classmethod
    def from_sorted(cls, samples: Tensor, validate_args: bool = False) -> Empirical:
        """The prior of reference values already sorted along the last dimension (not checked)."""
        new = cls.__new__(cls)
        new._init_sorted(samples, validate_args)
        return new

    def _init_sorted(self, samples: Tensor, validate_args: bool) -> None:
        self.samples = samples
        super().__init__(samples.shape[:-1], validate_args=False)
        self._validate_args = validate_args

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Empirical, _instance)
        batch_shape = torch.Size(batch_shape)
        new._init_sorted(self.samples.expand(*batch_shape, self.num_samples), self._validate_args)
        return new

    def __repr__(self) -> str:
        return f"Empirical(samples: {tuple(self.samples.shape)})"

    @property
    def num_samples(self) -> int:
        """M, the number of reference values of each group."""
        return self.samples.shape[-1]

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.samples[..., 0], self.samples[..., -1])

    @property
    def mean(self) -> Tensor:
        """The mean of the mixture of uniforms: (sum s_k - (s_1 + s_M) / 2) / (M - 1)."""
        s = self.samples
        return (s.sum(-1) - 0.5 * (s[..., 0] + s[..., -1])) / (self.num_samples - 1)

    def rsample(self, sample_shape: tuple[int, ...] | torch.Size = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        uniform = torch.rand(shape, dtype=self.samples.dtype, device=self.samples.device)
        return self.icdf(uniform)

    def icdf(self, value: Tensor) -> Tensor:
        """s_k + (s_{k+1} - s_k) times the fraction of its gap that (M - 1) value reaches."""
        position = as_value(value, self.samples) * (self.num_samples - 1)
        index = position.detach().floor().clamp(0, self.num_samples - 2)
        shape = broadcast_shapes(position.shape, self.batch_shape)
        low, high = self._gathered(index.long(), shape)
        return low + (high - low) * (position - index)

    def log_prob(self, value: Tensor) -> Tensor:
        """-log((M - 1) gap) inside [s_1, s_M], -inf outside (atoms not counted)."""
        if self._validate_args:
            self._validate_sample(value)
        value = as_value(value, self.samples)
        low, high, inside = self._gap(value)
        density = torch.where(inside, high - low, 1.0)
        outside = torch.full_like(density, -torch.inf)
        return torch.where(inside, -torch.log((self.num_samples - 1) * density), outside)

    def cdf(self, value: Tensor | float) -> Tensor:
        """The interpolated empirical CDF; 0 below s_1, 1 from s_M on, NaN for NaN."""
        value = as_value(value, self.samples)
        low, high, inside, index = self._gap(value, with_index=True)
        safe = torch.where(inside, value, low)
        fraction = (safe - low) / torch.where(inside, high - low, 1.0)
        return self._combine(value, inside, index, fraction)

    def cdf_from_logits(self, logits: Tensor | float) -> Tensor:
        """The CDF at sigmoid(logits), distances near 1 taken from sigmoid(-logits)."""
        z = as_value(logits, self.samples)
        x = sigmoid_of_logits(z)
        low, high, inside, index = self._gap(x, with_index=True)
        # For z > 0, x - s = (1 - s) - sigmoid(-z): exact for s >= 1/2, where 1 - s is.
        above = torch.where(z > 0, (1 - low) - sigmoid_of_logits(-z), x - low)
        fraction = torch.where(inside, above, 0.0) / torch.where(inside, high - low, 1.0)
        return self._combine(x, inside, index, fraction)

    # --- where a value falls --------------------------------------------------------------------

    def _combine(self, value: Tensor, inside: Tensor, index: Tensor, fraction: Tensor) -> Tensor:
        cdf = (index.to(fraction.dtype) + fraction) / (self.num_samples - 1)
        # Below s_1: 0; from s_M on: 1; NaN stays NaN. Detached: no gradient there.
        edge = torch.where(value.detach() >= self.samples[..., -1], 1.0, 0.0)
        edge = torch.where(torch.isnan(value), value.detach(), edge.to(cdf.dtype))
        return torch.where(inside, cdf, edge)

    def _gap(self, value: Tensor, with_index: bool = False):
        """The order statistics around each value, s_k <= value < s_{k+1}, and whether
        s_1 <= value < s_M (then s_{k+1} > s_k: ties are never a gap)."""
        shape = broadcast_shapes(value.shape, self.batch_shape)
        # Searched in the value's dimensions that the batch shape spans, its others flattened.
        found = self._search(value.detach().expand(shape))
        inside = (found >= 1) & (found <= self.num_samples - 1)
        index = (found - 1).clamp(0, self.num_samples - 2)
        low, high = self._gathered(index, shape)
        if with_index:
            return low, high, inside, index
        return low, high, inside

    def _layout(self, shape: torch.Size) -> tuple[list[int], list[int]]:
        """The dimensions of ``shape`` the batch spans (size > 1 there), and the others."""
        batch = (1,) * (len(shape) - len(self.batch_shape)) + tuple(self.batch_shape)
        spanned = [d for d, size in enumerate(batch) if size > 1]
        free = [d for d in range(len(shape)) if d not in spanned]
        return spanned, free

    def _grouped(self, tensor: Tensor) -> Tensor:
        """``tensor`` (of the broadcast shape) as (*spanned sizes, the rest flattened)."""
        spanned, free = self._layout(tensor.shape)
        moved = tensor.permute([*spanned, *free])
        return moved.reshape(*(tensor.shape[d] for d in spanned), -1)

    def _ungrouped(self, grouped: Tensor, shape: torch.Size) -> Tensor:
        spanned, free = self._layout(shape)
        moved = grouped.reshape([shape[d] for d in spanned + free])
        return moved.permute(torch.argsort(torch.tensor(spanned + free, dtype=torch.long)).tolist())

    def _sorted_for(self, shape: torch.Size) -> Tensor:
        """The sorted samples, (*spanned sizes, M), aligned with ``_grouped`` of ``shape``."""
        spanned, _ = self._layout(shape)
        batch = (1,) * (len(shape) - len(self.batch_shape)) + tuple(self.batch_shape)
        samples = self.samples.reshape(*batch, self.num_samples)
        index = tuple(slice(None) if d in spanned else 0 for d in range(len(shape)))
        return samples[index]

    def _search(self, value: Tensor) -> Tensor:
        """How many reference values of its group are <= each value, in [0, M]."""
        sequence = self._sorted_for(value.shape).detach().contiguous()
        found = torch.searchsorted(sequence, self._grouped(value).contiguous(), right=True)
        return self._ungrouped(found, value.shape)

    def _gathered(self, index: Tensor, shape: torch.Size) -> tuple[Tensor, Tensor]:
        """s_{index} and s_{index + 1} of each value's group (differentiable in the samples)."""
        index = index.expand(shape)
        sequence = self._sorted_for(shape)
        grouped = self._grouped(index)
        low = torch.gather(sequence, -1, grouped)
        high = torch.gather(sequence, -1, grouped + 1)
        return self._ungrouped(low, shape), self._ungrouped(high, shape)


def _check_samples(samples: Tensor, validate: bool) -> Tensor:
    if not isinstance(samples, Tensor):
        samples = torch.as_tensor(samples)
    if not samples.is_floating_point():
        samples = samples.to(torch.get_default_dtype())
    if samples.ndim == 0:
        raise ValueError(
            "Empirical: samples must have shape (*batch_shape, M), the M >= 2 reference values "
            "of each group last, got a 0-dimensional tensor"
        )
    if samples.shape[-1] < 2:
        raise ValueError(
            f"Empirical: samples need at least 2 reference values along their last dimension, "
            f"got shape {tuple(samples.shape)}"
        )
    if validate:
        bad = ~torch.isfinite(samples.detach())
        if bool(bad.any()):
            nan = int(torch.isnan(samples.detach()).sum())
            raise ValueError(
                f"Empirical: samples must be finite, but {int(bad.sum())} of their "
                f"{samples.numel()} value(s) are not ({nan} NaN)"
            )
    return samples


register_prior(
    Empirical,
    # Laid out (M, *batch): the loss adds a batch dimension last (leading_dims).
    parameters=lambda prior: {"samples": prior.samples.movedim(-1, 0)},
    rebuild=lambda prior, tensors: Empirical.from_sorted(tensors["samples"].movedim(0, -1)),
    chunkable=True,
    cdf_from_logits=Empirical.cdf_from_logits,
    leading_dims={"samples": 1},
)
