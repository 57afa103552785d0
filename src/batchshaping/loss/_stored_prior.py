"""A Distribution prior kept inside a module, its tensors as buffers, so it moves with it."""

from __future__ import annotations

from torch import nn
from torch.distributions import Distribution

from batchshaping.distributions import prior_traits


class StoredPrior(nn.Module):
    """Holds a prior's tensors as buffers and rebuilds the prior from them on every call.

    ``.to(...)``, ``.double()``, ``.cuda()`` and ``state_dict`` then reach the prior as they reach
    any buffer. A prior whose traits are not registered (see
    :func:`batchshaping.distributions.register_prior`) is kept as it is: it does not move.

    Args:
        prior: the distribution.
    """

    def __init__(self, prior: Distribution) -> None:
        super().__init__()
        self.template = prior
        traits = prior_traits(prior)
        self.names: tuple[str, ...] = ()
        if traits is not None:
            tensors = traits.parameters(prior)
            self.names = tuple(tensors)
            for name, tensor in tensors.items():
                self.register_buffer(name, tensor)

    def forward(self) -> Distribution:
        """The prior, built on the current buffers."""
        if not self.names:
            return self.template
        traits = prior_traits(self.template)
        return traits.rebuild(self.template, {name: getattr(self, name) for name in self.names})

    def extra_repr(self) -> str:
        return repr(self.template)
