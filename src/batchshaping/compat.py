"""Drop-in replacement for the original release's ``gbas_loss`` and ``Prior``.

Code written for ``batchshaping.batch_shaping_loss`` of the original release runs unchanged once
its import line becomes ``from batchshaping import Prior, gbas_loss``. This is a thin layer over
:func:`batchshaping.batch_shaping_loss`; new code should call that directly.
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import Tensor

from batchshaping.distributions import ORIGINAL_DENSITY_BOUNDS
from batchshaping.distributions.families import FAMILIES
from batchshaping.loss.batch_shaping import batch_shaping_loss

__all__ = ["Prior", "gbas_loss"]


class Prior(Enum):
    """The names of the original release's prior families, as its ``gbas_loss`` takes them.

    An enum of family names with the original's numbering, kept for the drop-in; not a base
    class of the priors, which are torch distributions (:mod:`batchshaping.distributions`).
    """

    SYMBETA = 0  # Beta(a, 1 - a): prior_param1 = a
    BETA = 1  # Beta(a, b): prior_param1 = a, prior_param2 = b
    RELAXED_BERNOULLI = 2  # prior_param1 = probability, prior_param2 = temperature
    NORMAL = 3  # prior_param1 = mean, prior_param2 = standard deviation


# The family of each, in the table the command line shares (its parameters in the same order).
_FAMILY = {
    Prior.SYMBETA: FAMILIES["symbeta"],
    Prior.BETA: FAMILIES["beta"],
    Prior.RELAXED_BERNOULLI: FAMILIES["relaxed-bernoulli"],
    Prior.NORMAL: FAMILIES["normal"],
}


def gbas_loss(
    x_in: Tensor,
    prior: Prior,
    prior_param1: Tensor | float,
    prior_param2: Tensor | float | None = None,
    trainable_prior_params: bool = False,
    dim: int | None = None,
    handle_ties: bool = False,
) -> Tensor:
    r"""(Generalized) Batch-Shaping loss with the original release's signature and meaning.

    .. math::
        \mathcal{L} = \frac{1}{G} \sum_{g=1}^{G} \frac{1}{N} \sum_{i=1}^{N}
            \left(\frac{i}{N + 1} - F_g(x^g_{(i)})\right)^2

    Unlike :func:`batchshaping.batch_shaping_loss`, ``dim`` here is the *group* dimension: each
    index along it is a group, and all other dimensions are flattened into its samples.

    Where the results differ from the original's, because the original was wrong:

    - Per-group Beta or SymBeta parameters (``dim`` given, 1-D parameters): the original matched
      every group against every group's prior and averaged the G x G losses; here each group is
      matched with its own prior. (Relaxed Bernoulli and Normal were already per group.)
    - ``handle_ties`` with ``dim``: the original searched for tied *columns* of the
      (groups, samples) array, so it changed nothing; here ties are found within each group.
    - Trainable Beta or SymBeta parameters: the original estimated their gradients by 11-point
      finite differences (and on NumPy 2 raised a ``TypeError``); here they are exact.
    - Relaxed Bernoulli: the original clipped x to [1e-3, 1 - 1e-3] before its CDF, which puts a
      floor under the loss at low temperatures; here the CDF is exact.
    - ``trainable_prior_params=False`` now stops gradients for every family: the original ignored
      it for RELAXED_BERNOULLI and NORMAL, whose tensor parameters always received gradients (its
      generalized notebook relied on that). Pass ``True`` to train them.
    - float64 input is computed and returned in float64 (the original used float32);
      float16 and bfloat16 are computed in float32 and returned in their dtype (the original
      raised ``TypeError`` for bfloat16).
    - Bad input raises ``ValueError`` naming it: non-finite values in x (the original returned
      NaN), invalid parameters such as a Beta a <= 0 (NaN) or a Normal std <= 0 (a number),
      parameters of the wrong shape, a missing or superfluous ``prior_param2`` (the original used
      ``assert``).

    Kept from the original: for BETA and SYMBETA the gradient with respect to x is the density
    clamped to [1e-3, 100] (1e-3 also outside [0, 1]), a surrogate that keeps points in the
    tails moving under Adam; its examples' convergence depends on it. The loss value and the
    parameter gradients are exact. For the exact gradient with respect to x, call
    :func:`batchshaping.batch_shaping_loss` with a :class:`~batchshaping.distributions.Beta`
    (see its ``density_bounds``).

    Args:
        x_in: values, shape (batch, ...).
        prior: a :class:`Prior`.
        prior_param1: first parameter (see :class:`Prior`): a number, a scalar tensor, or a 1-D
            tensor with one value per group (length ``x_in.shape[dim]``, or 1).
        prior_param2: second parameter, likewise; ``None`` for SYMBETA only.
        trainable_prior_params: let gradients reach tensor parameters; otherwise they are
            detached.
        dim: the group dimension, or ``None`` for one group of all values (the original BaS).
        handle_ties: give tied values their shared empirical CDF.

    Returns:
        The mean over groups, a scalar in x's dtype.

    Example:
        >>> gbas_loss(torch.tensor([0.1, 0.4, 0.6, 0.9]), Prior.BETA, 2.0, 2.0)
        tensor(0.0159)
    """
    if not isinstance(prior, Prior):
        raise ValueError(f"prior must be a batchshaping.Prior, got {prior!r}")
    if not isinstance(x_in, Tensor):
        raise TypeError(f"x_in must be a torch.Tensor, got {type(x_in).__name__}")
    if dim is None:
        sample_dims = None
        num_groups = 1
    else:
        if not isinstance(dim, int) or not -x_in.ndim <= dim < x_in.ndim:
            raise ValueError(f"dim {dim!r} is out of range for x_in with {x_in.ndim} dimension(s)")
        if x_in.ndim < 2:
            raise ValueError("x_in needs a dimension besides the group dimension dim")
        group_dim = dim % x_in.ndim
        sample_dims = tuple(d for d in range(x_in.ndim) if d != group_dim)
        num_groups = x_in.shape[group_dim]

    dtype = x_in.dtype if x_in.dtype in (torch.float32, torch.float64) else torch.float32
    family = _FAMILY[prior]
    names = [parameter.description for parameter in family.parameters]
    first_name, second_name = names[0], (names[1] if len(names) > 1 else None)
    if second_name is None and prior_param2 is not None:
        raise ValueError(f"prior_param2 must be None for {prior}, got {prior_param2!r}")
    if second_name is not None and prior_param2 is None:
        raise ValueError(f"prior_param2 ({second_name}) is required for {prior}")
    options = (num_groups, dtype, x_in.device, trainable_prior_params)
    first = _parameter("prior_param1", prior_param1, *options)
    second = None if prior_param2 is None else _parameter("prior_param2", prior_param2, *options)
    tensors = (first,) if second is None else (first, second)
    bounds = {"density_bounds": ORIGINAL_DENSITY_BOUNDS} if family.takes_density_bounds else {}
    try:
        distribution = family.build(*tensors, validate_args=True, **bounds)
    except ValueError as error:
        names = f"prior_param1 is the {first_name}" + (
            f", prior_param2 the {second_name}" if second_name else ""
        )
        raise ValueError(f"invalid parameters for {prior} ({names}): {error}") from error
    return batch_shaping_loss(x_in, distribution, dim=sample_dims, ties=handle_ties)


def _parameter(
    name: str,
    value: Tensor | float,
    num_groups: int,
    dtype: torch.dtype,
    device: torch.device,
    trainable: bool,
) -> Tensor:
    """One value, or one per group, as a tensor of shape () or (groups,)."""
    if isinstance(value, Tensor):
        tensor = (value if trainable else value.detach()).to(device=device, dtype=dtype)
    else:
        tensor = torch.as_tensor(value, dtype=dtype, device=device)
    if tensor.numel() == 1 and tensor.ndim <= 1:
        return tensor.reshape(())
    if tensor.ndim == 1 and tensor.shape[0] == num_groups:
        return tensor
    raise ValueError(
        f"{name} must be a number, a scalar, or a 1-D tensor of one value per group "
        f"({num_groups}), got shape {tuple(tensor.shape)}"
    )
