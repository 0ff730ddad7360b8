#!/usr/bin/env bash
# Loss-based reweighting through torchrun (specs/reweighting.md §4.6 with real processes): the weights
# of a micro-step are normalised over the W*b sequences of the dp group (one all-gather), so dp = W with
# micro_batch b reproduces one process with micro_batch W*b and the same grad_accum (the sampler gives
# micro-step a of rank k rows [(a W + k) b, (a W + k + 1) b) of the step's global batch). Checked:
# dp = 2 and dp = 4 vs one process (global batch 16, one micro-step), dp = 2 with grad_accum = 2 vs one
# process with grad_accum = 2, losses and final weights within 1e-5; exact resume at step 6 under dp = 2.
# Pipeline: the last stage weights the sequences over its dp group, so pp = 2 and (pp, dp) = (2, 2)
# equal one process too, with the same reweight/* stats in metrics.jsonl. Tensor parallelism: the
# per-sequence losses come from the vocab-parallel cross-entropy; tp = 2, (tp, dp) = (2, 2) and
# (tp, pp) = (2, 2) equal one process.
# Controls that make the equalities meaningful: the plain mean loss and the same global batch split into
# two micro-steps (a different normalisation group) both give different runs.
source "$(dirname "$0")/mp_common.sh"
make_dataset
# r falls from 2 to 0.2 over 3 steps after a 2-step burn-in; the remaining steps are weighted at r = 0.2.
rw=(--set train.steps=10 --set reweighting.strategy=linupper --set reweighting.r=0.2 --set reweighting.burn_in_steps=2
    --set reweighting.r_start=2 --set reweighting.r_warmup_steps=3 --set train.log_every=1)
one() {  # one MICRO_BATCH GRAD_ACCUM DIR [extra --set ...]: a single process
  local mb=$1 ga=$2 dir=$3; shift 3
  "$bin" train "$recipe" "${common[@]}" "${rw[@]}" --set train.micro_batch="$mb" --set train.grad_accum="$ga" \
    --set run.dir="$dir" "$@" > "$dir.log" 2>&1 || { echo "FAIL: one process ($dir) exited $?"; show_log "$dir.log"; exit 1; }
}
run() {  # run NPROC MICRO_BATCH GRAD_ACCUM DIR [extra --set ...]: torchrun
  local n=$1 mb=$2 ga=$3 dir=$4; shift 4
  STRATA_BIN="$bin" "$src/scripts/launch/torchrun.sh" -n "$n" "$recipe" "${common[@]}" "${rw[@]}" --set train.micro_batch="$mb" \
    --set train.grad_accum="$ga" --set run.dir="$dir" "$@" > "$dir.log" 2>&1 ||
    { echo "FAIL: torchrun -n $n ($dir) exited $?"; show_log "$dir.log"; exit 1; }
}
# same_stats RUN REF: the reweight/* entries of every metrics row agree within 1e-5 relative.
same_stats() {
  python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" <<'PY' || { echo "FAIL: reweight stats of $1 differ from $2"; exit 1; }
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
if len(a) != len(b): sys.exit(f"{len(a)} vs {len(b)} rows")
n = 0
for ra, rb in zip(a, b):
    ka, kb = sorted(k for k in ra if k.startswith("reweight/")), sorted(k for k in rb if k.startswith("reweight/"))
    if ka != kb: sys.exit(f"step {ra['step']}: keys {ka} vs {kb}")
    for k in ka:
        n += 1
        if abs(ra[k] - rb[k]) > 1e-5 * max(abs(rb[k]), 1e-3): sys.exit(f"step {ra['step']}: {k} {ra[k]} vs {rb[k]}")
if n == 0: sys.exit("no reweight stats")
PY
}
# differ RUN REF: the runs must NOT agree within 1e-5 (compare_runs exits 1 on a difference).
differ() {
  local rc=0
  "$compare" "$1" "$2" 1e-5 > "$1.cmp" 2>&1 || rc=$?
  [ "$rc" -eq 1 ] || { echo "FAIL: $1 should differ from $2 (compare_runs exit $rc):"; cat "$1.cmp"; exit 1; }
}

