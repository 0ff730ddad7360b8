#!/usr/bin/env bash
# Pipeline bubble measured with the real runtime (not a test): `strata train` with parallel.pp = p
# under torchrun (one process per pipeline rank, Gloo point-to-point on 127.0.0.1, one intra-op
# thread each). Every rank times run_step's wall time and the forwards/backwards in it; the idle
# share 1 - compute / wall (mean over ranks, first step excluded) is printed beside the closed form
# (p-1)/(m+p-1) (GPipe, 1F1B) or (p-1)/(v*m+p-1) (interleaved), m = train.grad_accum.
# On a machine with fewer cores than p the ranks share cores and compute times stretch; read those
# rows with that in mind (nproc is printed).
# Usage: scripts/bench/pp_runtime.sh [path/to/strata]   (default: $STRATA_BUILD_DIR or build, bin/strata)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin="${1:-${STRATA_BUILD_DIR:-build}/bin/strata}"
[ -x "$bin" ] || { echo "pp_runtime.sh: $bin not found; build first (scripts/build)" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tmp=$(mktemp -d /tmp/strata_ppbench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1 STRATA_LOG_LEVEL=info
for i in $(seq 1 3000); do
  echo "Verse $i: and the $((i * 7919 % 997)) sheep went over the $((i % 13)) hills."
  if ((i % 40 == 0)); then echo; fi  # document breaks, so prep can split off validation
done > "$tmp/c.txt"
"$bin" prep --input "$tmp/c.txt" --out "$tmp/data" > "$tmp/prep.log" 2>&1 || { cat "$tmp/prep.log"; exit 1; }
steps="${PP_BENCH_STEPS:-6}"
echo "nproc $(nproc --all); model gpt n_layer 8 d_model 128 seq 64 micro_batch 4; $steps steps (first not timed)"
printf "%-12s %2s %3s %2s | %-9s %-9s | %s\n" schedule p m v measured theory "per rank"
for p in ${PP_BENCH_P:-2 4}; do
  for m in ${PP_BENCH_M:-2 4 8 16}; do
    for spec in "1f1b 1" "gpipe 1" "interleaved 2"; do
      read -r sch v <<<"$spec"
      if [ "$sch" = interleaved ] && [ $((m % p)) -ne 0 ]; then continue; fi
      dir="$tmp/run_${sch}_${p}_${m}"
      STRATA_BIN="$bin" "$root/scripts/launch/torchrun.sh" -n "$p" "$root/recipes/kjv-gpt-tiny.yaml" \
        --set data.path="$tmp/data" --set run.dir="$dir" --set model.n_layer=8 --set model.d_model=128 \
        --set model.n_head=4 --set model.max_seq_len=64 --set train.seq_len=64 --set train.micro_batch=4 \
        --set train.grad_accum="$m" --set train.steps="$steps" --set train.eval_every=0 --set train.eval_batches=1 \
        --set train.threads=1 --set checkpoint.every=0 --set parallel.pp="$p" --set parallel.schedule="$sch" \
        --set parallel.virtual_stages="$v" > "$dir.log" 2>&1 || { echo "run failed:"; tail -20 "$dir.log"; exit 1; }
      line=$(grep "pipeline bubble:" "$dir.log")
      read -r got want ranks < <(sed -E 's/.*idle ([0-9.]+) of wall time \(mean over ranks; per rank ([0-9. ]+)\), closed form .* = ([0-9.]+);.*/\1 \3 \2/' <<<"$line")
      printf "%-12s %2s %3s %2s | %-9s %-9s | %s\n" "$sch" "$p" "$m" "$v" "$got" "$want" "$ranks"
    done
  done
done
