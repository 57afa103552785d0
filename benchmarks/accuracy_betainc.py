"""The worst errors of every betainc kernel on the whole-range oracle table, per region.

Usage: ``python benchmarks/accuracy_betainc.py [--json PATH]``. Reads the table the tests assert
on (``tests/special/data/betainc_oracle.csv``: the Beta density integrated in MPFR, 2,096 rows
from a, b = 1e-6 to 1e300, float64 and float32) and prints, for each group of rows and each
kernel that runs here (the Triton kernel under its interpreter, in a process of its own, where
triton is installed), the worst relative error of the value in float64, of d/da and d/db in
float64, and of the value in float32 in units in the last place of float32; scipy's float64
values beside them. The tests bound these errors; this script says how far below the bounds the
kernels are.

Then the same for Boost.Math's published test tables of the incomplete beta function
(``ibeta_data``, ``ibeta_int_data``, ``ibeta_large_data``, ``ibeta_small_data``: 3,210 rows, as
scipy ships them for its own tests), float64 values against the tables' I_x(a, b), scipy's
beside them; skipped where that scipy file is not installed.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import torch

from batchshaping import betainc, special

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "tests" / "special" / "data" / "betainc_oracle.csv"
TINY64 = float(np.finfo(np.float64).tiny)
TINY32 = float(np.finfo(np.float32).tiny)


def _columns(dtype: str) -> dict[str, np.ndarray]:
    with TABLE.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["dtype"] == dtype]
    columns = {key: np.array([float(row[key]) for row in rows]) for key in ("a", "b", "x")}
    for key in ("value", "grad_a", "grad_b"):
        columns[key] = np.array([float(mpmath.mpf(row[key])) for row in rows])
    columns["group"] = np.array([row["group"] for row in rows])
    return columns


def _evaluate(columns, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b, x = (
        torch.tensor(columns[key], dtype=dtype, requires_grad=True) for key in ("a", "b", "x")
    )
    value = betainc(a, b, x)
    value.backward(torch.ones_like(value))
    return tuple(t.detach().double().numpy() for t in (value, a.grad, b.grad))


def _relative(found, exact, smallest):
    checked = np.abs(exact) >= smallest
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.abs(found - exact) / np.abs(exact)
    # NaN or inf where the oracle is a normal number counts as an infinite error.
    return np.where(checked, np.where(np.isfinite(error), error, np.inf), 0.0)


def kernel_errors(name: str) -> dict[str, dict[str, float]]:
    """{group: {measure: worst}} for kernel ``name``."""
    c64, c32 = _columns("float64"), _columns("float32")
    with special.kernel(name):
        value, grad_a, grad_b = _evaluate(c64, torch.float64)
        value32, _, _ = _evaluate(c32, torch.float32)
    measures64 = {
        "value": _relative(value, c64["value"], TINY64),
        "d/da": _relative(grad_a, c64["grad_a"], TINY64) * (np.abs(c64["value"]) >= TINY64),
        "d/db": _relative(grad_b, c64["grad_b"], TINY64) * (np.abs(c64["value"]) >= TINY64),
    }
    ulp32 = np.spacing(np.abs(c32["value"]).astype(np.float32)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        ulps = np.abs(value32 - c32["value"]) / ulp32
    ulps = np.where(np.isfinite(ulps), ulps, np.inf)
    report = {}
    for group in sorted(set(c64["group"]) | set(c32["group"])):
        mask64, mask32 = c64["group"] == group, c32["group"] == group
        entry = {
            key: float(m[mask64].max()) if mask64.any() else None for key, m in measures64.items()
        }
        entry["float32 ulps"] = float(ulps[mask32].max()) if mask32.any() else None
        entry["rows"] = int(mask64.sum() + mask32.sum())
        report[group] = entry
    return report


def scipy_errors() -> dict[str, float]:
    from scipy.special import betainc as scipy_betainc

    columns = _columns("float64")
    error = _relative(
        scipy_betainc(columns["a"], columns["b"], columns["x"]), columns["value"], TINY64
    )
    return {g: float(error[columns["group"] == g].max()) for g in sorted(set(columns["group"]))}


BOOST_TABLES = ("ibeta_data", "ibeta_int_data", "ibeta_large_data", "ibeta_small_data")


def _boost_tables() -> dict[str, np.ndarray]:
    """Boost's tables (columns a, b, x, B_x, 1 - B_x, I_x, 1 - I_x) from scipy's test data, or
    none where that file is not installed."""
    import scipy.special

    path = Path(scipy.special.__file__).resolve().parent / "tests" / "data" / "boost.npz"
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return {name: data[f"{name}_ipp-{name}"] for name in BOOST_TABLES}


def _boost_row_errors(name: str | None) -> dict[str, np.ndarray]:
    """{table: relative error of the float64 value on each row} for kernel ``name`` (scipy's
    where ``name`` is None); NaN where the exact value is a number counts as inf."""
    from scipy.special import betainc as scipy_betainc

    errors = {}
    for table, rows in _boost_tables().items():
        a, b, x, exact = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 5]
        if name is None:
            found = scipy_betainc(a, b, x)
        else:
            with special.kernel(name):
                found = betainc(*(torch.from_numpy(c.copy()) for c in (a, b, x))).numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            error = np.where(found == exact, 0.0, np.abs(found - exact) / np.abs(exact))
        errors[table] = np.nan_to_num(error, nan=np.inf)
    return errors


def boost_errors(name: str | None) -> dict[str, float]:
    """{table: worst relative error of the float64 value} for kernel ``name`` (scipy's where
    ``name`` is None)."""
    return {table: float(error.max()) for table, error in _boost_row_errors(name).items()}


def _triton_errors() -> dict[str, dict] | None:
    """The Triton kernel's errors under the interpreter (the oracle table's, then Boost's), from
    a process of its own."""
    if importlib.util.find_spec("triton") is None:
        return None
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import accuracy_betainc as m;"
        " print(json.dumps([m.kernel_errors('triton'), m.boost_errors('triton')]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).resolve().parent)],
        env={**os.environ, "TRITON_INTERPRET": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _format(value) -> str:
    if value is None:
        return "-"
    if value == 0.0:
        return "0"
    return f"{value:.1e}" if value < 100 else f"{value:.3g}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    kernels = [k for k in special.available_kernels() if k != "triton"]
    reports = {name: kernel_errors(name) for name in kernels}
    boost = {name: boost_errors(name) for name in kernels}
    triton = _triton_errors()
    if triton is not None:
        reports["triton (interpreter)"], boost["triton (interpreter)"] = triton
    scipy = scipy_errors()
    boost["scipy"] = boost_errors(None)
    groups = sorted(next(iter(reports.values())))
    for measure in ("value", "d/da", "d/db", "float32 ulps"):
        unit = "units in the last place of float32" if measure == "float32 ulps" else "relative"
        print(f"\nworst error, {measure} ({unit})")
        header = [
            "group",
            "rows (both dtypes)",
            *reports,
            *(["scipy"] if measure == "value" else []),
        ]
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for group in groups:
            cells = [group, str(next(iter(reports.values()))[group]["rows"])]
            cells += [_format(report[group][measure]) for report in reports.values()]
            if measure == "value":
                cells.append(_format(scipy.get(group)))
            print("| " + " | ".join(cells) + " |")
    tables = next(iter(boost.values()))
    if tables:
        print("\nBoost.Math's published tables, worst error of the float64 value (relative)")
        header = ["table", "rows", *boost]
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        rows = _boost_tables()
        for table in tables:
            cells = [table, str(len(rows[table]))]
            cells += [_format(errors[table]) for errors in boost.values()]
            print("| " + " | ".join(cells) + " |")
        ours, theirs = _boost_row_errors("cpu"), _boost_row_errors(None)
        print("\nworst row of each table for the automatic CPU kernel, and scipy's error there")
        for table, error in ours.items():
            worst = int(np.argmax(error))
            a, b, x = rows[table][worst, :3]
            print(
                f"{table}: a = {a:.6g}, b = {b:.6g}, x = {x:.6g}: ours {_format(error[worst])}, "
                f"scipy {_format(theirs[table][worst])}"
            )
    if args.json:
        figures = {"kernels": reports, "scipy": scipy, "boost": boost}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
