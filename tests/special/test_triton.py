"""The Triton kernel of betainc: its registration, and what it does beyond the accuracy tests.

Three kinds of test, by where they can run:

- everywhere triton is installed: the registry lists "triton" only where it can run, CUDA
  tensors resolve to it, importing the package does not import triton;
- under Triton's interpreter (``TRITON_INTERPRET=1`` set before the import; the process that
  ``test_triton_ci.py`` starts): the kernel on CPU tensors, through the registry;
- on a CUDA device (``@pytest.mark.cuda``): the compiled kernel against the CPU kernel, without
  host synchronisation, under ``torch.compile`` and in a CUDA graph.

The bad-input examples run in the last two, on CPU tensors under the interpreter and on CUDA.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.special
import torch

from batchshaping import betainc, special
from batchshaping.special import kernels

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None,
    reason="triton is not installed (pip install 'batchshaping[triton]')",
)

INTERPRETED = kernels._TRITON_INTERPRETED
needs_interpreter = pytest.mark.skipif(
    not INTERPRETED,
    reason="runs on CPU tensors under Triton's interpreter: set TRITON_INTERPRET=1 before the "
    "import (test_triton_ci.py starts such a process)",
)


def _log_uniform(rng, low, high, n):
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


def _value_and_grads(a, b, x, dtype=torch.float64, device="cpu"):
    leaves = [torch.tensor(v, dtype=dtype, device=device, requires_grad=True) for v in (a, b, x)]
    value = betainc(*leaves)
    value.sum().backward()
    return (value.detach(), *(leaf.grad for leaf in leaves))


if importlib.util.find_spec("triton") is not None:
    import triton
    import triton.language as tl

    from batchshaping.special._triton_math import mean_offset

    @triton.jit
    def _offsets_kernel(a_ptr, b_ptr, x_ptr, out_ptr, BLOCK: tl.constexpr):
        """delta = a - (a + b) x of the kernel's ``mean_offset``, for one block."""
        i = tl.arange(0, BLOCK)
        x = tl.load(x_ptr + i)
        tl.store(out_ptr + i, mean_offset(tl.load(a_ptr + i), tl.load(b_ptr + i), x, 1.0 - x))


# --- the registry ---------------------------------------------------------------------------


@pytest.mark.skipif(
    INTERPRETED or torch.cuda.is_available(), reason="triton runs here: CUDA or the interpreter"
)
def test_not_listed_without_cuda_or_the_interpreter():
    assert "triton" not in special.available_kernels()
    with pytest.raises(ValueError, match="'triton' cannot run in this process"):
        with special.kernel("triton"):
            pass


def test_cuda_tensors_resolve_to_triton_where_it_is_available(monkeypatch):
    from batchshaping.special import _portable, _triton

    monkeypatch.setitem(kernels._CHOICE._available, "triton", lambda: True)
    assert kernels.resolve("cuda") is _triton.betainc
    assert kernels.resolve("cpu") is not _triton.betainc
    monkeypatch.setitem(kernels._CHOICE._available, "triton", lambda: False)
    # wrapped in the tiny-parameter treatment (the Triton kernel has its own)
    assert kernels.resolve("cuda").__wrapped__ is _portable.betainc


@pytest.mark.skipif(INTERPRETED, reason="a process of its own, without the interpreter")
def test_importing_the_package_does_not_import_triton():
    code = (
        "import sys, torch, batchshaping\n"
        "from batchshaping import special\n"
        "special.available_kernels()\n"
        "batchshaping.betainc(torch.tensor([2.0]), 3.0, torch.tensor([0.5]))\n"
        "print('triton' in sys.modules)\n"
    )
    environment = {**os.environ, "TRITON_INTERPRET": "0"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_expansion_coefficients_are_the_exact_polynomials():
    """The table the kernel evaluates f_j(rho) from is the exact recurrence's, correctly
    rounded, and agrees with the CPU kernels' numerical recurrence at several rho (to the
    rounding errors of that recurrence, 2e-13 of the coefficients' scale)."""
    from fractions import Fraction

    from batchshaping._runtime.jit import jit
    from batchshaping.special import _asymptotic, _triton_expansion

    order = _triton_expansion.ORDER
    exact = _triton_expansion.expansion_polynomials(order)
    assert len(_triton_expansion.COEFFICIENTS) == order
    for j in range(1, order + 1):
        assert len(exact[j]) == j + 1
        assert _triton_expansion.COEFFICIENTS[j - 1] == tuple(float(c) for c in exact[j]), j

    @jit
    def extend(rho, scratch):
        _asymptotic._extend_coefficients(rho, order, scratch)

    for rho in (1e-9, 0.01, 0.37, 0.999, 1.0):
        scratch = _asymptotic.new_scratch()
        extend(rho, scratch)
        r = Fraction(rho)
        for j in range(1, order + 1):
            value = sum(c * r**k for k, c in enumerate(exact[j]))
            slope = sum(k * c * r ** (k - 1) for k, c in enumerate(exact[j]) if k)
            scale = sum(abs(c) for c in exact[j])
            assert abs(scratch[2, j] - float(value)) <= 1e-12 * float(scale), (rho, j)
            assert abs(scratch[3, j] - float(slope)) <= 1e-12 * j * float(scale), (rho, j)


# --- under the interpreter ------------------------------------------------------------------


@needs_interpreter
def test_listed_and_run_on_cpu_tensors_under_the_interpreter():
    assert "triton" in special.available_kernels()
    a = torch.tensor([[0.5], [3.0]], dtype=torch.float64)
    x = torch.linspace(0.0, 1.0, 301, dtype=torch.float64).expand(2, 301)
    with special.kernel("triton"):
        ours = betainc(a, 2.5, x)
    expected = scipy.special.betainc(a.numpy(), 2.5, x.numpy())
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-13, atol=1e-15)
    # The automatic choice for CPU tensors stays the CPU kernel.
    assert kernels.resolve("cpu") is not kernels._load("triton")


