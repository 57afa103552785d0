"""Priors for the Batch-Shaping losses: torch distributions whose ``cdf`` has exact gradients.

Each prior is a :class:`torch.distributions.Distribution` subclass, so it keeps torch's
``batch_shape``, ``arg_constraints``, ``support``, ``validate_args`` and ``expand``. What they add
is a ``cdf`` differentiable with respect to the value and every parameter, and a
``cdf_from_logits`` that evaluates the same CDF at ``sigmoid(logits)`` without ever forming the
sigmoid, which :func:`batchshaping.batch_shaping_loss` uses when called with ``logits=True``.

Outside the support. Batch-Shaping feeds the CDF whatever values a network produces, so a value
outside the support is not an error: ``cdf`` returns 0 below the support and 1 above it, with a
zero gradient with respect to the value and the parameters. The two end points 0 and 1 of the
unit interval count as outside (the CDF is exactly 0 or 1 there, and the density may be
infinite, so the gradient is taken as the zero one-sided derivative from outside). A NaN value
gives NaN. ``cdf`` never rejects a value (``log_prob`` keeps torch's sample checks). The one
exception to the zero gradient is Beta's opt-in ``density_bounds`` surrogate, whose gradient with
respect to the value is ``low`` there.

One prior per module: :mod:`~batchshaping.distributions.beta`,
:mod:`~batchshaping.distributions.symmetric_beta`,
:mod:`~batchshaping.distributions.relaxed_bernoulli`,
:mod:`~batchshaping.distributions.kumaraswamy`,
:mod:`~batchshaping.distributions.hard_concrete` (atoms at 0 and 1: the CDF is right-continuous,
so 0 itself has the CDF P(0)), :mod:`~batchshaping.distributions.logit_normal`,
:mod:`~batchshaping.distributions.logistic` (on the real line) and
:mod:`~batchshaping.distributions.empirical` (a reference sample); what each offers the loss is
declared with :func:`~batchshaping.distributions.registry.register_prior` beside it
(:mod:`~batchshaping.distributions.torch_priors` does it for torch's own: Normal, Uniform,
Laplace, Exponential, Gumbel, Cauchy and TransformedDistribution).
"""

from batchshaping.distributions import torch_priors as _torch_priors  # noqa: F401 (registers)
from batchshaping.distributions.beta import ORIGINAL_DENSITY_BOUNDS, Beta
from batchshaping.distributions.empirical import Empirical
from batchshaping.distributions.hard_concrete import HardConcrete
from batchshaping.distributions.kumaraswamy import Kumaraswamy
from batchshaping.distributions.logistic import Logistic
from batchshaping.distributions.logit_normal import LogitNormal
from batchshaping.distributions.registry import PriorTraits, prior_traits, register_prior
from batchshaping.distributions.relaxed_bernoulli import RelaxedBernoulli
from batchshaping.distributions.symmetric_beta import SymmetricBeta

__all__ = [
    "ORIGINAL_DENSITY_BOUNDS",
    "Beta",
    "Empirical",
    "HardConcrete",
    "Kumaraswamy",
    "Logistic",
    "LogitNormal",
    "PriorTraits",
    "RelaxedBernoulli",
    "SymmetricBeta",
    "prior_traits",
    "register_prior",
]
