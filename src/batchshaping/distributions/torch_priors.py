"""Traits of torch's own distributions, for the loss's fast routes and for modules' buffers."""

from __future__ import annotations

from torch.distributions import Normal

from batchshaping.distributions.registry import register_prior

register_prior(
    Normal,
    parameters=lambda prior: {"loc": prior.loc, "scale": prior.scale},
    rebuild=lambda prior, tensors: Normal(tensors["loc"], tensors["scale"], validate_args=False),
    chunkable=True,
)
