#!/usr/bin/env bash
# Pipeline parallelism through torchrun (the venv's, --no-python): pp = 2 and 4 reproduce the
# one-process run (per-step losses in metrics.jsonl and final weights, 1e-5) for GPT-2 (tied
# embedding) and Llama (untied head); GPipe, 1F1B and interleaved 1F1B agree; (pp, dp) = (2, 2)
# equals (1, 1); a checkpoint written under pp = 2 resumes under pp = 1 and the other way round;
# train.fused_loss on the last stage equals the one-process fused run.
source "$(dirname "$0")/mp_common.sh"
make_dataset
# 4 layers so pp = 4 (and pp = 2 with 2 virtual stages) has a layer per chunk; 8 steps, a checkpoint
# at step 4 for the resume checks; micro-batches per step = train.grad_accum = 4.
pp_common=(--set model.n_layer=4 --set train.steps=8 --set checkpoint.every=4 --set checkpoint.keep=2)
llama=(--set model.arch=llama --set model.n_kv_head=1 --set model.multiple_of=16 --set model.bias=false)

one() {  # one DIR [extra --set ...]: one process, grad_accum 4
  local dir=$1; shift
  "$bin" train "$recipe" "${common[@]}" "${pp_common[@]}" --set train.grad_accum=4 --set run.dir="$dir" "$@" \
    > "$dir.log" 2>&1 || { echo "FAIL: one process exited $?"; show_log "$dir.log"; exit 1; }
}
run() {  # run NPROC GRAD_ACCUM DIR [extra --set ...]
  local n=$1 ga=$2 dir=$3; shift 3
  STRATA_BIN="$bin" "$src/scripts/launch/torchrun.sh" -n "$n" "$recipe" "${common[@]}" "${pp_common[@]}" \
    --set train.grad_accum="$ga" --set run.dir="$dir" "$@" > "$dir.log" 2>&1 \
    || { echo "FAIL: torchrun -n $n exited $?"; show_log "$dir.log"; exit 1; }
}
# resume_from SRC DST NPROC [extra --set ...]: DST = SRC cut back to its step-4 checkpoint, resumed.
resume_from() {
  local from=$1 dir=$2 n=$3; shift 3
  cp -r "$from" "$dir"
  rm -rf "$dir/checkpoints/step_8"
  if [ "$n" = 1 ]; then one "$dir" --resume "$@"; else run "$n" 4 "$dir" --resume "$@"; fi
  expect_log "$dir.log" "resumed from .*step_4 at step 4"
}

one "$tmp/gpt1"
run 2 4 "$tmp/gpt_pp2" --set parallel.pp=2
expect_log "$tmp/gpt_pp2.log" "pipeline: pp rank 0 of 2 (1f1b schedule, 4 micro-batches"
expect_log "$tmp/gpt_pp2.log" "tied embedding shared"
check_same "$tmp/gpt_pp2" "$tmp/gpt1"
run 4 4 "$tmp/gpt_pp4" --set parallel.pp=4
check_same "$tmp/gpt_pp4" "$tmp/gpt1"
run 2 4 "$tmp/gpt_gpipe" --set parallel.pp=2 --set parallel.schedule=gpipe
check_same "$tmp/gpt_gpipe" "$tmp/gpt1"
run 2 4 "$tmp/gpt_int" --set parallel.pp=2 --set parallel.schedule=interleaved --set parallel.virtual_stages=2
expect_log "$tmp/gpt_int.log" "chunk 0 = layers \[0, 1), chunk 2 = layers \[2, 3)"
check_same "$tmp/gpt_int" "$tmp/gpt1"
check_same "$tmp/gpt_int" "$tmp/gpt_gpipe"
check_same "$tmp/gpt_pp2" "$tmp/gpt_gpipe"
# (pp, dp) = (2, 2): 2 micro-batches of 4 sequences per dp rank and step, the same global batch.
run 4 2 "$tmp/gpt_pp2dp2" --set parallel.pp=2
expect_log "$tmp/gpt_pp2dp2.log" "data parallel: dp = 2"
check_same "$tmp/gpt_pp2dp2" "$tmp/gpt1"
# Checkpoints under the pp = 1 names: pp = 2 -> pp = 1 and pp = 1 -> pp = 2.
resume_from "$tmp/gpt_pp2" "$tmp/gpt_2to1" 1
check_same "$tmp/gpt_2to1" "$tmp/gpt1"
resume_from "$tmp/gpt1" "$tmp/gpt_1to2" 2 --set parallel.pp=2
check_same "$tmp/gpt_1to2" "$tmp/gpt1"

one "$tmp/llama1" "${llama[@]}"
run 2 4 "$tmp/llama_pp2" --set parallel.pp=2 "${llama[@]}"
check_same "$tmp/llama_pp2" "$tmp/llama1"
run 4 4 "$tmp/llama_pp4" --set parallel.pp=4 --set parallel.schedule=gpipe "${llama[@]}"
check_same "$tmp/llama_pp4" "$tmp/llama1"
run 2 4 "$tmp/llama_int" --set parallel.pp=2 --set parallel.schedule=interleaved --set parallel.virtual_stages=2 "${llama[@]}"
check_same "$tmp/llama_int" "$tmp/llama1"

# train.fused_loss on the last stage (no [N, vocab] logits) reproduces the one-process fused run.
one "$tmp/gpt1_fused" --set train.fused_loss=true
run 2 4 "$tmp/gpt_pp2_fused" --set parallel.pp=2 --set train.fused_loss=true
expect_log "$tmp/gpt_pp2_fused.log" "train.fused_loss: .* on the last pipeline stage"
check_same "$tmp/gpt_pp2_fused" "$tmp/gpt1_fused"
one "$tmp/llama1_fused" --set train.fused_loss=true "${llama[@]}"
run 2 4 "$tmp/llama_pp2_fused" --set parallel.pp=2 --set train.fused_loss=true "${llama[@]}"
check_same "$tmp/llama_pp2_fused" "$tmp/llama1_fused"
# Unsupported combinations name their recipe keys.
if "$bin" train "$recipe" "${common[@]}" "${pp_common[@]}" --set parallel.pp=2 --set parallel.virtual_stages=2 \
     --set run.dir="$tmp/bad" > "$tmp/bad.log" 2>&1; then
  echo "FAIL: virtual_stages without the interleaved schedule was accepted"; exit 1
fi
expect_log "$tmp/bad.log" "parallel.virtual_stages = 2 needs parallel.schedule = interleaved"
echo "pipeline torchrun: ok"