@needs_interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_elements_past_the_cap_on_terms_are_nan_and_the_others_exact(dtype):
    from batchshaping.special import _triton

    rng = np.random.default_rng(9)
    n = 2000
    a, b = _log_uniform(rng, 1e-2, 1e4, n), _log_uniform(rng, 1e-2, 1e4, n)
    x = rng.uniform(0.0, 1.0, n)
    a, b, x = (torch.tensor(v, dtype=dtype) for v in (a, b, x))
    full = _triton.betainc(a, b, x, True, True)
    capped = _triton.betainc(a, b, x, True, True, max_terms=20)
    unfinished = torch.isnan(capped[0])
    # Some need more than 20 terms or pairs, most do not.
    assert 0 < unfinished.sum() < n // 2
    for found, expected in zip(capped[:3], full[:3], strict=True):
        assert torch.isnan(found[unfinished]).all()
        torch.testing.assert_close(found[~unfinished], expected[~unfinished], rtol=0, atol=0)
    # The density does not depend on the loops.
    torch.testing.assert_close(capped[3], full[3], rtol=0, atol=0)


@needs_interpreter
def test_mean_offset_is_exact_under_the_interpreter():
    """delta = a - (a + b) x from an error-free sum and ``tl.fma``: within a few ulp of the
    exact delta where it is the difference of two numbers up to 1e300 (an fma rounded twice, as
    a multiply and an add, would leave errors of the order of ulp(a))."""
    from fractions import Fraction

    rng = np.random.default_rng(12)
    n = 64
    a = _log_uniform(rng, 1e3, 1e300, n)
    b = a * _log_uniform(rng, 1e-3, 1e3, n)
    # x within a few ulp of the mean a / (a + b), where a and (a + b) x nearly cancel.
    x = np.nextafter(a / (a + b), rng.choice([0.0, 1.0], n))
    x[::3] = a[::3] / (a[::3] + b[::3])
    out = torch.empty(n, dtype=torch.float64)
    tensors = [torch.tensor(v) for v in (a, b, x)]
    _offsets_kernel[(1,)](*tensors, out, BLOCK=n)
    for found, a_i, b_i, x_i in zip(out.tolist(), a, b, x, strict=True):
        exact = Fraction(a_i) - (Fraction(a_i) + Fraction(b_i)) * Fraction(x_i)
        assert abs(Fraction(found) - exact) <= 4 * Fraction(np.spacing(abs(float(exact)))), (
            a_i,
            b_i,
            x_i,
            found,
            float(exact),
        )


# Points on both sides of every threshold of the region choice (``_cpu_elementwise``), where a
# method chosen on the wrong side would show: the series (b x = 1, a = 1, x = 0.95, a = 0.1),
# the prefactor's forms (15), the reflection at the mode, the expansion (both parameters at
# 1000, x four standard deviations from the mean), the underflow to 0.
def _region_boundaries():
    def near(value):
        return [np.nextafter(value, 0.0), value, np.nextafter(value, 2.0 * value + 1.0)]

    points = []
    for x in near(0.1):
        points.append((3.0, 10.0, x))  # b x = 1
    for a in near(1.0):
        points += [(a, 40.0, 0.3), (a, 0.5, 0.9)]
    for x in near(0.95):
        points.append((0.7, 0.6, 1.0 - x))
    for a in near(0.1):
        points += [(a, 3.0, 0.4), (2.0, a, 0.97)]
    for a in near(15.0):
        points += [(a, 3.0, 0.7), (a, 2e5, 1e-5), (a, 40.0, 0.2)]
    for b in (3.0, 1e3, 1e9):
        a = 2.0 * b
        points.append((a, b, (a + 1.0) / (a + b + 2.0)))  # the reflection point
    for low in near(1000.0):
        for ratio in (1.0, 3.0, 1e4):
            a, b = low, low * ratio
            n = a + b
            edge = 4.0 * np.sqrt(a) * np.sqrt(b / n)
            for distance in (0.999 * edge, 1.001 * edge):
                points += [(a, b, (a - distance) / n), (b, a, (b + distance) / n)]
    for x in (1e-200, 3e-33, 1e-32):  # I_x(20, 3) from 1e-3970 to 1e-633: 0 or subnormal
        points.append((20.0, 3.0, x))
    return points


