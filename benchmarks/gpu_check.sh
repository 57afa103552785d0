#!/usr/bin/env bash
# On a machine with a CUDA GPU, in one go: the CUDA tests, then benchmarks/bench_gpu.py.
#
#   benchmarks/gpu_check.sh            # from the repository root or anywhere
#   PYTHON=python OUT=/tmp/gpu benchmarks/gpu_check.sh
#
# PYTHON: the interpreter with batchshaping, torch (CUDA), triton and torch-betainc installed
# (default .venv/bin/python, else python3). OUT: where the logs and gpu.json go (default
# benchmarks/results). TEST_TIMEOUT and BENCH_TIMEOUT: seconds for each step (default 300
# and 480). Exit status: that of the first step that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
status=0

nvidia-smi -L || { echo "gpu_check: no NVIDIA GPU visible"; exit 1; }
"$PYTHON" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"

echo "== CUDA tests =="
timeout "${TEST_TIMEOUT:-300}" "$PYTHON" -m pytest tests -m cuda -q -p no:cacheprovider -rs \
    2>&1 | tee "$OUT/gpu_tests.txt"
step=${PIPESTATUS[0]}
[ "$step" -ne 0 ] && status=$step && echo "gpu_check: the CUDA tests exited with $step"

echo "== benchmarks/bench_gpu.py =="
timeout "${BENCH_TIMEOUT:-480}" "$PYTHON" benchmarks/bench_gpu.py 2>&1 | tee "$OUT/gpu_bench.txt"
step=${PIPESTATUS[0]}
[ "$step" -ne 0 ] && [ "$status" -eq 0 ] && status=$step
[ "$step" -ne 0 ] && echo "gpu_check: bench_gpu.py exited with $step"
[ -f benchmarks/results/gpu.json ] && [ "$OUT" != benchmarks/results ] && cp benchmarks/results/gpu.json "$OUT/"
exit $status
