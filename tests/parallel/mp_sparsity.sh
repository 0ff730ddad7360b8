#!/usr/bin/env bash
# Sparse pre-training through torchrun (the venv's, --no-python): gradual magnitude pruning to 50%
# under tp = 2, under dp = 2 with ZeRO-1 and under (tp, dp) = (2, 2) with ZeRO-1 reproduces the
# one-process run (per-step losses and final weights within 1e-5, compare_runs; the logged sparsity
# per step identical); checkpoints hold full (tp = 1) masks, so a tp = 2 checkpoint written inside
# the pruning window resumes under tp = 1 and a tp = 1 one under tp = 2. Static (SPDF) masks under
# tp = 2 equal tp = 1 too. Pipeline parallelism (2 layers, 1F1B over grad_accum = 2 micro-batches):
# pp = 2 and (tp, pp) = (2, 2), gradual and static, reproduce the one-process run (losses and weights
# within 1e-5, every sparsity metric column of metrics.jsonl and the sparsity log line of every rank
# identical); a pp = 2 checkpoint inside the pruning window resumes exactly under pp = 2 and pp = 1.
source "$(dirname "$0")/mp_common.sh"
make_dataset
one() {  # one DIR [extra --set ...]: one process
  local dir=$1; shift
  "$bin" train "$recipe" "${common[@]}" --set run.dir="$dir" "$@" > "$dir.log" 2>&1 ||
    { echo "FAIL: one-process run $dir"; show_log "$dir.log"; exit 1; }
}
# same_metrics RUN REF: every sparsity column of metrics.jsonl is identical, and every sparsity log
# line of RUN (each rank prints them; a resumed run from its checkpoint on) is one of REF's.
same_metrics() {
  local k
  for k in sparsity nonzero_params n_avg eff_flops_per_token eff_flops; do
    diff <(grep -o "\"$k\": [^,}]*" "$1/metrics.jsonl") <(grep -o "\"$k\": [^,}]*" "$2/metrics.jsonl") > /dev/null ||
      { echo "FAIL: metrics.jsonl column $k differs between $1 and $2"; exit 1; }
  done
  local lines='step +[0-9]+ \| sparsity [0-9.]+ \| nonzero .* so far'
  [ "$(grep -cE "$lines" "$1.log")" -gt 0 ] || { echo "FAIL: no sparsity log line in $1.log"; exit 1; }
  local extra
  extra=$(comm -23 <(grep -oE "$lines" "$1.log" | sort -u) <(grep -oE "$lines" "$2.log" | sort -u))
  [ -z "$extra" ] || { echo "FAIL: sparsity log lines of $1.log not in $2.log: $extra"; exit 1; }
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

# Pipeline parallelism: a block per stage (2 layers), 1F1B over 2 micro-batches per step.
pp=(--set model.n_layer=2 --set train.grad_accum=2)
one "$tmp/pref" "${gradual[@]}" "${pp[@]}"
grep -q '"sparsity": 0.5[,}]' "$tmp/pref/metrics.jsonl" || { echo "FAIL: the pp reference never reached 50%"; exit 1; }
run 2 "$tmp/pp2" "${gradual[@]}" "${pp[@]}" --set parallel.pp=2
expect_log "$tmp/pp2.log" "pipeline: pp rank 0 of 2 (1f1b schedule, 2 micro-batches"
expect_log "$tmp/pp2.log" "this pipeline stage masks 6 of the 12 prunable matrices"
check_same "$tmp/pp2" "$tmp/pref"
same_metrics "$tmp/pp2" "$tmp/pref"
cmp "$tmp/pp2/sparsity_prunable.txt" "$tmp/pref/sparsity_prunable.txt" || { echo "FAIL: prunable set differs under pp"; exit 1; }
run 4 "$tmp/tp2pp2" "${gradual[@]}" "${pp[@]}" --set parallel.pp=2 --set parallel.tp=2
expect_log "$tmp/tp2pp2.log" "stage tensor-parallel over tp = 2"
check_same "$tmp/tp2pp2" "$tmp/pref"
same_metrics "$tmp/tp2pp2" "$tmp/pref"
echo "gradual under pp: ok"

# A pp = 2 checkpoint inside the pruning window (step 10, masks of both stages): pp = 2 resumes it
# exactly, pp = 1 too.
cut_at_10 "$tmp/pp2" "$tmp/pp2r"
run 2 "$tmp/pp2r" "${gradual[@]}" "${pp[@]}" --set parallel.pp=2 --resume
expect_log "$tmp/pp2r.log" "resumed from .*step_10"
check_same "$tmp/pp2r" "$tmp/pp2"
same_metrics "$tmp/pp2r" "$tmp/pp2"
cut_at_10 "$tmp/pp2" "$tmp/pp2to1"
one "$tmp/pp2to1" "${gradual[@]}" "${pp[@]}" --resume
expect_log "$tmp/pp2to1.log" "resumed from .*step_10"
check_same "$tmp/pp2to1" "$tmp/pref"
same_metrics "$tmp/pp2to1" "$tmp/pref"
echo "resume under pp: ok"

one "$tmp/spref" "${static[@]}" "${pp[@]}"
run 2 "$tmp/spp2" "${static[@]}" "${pp[@]}" --set parallel.pp=2
check_same "$tmp/spp2" "$tmp/spref"
same_metrics "$tmp/spp2" "$tmp/spref"
echo "static under pp: ok"
