"""betainc under torch.func and forward mode, and its second derivatives: right, or an error."""

from __future__ import annotations

import mpmath
import pytest
import torch
from torch.autograd import forward_ad

from batchshaping import betainc

F64 = torch.float64
A = torch.tensor([0.7, 2.0, 9.0], dtype=F64)
B = torch.tensor([3.5, 1.0, 0.4], dtype=F64)
X = torch.tensor([0.2, 0.55, 0.9], dtype=F64)


def _autograd_gradients(a, b, x):
    leaves = [t.clone().requires_grad_() for t in (a, b, x)]
    return torch.autograd.grad(betainc(*leaves).sum(), leaves)


def test_func_grad_matches_autograd():
    expected = _autograd_gradients(A, B, X)
    found = torch.func.grad(lambda a, b, x: betainc(a, b, x).sum(), argnums=(0, 1, 2))(A, B, X)
    for ours, reference in zip(found, expected, strict=True):
        torch.testing.assert_close(ours, reference, rtol=0, atol=0)


@pytest.mark.parametrize("transform", [torch.func.jacrev, torch.func.jacfwd])
def test_jacobians_match_autograd(transform):
    expected = _autograd_gradients(A, B, X)
    jacobians = transform(betainc, argnums=(0, 1, 2))(A, B, X)
    for jacobian, reference in zip(jacobians, expected, strict=True):
        torch.testing.assert_close(torch.diagonal(jacobian), reference, rtol=1e-15, atol=0)
        off_diagonal = jacobian - torch.diag(torch.diagonal(jacobian))
        assert torch.count_nonzero(off_diagonal) == 0


def test_forward_mode_tangent_is_the_directional_derivative():
    gradients = _autograd_gradients(A, B, X)
    directions = [torch.tensor([1.0, -2.0, 0.5], dtype=F64) * k for k in (1, 2, 3)]
    with forward_ad.dual_level():
        duals = [forward_ad.make_dual(t, d) for t, d in zip((A, B, X), directions, strict=True)]
        tangent = forward_ad.unpack_dual(betainc(*duals)).tangent
    expected = sum(g * d for g, d in zip(gradients, directions, strict=True))
    torch.testing.assert_close(tangent, expected, rtol=1e-15, atol=0)


def test_vmap_over_values_and_over_parameters_matches_a_loop():
    xs = torch.rand(5, 3, dtype=F64)
    found = torch.func.vmap(lambda x: betainc(A, B, x))(xs)
    torch.testing.assert_close(found, torch.stack([betainc(A, B, x) for x in xs]))
    a_batch = torch.rand(4, 1, dtype=F64) * 5 + 0.1
    found = torch.func.vmap(lambda a: betainc(a, 2.0, X))(a_batch)
    torch.testing.assert_close(found, torch.stack([betainc(a, 2.0, X) for a in a_batch]))


def test_per_sample_gradients_by_vmap_of_grad():
    a_batch = torch.tensor([0.5, 1.5, 4.0], dtype=F64)
    per_sample = torch.func.vmap(torch.func.grad(lambda a: betainc(a, 2.0, X).sum()))(a_batch)
    expected = [
        _autograd_gradients(a.expand(3), torch.full((3,), 2.0, dtype=F64), X)[0].sum()
        for a in a_batch
    ]
    torch.testing.assert_close(per_sample, torch.stack(expected), rtol=1e-14, atol=0)


def _density_derivatives(a, b, x):
    """d f / dx, d f / da, d f / db of the Beta density, by mpmath at 30 digits."""
    mpmath.mp.dps = 30

    def density(x_, a_, b_):
        return x_ ** (a_ - 1) * (1 - x_) ** (b_ - 1) / mpmath.beta(a_, b_)

    rows = []
    for a_, b_, x_ in zip(a.tolist(), b.tolist(), x.tolist(), strict=True):
        point = (mpmath.mpf(x_), mpmath.mpf(a_), mpmath.mpf(b_))
        orders = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
        rows.append([float(mpmath.diff(density, point, order)) for order in orders])
    return torch.tensor(rows, dtype=F64).T


