"""The points of the oracle table: where they are drawn and why.

Every group draws its parameters with its own seeded generator, and x where the function is
neither 0 nor 1 to working precision (from a quantile: lower tails down to 1e-300, upper tails,
the middle), plus x at fixed distances from 0 and 1. A quantile is found by bisection over the
binary representations of x in (0, 1), with scipy's ``betainc`` / ``betaincc`` as the guide
(where scipy is off, x is merely elsewhere in the tail: the oracle is evaluated at the x found).
"""

from __future__ import annotations

import numpy as np
import scipy.special

_ONE_BITS = int(np.float64(1.0).view(np.int64))


def _bits(x: float) -> int:
    return int(np.float64(x).view(np.int64))


def _from_bits(k: int) -> float:
    return float(np.int64(k).view(np.float64))


def quantile(a: float, b: float, level: float, upper: bool) -> float:
    """The largest x in (0, 1) with I_x(a, b) <= level (upper: 1 - I_x(a, b) >= level)."""
    low, high = 1, _ONE_BITS - 1  # the smallest subnormal and 1 - 2^-53, as bit patterns
    while high - low > 1:
        middle = (low + high) // 2
        x = _from_bits(middle)
        if upper:
            below = scipy.special.betaincc(a, b, x) >= level
        else:
            below = scipy.special.betainc(a, b, x) <= level
        if below:
            low = middle
        else:
            high = middle
    return _from_bits(low)


def _log_uniform(rng, low, high, n=None):
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


def _x_for(rng, a: float, b: float) -> float:
    """x in a region where I_x(a, b) is neither 0 nor 1 (mostly), chosen at random."""
    kind = rng.integers(6)
    if kind == 0:  # the middle
        return quantile(a, b, rng.uniform(0.02, 0.98), upper=False)
    if kind == 1:  # lower tail down to 1e-300
        return quantile(a, b, 10.0 ** -rng.uniform(1, 300), upper=False)
    if kind == 2:  # upper tail
        return quantile(a, b, 10.0 ** -rng.uniform(1, 300), upper=True)
    if kind == 3:  # near 0 or 1 whatever the parameters
        distance = 10.0 ** -rng.uniform(1, 300)
        return float(1.0 - distance) if rng.integers(2) and distance > 1e-16 else distance
    if kind == 4:  # near the mean
        mean = a / (a + b)
        return float(np.nextafter(mean, rng.choice([0.0, 1.0])) if rng.integers(2) else mean)
    return float(rng.uniform(0.0, 1.0))


def _parameters(group: str, rng):
    if group == "log-uniform":  # a, b independent, log-uniform in [1e-6, 1e16]
        return _log_uniform(rng, 1e-6, 1e16), _log_uniform(rng, 1e-6, 1e16)
    if group == "both large":  # a, b in [1e3, 1e16], a / b within 1e3 of 1
        a = _log_uniform(rng, 1e3, 1e16)
        return a, a * _log_uniform(rng, 1e-3, 1e3)
    if group == "one large":  # one in [1e4, 1e16], the other in [1e-3, 200]
        large, small = _log_uniform(rng, 1e4, 1e16), _log_uniform(rng, 1e-3, 200.0)
        return (large, small) if rng.integers(2) else (small, large)
    if group == "tiny b":  # the issue's region: b in [1e-6, 1e-3], x in 0.6..0.97 below
        return _log_uniform(rng, 0.1, 100.0), _log_uniform(rng, 1e-6, 1e-3)
    if group == "tiny a":
        return _log_uniform(rng, 1e-6, 1e-3), _log_uniform(rng, 0.1, 100.0)
    if group == "small":  # both below 1
        return _log_uniform(rng, 1e-6, 1.0), _log_uniform(rng, 1e-6, 1.0)
    if group == "integers":
        return float(rng.integers(1, 60)), float(rng.integers(1, 60))
    if group == "huge":  # up to 1e300, as scipy takes
        a = _log_uniform(rng, 1e16, 1e300)
        return a, a * _log_uniform(rng, 1e-2, 1e2)
    if group == "subnormal":  # x where the value is below the smallest normal number
        return _log_uniform(rng, 1e-3, 1e4), _log_uniform(rng, 1e-3, 1e4)
    if group == "huge b":  # b up to 1e305 against a moderate a, x of order 1 / b below
        return _log_uniform(rng, 1e-3, 30.0), _log_uniform(rng, 1e20, 1e305)
    raise ValueError(group)


# Rows of issue 12 (an independent check's published tables) where the kernels were wrong.
ISSUE_ROWS = (
    (1.0000000272564224e16, 1.0000000272564224e16, 0.5),
    (100000000376832.0, 100000000376832.0, 0.5),
    (1902875.5, 1081751633920.0, 1.7590832612768281e-06),
    (999999995904.0, 1003417960448.0, 0.499146968126297),
    (1.788215160369873, 1.296571281272918e-05, 0.9688708782196045),
)


# Group -> number of float64 points (float32 points: a third as many, rounded to float32).
GROUPS = {
    "log-uniform": 560,
    "both large": 300,
    "one large": 230,
    "tiny b": 120,
    "tiny a": 80,
    "small": 120,
    "integers": 70,
    "huge": 40,
    "subnormal": 60,
    "issue": len(ISSUE_ROWS),
    "huge b": 60,
}


def points(group: str, n: int, seed: int, dtype=np.float64):
    """``n`` points (a, b, x) of ``group``, exactly representable in ``dtype``."""
    if group == "issue":
        return [tuple(float(dtype(v)) for v in row) for row in ISSUE_ROWS[:n]]
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n:
        a, b = (float(dtype(v)) for v in _parameters(group, rng))
        if group == "tiny b":
            x = rng.uniform(0.6, 0.97)
        elif group == "tiny a":
            x = rng.uniform(0.03, 0.4)
        elif group == "huge b":  # b x from 0.05 to 500: both sides of the reflection point
            x = _log_uniform(rng, 0.05, 500.0) / b
        elif group == "subnormal":
            # below the smallest normal number of the dtype, down to its smallest subnormal
            low, high = (308, 323) if dtype == np.float64 else (38, 45)
            x = quantile(a, b, 10.0 ** -rng.uniform(low, high), upper=False)
        else:
            x = _x_for(rng, a, b)
        x = float(dtype(x))
        if 0.0 < x < 1.0 and a > 0.0 and b > 0.0 and np.isfinite(a) and np.isfinite(b):
            rows.append((a, b, x))
    return rows
