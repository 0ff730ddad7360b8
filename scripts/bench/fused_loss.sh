#!/usr/bin/env bash
# The output head + cross-entropy as one chunked pass (train.fused_loss, models/blocks/linear_cross_entropy)
# against full logits: training-step tokens/s and the process's peak resident memory of the same model,
# batch and steps, each in its own process (peak RSS is a per-process high-water mark). Not a test.
# Environment: PRESET (gpt2-124m), BATCH (4), SEQ (1024), STEPS (2), THREADS (all cores), DEVICE (cpu),
# DTYPE (fp32; bf16 with DEVICE=cuda).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${STRATA_BUILD_DIR:-build}/bin/strata"
[ -x "$bin" ] || { echo "fused_loss.sh: build first ($bin missing)" >&2; exit 1; }
preset="${PRESET:-gpt2-124m}" batch="${BATCH:-4}" seq="${SEQ:-1024}" steps="${STEPS:-2}" threads="${THREADS:-$(nproc)}"
args=(bench-model "recipes/presets/$preset.yaml" --batch "$batch" --seq "$seq" --steps "$steps" --threads "$threads"
      --optimizer adamw --device "${DEVICE:-cpu}" --dtype "${DTYPE:-fp32}")
echo "== $preset: batch $batch x seq $seq, $steps timed steps (+1 warm-up), $threads threads, ${DEVICE:-cpu} ${DTYPE:-fp32}"
plain=$("$bin" "${args[@]}" | grep '^strata:')
echo "full logits: ${plain#strata: }"
fused=$("$bin" "${args[@]}" --fused-loss | grep '^strata:')
echo "fused loss:  ${fused#strata: }"
tps() { sed -n 's/^strata: \([0-9.]*\) tokens.*/\1/p' <<<"$1"; }
rss() { sed -n 's/.*peak RSS \([0-9]*\) MiB.*/\1/p' <<<"$1"; }
loss() { sed -n 's/.*first loss \([0-9.]*\),.*/\1/p' <<<"$1"; }
awk -v a="$(tps "$plain")" -v b="$(tps "$fused")" -v ra="$(rss "$plain")" -v rb="$(rss "$fused")" \
    -v la="$(loss "$plain")" -v lb="$(loss "$fused")" 'BEGIN {
  printf "fused / full logits: tokens/s %.2f; peak RSS %d -> %d MiB (%+d MiB); first loss %s vs %s\n", b / a, ra, rb, rb - ra, lb, la }'
