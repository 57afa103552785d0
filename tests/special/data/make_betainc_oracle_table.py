"""Write ``betainc_oracle.csv``: the oracle of ``betainc_oracle.py`` at the points of
``betainc_points.py``, float64 and float32.

Run from the repository root (about an hour on two cores; ``--processes`` to use more):

    python tests/special/data/make_betainc_oracle_table.py

Each row: the group, the dtype whose numbers a, b and x are, the three inputs (exact, as Python
writes floats), and I_x(a, b), dI/da, dI/db to 25 significant digits. The test
(``test_betainc_oracle.py``) recomputes a random part of the rows from scratch.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import mpmath
import numpy as np

HERE = Path(__file__).resolve().parent
TABLE = HERE / "betainc_oracle.csv"
COLUMNS = ("group", "dtype", "a", "b", "x", "value", "grad_a", "grad_b")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


oracle = _load("betainc_oracle", HERE.parent / "betainc_oracle.py")
points = _load("betainc_points", HERE / "betainc_points.py")


def all_points():
    """(group, dtype name, a, b, x) for every row of the table, in order."""
    rows = []
    for seed, (group, count) in enumerate(points.GROUPS.items()):
        rows += [(group, "float64", *p) for p in points.points(group, count, seed)]
        if group not in ("huge", "issue", "huge b"):  # beyond float32's range; float64 rows
            count32 = count // 3
            rows += [
                (group, "float32", *p)
                for p in points.points(group, count32, 1000 + seed, dtype=np.float32)
            ]
    return rows


def _evaluate(row):
    group, dtype, a, b, x = row
    (value, grad_a, grad_b), converged = oracle.betainc_with_gradients(a, b, x)
    if not converged:
        raise RuntimeError(f"the quadrature did not converge at {(a, b, x)}")
    digits = (mpmath.nstr(v, 25) for v in (value, grad_a, grad_b))
    return (group, dtype, repr(a), repr(b), repr(x), *digits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    arguments = parser.parse_args()
    rows = all_points()
    partial = TABLE.with_suffix(".partial")
    with ProcessPoolExecutor(arguments.processes) as pool, partial.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for result in pool.map(_evaluate, rows, chunksize=1):
            writer.writerow(result)
            handle.flush()
    partial.replace(TABLE)
    print(f"wrote {len(rows)} rows to {TABLE}")


if __name__ == "__main__":
    main()
