#!/usr/bin/env bash
# The caching CPU allocator (train.cpu_cache, trainer/cpu_allocator.hpp) against c10's default path
# (`strata bench-model --no-cpu-cache`): training-step tokens/s, minor page faults per step and peak RSS,
# run alternately (on, off, on, off, ...) REPS times per preset so machine load hits both alike; prints
# every run, the medians and their ratio. Not a test.
# Environment: PRESETS ("gpt2-124m llama-110m"), BATCH (2), SEQ (64), STEPS (3), THREADS (all cores), REPS (3).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${STRATA_BUILD_DIR:-build}/bin/strata"
[ -x "$bin" ] || { echo "cpu_cache.sh: build first ($bin missing)" >&2; exit 1; }
batch="${BATCH:-2}" seq="${SEQ:-64}" steps="${STEPS:-3}" threads="${THREADS:-$(nproc)}" reps="${REPS:-3}"
source scripts/bench/lib.sh  # median
field() { sed -n "s|$1|\\1|p" <<<"$2"; }
for preset in ${PRESETS:-gpt2-124m llama-110m}; do
  echo "== $preset: batch $batch x seq $seq, $steps timed steps (+1 warm-up), $threads threads, AdamW, $reps alternating reps"
  on="" off=""
  for r in $(seq "$reps"); do
    for mode in on off; do
      flag=(); [ "$mode" = off ] && flag=(--no-cpu-cache)
      line=$("$bin" bench-model "recipes/presets/$preset.yaml" --batch "$batch" --seq "$seq" --steps "$steps" \
             --threads "$threads" --optimizer adamw "${flag[@]}" | grep '^strata:')
      tps=$(field '^strata: \([0-9.]*\) tokens.*' "$line")
      faults=$(field '.*, \([0-9]*\) page faults/step.*' "$line")
      rss=$(field '.*peak RSS \([0-9]*\) MiB.*' "$line")
      echo "rep $r cache $mode: $tps tokens/s, $faults page faults/step, peak RSS $rss MiB"
      if [ "$mode" = on ]; then on="$on $tps"; else off="$off $tps"; fi
    done
  done
  awk -v a="$(echo "$on" | median)" -v b="$(echo "$off" | median)" -v n="$preset" \
    'BEGIN { printf "%s: median %.1f tokens/s with the cache, %.1f without; cache / no cache = %.2f\n", n, a, b, a / b }'
done
