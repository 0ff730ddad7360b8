#!/usr/bin/env bash
# GPU runbook: on a machine with an NVIDIA GPU and python3 holding torch 2.11 (CUDA 13), but without
# Strata's Debian libraries, this
#   1. builds Strata from source against that python3's LibTorch, from the .deb files that
#      scripts/gpu/pack.sh gathered (unpacked with dpkg -x into a folder; nothing is installed), in the
#      background while the checks below run on the prebuilt binaries pack.sh carried;
#   2. runs the CUDA tests (tests/trainer/test_cuda.cpp: CUDA vs CPU logits and gradients, bf16
#      autocast, fused AdamW, `strata train` on CUDA with exact resume and CPU-readable checkpoints);
#   3. measures GPT-2 124M and Llama 110M bf16 training steps (forward, backward, fused AdamW) in
#      tokens/s and MFU, next to the PyTorch-eager reference of the same shapes on the same card;
#   4. trains a GPT-2-124M-shaped byte-level model on the bundled corpus end to end and samples it;
#   5. reruns the CUDA tests with the binaries built in step 1, if the build finished in time.
# It ends with a summary. Everything is written under $OUT (or ./gpu-out).
# Usage: scripts/gpu/check.sh [carried folder, default .gpu]   Environment: BATCH (16), SEQ (1024),
# STEPS (20), BUILD_DEADLINE (seconds from start to wait for the source build, 420), JOBS (12),
# CHECKS (which steps: "build sdpa tests bench train", default all), PAD_VOCAB (1: also time GPT-2 with
# its vocabulary padded to 50304, a multiple of 64, next to the reference).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
pack="$(cd "${1:-.gpu}" && pwd)"
out="${OUT:-$root/gpu-out}"
mkdir -p "$out"
checks="${CHECKS:-build sdpa tests bench train}"
want() { [[ " $checks " == *" $1 "* ]]; }
batch="${BATCH:-16}" seq="${SEQ:-1024}" steps="${STEPS:-20}" deadline="${BUILD_DEADLINE:-420}" jobs="${JOBS:-12}"
t0=$(date +%s)
summary=()
note() { echo "== $*"; summary+=("$*"); }

py=$(command -v python3)
torch_dir=$("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__))') || { echo "check.sh: python3 has no torch" >&2; exit 1; }
torch_prefix=$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')
venv=$("$py" -c 'import sys; print(sys.prefix)')
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
note "card: $(head -1 "$out/gpu.txt"); torch $("$py" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)')"

# 1. Source build in the background (dpkg -x into a folder; cmake finds it through CMAKE_PREFIX_PATH).
sysroot=/tmp/strata-sysroot
mkdir -p "$sysroot"
for f in "$pack"/debs/*.deb; do dpkg -x "$f" "$sysroot"; done
lib="$sysroot/usr/lib/x86_64-linux-gnu"
want build && (
  export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
  export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
  cmake -S "$root" -B /tmp/strata-build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_BUILD_TESTS=ON \
    -DCMAKE_PREFIX_PATH="$torch_prefix;$sysroot/usr" -DSTRATA_VENV="$venv" -DSTRATA_SYSTEM_INCLUDE="$sysroot/usr/include" \
    -DSTRATA_MPI_INCLUDE="$lib/openmpi/include" -DSTRATA_MPI_LIBRARY="$lib/openmpi/lib/libmpi.so" \
    -DProtobuf_PROTOC_EXECUTABLE="$sysroot/usr/bin/protoc" -DProtobuf_INCLUDE_DIR="$sysroot/usr/include" \
    -DProtobuf_LIBRARY="$lib/libprotobuf.so" &&
  nice -n 19 cmake --build /tmp/strata-build -j "$jobs" --target strata test_cuda
) >"$out/build.log" 2>&1 &
build_pid=$!

export LD_LIBRARY_PATH="$pack/prebuilt/lib:$lib:$torch_dir/lib:${LD_LIBRARY_PATH:-}"
bin="$pack/prebuilt/bin/strata"

# 2. Attention gradients of torch's SDPA backends in fp32 against float64 (a diagnostic, printed).
want sdpa && "$py" "$root/scripts/gpu/sdpa_check.py" 2>&1 | tee "$out/sdpa_check.txt"

# CUDA tests on the prebuilt binaries.
run_cuda_tests() {  # $1 = test binary, $2 = label
  local log="$out/test_cuda_$2.log"
  (cd "$root" && timeout 300 "$1" --durations yes -s "[cuda]") >"$log" 2>&1
  local rc=$?
  grep -E "CUDA fp32 vs float64|cuda fp32 vs cpu|cuda bf16|test cases|assertions|no CUDA" "$log" | sort -u | tail -9
  [ $rc -eq 0 ] || grep -B3 -A10 "FAILED" "$log" | head -60
  note "CUDA tests ($2): $( [ $rc -eq 0 ] && echo passed || echo "FAILED rc=$rc, see test_cuda_$2.log") $(grep -E '^(All tests passed|test cases:)' "$log" | tail -1)"
}
want tests && run_cuda_tests "$pack/prebuilt/tests/test_cuda" prebuilt

# 3. Training-step throughput, Strata next to PyTorch eager, same card, shapes, batch and steps.
bench() {  # $1 = preset, then --set overrides
  local s p cfg get preset=$1
  shift
  s=$("$bin" bench-model "$root/recipes/presets/$preset.yaml" "$@" --device cuda --dtype bf16 --optimizer adamw \
      --batch "$batch" --seq "$seq" --steps "$steps" --warmup 5 2>&1)
  echo "$s"
  cfg=$(echo "$s" | sed -n 's/^config: //p')
  get() { echo "$cfg" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  p=$("$py" "$root/scripts/bench/models_reference.py" --arch "$(get arch)" --n_layer "$(get n_layer)" \
      --d_model "$(get d_model)" --n_head "$(get n_head)" --n_kv_head "$(get n_kv_head)" --d_ff "$(get d_ff)" \
      --vocab "$(get vocab)" --tie "$(get tie)" --batch "$batch" --seq "$seq" --steps "$steps" --warmup 5 \
      --threads 4 --device cuda --dtype bf16 --optimizer adamw ${PROFILE:+--profile} 2>&1)
  echo "$p"
  local st pt
  st=$(echo "$s" | sed -n 's/^strata: \([0-9.]*\) tokens.*/\1/p')
  pt=$(echo "$p" | sed -n 's/^pytorch: \([0-9.]*\) tokens.*/\1/p')
  note "$preset${1:+ ($*)} bf16 train step, batch $batch x seq $seq: strata $st tok/s ($(echo "$s" | grep -o 'MFU [0-9.]*%')), pytorch eager $pt tok/s, ratio $(awk -v a="$st" -v b="$pt" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
}
# (a function with a redirection runs in this shell, so its summary lines survive; a pipe would not)
if want bench; then
  PROFILE=1 bench gpt2-124m >"$out/bench_gpt2-124m.txt"
  [ "${PAD_VOCAB:-0}" = 1 ] && PROFILE=1 bench gpt2-124m --set model.vocab_size=50304 >"$out/bench_gpt2-124m-pad.txt"
  bench llama-110m >"$out/bench_llama-110m.txt"
  # The fused LM head + cross-entropy (train.fused_loss), Strata alone: same shapes as the first line.
  "$bin" bench-model "$root/recipes/presets/gpt2-124m.yaml" --device cuda --dtype bf16 --optimizer adamw --fused-loss \
    --batch "$batch" --seq "$seq" --steps "$steps" --warmup 5 >"$out/bench_gpt2-124m-fused.txt" 2>&1
  note "gpt2-124m bf16 train step with --fused-loss: $(sed -n 's/^strata: \([0-9.]*\) tokens.*\(MFU [0-9.]*%\).*/\1 tok\/s (\2)/p' "$out/bench_gpt2-124m-fused.txt")"
  cat "$out"/bench_*.txt