@needs_interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_region_boundaries_match_the_cpu_kernel(dtype):
    a, b, x = (np.array(column) for column in zip(*_region_boundaries(), strict=True))
    with special.kernel("triton"):
        ours = _value_and_grads(a, b, x, dtype)
    with special.kernel("cpu-elementwise"):
        expected = _value_and_grads(a, b, x, dtype)
    tolerance = 1e-12 if dtype == torch.float64 else 2.0**-23
    for found, wanted in zip(ours, expected, strict=True):
        assert torch.isfinite(found).all()
        torch.testing.assert_close(found, wanted, rtol=tolerance, atol=1e-300)


@needs_interpreter
def test_shared_parameters_are_read_in_place(monkeypatch):
    from batchshaping.special import _triton

    read = []
    original = _triton.flat_layout

    def spy(t, shape):
        flat, layout = original(t, shape)
        read.append(flat.numel())
        return flat, layout

    monkeypatch.setattr(_triton, "flat_layout", spy)
    a = torch.tensor([[0.6], [2.0], [5.0]], dtype=torch.float64)
    x = torch.rand(3, 400, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with special.kernel("triton"):
        ours = betainc(a, torch.tensor(0.4, dtype=torch.float64), x)
    assert read == [3, 1, 1200]
    expected = scipy.special.betainc(a.numpy(), 0.4, x.numpy())
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-13, atol=1e-15)


@needs_interpreter
def test_custom_op_and_compile_under_the_interpreter(restore_validation):
    from batchshaping.special import incomplete_beta

    a, b, x = (torch.rand(4, dtype=torch.float64) + 0.1 for _ in range(3))
    with special.kernel("triton"):
        torch.library.opcheck(incomplete_beta._betainc_op, (a, b, x.clamp(max=1), True, True))
        compiled = torch.compile(
            lambda a, x: betainc(a, 6.0, x).sum(), fullgraph=True, backend="aot_eager"
        )
        leaf = torch.tensor([2.0, 0.5], dtype=torch.float64, requires_grad=True)
        compiled(leaf, torch.tensor([0.3, 0.6], dtype=torch.float64)).backward()
    expected = _value_and_grads([2.0, 0.5], [6.0, 6.0], [0.3, 0.6])[1]
    torch.testing.assert_close(leaf.grad, expected, rtol=1e-13, atol=0)


# --- bad input: on CPU tensors under the interpreter, and on CUDA ---------------------------


@pytest.fixture(
    params=[
        pytest.param("cpu", marks=needs_interpreter),
        pytest.param("cuda", marks=pytest.mark.cuda),
    ]
)
def triton_device(request):
    """The device of the tensors the Triton kernel runs on, "triton" chosen."""
    with special.kernel("triton"):
        yield request.param


