#!/usr/bin/env bash
# GPU check (issue 4), one short run for a machine with an NVIDIA GPU:
#   (a) the CUDA tests (pytest -m cuda), (b) CPU vs CUDA agreement of both engines on a small
#   grid, (c) timing of both engines on both devices, (d) the performance bars; a short table
#   is printed last. Needs torch, pandas, pyarrow, seaborn and pytest; uses the package from
#   src/ (no install, no Snakemake, no network).
#
# Usage:   benchmarks/gpu_check.sh OUTDIR
# Outputs: OUTDIR/pytest_cuda.txt, environment.json, agreement.csv, timing_<card>.csv,
#          bar_check.csv, summary.txt, gpu_check.log (7 files, flat).
# Env:     GDBENCH_GPU_CHECK_QUICK=1  short CPU part (to try the script without a GPU)
#          GDBENCH_GPU_CHECK_BUDGET   seconds for the whole check (default 420)
#          GDBENCH_GPU_CHECK_THREADS  CPU threads for the CPU side (default: all usable cores)
#          PYTHON                     interpreter (default: python, else python3)
# Exit:    0 when every step ran, 1 when one failed (the others still ran), 2 on bad usage.
set -uo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd)
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-$(command -v python || command -v python3)}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
BUDGET=${GDBENCH_GPU_CHECK_BUDGET:-420}
start=$SECONDS

# (a) the CUDA tests: every test file that uses the cuda marker.
echo "== (a) pytest -m cuda" >&2
mapfile -t files < <(grep -rlE "mark\.cuda" tests --include='*.py' 2>/dev/null | sort)
if [ ${#files[@]} -eq 0 ]; then
    echo "no test file uses the cuda marker" >"$OUT/pytest_cuda.txt"
    test_rc=5
else
    timeout -k 10 240 "$PY" -m pytest -m cuda -q -p no:cacheprovider "${files[@]}" >"$OUT/pytest_cuda.txt" 2>&1
    test_rc=$?
fi
tail -n 1 "$OUT/pytest_cuda.txt" >&2

# (b)-(d) agreement, timing, bars; prints the summary table last.
args=("$OUT" --budget $((BUDGET - (SECONDS - start))) --pytest-log "$OUT/pytest_cuda.txt" --pytest-rc "$test_rc"
    --pytest-seconds $((SECONDS - start)))
[ "${GDBENCH_GPU_CHECK_QUICK:-0}" != 0 ] && args+=(--quick)
[ -n "${GDBENCH_GPU_CHECK_THREADS:-}" ] && args+=(--threads "$GDBENCH_GPU_CHECK_THREADS")
"$PY" benchmarks/gpu_check.py "${args[@]}"
rc=$?
if [ $rc -gt 1 ]; then
    echo "gpu_check.py stopped with rc $rc after $((SECONDS - start)) s; see $OUT/gpu_check.log" | tee -a "$OUT/summary.txt"
    rc=1
fi
exit $rc
