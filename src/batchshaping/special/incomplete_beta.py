"""The regularized incomplete beta function I_x(a, b), differentiable in a, b and x.

- One ``torch.library`` custom op, ``batchshaping::betainc``, that returns the value and its
  three first derivatives in one kernel pass; the kernel is chosen by the registry of
  :mod:`batchshaping.special.kernels` (numba on the CPU, a portable torch kernel elsewhere). It
  has a fake implementation, so that it traces under ``torch.compile(fullgraph=True)``, and a
  batching rule, so that ``torch.func.vmap`` runs it once for the whole batch. Plain tensors
  outside any tracing go to the kernel directly: the op's dispatch costs nothing there but
  imports torch's compiler on its first call (seconds).
- An autograd function around it (:class:`_IncompleteBeta`) with ``setup_context``, ``jvp`` and
  a generated batching rule: reverse and forward mode, and the ``torch.func`` transforms.
- Second derivatives: in x they are exact (the derivatives of the Beta density,
  :class:`_BetaDensity`); in a and b they are not available, and asking for one raises an error
  instead of returning a wrong number (:class:`_ParameterGradients`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd import forward_ad
from torch.autograd.function import once_differentiable

from batchshaping._runtime.shapes import broadcast_shapes
from batchshaping._runtime.tracing import eager_tensors, transforming
from batchshaping.special import kernels
from batchshaping.special._constants import SMALLEST_NORMAL
from batchshaping.special._portable import log_beta

__all__ = ["BroadcastError", "betainc"]

_SECOND_ORDER_IN_PARAMETERS = (
    "betainc: second derivatives with respect to a or b alone (d2I/da2, d2I/da db, d2I/db2) are "
    "not supported; first derivatives in a and b, and the second derivatives that involve x, "
    "are. Detach a and b, or differentiate with respect to them only once"
)


class BroadcastError(ValueError, RuntimeError):
    """Shapes that do not broadcast: a ``ValueError``, and a ``RuntimeError`` as in torch."""


@torch.library.custom_op("batchshaping::betainc", mutates_args=())
def _betainc_op(
    a: Tensor, b: Tensor, x: Tensor, grad_ab: bool, grad_x: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return kernels.resolve(x.device.type)(a, b, x, grad_ab, grad_x)


@_betainc_op.register_fake
def _betainc_op_fake(
    a: Tensor, b: Tensor, x: Tensor, grad_ab: bool, grad_x: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    shape = broadcast_shapes(a.shape, b.shape, x.shape)

    def new(wanted: bool) -> Tensor:
        return x.new_empty(shape if wanted else (0,))

    return new(True), new(grad_ab), new(grad_ab), new(grad_x)


@_betainc_op.register_vmap
def _betainc_op_vmap(info, in_dims, a, b, x, grad_ab, grad_x):
    # Elementwise: the batch dimension goes first, each batched input is padded to the logical
    # rank of the widest so that broadcasting lines them up, and one call does the whole batch.
    tensors = (a, b, x)
    rank = max(t.dim() - (d is not None) for t, d in zip(tensors, in_dims[:3], strict=True))
    moved = []
    for t, d in zip(tensors, in_dims[:3], strict=True):
        if d is None:
            moved.append(t)
            continue
        t = t.movedim(d, 0)
        moved.append(t.reshape(t.shape[0], *(1,) * (rank + 1 - t.dim()), *t.shape[1:]))
    outputs = _betainc_op(*moved, grad_ab, grad_x)
    # Gradients not asked for are empty tensors, without a batch dimension.
    return outputs, (0, 0 if grad_ab else None, 0 if grad_ab else None, 0 if grad_x else None)


class _IncompleteBeta(torch.autograd.Function):
    """I_x(a, b) from the op, with its saved first derivatives for reverse and forward mode."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a, b, x, grad_ab, grad_x):
        if eager_tensors(a, b, x):
            return kernels.resolve(x.device.type)(a, b, x, grad_ab, grad_x)
        return _betainc_op(a, b, x, grad_ab, grad_x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, b, x, _, _ = inputs
        _, grad_a, grad_b, grad_x = output
        ctx.save_for_backward(a, b, x, grad_a, grad_b, grad_x)
        ctx.save_for_forward(grad_a, grad_b, grad_x)
        ctx.mark_non_differentiable(*output[1:])
        # The derivatives are outputs no gradient flows into: autograd would otherwise fill a
        # tensor of zeros the size of the values for each, three of them, in every backward.
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad_value, _grad_a, _grad_b, _grad_x):
        if grad_value is None:  # only the derivatives were used, which carry no gradient
            return None, None, None, None, None
        a, b, x, grad_a, grad_b, grad_x = ctx.saved_tensors
        needs_a, needs_b, needs_x = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():
            # A graph of the backward is asked for (create_graph, torch.func): the derivatives
            # become functions of a, b and x with the right derivatives of their own.
            if needs_x:
                grad_x = _BetaDensity.apply(a, b, x, grad_x)
            if needs_a or needs_b:
                grad_a, grad_b = _ParameterGradients.apply(a, b, x, grad_a, grad_b)
        result_a = (grad_value * grad_a).sum_to_size(a.shape) if needs_a else None
        result_b = (grad_value * grad_b).sum_to_size(b.shape) if needs_b else None
        result_x = (grad_value * grad_x).sum_to_size(x.shape) if needs_x else None
        return result_a, result_b, result_x, None, None