# (a, b, x) outside the domain, at its end points, with degenerate parameters.
SPECIAL_POINTS = [
    (2.0, 3.0, -0.1),
    (2.0, 3.0, 1.1),
    (-1.0, 2.0, 0.5),
    (2.0, -1.0, 0.5),
    (math.nan, 1.0, 0.5),
    (1.0, 1.0, math.nan),
    (0.0, 0.0, 0.5),
    (0.0, 1.0, 0.5),
    (1.0, 0.0, 0.5),
    (math.inf, 2.0, 0.5),
    (2.0, math.inf, 0.5),
    (0.5, 0.5, 0.0),
    (0.5, 0.5, 1.0),
    (2.0, 3.0, 0.0),
    (2.0, 3.0, 1.0),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_special_points_match_the_cpu_kernel(triton_device, dtype):
    """Outside the domain NaN, at the end points and for degenerate parameters scipy's values;
    the gradients (zero, NaN, the capped density) those of the per-element CPU kernel."""
    a, b, x = (np.array(column) for column in zip(*SPECIAL_POINTS, strict=True))
    ours = _value_and_grads(a, b, x, dtype, triton_device)
    with special.kernel("cpu-elementwise"):
        expected = _value_and_grads(a, b, x, dtype)
    for found, wanted in zip(ours, expected, strict=True):
        torch.testing.assert_close(found.cpu(), wanted, equal_nan=True, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(ours[0].cpu().double().numpy(), scipy.special.betainc(a, b, x))


def test_promotion_and_broadcasting_errors(triton_device):
    x = torch.tensor([0.25, 0.75], device=triton_device)
    value = betainc(torch.tensor([2, 3], device=triton_device), 6, x)
    assert value.dtype == torch.get_default_dtype() and value.device.type == triton_device
    half = betainc(torch.tensor(2.0, dtype=torch.float16, device=triton_device), 6.0, x.half())
    assert half.dtype == torch.float16
    with pytest.raises(ValueError, match=r"a \(2, 3\).*b \(4,\).*x \(3,\)"):
        betainc(
            torch.ones(2, 3, device=triton_device),
            torch.ones(4, device=triton_device),
            torch.full((3,), 0.5, device=triton_device),
        )


@pytest.mark.cuda
def test_cpu_and_cuda_tensors_mixed_name_the_devices():
    x = torch.tensor([0.3, 0.6], device="cuda")
    with pytest.raises(ValueError, match=r"different devices: \['cpu', 'cuda:0'\]"):
        betainc(torch.tensor([2.0, 3.0]), 6.0, x)
    from batchshaping.special import _triton

    with pytest.raises(ValueError, match=r"different devices: \['cpu', 'cuda:0'\]"):
        _triton.betainc(torch.tensor([2.0]), torch.tensor([6.0], device="cuda"), x, True, True)


# --- on CUDA --------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["full", "shared", "per group"])
def test_cuda_matches_the_cpu_kernel_without_synchronisation(dtype, layout):
    rng = np.random.default_rng(6)
    groups, n = 8, 4096
    x = rng.uniform(0.0, 1.0, (groups, n))
    x[:, :4] = [0.0, 1.0, 1e-30, 1.0 - 1e-7]  # finite: the parameter gradients are sums
    if layout == "full":
        a, b = _log_uniform(rng, 1e-3, 1e4, x.shape), _log_uniform(rng, 1e-3, 1e4, x.shape)
    elif layout == "shared":
        a, b = np.array(2.0), np.array(6.0)
    else:
        a, b = _log_uniform(rng, 0.1, 100, (groups, 1)), _log_uniform(rng, 0.1, 100, (groups, 1))
    with special.kernel("cpu-elementwise"):
        expected = _value_and_grads(a, b, x, dtype)
    leaves = [torch.tensor(v, dtype=dtype, device="cuda", requires_grad=True) for v in (a, b, x)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with special.kernel("triton"):
            value = betainc(*leaves)
            value.sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    tolerance = 1e-10 if dtype == torch.float64 else 1e-5
    found = (value.detach(), *(leaf.grad for leaf in leaves))
    for ours, wanted in zip(found, expected, strict=True):
        torch.testing.assert_close(
            ours.cpu(), wanted, rtol=tolerance, atol=tolerance, equal_nan=True
        )


@pytest.mark.cuda
def test_cuda_torch_compile_fullgraph(restore_validation):
    def loss(a, b, x):
        return betainc(a, b, x).square().sum()

    compiled = torch.compile(loss, fullgraph=True)
    generator = torch.Generator(device="cuda").manual_seed(4)
    x = torch.rand(2, 512, device="cuda", generator=generator)
    grads = []
    for function in (compiled, loss):
        a = torch.tensor([[2.0], [0.6]], device="cuda", requires_grad=True)
        b = torch.tensor([[6.0], [0.4]], device="cuda", requires_grad=True)
        leaf_x = x.clone().requires_grad_()
        with special.kernel("triton"):
            function(a, b, leaf_x).backward()
        grads.append((a.grad, b.grad, leaf_x.grad))
    # float32 sums over 512 values, in another order when compiled.
    for found, expected in zip(*grads, strict=True):
        torch.testing.assert_close(found, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
def test_cuda_graph_replays_with_new_inputs():
    # Tensors only: a Python number would be copied to the device inside the capture.
    a = torch.tensor([[2.0], [0.6]], device="cuda", dtype=torch.float64)
    b = torch.tensor(6.0, device="cuda", dtype=torch.float64)
    x = torch.rand(2, 1000, device="cuda", dtype=torch.float64)
    with special.kernel("triton"):
        betainc(a, b, x)  # compiles the kernel outside the capture
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = betainc(a, b, x)
    x.copy_(torch.rand(2, 1000, device="cuda", dtype=torch.float64))
    graph.replay()
    expected = scipy.special.betainc(a.cpu().numpy(), 6.0, x.cpu().numpy())
    np.testing.assert_allclose(captured.cpu().numpy(), expected, rtol=1e-12, atol=1e-14)
