# Shared by the multi-process tests: a tiny dataset, a tiny recipe, and the comparison of runs.
# Sourced; expects STRATA_BIN, STRATA_SOURCE_DIR and STRATA_COMPARE in the environment.
set -euo pipefail
bin="${STRATA_BIN:?}"
src="${STRATA_SOURCE_DIR:?}"
compare="${STRATA_COMPARE:?}"
venv="${STRATA_VENV:-${STRATA_CACHE:-$HOME/.cache/strata}/venv}"
tmp=$(mktemp -d /tmp/strata_mp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export STRATA_LOG_LEVEL=info
export OMP_NUM_THREADS=1

# show_log FILE: on a failure, the errors the ranks logged (spdlog's " E " lines, which torchrun's
# summary at the end of the file buries), then the file's tail.
show_log() {
  grep -E " E |rror" "$1" | grep -v "^ *error_file\|errors.html" | head -12 || true
  echo "---- tail of $1:"
  tail -30 "$1"
}

make_dataset() {
  for i in $(seq 1 1500); do
    echo "Verse $i: and the $((i * 7919 % 997)) sheep went over the $((i % 13)) hills, saying words of number $((i * 31 % 101))."
    if ((i % 40 == 0)); then echo; fi
  done > "$tmp/corpus.txt"
  "$bin" prep --input "$tmp/corpus.txt" --out "$tmp/data" > "$tmp/prep.log" 2>&1
}

# Global batch 16 sequences = micro_batch 4 x dp x grad_accum.
common=(--set data.path="$tmp/data" --set model.n_layer=1 --set model.d_model=32 --set model.n_head=2
        --set model.max_seq_len=32 --set train.seq_len=32 --set train.steps=20 --set train.micro_batch=4
        --set train.log_every=5 --set train.eval_every=0 --set train.eval_batches=2 --set train.threads=1
        --set checkpoint.every=0 --set schedule.warmup_steps=2 --set parallel.timeout_s=30)
recipe="$src/recipes/kjv-gpt-tiny.yaml"

# reference RUN_DIR: one process, grad_accum 4.
reference() { "$bin" train "$recipe" "${common[@]}" --set train.grad_accum=4 --set run.dir="$1" > "$1.log" 2>&1; }

# run NPROC DIR [extra --set ...]: the recipe under scripts/launch/torchrun.sh with NPROC ranks.
run() {  # run NPROC DIR [extra --set ...]
  local n=$1 dir=$2; shift 2
  "$src/scripts/launch/torchrun.sh" -n "$n" "$recipe" "${common[@]}" --set run.dir="$dir" "$@" \
    > "$dir.log" 2>&1 || { echo "FAIL: torchrun -n $n exited $?"; show_log "$dir.log"; exit 1; }
}

# check_same RUN REF: losses per step and final weights equal within 1e-5.
check_same() {  # check_same RUN REF [TOLERANCE (1e-5)]
  if ! "$compare" "$1" "$2" "${3:-1e-5}"; then
    echo "FAIL: $1 differs from $2"; show_log "$1.log"; exit 1
  fi
}

# expect_log FILE PATTERN: the log holds the pattern.
expect_log() { grep -q -- "$2" "$1" || { echo "FAIL: '$2' not in $1:"; show_log "$1"; exit 1; }; }