class _IncompleteBetaForward(_IncompleteBeta):
    """:class:`_IncompleteBeta` with forward mode too (dynamo does not trace a custom ``jvp``)."""

    @staticmethod
    def jvp(ctx, tangent_a, tangent_b, tangent_x, _grad_ab, _grad_x):
        grad_a, grad_b, grad_x = ctx.saved_tensors
        tangent = None
        pairs = ((grad_a, tangent_a), (grad_b, tangent_b), (grad_x, tangent_x))
        for derivative, direction in pairs:
            if direction is not None:
                term = derivative * direction
                tangent = term if tangent is None else tangent + term
        return tangent, None, None, None


class _BetaDensity(torch.autograd.Function):
    r"""The Beta density, ``density`` given, as a function of (a, b, x) for second derivatives.

    .. math::
        \frac{\partial f}{\partial x} = f \left(\frac{a - 1}{x} - \frac{b - 1}{1 - x}\right),
        \quad \frac{\partial f}{\partial a} = f (\log x - \psi(a) + \psi(a + b)),
        \quad \frac{\partial f}{\partial b} = f (\log(1 - x) - \psi(b) + \psi(a + b)).

    Exact inside (0, 1); at x = 0 or 1 (where the density is the capped convention of the first
    derivative) they are infinite or NaN, as the true ones are. Third derivatives raise.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(a, b, x, density):
        return density.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, b, x, density = inputs
        ctx.save_for_backward(a, b, x, density)
        ctx.save_for_forward(a, b, x, density)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a, b, x, density = ctx.saved_tensors
        partial_a, partial_b, partial_x = _log_density_partials(a, b, x)
        wanted = ctx.needs_input_grad
        return (
            (grad * density * partial_a).sum_to_size(a.shape) if wanted[0] else None,
            (grad * density * partial_b).sum_to_size(b.shape) if wanted[1] else None,
            (grad * density * partial_x).sum_to_size(x.shape) if wanted[2] else None,
            None,
        )

    @staticmethod
    def jvp(ctx, tangent_a, tangent_b, tangent_x, _tangent_density):
        a, b, x, density = ctx.saved_tensors
        partials = _log_density_partials(a, b, x)
        tangent = torch.zeros_like(density)
        for partial, direction in zip(partials, (tangent_a, tangent_b, tangent_x), strict=True):
            if direction is not None:
                tangent = tangent + density * _weighted(direction, partial)
        return tangent


class _ParameterGradients(torch.autograd.Function):
    """dI/da and dI/db, given, as functions of (a, b, x): their x derivatives are those of the
    density in a and b; their a and b derivatives are not available and raise."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a, b, x, grad_a, grad_b):
        return grad_a.clone(), grad_b.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, b, x, _, _ = inputs
        ctx.save_for_backward(a, b, x)
        ctx.save_for_forward(a, b, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_of_a, grad_of_b):
        if _will_differentiate(ctx, 0) or _will_differentiate(ctx, 1):
            raise NotImplementedError(_SECOND_ORDER_IN_PARAMETERS)
        a, b, x = ctx.saved_tensors
        result_x = None
        if ctx.needs_input_grad[2]:
            result_x = _mixed_partials(a, b, x, grad_of_a, grad_of_b).sum_to_size(x.shape)
        return None, None, result_x, None, None

    @staticmethod
    def jvp(ctx, tangent_a, tangent_b, tangent_x, _tangent_grad_a, _tangent_grad_b):
        if tangent_a is not None or tangent_b is not None:
            raise NotImplementedError(_SECOND_ORDER_IN_PARAMETERS)
        a, b, x = ctx.saved_tensors
        density = _density(a, b, x)
        partial_a, partial_b, _ = _log_density_partials(a, b, x)
        if tangent_x is None:
            zero = torch.zeros_like(density)
            return zero, zero
        return density * partial_a * tangent_x, density * partial_b * tangent_x


def _will_differentiate(ctx, index: int) -> bool:
    """Whether this backward pass goes on to input ``index`` of the node ``ctx``.

    ``needs_input_grad`` says whether the input requires a gradient at all; the engine knows
    whether this pass wants it (``torch.autograd.grad(..., inputs=x)`` does not want a's). Where
    that cannot be told, the answer is yes.
    """
    if not ctx.needs_input_grad[index]:
        return False
    node = ctx.next_functions[index][0]
    if node is None:
        return False
    try:
        return torch._C._will_engine_execute_node(node)
    except RuntimeError:  # not inside the engine's backward pass (torch.func)
        return True


