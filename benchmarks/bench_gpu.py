"""Benchmark on a CUDA GPU: betainc's Triton kernel, and the loss against torch.sort.

Two parts, every figure the median of several runs after warm-up, each run ended by
``torch.cuda.synchronize()``, the runs of the functions compared interleaved round by round, and
every ratio between figures of this run:

- ``betainc``: value and its three gradients (forward plus backward through the public
  function) at 1e6 and 1e7 values in float32 and float64, with the Triton kernel, the portable
  kernel (plain torch operations) and torch-betainc 0.2.1, all on the same CUDA tensors; for
  random parameters (a, b log-uniform in [1e-3, 1e3], arrays of the full size) and for one shared
  Beta(2, 6). Target: the Triton kernel at least 20x faster than torch-betainc. Beside the times,
  the largest difference between the Triton and portable kernels' values (a check, not an
  accuracy figure: the accuracy tests measure that).
- the loss: ``batch_shaping_loss`` forward plus backward in float32 with Beta(2, 6), Beta(0.6,
  0.4) and learned Beta parameters (one pair for a flat batch, one pair per group for gates)
  against ``torch.sort`` of the same tensor along the same dimension, for flat batches of 1e4 to
  1e7 values and gate activations of 256 x 512 and 1024 x 2048 along dim 0 (256 or 1024 samples
  of 512 or 2048 gates). Targets: the Beta-prior loss at most 1.5x torch.sort at N = 1e6 and 1e7;
  at the gate shapes at most 2x torch.sort, and under 100 microseconds at 256 x 512.

Also: the peak GPU memory of each case above the memory allocated before it, and the registers
and spills of the kernel's variants compiled for this GPU.

Run: ``python benchmarks/bench_gpu.py`` (``benchmarks/gpu_check.sh`` runs it after the CUDA
tests). Without a CUDA device it says so and exits with status 0. Writes
``benchmarks/results/gpu.json``. ``--smoke`` runs every case at a tiny size on CPU tensors under
Triton's interpreter (``TRITON_INTERPRET=1``): a check of the script, which measures nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import format_table, median_times, write_results

from batchshaping import Beta, batch_shaping_loss, betainc, special

DEVICE = torch.device("cuda")
BETAINC_SIZES = (1_000_000, 10_000_000)
SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
GATE_SHAPES = ((256, 512), (1024, 2048))
# Fewer runs where one run takes long (torch-betainc, the portable kernel at 1e7).
REPEATS, WARMUP = 7, 2
SLOW_REPEATS, SLOW_WARMUP = 3, 1


def _synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _run(fn: Callable[[], torch.Tensor], leaves: list[torch.Tensor]) -> Callable[[], None]:
    """Forward plus backward of ``fn`` on fresh gradients, then a wait for the device."""

    def run():
        for leaf in leaves:
            leaf.grad = None
        output = fn()
        if output.requires_grad:
            output.backward(torch.ones_like(output))
        _synchronize()

    return run


def _peak_memory(run: Callable[[], None]) -> float:
    """Peak GPU memory of one run above what was allocated before it, in MB (NaN on the CPU)."""
    if DEVICE.type != "cuda":
        run()
        return math.nan
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run()
    return (torch.cuda.max_memory_allocated() - before) / 1e6


# --- betainc ------------------------------------------------------------------------------------


def _betainc_inputs(kind: str, n: int, dtype: torch.dtype) -> list[torch.Tensor]:
    generator = torch.Generator(device=DEVICE).manual_seed(0)

    def log_uniform():
        uniform = torch.rand(n, generator=generator, device=DEVICE, dtype=torch.float64)
        return torch.exp(np.log(1e-3) + uniform * (np.log(1e3) - np.log(1e-3))).to(dtype)

    x = torch.rand(n, generator=generator, device=DEVICE, dtype=dtype)
    if kind == "random":
        a, b = log_uniform(), log_uniform()
    else:  # one pair, broadcast to every x: a prior
        a, b = (torch.full((1,), v, device=DEVICE, dtype=dtype) for v in (2.0, 6.0))
    return [t.requires_grad_() for t in (a, b, x)]


def _betainc_with(kernel: str, leaves: list[torch.Tensor]) -> Callable[[], torch.Tensor]:
    def call():
        with special.kernel(kernel):
            return betainc(*leaves)

    return call


def _betainc_rows() -> list[dict]:
    try:
        from torch_betainc import betainc as torch_betainc
    except ImportError:
        torch_betainc = None
        print("torch-betainc is not installed (pip install torch-betainc==0.2.1): left out")
    rows = []
    for n in BETAINC_SIZES:
        for dtype in (torch.float32, torch.float64):
            for kind in ("random", "Beta(2, 6) shared"):
                leaves = _betainc_inputs(kind, n, dtype)
                functions = {
                    name: _run(_betainc_with(name, leaves), leaves)
                    for name in ("triton", "portable")
                }
                if torch_betainc is not None:
                    functions["torch-betainc"] = _run(
                        lambda leaves=leaves: torch_betainc(*leaves), leaves
                    )
                memory = {name: _peak_memory(run) for name, run in functions.items()}
                slow = n >= 10_000_000 or kind == "random"
                times = median_times(
                    functions,
                    repeats=SLOW_REPEATS if slow else REPEATS,
                    warmup=SLOW_WARMUP if slow else WARMUP,
                )
                with torch.no_grad():
                    values = {
                        name: _betainc_with(name, leaves)() for name in ("triton", "portable")
                    }
                difference = (values["triton"] - values["portable"]).abs().max().item()
                row = {
                    "case": f"{str(dtype)[6:]} {kind}",
                    "n": f"{n:.0e}",
                    **{f"{name} (ms)": 1e3 * t for name, t in times.items()},
                    "portable / triton": times["portable"] / times["triton"],
                    **{f"{name} peak (MB)": m for name, m in memory.items()},
                    "max |triton - portable|": difference,
                }
                if "torch-betainc" in times:
                    row["torch-betainc / triton"] = times["torch-betainc"] / times["triton"]
                    row["target"] = ">= 20x torch-betainc"
                rows.append(row)
                print(f"  betainc {row['case']} n={row['n']}: done", flush=True)
    return rows


# --- the loss -----------------------------------------------------------------------------------


def _loss_cases(shape: tuple[int, ...], dim: int | None):
    """(name, loss function, leaves) for the three priors on a float32 tensor of ``shape``."""
    generator = torch.Generator(device=DEVICE).manual_seed(1)
    x = torch.rand(shape, generator=generator, device=DEVICE).requires_grad_()
    groups = () if dim is None else shape[1:]
    a = torch.full(groups, 2.0, device=DEVICE, requires_grad=True)
    b = torch.full(groups, 6.0, device=DEVICE, requires_grad=True)

    def prior(first, second):
        # validate_args=False: checking the parameters would wait for the device.
        return Beta(first, second, validate_args=False)

    fixed = {
        "Beta(2, 6)": prior(torch.tensor(2.0, device=DEVICE), torch.tensor(6.0, device=DEVICE)),
        "Beta(0.6, 0.4)": prior(torch.tensor(0.6, device=DEVICE), torch.tensor(0.4, device=DEVICE)),
    }
    cases = [
        (name, lambda fixed=fixed: batch_shaping_loss(x, fixed, dim=dim, validate=False), [x])
        for name, fixed in fixed.items()
    ]
    learned = "learned Beta" if dim is None else "learned per-group Beta"
    cases.append(
        (learned, lambda: batch_shaping_loss(x, prior(a, b), dim=dim, validate=False), [x, a, b])
    )
    return x, cases


def _loss_rows() -> list[dict]:
    rows = []
    layouts = [((n,), None, f"N = {n:.0e}") for n in SIZES]
    layouts += [(shape, 0, f"{shape[0]} x {shape[1]}, dim 0") for shape in GATE_SHAPES]
    for shape, dim, label in layouts:
        x, cases = _loss_cases(shape, dim)
        values = x.detach()
        # Along dim 0: the samples of a flat batch, and of every gate.
        sort = _run(lambda values=values: torch.sort(values, dim=0)[0], [])
        for name, loss, leaves in cases:
            run = _run(loss, leaves)
            memory = _peak_memory(run)
            times = median_times({"ours": run, "torch.sort": sort}, repeats=REPEATS, warmup=WARMUP)
            ratio = times["ours"] / times["torch.sort"]
            if dim is not None:
                target = "<= 2x, < 100 us" if shape == (256, 512) else "<= 2x"
            else:
                target = "<= 1.5x" if shape[0] >= 1_000_000 else ""
            rows.append(
                {
                    "case": name,
                    "shape": label,
                    "ours (ms)": 1e3 * times["ours"],
                    "torch.sort (ms)": 1e3 * times["torch.sort"],
                    "ours / torch.sort": ratio,
                    "peak (MB)": memory,
                    "peak / input": memory * 1e6 / (4 * x.numel()),
                    "target": target,
                }
            )
            print(f"  loss {name} {label}: {ratio:.2f}x torch.sort", flush=True)
    return rows


def _compiled_rows() -> list[dict]:
    from batchshaping.special import _triton

    major, minor = torch.cuda.get_device_capability()
    capability = 10 * major + minor
    return [
        {
            "capability": f"sm_{capability}",
            "dtype": str(dtype)[6:],
            "gradients in a, b": want_grad_ab,
            **_triton.compile_ahead_of_time(capability, dtype, want_grad_ab)._asdict(),
        }
        for dtype, want_grad_ab in _triton.VARIANTS
    ]


def _smoke() -> None:
    """Every case at a tiny size on CPU tensors, one run each (under Triton's interpreter)."""
    global DEVICE, BETAINC_SIZES, SIZES, GATE_SHAPES, REPEATS, WARMUP, SLOW_REPEATS, SLOW_WARMUP
    DEVICE = torch.device("cpu")
    BETAINC_SIZES, SIZES, GATE_SHAPES = (300,), (300,), ((16, 8),)
    REPEATS = WARMUP = SLOW_REPEATS = SLOW_WARMUP = 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="check the script on the CPU")
    smoke = parser.parse_args(argv).smoke
    if smoke:
        if os.environ.get("TRITON_INTERPRET") != "1":
            print("bench_gpu --smoke: set TRITON_INTERPRET=1 (the Triton kernel on CPU tensors)")
            return 1
        _smoke()
    elif not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; nothing measured (run it on a machine with one)")
        return 0
    if "triton" not in special.available_kernels():
        print("bench_gpu: triton is not installed (pip install 'batchshaping[triton]')")
        return 0
    sections = {}
    if not smoke:
        print(f"bench_gpu on {torch.cuda.get_device_name()}", flush=True)
        sections["the kernel's variants compiled for this GPU"] = _compiled_rows()
    sections["betainc: value and three gradients"] = _betainc_rows()
    sections["batch_shaping_loss forward + backward against torch.sort"] = _loss_rows()
    for title, rows in sections.items():
        print(f"\n## {title}\n")
        print(format_table(rows, list(rows[0])))
    if not smoke:
        path = write_results("gpu", [], sections=sections)
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
