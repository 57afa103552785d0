"""I_x(a, b) and its derivatives where a parameter is tiny, for every kernel: the kernels are
exact at normal parameters not both below 1e-290 only (their derivative in a subnormal parameter
is NaN, and where both parameters are below 1e-290 their series' first-order form of log I in
the first parameter p, p (log t + EULER_GAMMA + psi(q) + ...), does not hold: 0 for 6.1e-4 at
a = 1e-292, b = 6.2e-296, x = 0.11).

I_x(a, b), d/da, d/db and d/dx are analytic in a small parameter s, each either a function of s
with a finite limit at 0 or s times one; their scale of variation in s is about min(1, t) for the
other parameter t, or 1 / |log x|. So:

- where one parameter s is subnormal and the other, t, at least ``LIMIT_FORMS_BELOW``
  (2^-100), the kernel evaluates at s' = ``SUBNORMAL_EVALUATED_AT`` (2^-1000, a normal number)
  instead: d/ds there is d/ds at s to a relative O(s' / min(t, 1)), below 1e-270; the
  quantities of order s (the value where s = b, which is about b B_x(a, 0), d/dt and the
  density) are scaled by s / s', a power of two times s, exactly. Where s = a the value is
  1 - O(a / t) in either case, 1 in float64. So the results are as accurate as the kernel's at
  s' (about 1e-13 relative, or a unit of the smallest subnormal where they are subnormal).
- where both are below ``LIMIT_FORMS_BELOW``,
  I_x(a, b) = b / (a + b) (1 + a log(x / (1 - x)) + ...), so I = b / (a + b),
  d/da = -b / (a + b)^2 and d/db = a / (a + b)^2 to a relative O((a + b) |log(x (1 - x))|),
  below 1e-27 (the density is the kernel's). The derivatives are infinite where the true ones
  are beyond the largest float (a + b below about 1e-308).

The registry (:mod:`batchshaping.special.kernels`) wraps the entry points of the kernels that
do not do this themselves (the Triton kernel does it per element, the same way). On a CPU the
wrapper adds nothing unless some parameter is below 2^-100; on other devices a few elementwise
operations, without a host sync.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from batchshaping.special._constants import (
    LIMIT_FORMS_BELOW,
    SMALLEST_NORMAL,
    SUBNORMAL_EVALUATED_AT,
)


def exact_at_tiny_parameters(kernel):
    """The entry point ``kernel``, exact where a parameter is tiny too (the module's docstring
    says how)."""

    @functools.wraps(kernel)
    def entry(a: Tensor, b: Tensor, x: Tensor, want_grad_ab: bool, want_grad_x: bool):
        return _at_tiny_parameters(kernel, a, b, x, want_grad_ab, want_grad_x)

    return entry


def _at_tiny_parameters(kernel, a, b, x, want_grad_ab: bool, want_grad_x: bool):
    if x.dtype != torch.float64 or _none_tiny(a, b):
        return kernel(a, b, x, want_grad_ab, want_grad_x)
    subnormal_a = (a > 0.0) & (a < SMALLEST_NORMAL)
    subnormal_b = (b > 0.0) & (b < SMALLEST_NORMAL)
    moved_a = subnormal_a & (b >= LIMIT_FORMS_BELOW)
    moved_b = subnormal_b & (a >= LIMIT_FORMS_BELOW)
    # Python numbers, not tensors made on the device (a copy from the host would synchronise).
    at = SUBNORMAL_EVALUATED_AT
    value, grad_a, grad_b, grad_x = kernel(
        torch.where(moved_a, at, a), torch.where(moved_b, at, b), x, want_grad_ab, want_grad_x
    )
    # s / s' where s was moved, else 1; of the broadcast shape of a and b.
    scale_a = torch.where(moved_a, a / SUBNORMAL_EVALUATED_AT, 1.0)
    scale_b = torch.where(moved_b, b / SUBNORMAL_EVALUATED_AT, 1.0)
    value = torch.where(x == 1.0, value, value * scale_b)  # I_1(a, b) = 1 at any b
    if want_grad_ab:
        grad_a = grad_a * scale_b
        grad_b = grad_b * scale_a
    if want_grad_x:
        grad_x = grad_x * (scale_a * scale_b)
    positive = (a > 0.0) & (b > 0.0)  # where one is 0, I is 0 or 1 and both derivatives 0
    both_small = positive & (a < LIMIT_FORMS_BELOW) & (b < LIMIT_FORMS_BELOW)
    if a.device.type != "cpu" or bool(both_small.any()):
        total = a + b
        inside = both_small & (x > 0.0) & (x < 1.0)
        value = torch.where(inside, b / total, value)
        if want_grad_ab:
            grad_a = torch.where(inside, -(b / total) / total, grad_a)
            grad_b = torch.where(inside, (a / total) / total, grad_b)
    return value, grad_a, grad_b, grad_x


def _none_tiny(a: Tensor, b: Tensor) -> bool:
    """Whether no parameter is below ``LIMIT_FORMS_BELOW`` (a subnormal one among them), told
    without a host sync on a CPU; False elsewhere."""
    if a.device.type != "cpu":
        return False
    return not any(bool((t < LIMIT_FORMS_BELOW).any()) for t in (a, b))  # 0 too: harmless there
