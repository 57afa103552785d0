"""Run every benchmark script (``benchmarks/bench_*.py``), each in its own process.

Usage: ``python benchmarks/run.py [NAME ...]``, e.g. ``python benchmarks/run.py betainc``.
Results go to ``benchmarks/results/<name>.json``; each script prints its own table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The loss is measured quiet and with one core kept busy by another process.
ARGUMENTS = {"bench_loss.py": ["--busy", "1"]}


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    failed = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        command = [sys.executable, str(script), *ARGUMENTS.get(script.name, [])]
        if subprocess.run(command).returncode:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
