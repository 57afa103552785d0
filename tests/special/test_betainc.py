"""batchshaping.betainc against independent oracles: scipy (values), mpmath (derivatives).

Every accuracy test runs every kernel of the registry that can run here (the ``kernel`` fixture
of ``conftest.py``, through :func:`batchshaping.special.kernel`), so that CI checks each of them:
the automatic CPU choice (``cpu``), the numba per-element kernel (``cpu-elementwise``), the numba
kernel that advances elements with shared parameters together (``cpu-shared``, which takes every
input, however short its runs of shared parameters), and the portable torch kernel that serves
CUDA and other devices (``portable``).
"""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from batchshaping import special
from batchshaping.special import _cpu_host, incomplete_beta
from batchshaping.special.incomplete_beta import betainc


def _log_uniform(rng, low, high, n):
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


def _value_and_grads(a, b, x, dtype=torch.float64):
    a, b, x = (torch.tensor(v, dtype=dtype, requires_grad=True) for v in (a, b, x))
    value = betainc(a, b, x)
    value.sum().backward()
    return value.detach(), a.grad, b.grad, x.grad


# --- values ---------------------------------------------------------------------------------


def test_values_match_scipy_float64(kernel):
    rng = np.random.default_rng(0)
    n = 20_000 if kernel == "portable" else 200_000
    a, b = _log_uniform(rng, 1e-3, 1e3, n), _log_uniform(rng, 1e-3, 1e3, n)
    x = rng.uniform(0.0, 1.0, n)
    x[:4] = [0.0, 1.0, 1e-300, 1.0 - 2.0**-53]
    ours = betainc(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(x)).numpy()
    error = np.abs(ours - scipy.special.betainc(a, b, x))
    assert error.max() <= 1e-12, (error.max(), a[error.argmax()], b[error.argmax()])


def test_float32_values_match_scipy(kernel):
    rng = np.random.default_rng(1)
    n = 20_000
    a, b = _log_uniform(rng, 1e-3, 1e3, n), _log_uniform(rng, 1e-3, 1e3, n)
    x = rng.uniform(0.0, 1.0, n)
    a32, b32, x32 = (torch.tensor(v, dtype=torch.float32) for v in (a, b, x))
    ours = betainc(a32, b32, x32)
    assert ours.dtype == torch.float32
    reference = scipy.special.betainc(*(t.double().numpy() for t in (a32, b32, x32)))
    assert np.abs(ours.double().numpy() - reference).max() <= 2e-7


SCIPY_CONVENTIONS = [
    (0.0, 1.0, 0.5),
    (1.0, 0.0, 0.5),
    (0.0, 0.0, 0.5),
    (0.0, 1.0, 0.0),
    (1.0, 0.0, 1.0),
    (2.0, 3.0, 0.0),
    (2.0, 3.0, 1.0),
    (0.5, 0.5, 0.0),
    (0.5, 0.5, 1.0),
    (2.0, 3.0, -0.1),
    (2.0, 3.0, 1.1),
    (-1.0, 2.0, 0.5),
    (2.0, -1.0, 0.5),
    (math.inf, 2.0, 0.5),
    (2.0, math.inf, 0.5),
    (math.inf, math.inf, 0.5),
    (math.nan, 1.0, 0.5),
    (1.0, math.nan, 0.5),
    (1.0, 1.0, math.nan),
]


@pytest.mark.parametrize("run", [1, 3], ids=["one-element", "a-run"])
@pytest.mark.parametrize(("a", "b", "x"), SCIPY_CONVENTIONS)
def test_special_points_follow_scipy(kernel, a, b, x, run):
    """Each special point alone, and repeated (a run of one (a, b): the per-element CPU kernel
    read the run's continued-fraction tables from the second element on, and for an infinite
    parameter their scales raised OverflowError)."""
    ours = betainc(torch.tensor(a, dtype=torch.float64), b, torch.full((run,), x)).tolist()
    expected = scipy.special.betainc(a, b, x)
    for value in ours:
        assert value == expected or (math.isnan(value) and math.isnan(expected))


