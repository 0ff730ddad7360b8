#!/usr/bin/env bash
# The PyTorch-eager reference of the benchmarks (scripts/bench/models_reference.py) computes the same
# function as Strata: started from the weights and batch `strata bench-model --save-init` wrote, its
# first-step loss equals Strata's (relative 1e-5) for GPT-2 (tied head, biases, learned positions)
# and Llama (GQA, untied head, RoPE, SwiGLU), in fp32 and under CPU bf16 autocast on both sides (the
# bf16 losses also equal to 9 digits, and differ from the fp32 ones). Skipped when the venv has no python.
set -euo pipefail
src="${STRATA_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
bin="${STRATA_BIN:-$src/build/bin/strata}"
py="${STRATA_PYTHON:-${STRATA_CACHE:-$HOME/.cache/strata}/venv/bin/python}"
[ -x "$py" ] || { echo "no python at $py: skipped"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() {  # $1 = preset, then --set overrides; DTYPE (fp32 | bf16: CPU autocast on both sides)
  local preset=$1 out cfg s p dtype=${DTYPE:-fp32}
  shift
  out=$("$bin" bench-model "$src/recipes/presets/$preset.yaml" "$@" --batch 3 --seq 24 --steps 0 --warmup 1 --threads 2 \
        --dtype "$dtype" --save-init "$tmp/$preset.safetensors")
  cfg=$(echo "$out" | sed -n 's/^config: //p')
  get() { echo "$cfg" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  p=$("$py" "$src/scripts/bench/models_reference.py" --arch "$(get arch)" --n_layer "$(get n_layer)" --d_model "$(get d_model)" \
      --n_head "$(get n_head)" --n_kv_head "$(get n_kv_head)" --d_ff "$(get d_ff)" --vocab "$(get vocab)" --tie "$(get tie)" \
      --batch 3 --seq 24 --steps 0 --warmup 1 --threads 2 --dtype "$dtype" --load "$tmp/$preset.safetensors" | sed -n 's/^first_loss: //p')
  s=$(echo "$out" | sed -n 's/^first_loss: //p')
  echo "$preset ($dtype $*): strata first loss $s, pytorch reference $p"
  awk -v s="$s" -v p="$p" 'BEGIN { d = s - p; if (d < 0) d = -d; exit !(s > 0 && p > 0 && d <= 1e-5 * p) }' ||
    { echo "FAILED: first-step losses differ beyond 1e-5 relative"; exit 1; }
}
small=(--set model.n_layer=2 --set model.d_model=64 --set model.n_head=4 --set model.vocab_size=300 --set model.max_seq_len=64)
check gpt2-124m "${small[@]}"
check llama-110m "${small[@]}" --set model.n_kv_head=2 --set model.tie_embeddings=false
DTYPE=bf16 check gpt2-124m "${small[@]}"
DTYPE=bf16 check llama-110m "${small[@]}" --set model.n_kv_head=2 --set model.tie_embeddings=false
