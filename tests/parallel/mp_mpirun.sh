#!/usr/bin/env bash
# OpenMPI's mpirun (MPI backend): dp = 2 and dp = 4 with ZeRO-1 reproduce the one-process run.
source "$(dirname "$0")/mp_common.sh"
command -v mpirun > /dev/null || { echo "FAIL: mpirun not installed (scripts/setup installs openmpi-bin)"; exit 1; }
make_dataset
reference "$tmp/ref"
run() {
  local n=$1 ga=$2 dir=$3; shift 3
  STRATA_BIN="$bin" "$src/scripts/launch/mpirun.sh" -n "$n" "$recipe" "${common[@]}" --set train.grad_accum="$ga" \
    --set run.dir="$dir" "$@" > "$dir.log" 2>&1 || { echo "FAIL: mpirun -n $n exited $?"; show_log "$dir.log"; exit 1; }
}
run 2 2 "$tmp/dp2"
expect_log "$tmp/dp2.log" "world: mpi launch: rank 0 of 2"
expect_log "$tmp/dp2.log" "backend mpi"
check_same "$tmp/dp2" "$tmp/ref"
run 4 1 "$tmp/z4" --set parallel.zero1=true --set parallel.bucket_mb=0.01
check_same "$tmp/z4" "$tmp/ref"
echo "mpirun: ok"