one 16 1 "$tmp/ref16"
expect_log "$tmp/ref16.log" "reweighting: linupper"
python3 - "$tmp/ref16/metrics.jsonl" <<'PY' || exit 1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
w = [r for r in rows if "reweight/max_weight" in r]
# Steps 3..10 are weighted (burn-in: steps 1-2); at r = 0.2 the weights are far from 1/16.
if len(rows) != 10 or len(w) != 8: sys.exit(f"FAIL: {len(rows)} rows, {len(w)} with weight stats (want 10, 8)")
if not w[-1]["reweight/max_weight"] > 1.5 / 16: sys.exit(f"FAIL: max weight {w[-1]['reweight/max_weight']} is near uniform")
PY
one 16 1 "$tmp/plain16" --set reweighting.strategy=none
differ "$tmp/plain16" "$tmp/ref16"
one 8 2 "$tmp/ref8x2"
differ "$tmp/ref8x2" "$tmp/ref16"

run 2 8 1 "$tmp/dp2"
expect_log "$tmp/dp2.log" "over 2 dp ranks x 8 sequences"
check_same "$tmp/dp2" "$tmp/ref16"
same_stats "$tmp/dp2" "$tmp/ref16"
run 4 4 1 "$tmp/dp4" --set parallel.bucket_mb=0.01
expect_log "$tmp/dp4.log" "over 4 dp ranks x 4 sequences"
check_same "$tmp/dp4" "$tmp/ref16"
run 2 4 2 "$tmp/dp2ga2" --set checkpoint.every=6
check_same "$tmp/dp2ga2" "$tmp/ref8x2"
same_stats "$tmp/dp2ga2" "$tmp/ref8x2"

# Exact resume under dp = 2 from the step-6 checkpoint (inside the weighted phase, after the r schedule).
d="$tmp/resumed"
mkdir -p "$d/checkpoints"
cp -r "$tmp/dp2ga2/checkpoints/step_6" "$d/checkpoints/"
cp "$tmp/dp2ga2/metrics.jsonl" "$d/metrics.jsonl"  # rows after step 6 are rewritten by the resumed run
run 2 4 2 "$d" --set checkpoint.every=6 --resume
expect_log "$d.log" "resumed"
"$compare" "$d" "$tmp/dp2ga2" 0 || { echo "FAIL: the resumed dp = 2 run is not bitwise equal"; show_log "$d.log"; exit 1; }

# Pipeline (two layers, one per stage; micro-batches = grad_accum = 2): pp = 2 with micro_batch 8, and
# (pp, dp) = (2, 2) with micro_batch 4 per dp rank, against one process with micro_batch 8.
one 8 2 "$tmp/pp_ref" --set model.n_layer=2
run 2 8 2 "$tmp/pp2" --set model.n_layer=2 --set parallel.pp=2
expect_log "$tmp/pp2.log" "pipeline: pp rank 0 of 2"
check_same "$tmp/pp2" "$tmp/pp_ref"
same_stats "$tmp/pp2" "$tmp/pp_ref"
run 4 4 2 "$tmp/pp2dp2" --set model.n_layer=2 --set parallel.pp=2
check_same "$tmp/pp2dp2" "$tmp/pp_ref"
same_stats "$tmp/pp2dp2" "$tmp/pp_ref"
# Tensor parallelism: per-sequence losses from the vocab-parallel cross-entropy (every tp rank holds the
# full values), so tp = 2 and (tp, dp) = (2, 2) equal one process; (tp, pp) = (2, 2) too.
run 2 16 1 "$tmp/tp2" --set parallel.tp=2
expect_log "$tmp/tp2.log" "tensor parallel: tp = 2"
check_same "$tmp/tp2" "$tmp/ref16"
same_stats "$tmp/tp2" "$tmp/ref16"
run 4 8 1 "$tmp/tp2dp2" --set parallel.tp=2
check_same "$tmp/tp2dp2" "$tmp/ref16"
run 4 8 2 "$tmp/tp2pp2" --set model.n_layer=2 --set parallel.tp=2 --set parallel.pp=2
check_same "$tmp/tp2pp2" "$tmp/pp_ref"
same_stats "$tmp/tp2pp2" "$tmp/pp_ref"
echo "reweight: ok"
