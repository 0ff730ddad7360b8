#!/usr/bin/env bash
# Interleaved A/B of training-step tokens/s: Strata (`strata bench-model`) and the PyTorch-eager
# reference (scripts/bench/models_reference.py) run alternately (S P S P ...) REPS times per preset,
# so load from other processes on a shared machine hits both sides alike. Prints every run, the
# medians and the ratio of medians. Not a test.
# Environment: PRESETS ("gpt2-124m llama-110m"), BATCH (2), SEQ (64), STEPS (3 timed, +1 warm-up),
# THREADS (1), REPS (5), DTYPE (fp32; bf16 = autocast on both sides), OPTIMIZER (adamw; none = forward+backward only), BASE_BIN (another `strata`
# binary, e.g. a build of the previous commit: run as a third side each rep, for before/after).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${STRATA_BUILD_DIR:-build}/bin/strata"
python="${STRATA_PYTHON:-${STRATA_CACHE:-$HOME/.cache/strata}/venv/bin/python}"
batch="${BATCH:-2}" seq="${SEQ:-64}" steps="${STEPS:-3}" threads="${THREADS:-1}" reps="${REPS:-5}" optimizer="${OPTIMIZER:-adamw}" dtype="${DTYPE:-fp32}"
[ -x "$bin" ] || { echo "models_ab.sh: build first ($bin missing)" >&2; exit 1; }
source scripts/bench/lib.sh  # median
for preset in ${PRESETS:-gpt2-124m llama-110m}; do
  echo "== $preset: batch $batch, seq $seq, $steps timed steps (+1 warm-up), $threads threads, optimizer $optimizer, $dtype, $reps interleaved reps"
  ss="" ps="" bs=""
  for r in $(seq "$reps"); do
    out=$("$bin" bench-model "recipes/presets/$preset.yaml" --batch "$batch" --seq "$seq" --steps "$steps" --threads "$threads" --optimizer "$optimizer" --dtype "$dtype")
    cfg=$(echo "$out" | sed -n 's/^config: //p')
    get() { echo "$cfg" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    ref=$("$python" scripts/bench/models_reference.py --arch "$(get arch)" --n_layer "$(get n_layer)" --d_model "$(get d_model)" \
          --n_head "$(get n_head)" --n_kv_head "$(get n_kv_head)" --d_ff "$(get d_ff)" --vocab "$(get vocab)" --tie "$(get tie)" \
          --batch "$batch" --seq "$seq" --steps "$steps" --warmup 1 --threads "$threads" --optimizer "$optimizer" --dtype "$dtype")
    s=$(echo "$out" | sed -n 's/^strata: \([0-9.]*\) tokens.*/\1/p')
    if [ -n "${BASE_BIN:-}" ]; then
      b=$("$BASE_BIN" bench-model "recipes/presets/$preset.yaml" --batch "$batch" --seq "$seq" --steps "$steps" --threads "$threads" --optimizer "$optimizer" --dtype "$dtype" |
          sed -n 's/^strata: \([0-9.]*\) tokens.*/\1/p')
      echo "rep $r: base strata $b tokens/s"
      bs="$bs $b"
    fi
    p=$(echo "$ref" | sed -n 's/^pytorch: \([0-9.]*\) tokens.*/\1/p')
    echo "rep $r: strata $s tokens/s, pytorch $p tokens/s"
    ss="$ss $s" ps="$ps $p"
  done
  sm=$(echo "$ss" | median) pm=$(echo "$ps" | median)
  awk -v s="$sm" -v p="$pm" -v n="$preset" 'BEGIN { printf "%s: median strata %.1f, pytorch %.1f tokens/s; strata / pytorch-eager = %.3f\n", n, s, p, s / p }'
  if [ -n "$bs" ]; then
    bm=$(echo "$bs" | median)
    awk -v b="$bm" -v s="$sm" -v p="$pm" -v n="$preset" 'BEGIN { printf "%s: median base %.1f tokens/s; base / pytorch-eager = %.3f; strata / base = %.3f\n", n, b, b / p, s / b }'
  fi
done
