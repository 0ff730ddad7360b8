#!/usr/bin/env bash
# Tensor parallelism through torchrun (the venv's, --no-python): for GPT-2 and Llama with GQA, tp = 2,
# (tp, dp) = (2, 2), sequence parallelism, and tp = 4 with KV heads shared by two ranks reproduce the
# one-process run (per-step losses in metrics.jsonl and final weights within 1e-5, compare_runs); a
# checkpoint written under tp = 2 resumes under tp = 1 and one written under tp = 1 resumes under tp = 2;
# (tp, dp) = (2, 2) with ZeRO-1 equals it too and resumes exactly from step 10; BERT at tp = 2 equals tp = 1.
source "$(dirname "$0")/mp_common.sh"
make_dataset
# Drops the last checkpoint of a copy of run $1 (saved every 10 steps) so that --resume starts at step 10.
cut_at_10() { cp -r "$1" "$2"; rm -rf "$2/checkpoints/step_20"; }
ckpt=(--set checkpoint.every=10 --set checkpoint.keep=5)

for arch in gpt llama; do
  if [ "$arch" = gpt ]; then
    model=(--set model.n_head=4)
  else  # RMSNorm, RoPE, SwiGLU, untied head; 4 query heads over 2 KV heads
    model=(--set model.arch=llama --set model.n_head=4 --set model.n_kv_head=2 --set model.multiple_of=16
           --set model.tie_embeddings=false --set model.bias=false)
  fi
  ref="$tmp/$arch-ref"
  "$bin" train "$recipe" "${common[@]}" "${model[@]}" "${ckpt[@]}" --set train.grad_accum=4 --set run.dir="$ref" \
    > "$ref.log" 2>&1 || { echo "FAIL: reference $arch run"; show_log "$ref.log"; exit 1; }

  run 2 "$tmp/$arch-tp2" "${model[@]}" "${ckpt[@]}" --set parallel.tp=2 --set train.grad_accum=4
  expect_log "$tmp/$arch-tp2.log" "tensor parallel: tp = 2"
  check_same "$tmp/$arch-tp2" "$ref"

  run 4 "$tmp/$arch-tp2dp2" "${model[@]}" --set parallel.tp=2 --set train.grad_accum=2
  expect_log "$tmp/$arch-tp2dp2.log" "data parallel: dp = 2"
  check_same "$tmp/$arch-tp2dp2" "$ref"

  run 2 "$tmp/$arch-sp2" "${model[@]}" --set parallel.tp=2 --set parallel.sequence_parallel=true --set train.grad_accum=4
  expect_log "$tmp/$arch-sp2.log" "sequence parallel"
  check_same "$tmp/$arch-sp2" "$ref"
  check_same "$tmp/$arch-sp2" "$tmp/$arch-tp2"

  # tp = 4: GPT splits 4 heads one per rank; Llama's 2 KV heads are each shared by 2 ranks.
  run 4 "$tmp/$arch-tp4" "${model[@]}" --set parallel.tp=4 --set train.grad_accum=4
  check_same "$tmp/$arch-tp4" "$ref"

  # Checkpoints hold tp = 1 tensors: tp = 2 -> tp = 1 and tp = 1 -> tp = 2.
  cut_at_10 "$tmp/$arch-tp2" "$tmp/$arch-to1"
  "$bin" train "$recipe" "${common[@]}" "${model[@]}" "${ckpt[@]}" --set train.grad_accum=4 --set run.dir="$tmp/$arch-to1" \
    --resume > "$tmp/$arch-to1.log" 2>&1 || { echo "FAIL: resume under tp = 1"; show_log "$tmp/$arch-to1.log"; exit 1; }
  expect_log "$tmp/$arch-to1.log" "resumed from .*step_10"
  check_same "$tmp/$arch-to1" "$ref"
  cut_at_10 "$ref" "$tmp/$arch-to2"
  run 2 "$tmp/$arch-to2" "${model[@]}" "${ckpt[@]}" --set parallel.tp=2 --set train.grad_accum=4 --resume
  expect_log "$tmp/$arch-to2.log" "resumed from .*step_10"
  check_same "$tmp/$arch-to2" "$ref"
  echo "$arch: ok"
done

# ZeRO-1 with tp: each tp rank's optimizer state is split over its dp group; (tp, dp) = (2, 2)
# reproduces the one-process run, and a checkpoint written at step 10 resumes exactly.
model=(--set model.n_head=4)
z=(--set parallel.tp=2 --set parallel.zero1=true --set train.grad_accum=2)
run 4 "$tmp/gpt-tp2dp2z" "${model[@]}" "${ckpt[@]}" "${z[@]}"
expect_log "$tmp/gpt-tp2dp2z.log" "tensor parallel + ZeRO-1"
check_same "$tmp/gpt-tp2dp2z" "$tmp/gpt-ref"
cut_at_10 "$tmp/gpt-tp2dp2z" "$tmp/gpt-tp2dp2z-resume"
run 4 "$tmp/gpt-tp2dp2z-resume" "${model[@]}" "${ckpt[@]}" "${z[@]}" --resume
expect_log "$tmp/gpt-tp2dp2z-resume.log" "resumed from .*step_10"
check_same "$tmp/gpt-tp2dp2z-resume" "$tmp/gpt-tp2dp2z"
check_same "$tmp/gpt-tp2dp2z-resume" "$tmp/gpt-ref"
echo "zero1: ok"

# BERT (masked-LM batches; the MLM decoder bias is split with the vocabulary): tp = 2 equals tp = 1.
bert=(--set model.arch=bert --set model.n_head=4 --set data.objective=mlm --set train.grad_accum=4)
"$bin" train "$recipe" "${common[@]}" "${bert[@]}" --set run.dir="$tmp/bert-ref" > "$tmp/bert-ref.log" 2>&1 ||
  { echo "FAIL: reference bert run"; show_log "$tmp/bert-ref.log"; exit 1; }
run 2 "$tmp/bert-tp2" "${bert[@]}" --set parallel.tp=2
expect_log "$tmp/bert-tp2.log" "tensor parallel: tp = 2"
check_same "$tmp/bert-tp2" "$tmp/bert-ref"
echo "bert: ok"

# What tensor parallelism does not carry yet is refused with the recipe key to change.
if "$src/scripts/launch/torchrun.sh" -n 2 "$recipe" "${common[@]}" --set model.n_head=4 --set parallel.tp=2 \
     --set train.activation_checkpointing=true --set run.dir="$tmp/ac" > "$tmp/ac.log" 2>&1; then
  echo "FAIL: tp = 2 with train.activation_checkpointing = true was accepted"; exit 1
fi
expect_log "$tmp/ac.log" "train.activation_checkpointing"
echo "tensor parallel: ok"