# --- derivatives ----------------------------------------------------------------------------

MPMATH_POINTS = [
    (0.014, 3.467, 0.007),
    (5.9, 0.01, 0.99),
    (0.836, 0.221, 0.782),
    (0.3, 9.0, 1e-16),
    (9.0, 0.24, 1.0 - 1e-6),
    (880.0, 990.0, 0.47),
    (2.0, 1.0, 0.3),
    (10.0, 2.0, 0.7),
    (1.0, 3.0, 0.6),
    (4.0, 5.0, 0.45),
    (1e-3, 1e-3, 0.5),
    (3.0, 4.0, 0.2),
    (150.0, 0.5, 0.998),
    (0.5, 40.0, 0.02),
    (25.0, 30.0, 0.9),
    (1.0, 1.0, 0.5),
]


def _mpmath_grads(a, b, x):
    """d/da and d/db of mpmath's regularized incomplete beta, at 40 digits."""
    with mpmath.workdps(40):
        a, b, x = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(x)
        grad_a = mpmath.diff(lambda s: mpmath.betainc(s, b, 0, x, regularized=True), a)
        grad_b = mpmath.diff(lambda s: mpmath.betainc(a, s, 0, x, regularized=True), b)
        return float(grad_a), float(grad_b)


@pytest.mark.parametrize(("a", "b", "x"), MPMATH_POINTS)
def test_parameter_gradients_match_mpmath(kernel, a, b, x):
    _, grad_a, grad_b, _ = _value_and_grads(a, b, x)
    for ours, expected in zip((grad_a.item(), grad_b.item()), _mpmath_grads(a, b, x), strict=True):
        assert abs(ours - expected) <= max(1e-9, 1e-7 * abs(expected)), (ours, expected)


def test_x_gradient_is_the_beta_density(kernel):
    rng = np.random.default_rng(2)
    n = 2000
    a, b = _log_uniform(rng, 1e-2, 1e3, n), _log_uniform(rng, 1e-2, 1e3, n)
    x = rng.uniform(1e-6, 1.0 - 1e-6, n)
    _, _, _, grad_x = _value_and_grads(a, b, x)
    density = scipy.stats.beta.pdf(x, a, b)
    np.testing.assert_allclose(grad_x.numpy(), density, rtol=1e-10, atol=1e-300)


