#!/usr/bin/env bash
# The learning tests (marker `learning`) under other instruction sets and other fixture seeds:
# XLA's CPU code, so every training trajectory, differs between processors, and a learning
# test must pass on any x86-64 CPU. Each variant gets its own XLA compile cache.
# Usage: tests/run_portable.sh [PYTHON]   (make test-portable); prints every FIGURE line.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
OUT=${PORTABLE_OUT:-.pytest_cache/portable}
mkdir -p "$OUT"
VARIANTS=(
  "NOISY_EMCOM_TEST_SEED=0"
  "XLA_FLAGS=--xla_cpu_max_isa=AVX2"
  "XLA_FLAGS=--xla_cpu_max_isa=SSE4_2"
  "NOISY_EMCOM_TEST_SEED=1"
  "NOISY_EMCOM_TEST_SEED=2"
)
status=0
for v in "${VARIANTS[@]}"; do
  name=${v//[^A-Za-z0-9_]/_}
  echo "== $v"
  rm -f "$OUT/$name.figures"
  env "$v" JAX_COMPILATION_CACHE_DIR="$OUT/jax_$name" NOISY_EMCOM_FIGURES="$OUT/$name.figures" \
    "$PY" -m pytest -q -s -m learning -n 2 --dist loadgroup -p no:randomly >"$OUT/$name.log" 2>&1
  rc=$?
  sed 's/^FIGURE /  /' "$OUT/$name.figures" 2>/dev/null | sort
  tail -n 1 "$OUT/$name.log"
  [ $rc -eq 0 ] || { status=1; echo "   FAILED: see $OUT/$name.log"; }
done
exit $status
