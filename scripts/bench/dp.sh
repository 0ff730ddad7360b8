#!/usr/bin/env bash
# Data-parallel benchmark (not a test; prints measurements, never pass/fail):
#  1. bytes sent per rank per step, measured on the loopback interface (/proc/net/dev, difference
#     between a long and a short run, so start-up traffic cancels), against the ring all-reduce
#     formula 2 (n-1)/n x gradient bytes;
#  2. the fraction of backward time spent waiting for communication after backward, with the
#     buckets all-reduced during backward (parallel.overlap = true) and after it (false).
# Usage: scripts/bench/dp.sh [NPROC (2)] [--set key=value ...]   (STRATA_BIN, default build/bin/strata)
# Other traffic on lo (other jobs on this machine) inflates the byte count; run it on a quiet machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${STRATA_BIN:-$root/build/bin/strata}"
n="${1:-2}"; shift || true
tmp=$(mktemp -d /tmp/strata_bench_dp.XXXXXX); trap 'rm -rf "$tmp"' EXIT
for i in $(seq 1 3000); do
  echo "Line $i of a benchmark corpus: $((i * 7919 % 997)) words about $((i % 17)) things."
  if ((i % 40 == 0)); then echo; fi  # blank lines separate documents
done > "$tmp/c.txt"
"$bin" prep --input "$tmp/c.txt" --out "$tmp/data" > "$tmp/prep.log" 2>&1 || { cat "$tmp/prep.log"; exit 1; }
common=(--set data.path="$tmp/data" --set model.n_layer=2 --set model.d_model=128 --set model.n_head=4 --set model.max_seq_len=64
        --set train.seq_len=64 --set train.micro_batch=8 --set train.grad_accum=1 --set train.threads=1 --set train.log_every=1000
        --set train.eval_every=0 --set train.eval_batches=1 --set checkpoint.every=0 --set parallel.bucket_mb=0.5 "$@")
lo_tx() { awk '/^ *lo:/ {print $10}' /proc/net/dev; }
run() {  # run STEPS OVERLAP LOG -> bytes on lo
  local before after
  before=$(lo_tx)
  STRATA_BIN="$bin" "$root/scripts/launch/torchrun.sh" -n "$n" "$root/recipes/kjv-gpt-tiny.yaml" "${common[@]}" \
    --set train.steps="$1" --set parallel.overlap="$2" --set run.dir="$tmp/run_$1_$2" > "$3" 2>&1
  after=$(lo_tx)
  echo $((after - before))
}
short=10 long=40
b_short=$(run $short true "$tmp/short.log")
b_long=$(run $long true "$tmp/long_overlap.log")
run $long false "$tmp/long_serial.log" > /dev/null
per_step_all=$(( (b_long - b_short) / (long - short) ))
line=$(grep "data parallel: .* MB reduced" "$tmp/long_overlap.log")
payload=$(sed -E 's/.*: ([0-9.]+) MB reduced per step.*/\1/' <<< "$line")
ring=$(sed -E 's/.*ring estimate ([0-9.]+) MB sent.*/\1/' <<< "$line")
echo "dp = $n ranks on one machine (loopback), $(grep -o '[0-9.]*M parameters' "$tmp/long_overlap.log" | head -1)"
echo "gradient payload per step: $payload MB; ring all-reduce formula 2(n-1)/n x payload = $ring MB per rank"
awk -v b="$per_step_all" -v n="$n" -v r="$ring" 'BEGIN { m = b / n / 1e6; printf "measured on lo: %.3f MB per rank per step (%.2fx the formula; includes the loss all-reduce and TCP framing)\n", m, m / r }'
for mode in overlap serial; do
  l=$(grep "data parallel: .* MB reduced" "$tmp/long_$mode.log")
  echo "$mode: $(sed -E 's/.*; (backward .*)/\1/' <<< "$l")"
done
