"""Constants of the incomplete beta function's kernels, shared by the numba and torch ones.

Plain Python numbers (no numba here: the portable kernel imports this module too): thresholds
that choose a method, and the coefficients of the series that both kinds of kernel evaluate.
"""

from __future__ import annotations

import math

# Below this log the function is under half the smallest subnormal: 0 to working precision.
LOG_ZERO = -745.2
# Below this log a value is formed as exp(log value + log factor), not exp(log value) * factor:
# a subnormal exp(log value) has lost bits, and the product would be a wrongly rounded number.
LOG_SUBNORMAL = -700.0
EULER_GAMMA = 0.5772156649015329
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# Above this, the Stirling series is exact to float64 and lgamma differences cancel badly.
STIRLING_MIN = 15.0
# The digamma series is used from here on (its first omitted term, 1 / (12 x^14), is 8e-16).
DIGAMMA_MIN = 10.0
# Taylor coefficients of log Gamma(1 + p) past the first: (-1)^k zeta(k) / k, k = 2, 3, ...
# (mpmath, 20 digits); 25 terms reach 1e-19 for p < 0.2.
LOG_GAMMA_1P = (
    0.82246703342411321824,
    -0.40068563438653142847,
    0.27058080842778454788,
    -0.20738555102867398527,
    0.16955717699740818995,
    -0.14404989676884611812,
    0.12550966952474304242,
    -0.11133426586956469049,
    0.10009945751278180853,
    -0.090954017145829042233,
    0.083353840546109004025,
    -0.076932516411352191473,
    0.071432946295361336059,
    -0.066668705882420468033,
    0.062500955141213040742,
    -0.058823978658684582339,
    0.055555767627403611102,
    -0.052631679379616660734,
    0.05000004769810169364,
    -0.047619070330142227991,
    0.045454556293204669442,
    -0.043478266053040259361,
    0.041666669150341210469,
    -0.040000001192140140586,
    0.038461539034675185706,
)
# Coefficients of the Stirling series of log Gamma, 1 / z^(2k - 1), and of psi, 1 / z^(2k).
STIRLING = (1.0 / 12.0, -1.0 / 360.0, 1.0 / 1260.0, -1.0 / 1680.0, 1.0 / 1188.0)
DIGAMMA = (1.0 / 12.0, -1.0 / 120.0, 1.0 / 252.0, -1.0 / 240.0, 1.0 / 132.0, -691.0 / 32760.0)
# The uniform asymptotic expansion serves where both parameters are at least TEMME_MIN and x
# is within TEMME_Z standard deviations of the mean; elsewhere the continued fraction converges
# in a few dozen terms.
TEMME_MIN = 1000.0
TEMME_Z = 4.0
# Parameters above which the continued fraction is scaled (``_fraction.fraction_coefficients``,
# ``fraction_scales`` in each kernel); below, its scales are 1.
SCALE_FROM = 2.0**64
# Below this first parameter the series' log I_t(p, q) is p (log t + EULER_GAMMA + psi(q) + T),
# one product (its O(p^2) is far below the smallest subnormal): its terms p log t and
# log(p B(p, q)), each of order p, would round to whole subnormal units apart. It holds where
# p / q is small too; where q is below 2^-100 as well, ``_tiny_parameters`` serves instead.
VANISHING_P = 1e-290
# Where the gradients in a and b are asked for, a tail is negligible only if its log is this much
# further below LOG_ZERO, past the log of 1 / min(p, 1) / min(q, 1): d log I / dp and dq are at
# most about 1 / p + 1 / q + 800 (|log t|, log(p + q), psi), and the gradient may be a normal
# number where the value is not.
NEGLIGIBLE_GRADIENT_MARGIN = 7.0
# The smallest normal float64. The kernels' gradient in a parameter below it (a subnormal a or b)
# is NaN: d/dq I is about I / q there, and psi(q) of order -1 / q overflows on the kernels' way to
# it. ``_tiny_parameters`` computes it instead, for every kernel.
SMALLEST_NORMAL = 2.2250738585072014e-308
# Where a subnormal parameter is evaluated instead (``_tiny_parameters``): a power of two, so
# that the parameter over it is exact.
SUBNORMAL_EVALUATED_AT = 2.0**-1000
# Where both parameters are below this, I = b / (a + b) and its limit forms serve instead.
LIMIT_FORMS_BELOW = 2.0**-100
