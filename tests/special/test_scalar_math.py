"""The branch-free log, log1p and exp of ``_scalar`` (the shared-parameter kernel's SIMD pass),
against mpmath at 40 digits: within 1 ulp over their whole documented domain, subnormal
arguments and the ends of the ranges included."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from batchshaping._runtime.jit import jit
from batchshaping.special import _scalar

mpmath.mp.dps = 40


def _elementwise(function):
    """``function`` (compiled to be called only from compiled code) over a list of floats."""

    @jit
    def over(values):
        out = np.empty_like(values)
        for i in range(values.size):
            out[i] = function(values[i])
        return out

    return lambda values: [float(v) for v in over(np.asarray(values, dtype=np.float64))]


_log, _log1p, _exp = map(_elementwise, (_scalar.simd_log, _scalar.simd_log1p, _scalar.simd_exp))
_RNG = np.random.default_rng(20261202)


def _ulps(got: float, exact: mpmath.mpf) -> float:
    reference = float(exact)
    return abs(mpmath.mpf(got) - exact) / math.ulp(reference)


def _log_points():
    magnitudes = 10.0 ** _RNG.uniform(-323, 308, 3000)
    near_one = 1.0 + _RNG.uniform(-0.5, 0.5, 1000) * 10.0 ** _RNG.uniform(-16, 0, 1000)
    edges = [
        5e-324,
        2.2250738585072014e-308,
        2.225073858507201e-308,
        0.5,
        1.0 - 2**-53,
        1.0 + 2**-52,
        1.4142135623730951,
        0.7071067811865476,
        2.0,
        1.7976931348623157e308,
    ]
    return [float(v) for v in (*magnitudes, *near_one, *edges) if v > 0 and v != 1.0]


def test_log_is_within_one_ulp_everywhere():
    points = _log_points()
    worst = max(_ulps(got, mpmath.log(x)) for got, x in zip(_log(points), points, strict=True))
    assert worst <= 1.0, worst


def test_log_of_one_is_zero():
    assert _log([1.0]) == [0.0]


def _log1p_points():
    small = _RNG.choice([-1.0, 1.0], 2000) * 10.0 ** _RNG.uniform(-300, -0.31, 2000)
    large = 10.0 ** _RNG.uniform(-0.3, 15.9, 1000)
    close_to_minus_one = -1.0 + 10.0 ** _RNG.uniform(-16, -0.5, 1000)
    edges = [-0.2929, -0.29289, 0.41422, 0.41421, 1.0, 2.0 - 2**-52, 2.0, 3.0, -0.5, 2.0**52]
    return [float(v) for v in (*small, *large, *close_to_minus_one, *edges) if v != 0.0]


def test_log1p_is_within_one_ulp_everywhere():
    points = _log1p_points()
    worst = max(_ulps(got, mpmath.log1p(z)) for got, z in zip(_log1p(points), points, strict=True))
    assert worst <= 1.0, worst


def test_log1p_keeps_tiny_arguments():
    tiny = [1e-300, -1e-300, 5e-324, 1e-20]
    assert _log1p(tiny) == tiny


def test_exp_is_within_one_ulp_over_its_range():
    points = [*_RNG.uniform(-708.0, 709.78, 3000), *_RNG.uniform(-1e-3, 1e-3, 500)]
    points += [-708.0, 709.78, 0.0, 1.0, -1.0, math.log(2.0), 1e-300, -1e-300]
    worst = max(_ulps(got, mpmath.exp(v)) for got, v in zip(_exp(points), points, strict=True))
    assert worst <= 1.0, worst


@pytest.mark.parametrize(("v", "clamped"), [(-1000.0, -708.0), (800.0, 709.78)])
def test_exp_clamps_outside_its_range(v, clamped):
    """Documented: the argument is clamped to [-708, 709.78] (callers test the range first)."""
    assert _exp([v]) == _exp([clamped])
