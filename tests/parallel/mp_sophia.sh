#!/usr/bin/env bash
# Sophia-G through torchrun: dp = 2 with ZeRO-1 (the curvature refresh is reduce-scattered, each rank
# updates the hc of the shard it owns) reproduces one process without ZeRO-1 on the same global batch
# (losses and weights within 1e-5, hessian_norm / hessian_loss within 1e-4 at every refresh), and its
# sliced step-10 checkpoint resumes under dp = 2 with zero1 to the same run.
source "$(dirname "$0")/mp_common.sh"
make_dataset
# No biases (as in the Sophia repo's GPT-2 configs): the attention key bias has a zero gradient in exact
# arithmetic, so its rounding noise, over the 1e-15 floor of an hc that is ~0 as well, moves it by
# lr * sign(noise) every step: differently per layout, and without effect on the loss.
sophia=(--set model.bias=false --set optim.name=sophia --set optim.hessian_interval=3 --set optim.rho=0.05 --set optim.weight_decay=0.2
        --set checkpoint.every=10)
"$bin" train "$recipe" "${common[@]}" "${sophia[@]}" --set train.grad_accum=4 --set run.dir="$tmp/ref" > "$tmp/ref.log" 2>&1 ||
  { echo "FAIL: reference run exited $?"; show_log "$tmp/ref.log"; exit 1; }
run() {  # run NPROC GRAD_ACCUM DIR [extra --set ...]
  local n=$1 ga=$2 dir=$3; shift 3
  "$src/scripts/launch/torchrun.sh" -n "$n" "$recipe" "${common[@]}" "${sophia[@]}" --set train.grad_accum="$ga" \
    --set run.dir="$dir" "$@" > "$dir.log" 2>&1 || { echo "FAIL: torchrun -n $n ($dir) exited $?"; show_log "$dir.log"; exit 1; }
}
STRATA_BIN="$bin" run 2 2 "$tmp/z2" --set parallel.zero1=true --set parallel.bucket_mb=0.01
expect_log "$tmp/z2.log" "ZeRO-1 sharded optimizer"
expect_log "$tmp/z2.log" "latest hessian refresh: hessian_loss"
check_same "$tmp/z2" "$tmp/ref"
python3 - "$tmp/ref/metrics.jsonl" "$tmp/z2/metrics.jsonl" <<'PY' || exit 1
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
n = 0
for ra, rb in zip(a, b):
    for k in ("hessian_norm", "hessian_loss"):
        if (k in ra) != (k in rb): sys.exit(f"FAIL: step {ra['step']}: {k} logged in one run only")
        if k in ra and abs(ra[k] - rb[k]) > 1e-4 * abs(ra[k]): sys.exit(f"FAIL: step {ra['step']}: {k} {ra[k]} vs {rb[k]}")
    n += "hessian_norm" in ra
if len(a) != 20 or len(b) != 20 or n != 6: sys.exit(f"FAIL: {len(a)}/{len(b)} rows, {n} refreshes (want 20 rows, 6)")
PY
ck="$tmp/z2/checkpoints/step_10"
for f in rank_0.bin rank_1.bin; do [ -f "$ck/$f" ] || { echo "FAIL: $ck/$f missing"; ls -la "$ck"; exit 1; }; done
d="$tmp/resumed"
mkdir -p "$d/checkpoints"
cp -r "$ck" "$d/checkpoints/"
cp "$tmp/z2/metrics.jsonl" "$d/metrics.jsonl"  # rows after step 10 are rewritten by the resumed run
STRATA_BIN="$bin" run 2 2 "$d" --set parallel.zero1=true --set parallel.bucket_mb=0.01 --resume
expect_log "$d.log" "ZeRO-1 dp rank 0: read"
check_same "$d" "$tmp/z2"
echo "sophia: ok"
