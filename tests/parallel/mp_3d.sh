#!/usr/bin/env bash
# Tensor parallelism inside pipeline stages, (tp, pp, dp) over one mesh, through torchrun (the venv's,
# --no-python): for GPT-2 (tied embedding, shared by the two ends as vocab shards) and Llama (untied
# head; its one KV head replicated on both tp ranks), (2, 2, 2) on 8 processes and (2, 2, 1) on 4
# with 1F1B reproduce the one-process run (per-step losses in metrics.jsonl and final weights, 1e-5,
# compare_runs); sequence parallelism sends each tp rank's slice of the sequence between stages and
# equals it too, with 1F1B and with interleaved 1F1B; checkpoints stay under the (1, 1, 1) names: a
# (2, 2, 1) checkpoint resumes under (1, 1, 1) and a (1, 1, 1) one under (2, 2, 2) with the same
# following losses. About a minute on a loaded 2-core machine (11 launches, 6 steps each).
source "$(dirname "$0")/mp_common.sh"
make_dataset
# 2 layers (one per stage), 6 steps, a checkpoint at step 3 for the resume checks. The global batch is
# 16 sequences: grad_accum 4 x micro_batch 4 per dp rank, 2 x 4 with dp = 2.
c3=(--set model.n_layer=2 --set train.steps=6 --set checkpoint.every=3 --set checkpoint.keep=2)
llama=(--set model.arch=llama --set model.n_kv_head=1 --set model.multiple_of=16 --set model.bias=false
       --set model.tie_embeddings=false)

one() {  # one DIR [extra --set ...]: one process, grad_accum 4
  local dir=$1; shift
  "$bin" train "$recipe" "${common[@]}" "${c3[@]}" --set train.grad_accum=4 --set run.dir="$dir" "$@" \
    > "$dir.log" 2>&1 || { echo "FAIL: one process exited $?"; show_log "$dir.log"; exit 1; }
}
run() {  # run NPROC GRAD_ACCUM DIR [extra --set ...]: tp = pp = 2, dp = NPROC / 4
  local n=$1 ga=$2 dir=$3; shift 3
  STRATA_BIN="$bin" "$src/scripts/launch/torchrun.sh" -n "$n" "$recipe" "${common[@]}" "${c3[@]}" \
    --set parallel.tp=2 --set parallel.pp=2 --set train.grad_accum="$ga" --set run.dir="$dir" "$@" > "$dir.log" 2>&1 \
    || { echo "FAIL: torchrun -n $n exited $?"; show_log "$dir.log"; exit 1; }
}
# check_norms RUN REF: the logged gradient norms (computed before clipping at optim.grad_clip = 1, so
# every step here clips) agree within 1e-5 relative: tp shards, replicated tensors and stages each count once.
check_norms() {
  python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" <<'PY' || { echo "FAIL: grad norms of $1 differ from $2"; exit 1; }
import json, sys
norms = [[json.loads(l)["grad_norm"] for l in open(f) if '"grad_norm"' in l] for f in sys.argv[1:]]
assert len(norms[0]) == len(norms[1]) > 0, norms
assert all(n > 1.0 for n in norms[1]), norms[1]  # above grad_clip: clipping acts on every step
bad = [(a, b) for a, b in zip(*norms) if abs(a - b) > 1e-5 * abs(b)]
assert not bad, bad
PY
}
# cut_at_3 SRC DST: a copy of run SRC whose latest checkpoint is step 3.
cut_at_3() { cp -r "$1" "$2"; rm -rf "$2/checkpoints/step_6"; }

one "$tmp/gpt1"
run 8 2 "$tmp/gpt_222"
expect_log "$tmp/gpt_222.log" "pipeline: pp rank 0 of 2 (1f1b schedule, 2 micro-batches"
expect_log "$tmp/gpt_222.log" "stage tensor-parallel over tp = 2 (tp rank 0), activations \[4, 32, 32\]"
expect_log "$tmp/gpt_222.log" "tied embedding shared"
expect_log "$tmp/gpt_222.log" "data parallel: dp = 2"
check_same "$tmp/gpt_222" "$tmp/gpt1"
check_norms "$tmp/gpt_222" "$tmp/gpt1"
run 4 4 "$tmp/gpt_221" --set parallel.schedule=1f1b
check_same "$tmp/gpt_221" "$tmp/gpt1"
run 4 4 "$tmp/gpt_221sp" --set parallel.sequence_parallel=true
expect_log "$tmp/gpt_221sp.log" "activations \[4, 16, 32\] (sequence-parallel slices)"
check_same "$tmp/gpt_221sp" "$tmp/gpt1"
check_norms "$tmp/gpt_221sp" "$tmp/gpt1"
# (2, 2, 1) checkpoint at step 3 -> (1, 1, 1): steps 4..6 as the uninterrupted runs.
cut_at_3 "$tmp/gpt_221" "$tmp/gpt_to1"
one "$tmp/gpt_to1" --resume
expect_log "$tmp/gpt_to1.log" "resumed from .*step_3 at step 3"
check_same "$tmp/gpt_to1" "$tmp/gpt1"
# (1, 1, 1) checkpoint at step 3 -> (2, 2, 2).
cut_at_3 "$tmp/gpt1" "$tmp/gpt_to222"
run 8 2 "$tmp/gpt_to222" --resume
expect_log "$tmp/gpt_to222.log" "resumed from .*step_3 at step 3"
check_same "$tmp/gpt_to222" "$tmp/gpt1"
# Interleaved 1F1B (v = 2, 4 layers: chunks 0, 2 on stage 0) with sequence parallelism, (2, 2, 1).
one "$tmp/gpt4" --set model.n_layer=4
run 4 4 "$tmp/gpt4_int" --set model.n_layer=4 --set parallel.schedule=interleaved --set parallel.virtual_stages=2 \
  --set parallel.sequence_parallel=true
expect_log "$tmp/gpt4_int.log" "chunk 0 = layers \[0, 1), chunk 2 = layers \[2, 3)"
check_same "$tmp/gpt4_int" "$tmp/gpt4"
echo "gpt: ok"

one "$tmp/llama1" "${llama[@]}"
run 8 2 "$tmp/llama_222" --set parallel.schedule=gpipe "${llama[@]}"
check_same "$tmp/llama_222" "$tmp/llama1"
check_norms "$tmp/llama_222" "$tmp/llama1"
run 4 4 "$tmp/llama_221" --set parallel.schedule=1f1b "${llama[@]}"
check_same "$tmp/llama_221" "$tmp/llama1"
echo "llama: ok"
echo "3d parallel torchrun: ok"
