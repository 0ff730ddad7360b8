#!/usr/bin/env bash
# torchrun (the venv's, --no-python): dp = 2 and 4 and ZeRO-1 reproduce the one-process run.
source "$(dirname "$0")/mp_common.sh"
make_dataset
reference "$tmp/ref"
run() {  # run NPROC GRAD_ACCUM DIR [extra --set ...]
  local n=$1 ga=$2 dir=$3; shift 3
  "$src/scripts/launch/torchrun.sh" -n "$n" "$recipe" "${common[@]}" --set train.grad_accum="$ga" --set run.dir="$dir" "$@" \
    > "$dir.log" 2>&1 || { echo "FAIL: torchrun -n $n exited $?"; show_log "$dir.log"; exit 1; }
}
STRATA_BIN="$bin" run 2 2 "$tmp/dp2"
expect_log "$tmp/dp2.log" "world: torchrun launch: rank 0 of 2"
expect_log "$tmp/dp2.log" "torchrun agent store"
check_same "$tmp/dp2" "$tmp/ref"
STRATA_BIN="$bin" run 4 1 "$tmp/dp4" --set parallel.bucket_mb=0.01
expect_log "$tmp/dp4.log" "world: torchrun launch: rank 0 of 4"
check_same "$tmp/dp4" "$tmp/ref"
STRATA_BIN="$bin" run 2 2 "$tmp/z2" --set parallel.zero1=true --set parallel.bucket_mb=0.01
expect_log "$tmp/z2.log" "ZeRO-1"
check_same "$tmp/z2" "$tmp/ref"
echo "torchrun: ok"
