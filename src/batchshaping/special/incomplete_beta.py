"""The regularized incomplete beta function I_x(a, b), differentiable in a, b and x.

One ``torch.library`` custom op, ``batchshaping::betainc``, with

- CPU kernels (numba, all cores): one for runs of elements that share (a, b), advancing many of
  them together through the continued fraction in SIMD lanes, and one per element, each with its
  own stopping point, for everything else;
- a portable kernel in plain torch operations (fixed iteration count, no host-device
  synchronisation) registered for every other device, CUDA included;
- a fake implementation, so that the op traces under ``torch.compile(fullgraph=True)``;
- an autograd formula: the kernels return the exact derivatives with the value, in one pass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from batchshaping.special._incomplete_beta_torch import betainc_torch

__all__ = ["betainc"]


class BroadcastError(ValueError, RuntimeError):
    """Shapes that do not broadcast: a ``ValueError``, and a ``RuntimeError`` as in torch."""


@torch.library.custom_op("batchshaping::betainc", mutates_args=())
def _betainc_op(
    a: Tensor, b: Tensor, x: Tensor, grad_ab: bool, grad_x: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return betainc_torch(a, b, x, grad_ab, grad_x)


# The tests set this to run the portable kernel on the CPU, so that CI checks what CUDA runs.
_PORTABLE_ON_CPU = False


@_betainc_op.register_kernel("cpu")
def _betainc_op_cpu(
    a: Tensor, b: Tensor, x: Tensor, grad_ab: bool, grad_x: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    if _PORTABLE_ON_CPU:
        return betainc_torch(a, b, x, grad_ab, grad_x)
    # numba loads on first use, not when the package is imported.
    from batchshaping.special._incomplete_beta_cpu import betainc_cpu

    return betainc_cpu(a, b, x, grad_ab, grad_x)


@_betainc_op.register_fake
def _betainc_op_fake(
    a: Tensor, b: Tensor, x: Tensor, grad_ab: bool, grad_x: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    shape = torch.broadcast_shapes(a.shape, b.shape, x.shape)

    def new(wanted: bool) -> Tensor:
        return x.new_empty(shape if wanted else (0,))

    return new(True), new(grad_ab), new(grad_ab), new(grad_x)


def _setup_context(ctx, inputs, output) -> None:
    a, b, x, _, _ = inputs
    _, grad_a, grad_b, grad_x = output
    ctx.shapes = (a.shape, b.shape, x.shape)
    ctx.save_for_backward(grad_a, grad_b, grad_x)
    ctx.mark_non_differentiable(*output[1:])


def _backward(ctx, grad_value, _grad_a, _grad_b, _grad_x):
    grad_a, grad_b, grad_x = ctx.saved_tensors
    shape_a, shape_b, shape_x = ctx.shapes
    needs_a, needs_b, needs_x = ctx.needs_input_grad[:3]
    # The saved derivatives are constants: second derivatives are not supported.
    with torch.no_grad():
        result_a = (grad_value * grad_a).sum_to_size(shape_a) if needs_a else None
        result_b = (grad_value * grad_b).sum_to_size(shape_b) if needs_b else None
        result_x = (grad_value * grad_x).sum_to_size(shape_x) if needs_x else None
    return result_a, result_b, result_x, None, None


_betainc_op.register_autograd(_backward, setup_context=_setup_context)


def _common_tensors(a, b, x) -> tuple[Tensor, Tensor, Tensor, torch.dtype]:
    """Promote like torch's elementwise functions; returns the inputs in the compute dtype."""
    names = ("a", "b", "x")
    values = (a, b, x)
    tensors = [v for v in values if isinstance(v, Tensor)]
    for name, value in zip(names, values, strict=True):
        if not isinstance(value, Tensor | int | float | bool):
            raise TypeError(f"betainc: {name} must be a tensor or a real number, got {type(value)}")
    if tensors:
        dtype = tensors[0].dtype
        for t in tensors[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
        devices = {t.device for t in tensors if t.dim() > 0} or {tensors[0].device}
        if len(devices) > 1:
            raise ValueError(
                f"betainc: a, b and x are on different devices: {sorted(map(str, devices))}"
            )
        device = devices.pop()
    else:
        dtype, device = torch.get_default_dtype(), None
    if dtype.is_complex:
        raise TypeError(f"betainc: complex input ({dtype}) is not supported")
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    converted = [torch.as_tensor(v, dtype=compute, device=device) for v in values]
    try:
        torch.broadcast_shapes(*(t.shape for t in converted))
    except RuntimeError:
        shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names, converted, strict=True))
        raise BroadcastError(f"betainc: the shapes of {shapes} do not broadcast") from None
    return converted[0], converted[1], converted[2], dtype


def betainc(a: Tensor | float, b: Tensor | float, x: Tensor | float) -> Tensor:
    r"""The regularized incomplete beta function, differentiable in ``a``, ``b`` and ``x``.

    .. math::

        I_x(a, b) = \frac{1}{B(a, b)} \int_0^x t^{a-1} (1 - t)^{b-1} \, dt,

    the CDF of the Beta(a, b) distribution at ``x``. Gradients are exact (analytic, first order):
    ``dI/dx`` is the Beta density, ``dI/da`` and ``dI/db`` come from the continued fraction (and
    near the end points the power series) differentiated term by term. On the CPU the value is
    exact to about 1e-14 in float64; float32 is computed in float64 and rounded; float16 and
    bfloat16 are computed in float32 and returned in their own dtype.

    Outside the domain the result is NaN, as in ``scipy.special.betainc``: ``x`` outside [0, 1],
    ``a`` or ``b`` negative or NaN, or ``a = b = 0``. ``x = 0`` gives 0 and ``x = 1`` gives 1 for
    any valid ``a``, ``b``; ``a = 0`` gives 1 and ``b = 0`` gives 0 inside (0, 1); the
    derivatives in ``a`` and ``b`` are 0 at these points. Where the density is infinite (``x = 0``
    with ``a < 1``, ``x = 1`` with ``b < 1``) the gradient in ``x`` is the density at the nearest
    normal number of the dtype, capped at its largest finite value, so gradients stay finite.

    Args:
        a: first shape parameter, ``a >= 0``; tensor or number.
        b: second shape parameter, ``b >= 0``; tensor or number.
        x: where to evaluate, in [0, 1]; tensor or number.
            The three broadcast against each other. Integer and boolean tensors and Python numbers
            are promoted to the default float dtype, as torch's elementwise functions do.

    Returns:
        Tensor of the broadcast shape and the promoted floating dtype.

    Raises:
        TypeError: a complex argument, or one that is not a tensor or a real number.
        ValueError: shapes that do not broadcast (the error names them), or tensors on different
            devices.

    Example:
        >>> import torch
        >>> from batchshaping import betainc
        >>> a = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
        >>> value = betainc(a, 6.0, torch.tensor([0.1, 0.25, 0.5], dtype=torch.float64))
        >>> value
        tensor([0.1497, 0.5551, 0.9375], dtype=torch.float64, grad_fn=<...>)
        >>> value.sum().backward()
        >>> a.grad
        tensor(-0.5198, dtype=torch.float64)
    """
    a, b, x, dtype = _common_tensors(a, b, x)
    grad_enabled = torch.is_grad_enabled()
    grad_ab = grad_enabled and (a.requires_grad or b.requires_grad)
    grad_x = grad_enabled and x.requires_grad
    value = _betainc_op(a, b, x, grad_ab, grad_x)[0]
    return value if value.dtype == dtype else value.to(dtype)