fi

# 4. End to end: GPT-2-124M body on the byte-level corpus (vocab 264), bf16, data loader, eval, sample.
run="$out/run-kjv-124m"
want train && "$bin" train "$root/recipes/kjv-gpt-tiny.yaml" --set data.path="$pack/kjv-byte" --set run.dir="$run" \
  --set model.n_layer=12 --set model.d_model=768 --set model.n_head=12 --set model.max_seq_len=1024 \
  --set train.seq_len=1024 --set train.micro_batch="$batch" --set train.steps=150 --set train.log_every=25 \
  --set train.eval_every=75 --set train.device=cuda --set train.dtype=bf16 --set schedule.warmup_steps=20 \
  --set optim.lr=0.0006 --set checkpoint.every=150 --set train.threads=4 2>&1 | tee "$out/train.log" | grep -E "step|done|error" | tail -12
want train && note "strata train (124M body, kjv-byte, bf16, 150 steps): $(grep -o 'done:.*' "$out/train.log" | head -1 | cut -c1-120)"
want train && note "  last logged: $(grep -E 'step +[0-9]+' "$out/train.log" | tail -1 | sed 's/.*\] //' | cut -c1-160)"
want train && "$bin" generate --run "$run" --prompt "And God said" --max-tokens 120 2>&1 | tail -3 | tee "$out/sample.txt"

# 5. The source build.
want build || build_pid=
[ -z "$build_pid" ] || while kill -0 "$build_pid" 2>/dev/null && [ $(( $(date +%s) - t0 )) -lt "$deadline" ]; do sleep 5; done
if [ -z "$build_pid" ]; then
  :
elif kill -0 "$build_pid" 2>/dev/null; then
  kill "$build_pid"; note "source build: not finished within ${deadline}s (log: build.log)"
elif wait "$build_pid"; then
  note "source build against $torch_dir: ok ($(( $(date +%s) - t0 ))s since start)"
  run_cuda_tests /tmp/strata-build/tests/test_cuda source-built
else
  note "source build: FAILED ($(grep -m1 -E 'error|Error' "$out/build.log" | cut -c1-150))"
fi

echo; echo "===== summary ($(( $(date +%s) - t0 )) s) ====="
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
