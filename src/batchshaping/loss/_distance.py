r"""The squared distance between empirical and prior CDFs, and its weights: written once.

For group g with n_g kept values, empirical CDF E and prior CDF F at its values,

.. math::
    \ell_g = w_g \sum_i m_{gi} (E_{gi} - F_{gi})^2, \qquad w_g = 1 / n_g,

with m the mask (1 where no mask is given). Every route of the loss reduces with these.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor


def sample_weights(counts: Tensor | None, num_samples: int, like: Tensor) -> Tensor:
    """w_g = 1 / n_g: (*groups,) under a mask (its counts), else a scalar 1 / N."""
    if counts is None:
        return torch.full((), 1 / num_samples, dtype=like.dtype, device=like.device)
    return counts.clamp(min=1).to(like.dtype).reciprocal()


def squared_distance(
    empirical: Tensor, modelled: Tensor, weight: Tensor, keep: Tensor | None
) -> Tensor:
    """l_g for every group: (*groups,), differentiable in ``modelled`` (plain torch operations)."""
    difference = empirical - modelled
    if keep is not None:
        difference = torch.where(keep, difference, torch.zeros_like(difference))
    return torch.linalg.vecdot(difference, difference) * weight


def reduce(losses: Tensor, reduction: str) -> Tensor:
    """``"mean"`` or ``"sum"`` over the groups, or ``"none"``."""
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def fill_masked(values: Tensor, keep: Tensor | None) -> Tensor:
    """``values`` with masked-out positions replaced by the first kept value of their group.

    Padding must not reach the prior (any value would do, as its terms are dropped; a kept
    value of the same group is sure to be a valid one). The replacement carries no gradient.
    """
    if keep is None:
        return values
    first_kept = keep.to(torch.uint8).argmax(-1, keepdim=True)
    return torch.where(keep, values, values.detach().gather(-1, first_kept))


class PriorModel(NamedTuple):
    """The prior's side of :class:`EagerSquaredDistance`: its CDF on parameter tensors, and what
    the backward may need."""

    cdf: Callable[[dict[str, Tensor], Tensor], Tensor]  # (parameters by name, values) -> F
    names: tuple[str, ...]  # the parameters' names, in the order they are passed
    leading_dims: tuple[int, ...]  # leading non-batch dimensions of each (registry.py)
    step: int  # samples of every group per chunk
    reduction: str
    recompute_empirical: Callable[[], Tensor]  # the empirical CDF again (second derivatives)


# The inputs of EagerSquaredDistance before the parameters.
_FIXED_INPUTS = 5


def _per_group(leaf: Tensor, leading: int, group_shape: torch.Size) -> tuple[Tensor, torch.Size]:
    """A copy of ``leaf`` for every group, so that its gradient stays per group, and the shape
    (leading dimensions, ones, its batch dimensions) whose sum gives the gradient back."""
    batch = leaf.shape[leading:]
    padded = torch.Size((*leaf.shape[:leading], *(1,) * (len(group_shape) - len(batch)), *batch))
    copies = leaf.reshape(padded).expand(torch.Size((*leaf.shape[:leading], *group_shape)))
    copies = copies.contiguous()
    return copies, padded


class EagerSquaredDistance(torch.autograd.Function):
    r"""The reduced loss of the ranked routes, its gradients taken in the forward pass.

    The prior's CDF is evaluated ``model.step`` samples of every group at a time, on detached
    copies of the values and the prior's parameters, and the gradient of each chunk's distance
    is taken at once with :func:`torch.autograd.grad`, weighted by -2 w_g (E - F), while the
    chunk is still in the cache. After the forward the gradient of the whole is known: the
    backward only scales it by the incoming gradient, and only it is kept (one tensor the size
    of the values, one the size of each parameter), not the intermediates of the prior's CDF.
    Exact, like ordinary autograd.

    A second derivative (``create_graph=True``) is taken by recomputing the loss from the saved
    values and parameters with ordinary autograd, so it is exact as far as the prior's CDF is
    twice differentiable (and raises where it is not).

    Inputs: ``values`` (*groups, N), ``empirical`` like it (a constant, overwritten), ``weight``
    w_g, ``keep`` the mask or ``None``, ``model`` a :class:`PriorModel`, then the parameter
    tensors in the order of ``model.names``.
    """

    @staticmethod
    def forward(ctx, values, empirical, weight, keep, model, *parameters):
        wanted = ctx.needs_input_grad
        want_values, want_parameters = wanted[0], wanted[_FIXED_INPUTS:]
        group_shape = values.shape[:-1]
        per_group = model.reduction == "none"
        if model.reduction == "mean":
            weight = weight / max(1, math.prod(group_shape))
        leaves, summed_shapes = [], []
        for parameter, want, leading in zip(
            parameters, want_parameters, model.leading_dims, strict=True
        ):
            leaf, shape = parameter.detach(), parameter.shape
            if per_group and want:
                leaf, shape = _per_group(leaf, leading, group_shape)
            leaves.append(leaf.requires_grad_(want))
            summed_shapes.append(shape)
        grad_parameters = [
            torch.zeros_like(leaf) if leaf.requires_grad else None for leaf in leaves
        ]
        chunks = range(0, values.shape[-1], model.step)
        # One chunk keeps the gradient autograd returns; several write theirs into one tensor.
        grad_values = torch.empty_like(values) if want_values and len(chunks) > 1 else None
        losses = values.new_zeros(group_shape)
        filled = fill_masked(values.detach(), keep)
        slope_scale = -2 * weight.unsqueeze(-1)
        for start in chunks:
            part = slice(start, start + model.step)
            chunk = filled[..., part].requires_grad_(want_values)
            with torch.enable_grad():
                modelled = model.cdf(dict(zip(model.names, leaves, strict=True)), chunk)
            # E - F, in place of E where the dtypes allow: E is not needed again (a second
            # derivative recomputes it), and memory is what the large inputs are short of.
            difference = empirical[..., part]
            if difference.dtype == torch.promote_types(difference.dtype, modelled.dtype):
                difference.sub_(modelled.detach())
            else:
                difference = difference - modelled.detach()
            if keep is not None:
                difference.mul_(keep[..., part])
            losses += torch.linalg.vecdot(difference, difference) * weight
            inputs = [t for t in (chunk, *leaves) if t.requires_grad]
            if not (inputs and modelled.requires_grad):
                gradient = torch.zeros_like(chunk) if want_values else None
            else:
                slope = difference.mul_(slope_scale).to(modelled.dtype)
                # The gradient of <F, slope>: the vector-Jacobian product with slope, taken from
                # a scalar (autograd.grad given a tensor of output gradients imports sympy on
                # first use, 0.4 s of a process's first loss).
                with torch.enable_grad():
                    weighted = torch.linalg.vecdot(modelled.flatten(), slope.flatten())
                found = torch.autograd.grad(weighted, inputs, allow_unused=True)
                del modelled, slope, weighted  # the prior's intermediates go before the next chunk
                found = dict(zip(map(id, inputs), found, strict=True))
                for accumulated, leaf in zip(grad_parameters, leaves, strict=True):
                    if accumulated is not None and found[id(leaf)] is not None:
                        accumulated += found[id(leaf)]
                gradient = found.get(id(chunk)) if want_values else None
                if want_values and gradient is None:
                    gradient = torch.zeros_like(chunk)
            if grad_values is None:
                grad_values = gradient
            elif gradient is not None:
                grad_values[..., part] = gradient
        ctx.save_for_backward(values, *parameters)
        ctx.gradients = (grad_values, grad_parameters, summed_shapes)
        ctx.recompute = (empirical.dtype, weight, keep, model)
        return losses if per_group else losses.sum()

    @staticmethod
    def backward(ctx, grad):
        values, *parameters = ctx.saved_tensors
        unused = (None,) * (_FIXED_INPUTS - 1)
        if torch.is_grad_enabled():
            gradients = EagerSquaredDistance._recomputed(ctx, grad, values, parameters)
            return (gradients[0], *unused, *gradients[1:])
        grad_values, grad_parameters, summed_shapes = ctx.gradients
        per_group = grad.dim() > 0
        scale = grad.unsqueeze(-1) if per_group else grad
        result_values = None if grad_values is None else grad_values * scale
        result_parameters = []
        for gradient, parameter, shape in zip(
            grad_parameters, parameters, summed_shapes, strict=True
        ):
            if gradient is None:
                result_parameters.append(None)
            elif per_group:
                summed = (gradient * grad).sum_to_size(shape)
                result_parameters.append(summed.reshape(parameter.shape))
            else:
                result_parameters.append(gradient * grad)
        return (result_values, *unused, *result_parameters)

    @staticmethod
    def _recomputed(ctx, grad, values, parameters):
        """Every gradient, differentiable: the loss recomputed with ordinary autograd."""
        dtype, weight, keep, model = ctx.recompute
        empirical = model.recompute_empirical().to(dtype)
        tensors = dict(zip(model.names, parameters, strict=True))
        modelled = model.cdf(tensors, fill_masked(values, keep))
        losses = squared_distance(empirical, modelled, weight, keep)
        total = losses if model.reduction == "none" else losses.sum()
        flags = (ctx.needs_input_grad[0], *ctx.needs_input_grad[_FIXED_INPUTS:])
        needed = [t for t, want in zip((values, *parameters), flags, strict=True) if want]
        found = iter(torch.autograd.grad(total, needed, grad, create_graph=True, allow_unused=True))
        return [next(found) if want else None for want in flags]
