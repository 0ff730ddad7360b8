#!/usr/bin/env bash
# Forward+backward tokens/s of the gpt2-124m and llama-110m presets on CPU: Strata (C++) next to a
# PyTorch-eager Python model of the same shape (scripts/bench/models_reference.py), in the same
# invocation with the same threads, batch and sequence length. Prints the ratio. Not a test.
# Environment: BATCH (2), SEQ (64), STEPS (3), THREADS (all cores), PRESETS ("gpt2-124m llama-110m"),
# OPTIMIZER (none: forward+backward; adamw: a full training step in both), DTYPE (fp32; bf16: autocast on both sides).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${STRATA_BUILD_DIR:-build}/bin/strata"
python="${STRATA_PYTHON:-${STRATA_CACHE:-$HOME/.cache/strata}/venv/bin/python}"
batch="${BATCH:-2}" seq="${SEQ:-64}" steps="${STEPS:-3}" threads="${THREADS:-$(nproc)}"
[ -x "$bin" ] || { echo "models.sh: build first ($bin missing)" >&2; exit 1; }
for preset in ${PRESETS:-gpt2-124m llama-110m}; do
  echo "== $preset: batch $batch, seq $seq, $steps timed steps (+1 warm-up), $threads threads, ${DTYPE:-fp32}"
  out=$("$bin" bench-model "recipes/presets/$preset.yaml" --batch "$batch" --seq "$seq" --steps "$steps" --threads "$threads" --optimizer "${OPTIMIZER:-none}" --dtype "${DTYPE:-fp32}")
  echo "$out"
  cfg=$(echo "$out" | sed -n 's/^config: //p')
  get() { echo "$cfg" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  ref=$("$python" scripts/bench/models_reference.py --arch "$(get arch)" --n_layer "$(get n_layer)" --d_model "$(get d_model)" \
        --n_head "$(get n_head)" --n_kv_head "$(get n_kv_head)" --d_ff "$(get d_ff)" --vocab "$(get vocab)" --tie "$(get tie)" \
        --batch "$batch" --seq "$seq" --steps "$steps" --warmup 1 --threads "$threads" --optimizer "${OPTIMIZER:-none}" --dtype "${DTYPE:-fp32}")
  echo "$ref"
  s=$(echo "$out" | sed -n 's/^strata: \([0-9.]*\) tokens.*/\1/p')
  p=$(echo "$ref" | sed -n 's/^pytorch: \([0-9.]*\) tokens.*/\1/p')
  awk -v s="$s" -v p="$p" -v n="$preset" 'BEGIN { printf "%s: strata / pytorch-eager = %.2f\n", n, s / p }'
done