def _log_density_partials(a: Tensor, b: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """d log f / da, d log f / db, d log f / dx of the Beta density f.

    NaN in a subnormal parameter: psi of it, about -1 / a, overflows or nearly so, and f, of the
    order of that parameter, is a subnormal with few bits left; their product would be a wrong
    finite number."""
    psi_ab = torch.digamma(a + b)
    partial_a = torch.log(x) - torch.digamma(a) + psi_ab
    partial_b = torch.log1p(-x) - torch.digamma(b) + psi_ab
    partial_a = torch.where((a > 0.0) & (a < SMALLEST_NORMAL), math.nan, partial_a)
    partial_b = torch.where((b > 0.0) & (b < SMALLEST_NORMAL), math.nan, partial_b)
    return partial_a, partial_b, (a - 1) / x - (b - 1) / (1 - x)


def _density(a: Tensor, b: Tensor, x: Tensor) -> Tensor:
    return torch.exp((a - 1) * torch.log(x) + (b - 1) * torch.log1p(-x) - log_beta(a, b))


def _mixed_partials(a: Tensor, b: Tensor, x: Tensor, grad_of_a: Tensor, grad_of_b: Tensor):
    """sum over (a, b) of the incoming gradients times d^2 I / dx d(a or b) = df / d(a or b)."""
    density = _density(a, b, x)
    partial_a, partial_b, _ = _log_density_partials(a, b, x)
    return density * (_weighted(grad_of_a, partial_a) + _weighted(grad_of_b, partial_b))


def _weighted(weight: Tensor, partial: Tensor) -> Tensor:
    """weight * partial, 0 where the weight is 0 (a NaN partial that no gradient or tangent
    asks for, in a subnormal parameter, must not spread to the other terms)."""
    return torch.where(weight == 0.0, 0.0, weight * partial)


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
        broadcast_shapes(*(t.shape for t in converted))
    except RuntimeError:
        shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names, converted, strict=True))
        raise BroadcastError(f"betainc: the shapes of {shapes} do not broadcast") from None
    return converted[0], converted[1], converted[2], dtype


def _wants_derivatives(*tensors: Tensor) -> bool:
    """Whether derivatives of the op may be asked for: reverse mode, forward mode, torch.func."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return True
    if transforming():
        return True
    return forward_ad._current_level >= 0 and any(
        forward_ad.unpack_dual(t).tangent is not None for t in tensors
    )


def betainc(a: Tensor | float, b: Tensor | float, x: Tensor | float) -> Tensor:
    r"""The regularized incomplete beta function, differentiable in ``a``, ``b`` and ``x``.

    .. math::

        I_x(a, b) = \frac{1}{B(a, b)} \int_0^x t^{a-1} (1 - t)^{b-1} \, dt,

    the CDF of the Beta(a, b) distribution at ``x``. Gradients are exact (analytic): ``dI/dx``
    is the Beta density, ``dI/da`` and ``dI/db`` come from the continued fraction (and near the
    end points the power series) differentiated term by term. On the CPU the value is exact to
    about 1e-14 in float64; float32 is computed in float64 and rounded; float16 and bfloat16 are
    computed in float32 and returned in their own dtype. Which kernel computes it is chosen
    automatically, or with :func:`batchshaping.special.kernel`.

    Higher derivatives: reverse mode, forward mode (``jvp``) and the ``torch.func`` transforms
    (``grad``, ``vmap``, ``jacrev``, ``jacfwd``) work. Second derivatives in ``x`` are exact (they
    are the derivatives of the density, also in ``a`` and ``b``: d^2 I / dx da); second
    derivatives in ``a`` or ``b`` alone are not available and raise ``NotImplementedError``
    rather than return a wrong number.

    Outside the domain the result is NaN, as in ``scipy.special.betainc``: ``x`` outside [0, 1],
    ``a`` or ``b`` negative or NaN, ``a = b = 0`` or ``a = b = inf``. ``x = 0`` gives 0 and
    ``x = 1`` gives 1 for any valid ``a``, ``b``; ``a = 0`` or ``b = inf`` gives 1 and ``b = 0``
    or ``a = inf`` gives 0 inside (0, 1) (where the other parameter is not the same limit); the
    derivatives in ``a`` and ``b`` are 0 at these points. Where a parameter is tiny (a subnormal
    ``a`` or ``b``, or both below 2^-100) the value and first derivatives are exact too (see
    :mod:`batchshaping.special._tiny_parameters`), the derivatives infinite only where the true
    one is beyond the largest float (both parameters below about 1e-308); the second derivatives
    d^2 I / dx da (d^2 I / dx db) are NaN where ``a`` (``b``) is subnormal.
    Where the density is infinite (``x = 0`` with ``a < 1``, ``x = 1`` with ``b < 1``) the
    gradient in ``x`` is the density at the nearest normal number of the dtype, capped at its
    largest finite value, so gradients stay finite.

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
        ValueError: shapes that do not broadcast (the error names them), tensors on different
            devices, or a kernel chosen with :func:`~batchshaping.special.kernel` that does not
            run on their device.

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
    grad_ab = _wants_derivatives(a, b)
    grad_x = _wants_derivatives(x)
    function = _IncompleteBeta if torch.compiler.is_compiling() else _IncompleteBetaForward
    value = function.apply(a, b, x, grad_ab, grad_x)[0]
    return value if value.dtype == dtype else value.to(dtype)
