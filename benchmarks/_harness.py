"""Shared timing and reporting for the benchmark scripts.

Every figure is the median of several runs after warm-up; every ratio compares figures measured
in the same run of the same script, so that machine drift cancels.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], Any], *, repeats: int = 7, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_times(
    functions: dict[str, Callable[[], Any]], *, repeats: int = 7, warmup: int = 2
) -> dict[str, float]:
    """Median wall time in seconds of each function, their runs interleaved round by round.

    A slow spell of the machine then falls on every function alike, which keeps their ratios
    fair, where back-to-back ``median_time`` calls would lay it on whichever ran at the time.
    """
    for _ in range(warmup):
        for fn in functions.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def machine() -> dict[str, Any]:
    """The machine and versions a result was measured on."""
    import numpy
    import torch

    info: dict[str, Any] = {
        "date": date.today().isoformat(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }
    for name in ("numba", "scipy"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            pass
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table of ``rows`` restricted to ``columns``."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    cells = [[cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def write_results(name: str, rows: Sequence[dict[str, Any]], **extra: Any) -> Path:
    """Write ``rows`` with the machine description to ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), "rows": list(rows), **extra}
    path.write_text(json.dumps(payload, indent=2))
    return path


def fresh_process_times(
    code: str, attempts: int = 3, *, warm_cache: bool = False
) -> list[tuple[float, float]]:
    """Run ``code`` in new Python processes, each with an empty numba cache.

    ``code`` prints two numbers (say, seconds to import and seconds of the first call); returns
    them for each attempt. With ``warm_cache`` each attempt first runs ``code`` once, untimed,
    to fill its cache, then times a second process that finds the cache full.
    """
    times = []
    for _ in range(attempts):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            for _ in range(2 if warm_cache else 1):
                output = subprocess.run(
                    [sys.executable, "-c", code], env=env, capture_output=True, text=True
                )
                if output.returncode:
                    raise RuntimeError(output.stderr)
        first, second = map(float, output.stdout.split())
        times.append((first, second))
    return times


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """Keep ``count`` cores busy with other processes (plain busy loops) inside the block.

    The normal state of a training machine: a data loader worker, another job. Nothing is pinned:
    the system schedules the loops as it schedules any process.
    """
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5)  # let them start
        yield
    finally:
        for loop in loops:
            loop.kill()
        for loop in loops:
            loop.wait()
