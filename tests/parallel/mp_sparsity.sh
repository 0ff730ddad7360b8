#!/usr/bin/env bash
# Sparse pre-training through torchrun (the venv's, --no-python): gradual magnitude pruning to 50%
# under tp = 2, under dp = 2 with ZeRO-1 and under (tp, dp) = (2, 2) with ZeRO-1 reproduces the
# one-process run (per-step losses and final weights within 1e-5, compare_runs; the logged sparsity
# per step identical); checkpoints hold full (tp = 1) masks, so a tp = 2 checkpoint written inside
# the pruning window resumes under tp = 1 and a tp = 1 one under tp = 2. Static (SPDF) masks under
# tp = 2 equal tp = 1 too.
source "$(dirname "$0")/mp_common.sh"
make_dataset
one() {  # one DIR [extra --set ...]: one process
  local dir=$1; shift
  "$bin" train "$recipe" "${common[@]}" --set run.dir="$dir" "$@" > "$dir.log" 2>&1 ||
    { echo "FAIL: one-process run $dir"; tail -30 "$dir.log"; exit 1; }
}
# same_sparsity RUN REF: the "sparsity" column of metrics.jsonl is identical.
same_sparsity() {
  diff <(grep -o '"sparsity": [^,}]*' "$1/metrics.jsonl") <(grep -o '"sparsity": [^,}]*' "$2/metrics.jsonl") > /dev/null ||
    { echo "FAIL: sparsity per step differs between $1 and $2"; exit 1; }
}
cut_at_10() { cp -r "$1" "$2"; rm -rf "$2/checkpoints/step_20"; }
gradual=(--set sparsity.method=gradual --set sparsity.sparsity=0.5 --set sparsity.prune_every=2
         --set model.n_head=2 --set checkpoint.every=10 --set checkpoint.keep=5)

one "$tmp/ref" "${gradual[@]}" --set train.grad_accum=4
expect_log "$tmp/ref.log" "sparsity: gradual to 0.500"
grep -q '"sparsity": 0.5[,}]' "$tmp/ref/metrics.jsonl" || { echo "FAIL: the reference never reached 50%"; exit 1; }

run 2 "$tmp/tp2" "${gradual[@]}" --set parallel.tp=2 --set train.grad_accum=4
expect_log "$tmp/tp2.log" "tensor parallel: tp = 2"
check_same "$tmp/tp2" "$tmp/ref"
same_sparsity "$tmp/tp2" "$tmp/ref"

run 2 "$tmp/dp2z" "${gradual[@]}" --set parallel.zero1=true --set parallel.bucket_mb=0.01 --set train.grad_accum=2
expect_log "$tmp/dp2z.log" "ZeRO-1"
check_same "$tmp/dp2z" "$tmp/ref"
same_sparsity "$tmp/dp2z" "$tmp/ref"

run 4 "$tmp/tp2dp2z" "${gradual[@]}" --set parallel.tp=2 --set parallel.zero1=true --set train.grad_accum=2
expect_log "$tmp/tp2dp2z.log" "tensor parallel + ZeRO-1"
check_same "$tmp/tp2dp2z" "$tmp/ref"
same_sparsity "$tmp/tp2dp2z" "$tmp/ref"
echo "gradual: ok"

# Inside the pruning window at step 10: tp = 2 -> tp = 1 and tp = 1 -> tp = 2.
cut_at_10 "$tmp/tp2" "$tmp/to1"
one "$tmp/to1" "${gradual[@]}" --set train.grad_accum=4 --resume
expect_log "$tmp/to1.log" "resumed from .*step_10"
check_same "$tmp/to1" "$tmp/ref"
same_sparsity "$tmp/to1" "$tmp/ref"
cut_at_10 "$tmp/ref" "$tmp/to2"
run 2 "$tmp/to2" "${gradual[@]}" --set parallel.tp=2 --set train.grad_accum=4 --resume
expect_log "$tmp/to2.log" "resumed from .*step_10"
check_same "$tmp/to2" "$tmp/ref"
echo "resume across tp: ok"

static=(--set sparsity.method=static --set sparsity.sparsity=0.75 --set model.n_head=2 --set train.grad_accum=4)
one "$tmp/sref" "${static[@]}"
run 2 "$tmp/stp2" "${static[@]}" --set parallel.tp=2
check_same "$tmp/stp2" "$tmp/sref"
same_sparsity "$tmp/stp2" "$tmp/sref"
echo "static: ok"
