"""Generalized Batch-Shaping (gBaS, Havtorn et al. 2023): learned per-group priors, a hyperprior."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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

from batchshaping.distributions import (
    Beta,
    HardConcrete,
    Kumaraswamy,
    LogitNormal,
    RelaxedBernoulli,
)
from batchshaping.loss._checks import Dim
from batchshaping.loss._stored_prior import StoredPrior
from batchshaping.loss.batch_shaping import batch_shaping_loss
from batchshaping.loss.memory import ECDFMemory

__all__ = ["GeneralizedBatchShaping", "GeneralizedBatchShapingTerms"]


class _Family(NamedTuple):
    """A family of learned priors: its parameters (name, domain) in order, the prior built from
    them (constrained and unconstrained, by name), and the logit of its mean."""

    parameters: tuple[tuple[str, str], ...]
    build: Callable[[dict[str, Tensor], dict[str, Tensor]], Distribution]
    mean_logits: Callable[[Distribution, dict[str, Tensor]], Tensor]


# Every learned parameter lives unconstrained, reaching its domain through one transform:
# "probability" sigmoid, "positive" exp, "temperature" max_temperature * sigmoid (or exp),
# "real" the identity.
_FAMILIES: dict[str, _Family] = {
    "relaxed_bernoulli": _Family(
        (("probs", "probability"), ("temperature", "temperature")),
        lambda c, u: RelaxedBernoulli(c["temperature"], logits=u["probs"], validate_args=False),
        lambda prior, u: u["probs"],
    ),
    "beta": _Family(
        (("concentration1", "positive"), ("concentration0", "positive")),
        lambda c, u: Beta(c["concentration1"], c["concentration0"], validate_args=False),
        lambda prior, u: u["concentration1"] - u["concentration0"],  # log a - log b
    ),
    "kumaraswamy": _Family(
        (("concentration1", "positive"), ("concentration0", "positive")),
        lambda c, u: Kumaraswamy(c["concentration1"], c["concentration0"], validate_args=False),
        lambda prior, u: prior.mean_logit,
    ),
    "logit_normal": _Family(
        (("loc", "real"), ("scale", "positive")),
        lambda c, u: LogitNormal(c["loc"], c["scale"], validate_args=False),
        lambda prior, u: prior.mean_logit,
    ),
    "hard_concrete": _Family(
        (("log_alpha", "real"), ("temperature", "temperature")),
        lambda c, u: HardConcrete(c["log_alpha"], c["temperature"], validate_args=False),
        lambda prior, u: prior.mean_logit,
    ),
}


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

    - ``"relaxed_bernoulli"``: probability p = sigmoid(u) and temperature
      tau = max_temperature * sigmoid(v), or exp(v) when ``max_temperature`` is None; as in
      the original release, mu is p = P(X > 1/2), the mean's limit at low temperature (the
      mean itself is 0.325 for p = 0.3 at tau = 0.5, 0.362 at tau = 1);
    - ``"beta"``: concentrations a = exp(u), b = exp(v); the mean is a / (a + b);
    - ``"kumaraswamy"``: concentrations a = exp(u), b = exp(v); the mean b B(1 + 1/a, b);
    - ``"logit_normal"``: loc = u, scale = exp(v); the mean E[sigmoid(Y)] by quadrature;
    - ``"hard_concrete"``: log_alpha = u, temperature as for the relaxed Bernoulli; the mean
      E[Z] (atoms included) by quadrature.

    The hyperprior term is evaluated on the logits of the means (u, or u - v for Beta, the
    priors' ``mean_logit`` for the others, computed in log space), through the hyperprior's
    logit-space CDF when it has one, so it stays exact when a mean saturates.

    Args:
        group_shape: shape of the learned parameters; must broadcast to the group shape of x
            (x's shape without the ``dim`` dimensions). An int for one group dimension.
        hyperprior: a univariate distribution on (0, 1) for the means, e.g. ``Beta(3., 7.)``;
            ``None`` for no hyperprior term.
        prior: the family of the learned priors: ``"relaxed_bernoulli"`` (default), ``"beta"``,
            ``"kumaraswamy"``, ``"logit_normal"`` or ``"hard_concrete"``.
        dim: sample dimension(s) of x, as in :func:`batchshaping.batch_shaping_loss`.
        temperature_weight: lambda, the weight of the mean temperature (default 0; for the
            families with a temperature, relaxed_bernoulli and hard_concrete).
        max_temperature: upper bound of the temperatures (default 1, as in the original
            release, where temperatures were a sigmoid); ``None`` for (0, inf).
        init_probs, init_temperature: initial p and tau (numbers or tensors of ``group_shape``).
        init_concentration1, init_concentration0: initial a and b for ``"beta"`` and
            ``"kumaraswamy"``.
        init_loc, init_scale: initial loc and scale for ``"logit_normal"``.
        init_log_alpha: initial log_alpha for ``"hard_concrete"`` (its temperature starts at
            ``init_temperature``).
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
        init_loc: Tensor | float = 0.0,
        init_scale: Tensor | float = 1.0,
        init_log_alpha: Tensor | float = 0.0,
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
            raise ValueError(f"prior must be one of {tuple(_FAMILIES)}, got {prior!r}")
        family = _FAMILIES[prior]
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
        if temperature_weight and ("temperature", "temperature") not in family.parameters:
            raise ValueError(
                f"temperature_weight applies to the families with a temperature "
                f"(relaxed_bernoulli, hard_concrete), not {prior}"
            )
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

        initial = {
            "probs": init_probs,
            "temperature": init_temperature,
            "concentration1": init_concentration1,
            "concentration0": init_concentration0,
            "loc": init_loc,
            "scale": init_scale,
            "log_alpha": init_log_alpha,
        }
        # (transform, the open interval of the initial values) of each domain.
        domains = {
            "probability": (SigmoidTransform(), 0.0, 1.0),
            "positive": (biject_to(constraints.positive), 0.0, math.inf),
            "real": (biject_to(constraints.real), -math.inf, math.inf),
            "temperature": (
                (biject_to(constraints.positive), 0.0, math.inf)
                if max_temperature is None
                else (
                    ComposeTransform(
                        [SigmoidTransform(), AffineTransform(0.0, float(max_temperature))]
                    ),
                    0.0,
                    max_temperature,
                )
            ),
        }
        self._transforms: dict[str, Transform] = {}
        for name, domain in family.parameters:
            transform, lower, upper = domains[domain]
            self._transforms[name] = transform
            parameter = self._initial(f"init_{name}", initial[name], transform, lower, upper)
            self.register_parameter(f"unconstrained_{name}", parameter)

    def _initial(
        self,
        name: str,
        value: Tensor | float,
        transform: Transform,
        lower: float = 0.0,
        upper: float = math.inf,
    ) -> nn.Parameter:
        """The unconstrained parameter mapped to ``value`` (which must lie in (lower, upper))."""
        value = torch.as_tensor(value, dtype=torch.get_default_dtype())
        try:
            value = value.expand(self.group_shape).clone()
        except RuntimeError as error:
            raise ValueError(
                f"{name} of shape {tuple(value.shape)} does not broadcast to group_shape "
                f"{tuple(self.group_shape)}"
            ) from error
        if not bool(((value > lower) & (value < upper)).all()):
            raise ValueError(
                f"{name} must lie in the open interval ({lower}, {upper}), got {value}"
            )
        return nn.Parameter(transform.inv(value))

    @property
    def hyperprior(self) -> Distribution | None:
        """The hyperprior on the learned means, on this module's device and dtype."""
        return None if self._hyperprior is None else self._hyperprior()

    # --- the learned priors -------------------------------------------------------------------

    def _unconstrained(self) -> dict[str, Tensor]:
        return {name: getattr(self, f"unconstrained_{name}") for name in self._transforms}

    def _constrained(self, name: str) -> Tensor:
        if name not in self._transforms:
            raise AttributeError(f"the {self.family} family learns no {name}")
        return self._transforms[name](getattr(self, f"unconstrained_{name}"))

    probs = property(
        lambda self: self._constrained("probs"),
        doc="Learned relaxed Bernoulli probabilities p (the means), shape ``group_shape``.",
    )
    temperature = property(
        lambda self: self._constrained("temperature"),
        doc="Learned temperatures (relaxed Bernoulli, Hard Concrete), shape ``group_shape``.",
    )
    concentration1 = property(
        lambda self: self._constrained("concentration1"),
        doc="Learned a (Beta, Kumaraswamy), shape ``group_shape``.",
    )
    concentration0 = property(
        lambda self: self._constrained("concentration0"),
        doc="Learned b (Beta, Kumaraswamy), shape ``group_shape``.",
    )
    loc = property(
        lambda self: self._constrained("loc"), doc="Learned logit-normal loc, ``group_shape``."
    )
    scale = property(
        lambda self: self._constrained("scale"), doc="Learned logit-normal scale, ``group_shape``."
    )
    log_alpha = property(
        lambda self: self._constrained("log_alpha"),
        doc="Learned Hard Concrete log_alpha, shape ``group_shape``.",
    )

    def prior(self) -> Distribution:
        """The learned priors as one distribution of batch shape ``group_shape``.

        Built afresh from the current parameters on every call (with ``validate_args=False``:
        the transforms keep the parameters valid).
        """
        constrained = {name: self._constrained(name) for name in self._transforms}
        return _FAMILIES[self.family].build(constrained, self._unconstrained())

    def mean_logits(self) -> Tensor:
        """logit of each learned prior's mean: the values the hyperprior shapes."""
        return _FAMILIES[self.family].mean_logits(self.prior(), self._unconstrained())

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
