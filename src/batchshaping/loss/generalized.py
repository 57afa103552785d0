"""Generalized Batch-Shaping (gBaS, Havtorn et al. 2023): learned per-group priors, a hyperprior."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributions import Distribution, biject_to, constraints
from torch.distributions.transforms import (
    AffineTransform,
    ComposeTransform,
    SigmoidTransform,
    Transform,
)

from batchshaping.distributions import Beta, RelaxedBernoulli
from batchshaping.loss._checks import Dim
from batchshaping.loss._stored_prior import StoredPrior
from batchshaping.loss.batch_shaping import batch_shaping_loss
from batchshaping.loss.memory import ECDFMemory

__all__ = ["GeneralizedBatchShaping", "GeneralizedBatchShapingTerms"]

_FAMILIES = ("relaxed_bernoulli", "beta")


class GeneralizedBatchShapingTerms(NamedTuple):
    """The parts of the generalized Batch-Shaping loss; ``total`` is their sum."""

    total: Tensor
    groups: Tensor  # Batch-Shaping of each group against its own learned prior, averaged
    hyperprior: Tensor  # Batch-Shaping of the learned prior means against the hyperprior
    temperature: Tensor  # temperature_weight * the mean learned temperature


class GeneralizedBatchShaping(nn.Module):
    r"""Generalized Batch-Shaping: each group has a learned prior, the priors share a hyperprior.

    With groups g = 1..G of x, learned priors F_g with parameters phi_g and means mu_g, and a
    hyperprior H on the means:

    .. math::
        \mathcal{L} = \frac{1}{G} \sum_g \mathrm{BaS}(x^g; F_g)
            + \mathrm{BaS}(\{\mu_1, \dots, \mu_G\}; H)
            + \lambda \frac{1}{G} \sum_g \tau_g

    where BaS is :func:`batchshaping.batch_shaping_loss`, the hyperprior term treats the G means
    as one sample, and the last term (relaxed Bernoulli only) favours low temperatures tau, that
    is peaky gates. The learned parameters live unconstrained and reach their domain through
    transforms from :mod:`torch.distributions`:

    - ``"relaxed_bernoulli"``: probability p = sigmoid(u) (the mean mu is p) and temperature
      tau = max_temperature * sigmoid(v), or exp(v) when ``max_temperature`` is None;
    - ``"beta"``: concentrations a = exp(u), b = exp(v); the mean is a / (a + b).

    The hyperprior term is evaluated on the logits of the means (u, or u - v for Beta), through
    the hyperprior's logit-space CDF when it has one, so it stays exact when a mean saturates.

    Args:
        group_shape: shape of the learned parameters; must broadcast to the group shape of x
            (x's shape without the ``dim`` dimensions). An int for one group dimension.
        hyperprior: a univariate distribution on (0, 1) for the means, e.g. ``Beta(3., 7.)``;
            ``None`` for no hyperprior term.
        prior: the family of the learned priors, ``"relaxed_bernoulli"`` (default) or ``"beta"``.
        dim: sample dimension(s) of x, as in :func:`batchshaping.batch_shaping_loss`.
        temperature_weight: lambda, the weight of the mean temperature (default 0).
        max_temperature: upper bound of the temperatures (default 1, as in the original
            release, where temperatures were a sigmoid); ``None`` for (0, inf).
        init_probs, init_temperature: initial p and tau (numbers or tensors of ``group_shape``).
        init_concentration1, init_concentration0: initial a and b for ``"beta"``.
        ties, logits, validate: as in :func:`batchshaping.batch_shaping_loss`, for the group term.
        sync, process_group, memory: as in :func:`batchshaping.batch_shaping_loss`, for the group
            term (the other terms depend on the parameters alone: with ``sync=True`` every rank
            computes them, and gets the gradient of one process in every parameter).

    Example:
        >>> from batchshaping.distributions import Beta
        >>> gbas = GeneralizedBatchShaping(3, Beta(3.0, 7.0), dim=0, temperature_weight=0.1)
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> loss = gbas(torch.rand(100, 3))
        >>> loss.backward()
        >>> [round(float(part), 4) for part in gbas.last_terms]
        [0.2724, 0.0125, 0.2099, 0.05]
    """

    def __init__(
        self,
        group_shape: int | Sequence[int],
        hyperprior: Distribution | None = None,
        *,
        prior: str = "relaxed_bernoulli",
        dim: Dim = None,
        temperature_weight: float = 0.0,
        max_temperature: float | None = 1.0,
        init_probs: Tensor | float = 0.5,
        init_temperature: Tensor | float = 0.5,
        init_concentration1: Tensor | float = 1.0,
        init_concentration0: Tensor | float = 1.0,
        ties: bool = False,
        logits: bool = False,
        validate: bool = True,
        sync: bool = False,
        process_group: dist.ProcessGroup | None = None,
        memory: ECDFMemory | None = None,
    ) -> None:
        super().__init__()
        shape = torch.Size((group_shape,) if isinstance(group_shape, int) else group_shape)
        if prior not in _FAMILIES:
            raise ValueError(f"prior must be one of {_FAMILIES}, got {prior!r}")
        if hyperprior is not None:
            if not isinstance(hyperprior, Distribution) or hyperprior.batch_shape != ():
                raise ValueError(
                    f"hyperprior must be a Distribution with batch_shape (), got {hyperprior!r}"
                )
            if shape.numel() < 2:
                raise ValueError(
                    f"a hyperprior needs at least 2 groups, group_shape {tuple(shape)} has "
                    f"{shape.numel()}"
                )
        if temperature_weight < 0:
            raise ValueError(f"temperature_weight must be >= 0, got {temperature_weight}")
        if prior == "beta" and temperature_weight:
            raise ValueError("temperature_weight applies to relaxed_bernoulli priors only")
        if max_temperature is not None and not max_temperature > 0:
            raise ValueError(f"max_temperature must be positive or None, got {max_temperature}")

        self.group_shape = shape
        # Its tensors as buffers, so that .to() and state_dict carry it.
        self._hyperprior = None if hyperprior is None else StoredPrior(hyperprior)
        self.family = prior
        self.dim = dim
        self.temperature_weight = temperature_weight
        self.ties = ties
        self.logits = logits
        self.validate = validate
        self.sync = sync
        self.process_group = process_group
        self.memory = memory
        self.last_terms: GeneralizedBatchShapingTerms | None = None

        if prior == "relaxed_bernoulli":
            self._probs_transform: Transform = SigmoidTransform()
            self._temperature_transform: Transform = (
                biject_to(constraints.positive)
                if max_temperature is None
                else ComposeTransform(
                    [SigmoidTransform(), AffineTransform(0.0, float(max_temperature))]
                )
            )
            self.unconstrained_probs = self._initial(
                "init_probs", init_probs, self._probs_transform, upper=1.0
            )
            self.unconstrained_temperature = self._initial(
                "init_temperature",
                init_temperature,
                self._temperature_transform,
                upper=math.inf if max_temperature is None else max_temperature,
            )
        else:
            self._concentration_transform: Transform = biject_to(constraints.positive)
            self.unconstrained_concentration1 = self._initial(
                "init_concentration1", init_concentration1, self._concentration_transform
            )
            self.unconstrained_concentration0 = self._initial(
                "init_concentration0", init_concentration0, self._concentration_transform
            )

    def _initial(
        self, name: str, value: Tensor | float, transform: Transform, upper: float = math.inf
    ) -> nn.Parameter:
        """The unconstrained parameter mapped to ``value`` (which must lie in (0, upper))."""
        value = torch.as_tensor(value, dtype=torch.get_default_dtype())
        try:
            value = value.expand(self.group_shape).clone()
        except RuntimeError as error:
            raise ValueError(
                f"{name} of shape {tuple(value.shape)} does not broadcast to group_shape "
                f"{tuple(self.group_shape)}"
            ) from error
        if not bool(((value > 0) & (value < upper)).all()):
            raise ValueError(f"{name} must lie in the open interval (0, {upper}), got {value}")
        return nn.Parameter(transform.inv(value))

    @property
    def hyperprior(self) -> Distribution | None:
        """The hyperprior on the learned means, on this module's device and dtype."""
        return None if self._hyperprior is None else self._hyperprior()

    # --- the learned priors -------------------------------------------------------------------

    @property
    def probs(self) -> Tensor:
        """Learned relaxed Bernoulli probabilities p (the means), shape ``group_shape``."""
        return self._probs_transform(self.unconstrained_probs)

    @property
    def temperature(self) -> Tensor:
        """Learned relaxed Bernoulli temperatures, shape ``group_shape``."""
        return self._temperature_transform(self.unconstrained_temperature)

    @property
    def concentration1(self) -> Tensor:
        """Learned Beta a, shape ``group_shape``."""
        return self._concentration_transform(self.unconstrained_concentration1)

    @property
    def concentration0(self) -> Tensor:
        """Learned Beta b, shape ``group_shape``."""
        return self._concentration_transform(self.unconstrained_concentration0)

    def prior(self) -> Distribution:
        """The learned priors as one distribution of batch shape ``group_shape``.

        Built afresh from the current parameters on every call (with ``validate_args=False``:
        the transforms keep the parameters valid).
        """
        if self.family == "relaxed_bernoulli":
            return RelaxedBernoulli(
                self.temperature, logits=self.unconstrained_probs, validate_args=False
            )
        return Beta(self.concentration1, self.concentration0, validate_args=False)

    def mean_logits(self) -> Tensor:
        """logit of each learned prior's mean: the values the hyperprior shapes."""
        if self.family == "relaxed_bernoulli":
            return self.unconstrained_probs
        return torch.log(self.concentration1) - torch.log(self.concentration0)

    # --- the loss -----------------------------------------------------------------------------

    def terms(self, x: Tensor, mask: Tensor | None = None) -> GeneralizedBatchShapingTerms:
        """All parts of the loss, attached to the graph."""
        groups = batch_shaping_loss(
            x,
            self.prior(),
            dim=self.dim,
            mask=mask,
            ties=self.ties,
            logits=self.logits,
            validate=self.validate,
            sync=self.sync,
            process_group=self.process_group,
            memory=self.memory,
        )
        zero = groups.new_zeros(())
        hyperprior = zero
        if self._hyperprior is not None:
            hyperprior = batch_shaping_loss(
                self.mean_logits().reshape(-1),
                self._hyperprior(),
                logits=True,
                validate=self.validate,
            ).to(groups.dtype)
        temperature = zero
        if self.temperature_weight:
            temperature = (self.temperature_weight * self.temperature.mean()).to(groups.dtype)
        total = groups + hyperprior + temperature
        return GeneralizedBatchShapingTerms(total, groups, hyperprior, temperature)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The total loss; its detached parts are kept in ``last_terms`` for logging."""
        terms = self.terms(x, mask)
        self.last_terms = GeneralizedBatchShapingTerms(*(part.detach() for part in terms))
        return terms.total

    def extra_repr(self) -> str:
        return (
            f"group_shape={tuple(self.group_shape)}, prior={self.family!r}, "
            f"hyperprior={self.hyperprior}, dim={self.dim}, "
            f"temperature_weight={self.temperature_weight}"
        )
