"""Benchmark of batchshaping.betainc: speed against scipy and torch-betainc, accuracy, first call.

Every time is the median of several runs after warm-up; every ratio compares two times measured
in this run, their runs interleaved (a slow spell of the machine falls on both alike). Beta(2, 6)
is timed twice: with parameter arrays of the full size (one parameter pair per element; arrays
that repeat one pair are read as shared) and shared (one pair broadcast to every x, as a prior is
evaluated). "ours" is the value and all three gradients (forward plus backward through the public
function); scipy computes values alone (it has no gradients); torch-betainc computes the value and
all three gradients, like ours.

Run: ``python benchmarks/bench_betainc.py`` (or ``make bench``). Writes
``benchmarks/results/betainc.json``.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import scipy.special
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import format_table, fresh_process_times, median_times, write_results

from batchshaping import betainc


def _inputs(kind: str, n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    if kind == "random":  # a, b log-uniform in [1e-3, 1e3]
        a = np.exp(rng.uniform(np.log(1e-3), np.log(1e3), n))
        b = np.exp(rng.uniform(np.log(1e-3), np.log(1e3), n))
    elif kind == "beta(2,6) shared":  # one (a, b) broadcast to every x, as a prior is used
        a, b = np.full(1, 2.0), np.full(1, 6.0)
    else:  # the Beta(2, 6) prior of the paper's example, as arrays of the full size
        a, b = np.full(n, 2.0), np.full(n, 6.0)
    return a, b, x


def _ours(a, b, x):
    value = betainc(a, b, x)
    value.backward(torch.ones_like(value))
    return value


def _with_grads(fn, arrays, dtype):
    """A closure running ``fn`` forward and backward on fresh leaves, and the leaves."""
    leaves = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in arrays]

    def run():
        for leaf in leaves:
            leaf.grad = None
        return fn(*leaves)

    return run, leaves


def _scipy_gradients(a, b, x):
    """Central differences of scipy's betainc in a and b, and scipy's density: an oracle."""
    h_a, h_b = 1e-6 * np.maximum(a, 1e-3), 1e-6 * np.maximum(b, 1e-3)
    h_a, h_b = np.minimum(h_a, 0.5 * a), np.minimum(h_b, 0.5 * b)
    grad_a = (scipy.special.betainc(a + h_a, b, x) - scipy.special.betainc(a - h_a, b, x)) / (
        2 * h_a
    )
    grad_b = (scipy.special.betainc(a, b + h_b, x) - scipy.special.betainc(a, b - h_b, x)) / (
        2 * h_b
    )
    log_density = (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - scipy.special.betaln(a, b)
    return grad_a, grad_b, np.exp(log_density)


def _errors(fn, arrays, dtype) -> dict[str, float]:
    """Worst absolute error of value and gradients (relative for |grad| > 1) against scipy."""
    run, leaves = _with_grads(fn, arrays, dtype)
    value = run().detach().double().numpy()
    oracle = (scipy.special.betainc(*arrays), *_scipy_gradients(*arrays))
    found = (value, *(leaf.grad.double().numpy() for leaf in leaves))
    errors = {}
    for name, ours, expected in zip(("value", "da", "db", "dx"), found, oracle, strict=True):
        if ours.shape != expected.shape:  # a shared parameter: its gradient sums over x
            expected = expected.sum(keepdims=True)
        scale = np.maximum(np.abs(expected), 1.0)
        with np.errstate(invalid="ignore"):
            error = np.abs(ours - expected) / scale
        errors[name] = float(np.nanmax(np.where(np.isfinite(ours), error, np.inf)))
    return errors


def _speed_against_scipy(n: int) -> list[dict]:
    rows = []
    for kind in ("random", "beta(2,6)", "beta(2,6) shared"):
        arrays = _inputs(kind, n)
        run, _ = _with_grads(_ours, arrays, torch.float64)
        times = median_times(
            {"ours": run, "scipy": lambda arrays=arrays: scipy.special.betainc(*arrays)}
        )
        ours, scipy_time = times["ours"], times["scipy"]
        rows.append(
            {
                "case": f"float64 {kind}",
                "n": n,
                "ours value+3 grads (s)": ours,
                "scipy values (s)": scipy_time,
                "ratio": ours / scipy_time,
                "target": "<= 3",
            }
        )
    return rows


def _against_torch_betainc() -> list[dict]:
    try:
        from torch_betainc import betainc as theirs
    except ImportError:
        print("torch-betainc is not installed: skipping that comparison")
        return []

    def run_theirs(a, b, x):
        value = theirs(a, b, x)
        value.backward(torch.ones_like(value))
        return value

    rows = []
    # torch-betainc iterates every element until the slowest converges: on random parameters it
    # takes minutes for 1e6 values, so that case uses fewer values (the same for both).
    for kind, n in (("beta(2,6)", 100_000), ("beta(2,6) shared", 100_000), ("random", 10_000)):
        arrays = _inputs(kind, n, seed=1)
        for dtype in (torch.float32, torch.float64):
            ours_run, _ = _with_grads(_ours, arrays, dtype)
            theirs_run, _ = _with_grads(run_theirs, arrays, dtype)
            times = median_times({"ours": ours_run, "theirs": theirs_run}, repeats=15, warmup=3)
            ours, their_time = times["ours"], times["theirs"]
            ours_errors = _errors(_ours, arrays, dtype)
            their_errors = _errors(run_theirs, arrays, dtype)
            rows.append(
                {
                    "case": f"{str(dtype)[6:]} {kind}",
                    "n": n,
                    "ours (s)": ours,
                    "torch-betainc (s)": their_time,
                    "speed-up": their_time / ours,
                    "ours max err value/da/db/dx": "/".join(
                        f"{ours_errors[k]:.1e}" for k in ("value", "da", "db", "dx")
                    ),
                    "theirs max err value/da/db/dx": "/".join(
                        f"{their_errors[k]:.1e}" for k in ("value", "da", "db", "dx")
                    ),
                }
            )
    return rows


_FIRST_CALL = textwrap.dedent(
    """
    import time
    start = time.perf_counter()
    import torch
    import batchshaping
    imported = time.perf_counter()
    a = torch.rand(100_000, requires_grad=True)
    value = batchshaping.betainc(a + 0.5, 3.0, torch.rand(100_000))
    value.sum().backward()
    print(imported - start, time.perf_counter() - imported)
    """
)


def _first_call() -> list[dict]:
    """A fresh process with an empty numba cache: import, then the first call (compiles)."""
    return [
        {
            "run": attempt + 1,
            "import torch+batchshaping (s)": imported,
            "first call, empty cache (s)": first,
            "target": "first call <= 10",
        }
        for attempt, (imported, first) in enumerate(fresh_process_times(_FIRST_CALL))
    ]


def main() -> None:
    torch.manual_seed(0)
    sections = {
        "speed against scipy (1e6 values)": _speed_against_scipy(1_000_000),
        "against torch-betainc (value and all gradients)": _against_torch_betainc(),
        "first call in a fresh process": _first_call(),
    }
    for title, rows in sections.items():
        if rows:
            print(f"\n## betainc: {title}\n")
            print(format_table(rows, list(rows[0])))
    path = write_results("betainc", [], sections=sections)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
