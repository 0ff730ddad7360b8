#!/usr/bin/env bash
# A grown model keeps training under tensor parallelism: a 1-layer GPT trained 10 steps in one process
# is stacked to 2 layers offline (`strata grow`, G_stack); resuming the grown checkpoint with tp = 2,
# and with pp = 2 (one grown layer per stage), under torchrun reproduces the one-process resume
# (per-step losses and final weights within 1e-5).
# A growth event still pending is refused under tp = 2 with a message that says how to proceed.
source "$(dirname "$0")/mp_common.sh"
make_dataset
grow=(--set growth.operator=g_stack --set growth.factor=2 --set model.n_layer=2)
"$bin" train "$recipe" "${common[@]}" --set train.grad_accum=2 --set train.steps=10 --set checkpoint.every=10 \
  --set run.dir="$tmp/small" > "$tmp/small.log" 2>&1 || { echo "FAIL: small run"; show_log "$tmp/small.log"; exit 1; }
for d in one tp2 pp2; do
  "$bin" grow --from "$tmp/small" --to "$recipe" --out "$tmp/$d" "${common[@]}" "${grow[@]}" > "$tmp/grow_$d.log" 2>&1 ||
    { echo "FAIL: strata grow"; show_log "$tmp/grow_$d.log"; exit 1; }
done
after=(--set train.grad_accum=2 --set train.steps=16 --set checkpoint.every=0)
"$bin" train "$recipe" "${common[@]}" "${grow[@]}" "${after[@]}" --set run.dir="$tmp/one" --resume > "$tmp/one.log" 2>&1 ||
  { echo "FAIL: one-process resume of the grown checkpoint"; show_log "$tmp/one.log"; exit 1; }
"$src/scripts/launch/torchrun.sh" -n 2 "$recipe" "${common[@]}" "${grow[@]}" "${after[@]}" --set parallel.tp=2 \
  --set run.dir="$tmp/tp2" --resume > "$tmp/tp2.log" 2>&1 || { echo "FAIL: tp = 2 resume of the grown checkpoint"; show_log "$tmp/tp2.log"; exit 1; }
expect_log "$tmp/tp2.log" "tensor parallel: tp = 2"
expect_log "$tmp/one.log" "growth: the checkpoint holds the grown model"
check_same "$tmp/tp2" "$tmp/one"
"$src/scripts/launch/torchrun.sh" -n 2 "$recipe" "${common[@]}" "${grow[@]}" "${after[@]}" --set parallel.pp=2 \
  --set run.dir="$tmp/pp2" --resume > "$tmp/pp2.log" 2>&1 || { echo "FAIL: pp = 2 resume of the grown checkpoint"; show_log "$tmp/pp2.log"; exit 1; }
expect_log "$tmp/pp2.log" "pipeline: pp rank 0 of 2"
check_same "$tmp/pp2" "$tmp/one"
# A growth event that has not happened yet cannot run sharded.
if "$src/scripts/launch/torchrun.sh" -n 2 "$recipe" "${common[@]}" "${grow[@]}" --set parallel.tp=2 \
     --set run.dir="$tmp/pending" > "$tmp/pending.log" 2>&1; then
  echo "FAIL: a pending growth event ran under tp = 2"; exit 1
fi
expect_log "$tmp/pending.log" "needs a single process"
echo "PASS: grown checkpoint trains on under tp = 2 and pp = 2 like one process; pending growth refused"