@pytest.mark.parametrize("how", ["func.hessian", "autograd.functional.hessian", "double backward"])
def test_second_derivatives_in_x_are_exact(how):
    def total(x):
        return betainc(A, B, x).sum()

    if how == "func.hessian":
        hessian = torch.func.hessian(total)(X)
    elif how == "autograd.functional.hessian":
        hessian = torch.autograd.functional.hessian(total, X)
    else:
        x = X.clone().requires_grad_()
        (gradient,) = torch.autograd.grad(total(x), x, create_graph=True)
        hessian = torch.stack([torch.autograd.grad(g, x, retain_graph=True)[0] for g in gradient])
    d_dx, _, _ = _density_derivatives(A, B, X)
    torch.testing.assert_close(torch.diagonal(hessian), d_dx, rtol=1e-12, atol=0)
    assert torch.count_nonzero(hessian - torch.diag(torch.diagonal(hessian))) == 0


def test_mixed_second_derivatives_in_x_and_the_parameters_are_exact():
    a, b, x = (t.clone().requires_grad_() for t in (A, B, X))
    (gradient_x,) = torch.autograd.grad(betainc(a, b, x).sum(), x, create_graph=True)
    d_da, d_db = torch.autograd.grad(gradient_x.sum(), (a, b))
    _, reference_a, reference_b = _density_derivatives(A, B, X)
    torch.testing.assert_close(d_da, reference_a, rtol=1e-12, atol=0)
    torch.testing.assert_close(d_db, reference_b, rtol=1e-12, atol=0)
    # The same from the other side: d/dx of dI/da.
    a, b, x = (t.clone().requires_grad_() for t in (A, B, X))
    (gradient_a,) = torch.autograd.grad(betainc(a, b, x).sum(), a, create_graph=True)
    (d_dx,) = torch.autograd.grad(gradient_a.sum(), x)
    torch.testing.assert_close(d_dx, reference_a, rtol=1e-12, atol=0)


def test_mixed_second_derivatives_in_a_subnormal_parameter_are_nan():
    """d^2 I / dx da where a is subnormal (and in b likewise): NaN, not the product of psi(a),
    about -1 / a, with a density of the order of a that is a subnormal with few bits left (a
    wrong finite number for a in [5.6e-309, 2.2e-308), inf or NaN below). The other parameter's
    stays finite; both from either side (d/da of dI/dx, d/dx of dI/da)."""
    a = torch.tensor([1e-310, 2.0, 2e-308], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([2.0, 1e-310, 3.0], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.3, 0.3, 0.6], dtype=torch.float64, requires_grad=True)
    (gradient_x,) = torch.autograd.grad(betainc(a, b, x).sum(), x, create_graph=True)
    d_da, d_db = torch.autograd.grad(gradient_x.sum(), (a, b))
    assert torch.isnan(d_da[[0, 2]]).all() and torch.isnan(d_db[1])
    assert torch.isfinite(d_db[[0, 2]]).all() and torch.isfinite(d_da[1])
    (gradient_a,) = torch.autograd.grad(betainc(a, b, x).sum(), a, create_graph=True)
    (d_dx,) = torch.autograd.grad(gradient_a.sum(), x)
    assert torch.isnan(d_dx[[0, 2]]).all() and torch.isfinite(d_dx[1])


@pytest.mark.parametrize("how", ["func.hessian", "autograd.functional.hessian", "double backward"])
def test_second_derivatives_in_the_parameters_raise(how):
    def total(a):
        return betainc(a, B, X).sum()

    with pytest.raises(NotImplementedError, match="second derivatives with respect to a or b"):
        if how == "func.hessian":
            torch.func.hessian(total)(A)
        elif how == "autograd.functional.hessian":
            torch.autograd.functional.hessian(total, A)
        else:
            a = A.clone().requires_grad_()
            (gradient,) = torch.autograd.grad(total(a), a, create_graph=True)
            gradient.sum().backward()