def test_float32_gradients_match_float64(kernel):
    rng = np.random.default_rng(3)
    n = 5000
    a, b = rng.uniform(0.05, 100.0, n), rng.uniform(0.05, 100.0, n)
    x = rng.uniform(0.001, 0.999, n)
    a, b, x = (np.float32(v).astype(np.float64) for v in (a, b, x))  # the same points in both
    grads32 = _value_and_grads(a, b, x, torch.float32)
    grads64 = _value_and_grads(a, b, x, torch.float64)
    for g32, g64 in zip(grads32, grads64, strict=True):
        assert g32.dtype == torch.float32
        error = (g32.double() - g64).abs() / g64.abs().clamp_min(1.0)
        assert error.max().item() <= 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_over_the_whole_range(kernel, dtype):
    rng = np.random.default_rng(4)
    n = 20_000
    a, b = _log_uniform(rng, 1e-3, 1e5, n), _log_uniform(rng, 1e-3, 1e5, n)
    x = rng.uniform(0.0, 1.0, n)
    x[: n // 10] = 0.0
    x[n // 10 : n // 5] = 1.0
    x[n // 5 : n // 4] = rng.choice([1e-30, 1e-8, 1.0 - 1e-7, 0.5], n // 4 - n // 5)
    corners = [(1e-3, 1e-3), (1e-3, 1e5), (1e5, 1e-3), (1e5, 1e5)]
    for k, (ca, cb) in enumerate(corners):
        a[n - 40 + 10 * k : n - 30 + 10 * k] = ca
        b[n - 40 + 10 * k : n - 30 + 10 * k] = cb
        x[n - 40 + 10 * k : n - 30 + 10 * k] = np.linspace(0.0, 1.0, 10)
    value, grad_a, grad_b, grad_x = _value_and_grads(a, b, x, dtype)
    assert ((value >= 0) & (value <= 1)).all()
    for grad in (grad_a, grad_b, grad_x):
        assert torch.isfinite(grad).all()


def test_large_parameters_match_scipy(kernel):
    points = np.array(
        [
            (1e5, 1e5, 0.5),
            (1e5, 1e5, 0.501),
            (3e4, 7e4, 0.3),
            (1e5, 1e-3, 0.99999),
            (1e-3, 1e5, 1e-5),
            (1e5, 2.0, 1 - 2e-5),
            (1e5, 1e3, 0.99),
        ]
    ).T
    ours = betainc(*(torch.from_numpy(v) for v in points)).numpy()
    np.testing.assert_allclose(ours, scipy.special.betainc(*points), rtol=1e-11, atol=1e-13)


GRADCHECK_POINTS = [
    (0.5, 0.7, 0.3),
    (2.0, 6.0, 0.2),
    (2.0, 6.0, 0.6),
    (30.0, 20.0, 0.55),
    (0.05, 3.0, 0.01),
    (3.0, 2.0, 0.95),
]


@pytest.mark.parametrize(("a", "b", "x"), GRADCHECK_POINTS)
def test_gradcheck(kernel, a, b, x):
    inputs = tuple(
        torch.tensor([v, v * 1.1], dtype=torch.float64, requires_grad=True)
        for v in (a, b, min(x, 0.9))
    )
    assert torch.autograd.gradcheck(betainc, inputs)


def test_gradcheck_broadcast(kernel):
    a = torch.tensor([[0.5], [2.0], [7.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([1.5, 3.0], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[0.2, 0.4], [0.5, 0.6], [0.7, 0.9]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(betainc, (a, b, x))


@pytest.mark.parametrize("dim", [None, 0])
def test_gradcheck_shared_parameters(dim):
    # Runs of 400 values that share (a, b): the automatic choice takes the shared-parameter kernel.
    generator = torch.Generator().manual_seed(8)
    if dim is None:
        a = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        b = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
        shape = (400,)
    else:
        a = torch.tensor([[0.7], [3.0]], dtype=torch.float64, requires_grad=True)
        b = torch.tensor([[2.5], [0.4]], dtype=torch.float64, requires_grad=True)
        shape = (2, 400)
    x = (torch.rand(shape, dtype=torch.float64, generator=generator) * 0.98 + 0.01).requires_grad_()
    call = _cpu_host.prepare(a, b, x, True, True)
    assert _cpu_host.shared_run_length(call, min_run=256) == 400
    assert torch.autograd.gradcheck(betainc, (a, b, x))


# --- properties -----------------------------------------------------------------------------
# Each example is a batch of points, evaluated in one call of each kernel (the portable kernel
# costs a fixed number of vector operations per call, so it runs fewer examples).

parameters = st.floats(1e-3, 1e3)
# Dyadic points, so that 1 - x is exact and the reflection is tested, not the rounding of 1 - x.
interior = st.integers(1, 2**30 - 1).map(lambda k: k / 2**30)
KERNELS = special.available_kernels()
# The portable kernel costs a fixed number of vector operations per call: fewer examples.
EXAMPLES = {"portable": 15}


def _columns(rows):
    return [torch.tensor(column, dtype=torch.float64) for column in zip(*rows, strict=True)]


def _batches(*elements):
    return st.lists(st.tuples(*elements), min_size=1, max_size=64).map(_columns)


@pytest.mark.parametrize("name", KERNELS)
def test_reflection(name):
    @settings(max_examples=EXAMPLES.get(name, 150), deadline=None)
    @given(_batches(parameters, parameters, interior))
    def check(batch):
        a, b, x = batch
        with special.kernel(name):
            difference = betainc(a, b, x) - (1.0 - betainc(b, a, 1.0 - x))
        assert difference.abs().max().item() <= 1e-12

    check()


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equal_inputs_get_equal_bits(name, dtype):
    """Every element of a run of equal inputs gets the same value and gradients, whichever
    path computes it: the per-element kernel reads coefficients from tables from the second
    element of a run on (a 1-ulp difference once broke monotonicity at a = 308, b = 0.25)."""
    points = [
        (308.0, 0.25, 0.5230050556263165),
        (2.0, 6.0, 0.3),
        (0.05, 3.0, 0.7),
        (4.0, 0.02, 0.9),
    ]
    points += [(1e-3, 1e3, 1e-4), (3e5, 2e5, 0.6), (0.7, 1.3, 0.999)]
    for (a_value, b_value, x_value), learned in itertools.product(points, (False, True)):
        # With learned parameters the kernels take their gradient paths too.
        a = torch.tensor(a_value, dtype=dtype, requires_grad=learned)
        b = torch.tensor(b_value, dtype=dtype, requires_grad=learned)
        x = torch.full((9,), x_value, dtype=dtype, requires_grad=True)
        with special.kernel(name):
            values = betainc(a.expand(9), b.expand(9), x)
        (grad_x,) = torch.autograd.grad(values.sum(), x)
        assert (values == values[0]).all() or values.isnan().all(), (a_value, b_value, values)
        assert (grad_x == grad_x[0]).all() or grad_x.isnan().all(), (a_value, b_value, grad_x)


@pytest.mark.parametrize("name", KERNELS)
def test_monotone_in_x(name):
    @settings(max_examples=EXAMPLES.get(name, 150), deadline=None)
    @given(parameters, parameters, st.lists(st.floats(0.0, 1.0), min_size=2, max_size=64))
    def check(a, b, xs):
        x = torch.tensor(sorted(xs), dtype=torch.float64)
        with special.kernel(name):
            values = betainc(torch.tensor(a, dtype=torch.float64), b, x)
        assert (values.diff() >= 0).all()

    check()


@pytest.mark.parametrize("name", KERNELS)
def test_recurrence_in_a(name):
    @settings(max_examples=EXAMPLES.get(name, 150), deadline=None)
    @given(_batches(st.floats(1e-2, 500.0), st.floats(1e-2, 500.0), st.floats(1e-6, 1 - 1e-6)))
    def check(batch):
        a, b, x = batch
        log_step = (
            a * x.log()
            + b * torch.log1p(-x)
            - a.log()
            - torch.from_numpy(scipy.special.betaln(a.numpy(), b.numpy()))
        )
        with special.kernel(name):
            difference = betainc(a + 1.0, b, x) - (betainc(a, b, x) - log_step.exp())
        assert difference.abs().max().item() <= 1e-12

    check()


# --- the public interface -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computed_in_float32(dtype):
    a = torch.tensor([2.0, 0.5], dtype=dtype, requires_grad=True)
    x = torch.tensor([0.25, 0.75], dtype=dtype)
    value = betainc(a, 6.0, x)
    assert value.dtype == dtype
    expected = scipy.special.betainc(a.detach().double().numpy(), 6.0, x.double().numpy())
    np.testing.assert_allclose(value.double().detach().numpy(), expected, rtol=1e-2)
    value.sum().backward()
    assert a.grad.dtype == dtype and torch.isfinite(a.grad).all()


def test_promotion_of_integers_and_numbers():
    assert betainc(2, 3, 0.5).dtype == torch.get_default_dtype()
    assert betainc(torch.tensor([2, 3]), 3, 0.5).dtype == torch.get_default_dtype()
    x64 = torch.tensor([0.5], dtype=torch.float64)
    assert betainc(torch.tensor(2.0), 3.0, x64).dtype == torch.float64
    assert betainc(2.0, torch.tensor([3.0]), 0.5).shape == (1,)
    assert betainc(2.0, 3.0, 0.5).item() == pytest.approx(scipy.special.betainc(2, 3, 0.5))


def test_shapes_that_do_not_broadcast_name_the_shapes():
    with pytest.raises(ValueError, match=r"a \(2, 3\).*b \(4,\).*x \(3,\)"):
        betainc(torch.ones(2, 3), torch.ones(4), torch.ones(3) / 2)
    # As torch's own broadcasting errors, it is a RuntimeError too.
    with pytest.raises(RuntimeError, match="do not broadcast"):
        betainc(torch.ones(2, 3), torch.ones(4), torch.ones(3) / 2)


@pytest.mark.parametrize("bad", [torch.ones(2, dtype=torch.complex64), "2.0", [1.0]])
def test_unsupported_types_raise_type_error(bad):
    with pytest.raises(TypeError, match="betainc"):
        betainc(bad, 2.0, 0.5)


def test_no_gradients_without_grad_mode():
    a = torch.tensor(2.0, requires_grad=True)
    with torch.no_grad():
        value = betainc(a, 3.0, 0.5)
    assert not value.requires_grad


def test_per_group_parameters_broadcast_without_copies(kernel):
    a = torch.tensor([[0.5], [2.0]], dtype=torch.float64)
    b = torch.tensor([[3.0], [1.5]], dtype=torch.float64)
    x = torch.rand(2, 5, dtype=torch.float64)
    x_wide = torch.rand(3, 2, 5, dtype=torch.float64)
    for xs in (x, x_wide):
        expected = scipy.special.betainc(*(np.broadcast_arrays(a.numpy(), b.numpy(), xs.numpy())))
        np.testing.assert_allclose(betainc(a, b, xs).numpy(), expected, rtol=1e-13, atol=1e-15)
    # a middle axis broadcast: (2, 1, 5) against (2, 3, 5)
    a_mid = torch.rand(2, 1, 5, dtype=torch.float64) * 3 + 0.1
    x_mid = torch.rand(2, 3, 5, dtype=torch.float64)
    expected = scipy.special.betainc(*(np.broadcast_arrays(a_mid.numpy(), 2.0, x_mid.numpy())))
    np.testing.assert_allclose(betainc(a_mid, 2.0, x_mid).numpy(), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(("a", "b"), [(2.0, 6.0), (2.3, 6.3), (0.5, 40.0), (3e3, 1e4), (1e4, 2.0)])
def test_repeated_parameters_match_single_evaluations(a, b):
    """A run of equal (a, b) reads tabulated coefficients (and, past the table, computes them)."""
    x = torch.linspace(0.0, 1.0, 41, dtype=torch.float64)[1:-1]
    x = torch.cat([x, torch.tensor([a / (a + b)], dtype=torch.float64)])
    run = _value_and_grads(np.full(x.numel(), a), np.full(x.numel(), b), x.numpy())
    singles = [_value_and_grads([a], [b], [v]) for v in x.tolist()]
    for k, found in enumerate(run):
        expected = torch.cat([single[k] for single in singles])
        torch.testing.assert_close(found, expected, rtol=1e-13, atol=1e-300)


def _oracle_value(oracle, a: float, b: float, x: float) -> float:
    """I_x(a, b) from the integrating oracle (``betainc_oracle.py``); 0 or 1 at the end points,
    NaN outside [0, 1]."""
    if not 0.0 < x < 1.0:
        return x if x in (0.0, 1.0) else math.nan
    (value, _, _), converged = oracle.betainc_with_gradients(a, b, x)
    assert converged, (a, b, x)
    return float(value)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("a", "b"),
    [
        (2.0, 6.0),
        (0.6, 0.4),
        (0.9, 0.1),
        (1e-3, 2.0),
        (50.0, 80.0),
        (3e3, 1e4),
        (3.0, 9e5),
        (2e6, 3.0),
    ],
)
def test_shared_parameters_match_the_per_element_kernel(a, b, dtype, betainc_oracle):
    """Long runs of one (a, b): many bins, full and partial chunks, both sides of the reflection,
    and the points each kernel finishes apart (end points, outside [0, 1], NaN, underflow)."""
    rng = np.random.default_rng(7)
    x = rng.uniform(0.0, 1.0, 40_000)
    x[:9] = [0.0, 1.0, -0.5, 1.5, math.nan, 1e-300, 1e-30, 1.0 - 1e-7, a / (a + b)]
    x[9:1000] = rng.uniform(0.0, 1.0, 991) ** 8  # crowd the lower bins
    results = {}
    for name in ("cpu-elementwise", "cpu-shared"):
        with special.kernel(name):
            results[name] = _value_and_grads(np.full(1, a), np.full(1, b), x, dtype)
    tolerance = {"rtol": 1e-13, "atol": 1e-300} if dtype == torch.float64 else {}
    for found, expected in zip(results["cpu-shared"], results["cpu-elementwise"], strict=True):
        torch.testing.assert_close(found, expected, equal_nan=True, **tolerance)
    # scipy at the same points, rounded to the dtype as the inputs were; where a parameter is
    # large (scipy loses digits there: 1e-11 at b = 9e5, and mpmath's series do not converge),
    # the integrating oracle at a sample of them.
    precision = np.float32 if dtype == torch.float32 else np.float64
    a, b = (float(np.float64(precision(v))) for v in (a, b))
    x = x.astype(precision).astype(np.float64)
    found = results["cpu-shared"][0].double().numpy()
    if max(a, b) > 1e5:
        sample = np.r_[0:9, rng.choice(np.arange(9, x.size), 40, replace=False)]
        found, x = found[sample], x[sample]
        reference = np.array([_oracle_value(betainc_oracle, a, b, v) for v in x.tolist()])
    else:
        reference = scipy.special.betainc(a, b, x)
    np.testing.assert_allclose(
        found,
        reference,
        rtol=1e-12 if dtype == torch.float64 else 2e-6,
        atol=1e-14 if dtype == torch.float64 else 1e-7,
    )


def test_empty_input():
    assert betainc(torch.ones(0), 2.0, torch.ones(0)).shape == (0,)


def test_torch_compile_fullgraph(restore_validation):
    compiled = torch.compile(
        lambda a, b, x: betainc(a, b, x).sum(), fullgraph=True, backend="aot_eager"
    )
    a = torch.tensor([2.0, 0.5], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.3, 0.6], dtype=torch.float64, requires_grad=True)
    compiled(a, 6.0, x).backward()
    a_eager = a.detach().clone().requires_grad_()
    x_eager = x.detach().clone().requires_grad_()
    betainc(a_eager, 6.0, x_eager).sum().backward()
    torch.testing.assert_close(a.grad, a_eager.grad)
    torch.testing.assert_close(x.grad, x_eager.grad)


def test_custom_op_registration():
    a, b, x = (torch.rand(4, dtype=torch.float64) + 0.1 for _ in range(3))
    torch.library.opcheck(incomplete_beta._betainc_op, (a, b, x.clamp(max=1), True, True))


# --- CUDA ------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu_without_synchronisation(dtype):
    rng = np.random.default_rng(5)
    n = 10_000
    a, b = _log_uniform(rng, 1e-3, 1e3, n), _log_uniform(rng, 1e-3, 1e3, n)
    x = rng.uniform(0.0, 1.0, n)
    cpu = _value_and_grads(a, b, x, dtype)
    tensors = [torch.tensor(v, dtype=dtype, device="cuda", requires_grad=True) for v in (a, b, x)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        value = betainc(*tensors)
        value.sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    tolerance = 1e-10 if dtype == torch.float64 else 1e-5
    for ours, expected in zip((value, *(t.grad for t in tensors)), cpu, strict=True):
        torch.testing.assert_close(ours.cpu(), expected, rtol=tolerance, atol=tolerance)


@pytest.mark.cuda
def test_cuda_torch_compile(restore_validation):
    compiled = torch.compile(lambda a, b, x: betainc(a, b, x).sum(), fullgraph=True)
    a = torch.tensor([2.0, 0.5], device="cuda", requires_grad=True)
    compiled(a, 6.0, torch.tensor([0.3, 0.6], device="cuda")).backward()
    assert torch.isfinite(a.grad).all()
