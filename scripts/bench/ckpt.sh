#!/usr/bin/env bash
# Checkpoint benchmark (not a test; prints measurements): how long the training loop is blocked by
# a synchronous save vs an asynchronous one (checkpoint.async: staging copy, then a background
# thread writes) of the same state, from the trainer's "saves blocked training" log line.
# Usage: scripts/bench/ckpt.sh [--set key=value ...]   (STRATA_BIN, default build/bin/strata)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${STRATA_BIN:-$root/build/bin/strata}"
tmp=$(mktemp -d /tmp/strata_bench_ckpt.XXXXXX); trap 'rm -rf "$tmp"' EXIT
for i in $(seq 1 3000); do
  echo "Line $i of a benchmark corpus: $((i * 7919 % 997)) words about $((i % 17)) things."
  if ((i % 40 == 0)); then echo; fi
done > "$tmp/c.txt"
"$bin" prep --input "$tmp/c.txt" --out "$tmp/data" > "$tmp/prep.log" 2>&1 || { cat "$tmp/prep.log"; exit 1; }
common=(--set data.path="$tmp/data" --set model.n_layer=4 --set model.d_model=128 --set model.n_head=4 --set model.max_seq_len=64
        --set train.seq_len=64 --set train.micro_batch=4 --set train.grad_accum=1 --set train.threads=1 --set train.steps=40
        --set train.log_every=1000 --set train.eval_every=0 --set train.eval_batches=1 --set checkpoint.every=5
        --set checkpoint.keep=2 "$@")
for mode in false true; do
  "$bin" train "$root/recipes/kjv-gpt-tiny.yaml" "${common[@]}" --set checkpoint.async=$mode --set run.dir="$tmp/run_$mode" \
    > "$tmp/$mode.log" 2>&1 || { tail -20 "$tmp/$mode.log"; exit 1; }
done
state=$(du -sb "$(ls -d "$tmp"/run_false/checkpoints/step_* | tail -1)" | cut -f1)
sync=$(grep -o "blocked training for [0-9.]* s in total ([0-9.]* s per save" "$tmp/false.log" | grep -o "([0-9.]*" | tr -d '(')
async=$(grep -o "blocked training for [0-9.]* s in total ([0-9.]* s per save" "$tmp/true.log" | grep -o "([0-9.]*" | tr -d '(')
echo "$(grep -o '[0-9.]*M parameters' "$tmp/false.log" | head -1), checkpoint $(awk "BEGIN{printf \"%.1f\", $state/1e6}") MB, 8 saves in 40 steps"
echo "training blocked per save: synchronous $sync s, asynchronous $async s; ratio sync/async $(awk "BEGIN{printf \"%.1f\", $sync/$async}")x"
grep -o "waited [0-9.]* s for the last one to commit" "$tmp/true.log" || true
