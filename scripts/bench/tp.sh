#!/usr/bin/env bash
# Tensor-parallel benchmark (not a test): traffic per transformer layer against Megatron's 4*B*s*h
# and the step-time ratio of tp = 2 to tp = 1, ranks simulated by threads in one process.
# Usage: scripts/bench/tp.sh [build dir]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-${STRATA_BUILD_DIR:-build}}"
cmake --build "$build" --target test_tensor_parallel -j "${STRATA_JOBS:-$(nproc)}" >/tmp/strata_bench_tp_build.log 2>&1 ||
  { tail -30 /tmp/strata_bench_tp_build.log; exit 1; }
"$build/tests/test_tensor_parallel" "[.bench]" -s | grep -E "^(tp traffic|ring|embedding|step time)"
