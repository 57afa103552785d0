"""The routes of the loss, and the choice among them: ``with route(name): ...``.

=============  ===============================================================================
``"sorted"``   ``torch.sort`` each group; any device, ``torch.compile``, ``torch.func``
``"ranked"``   rank each value on the host by a radix sort, values left in place (CPU)
``"chunked"``  the ranked route, the prior's CDF a cache-sized chunk at a time (CPU, priors
               with traits); option ``chunk_values`` (values per chunk, over all groups)
=============  ===============================================================================

Every route gives the same loss and the same gradients. Outside any :func:`route` block the
choice is automatic: "sorted" wherever the values cannot be ranked on the host (other devices,
``torch.compile``, ``torch.func``, float16), "chunked" for large inputs with a chunkable prior
and a reduction, "ranked" otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor
from torch.distributions import Distribution

from batchshaping._runtime.choice import Choice
from batchshaping.loss.routes import chunked_route, ranked_route, sorted_route

__all__ = ["available_routes", "route"]

Route = Callable[..., Tensor]

_CHOICE = Choice("route")


def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


_CHOICE.add("sorted")
_CHOICE.add("ranked", _numba_installed)
_CHOICE.add("chunked", _numba_installed)


@contextlib.contextmanager
def route(name: str, **options: Any) -> Iterator[None]:
    """Compute :func:`batchshaping.batch_shaping_loss` by route ``name`` inside the block.

    Thread-local and nestable. Calls whose values or prior the route cannot take raise a
    ``ValueError`` saying why.

    Args:
        name: ``"sorted"``, ``"ranked"`` or ``"chunked"``.
        options: for ``"chunked"``, ``chunk_values`` (default 2^17).

    Example:
        >>> import torch
        >>> from torch.distributions import Normal
        >>> from batchshaping import batch_shaping_loss
        >>> from batchshaping.loss import route
        >>> x = torch.tensor([-1.0, 0.0, 1.0])
        >>> with route("sorted"):
        ...     batch_shaping_loss(x, Normal(0.0, 1.0))
        tensor(0.0056)
    """
    unknown = set(options) - ({"chunk_values"} if name == "chunked" else set())
    if unknown:
        raise ValueError(f"route {name!r} takes no option {', '.join(sorted(unknown))}")
    if "chunk_values" in options and not (
        isinstance(options["chunk_values"], int) and options["chunk_values"] >= 1
    ):
        raise ValueError(f"chunk_values must be an int >= 1, got {options['chunk_values']!r}")
    with _CHOICE.use(name, **options):
        yield


def available_routes() -> tuple[str, ...]:
    """The names of the routes that can run in this process."""
    return _CHOICE.available()


def choose(values: Tensor, prior: Distribution, reduction: str) -> Route:
    """The route that computes the loss of ``values`` (*groups, N) now, with its options."""
    name = _CHOICE.current()
    if name is None:
        if not ranked_route.applies(values):
            return sorted_route.loss
        if reduction != "none" and chunked_route.pays(values, prior):
            return chunked_route.loss
        return ranked_route.loss
    if name == "ranked" and not ranked_route.applies(values):
        raise ValueError(_cannot_rank(name, values))
    if name == "chunked" and not chunked_route.applies(values, prior):
        if not ranked_route.applies(values):
            raise ValueError(_cannot_rank(name, values))
        raise ValueError(
            f"route 'chunked' needs a prior whose traits are registered (see "
            f"batchshaping.distributions.register_prior), got {type(prior).__name__}"
        )
    function = {
        "sorted": sorted_route.loss,
        "ranked": ranked_route.loss,
        "chunked": chunked_route.loss,
    }[name]
    options = _CHOICE.options()
    return functools.partial(function, **options) if options else function


def _cannot_rank(name: str, values: Tensor) -> str:
    return (
        f"route {name!r} ranks plain float32 or float64 CPU tensors outside torch.compile and "
        f"torch.func, got a {type(values).__name__} of {values.dtype} on {values.device}"
    )
