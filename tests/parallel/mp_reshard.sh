#!/usr/bin/env bash
# Resharding checkpoints across parallel layouts, through torchrun (the venv's, --no-python). A GPT
# (2 layers, 4 heads, dropout 0) trains 6 steps under (tp, pp, dp) = (2, 2, 1) on 4 processes, saving
# at steps 2, 4, 6 (asynchronously): every rank writes its own tp/pp slices (sliced format, one manifest). Its step-2
# checkpoint resumes under (1, 1, 4), (4, 1, 1), (1, 2, 2), one process, and (1, 1, 4) with ZeRO-1
# (off -> on); that ZeRO-1 run's step-4 checkpoint (each dp rank's optimizer shard) resumes under
# (2, 2, 1) (on -> off) and (2, 1, 2) with ZeRO-1. Every resumed run must match the uninterrupted
# (2, 2, 1) run within 1e-5 (compare_runs: per-step losses, final weights): the first resumed step's
# loss is the cross-entropy of the loaded model's logits on that step's batch, the next ones need the
# optimizer state, and the val loss at step 6 (evaluated on the final weights) must agree as well.
# With dropout 0.1 a (2, 2, 1) resume under (2, 2, 1) is exact (per-(tp, pp) dropout streams saved).
# `strata ckpt verify` passes on the per-rank checkpoint and names a flipped byte in a slice.
source "$(dirname "$0")/mp_common.sh"
make_dataset
model=(--set model.n_layer=2 --set model.n_head=4 --set model.dropout=0 --set train.steps=6 --set checkpoint.every=2
       --set checkpoint.keep=5 --set train.eval_every=3)

run() {  # run TP PP DP DIR [extra --set ...]: global batch 16 = micro_batch 4 x dp x grad_accum
  local tp=$1 pp=$2 dp=$3 dir=$4; shift 4
  local n=$((tp * pp * dp)) ga=$((4 / dp))
  if [ "$n" = 1 ]; then
    "$bin" train "$recipe" "${common[@]}" "${model[@]}" --set train.grad_accum="$ga" --set run.dir="$dir" "$@" \
      > "$dir.log" 2>&1 || { echo "FAIL: one process ($dir) exited $?"; show_log "$dir.log"; exit 1; }
    return
  fi
  STRATA_BIN="$bin" "$src/scripts/launch/torchrun.sh" -n "$n" "$recipe" "${common[@]}" "${model[@]}" \
    --set parallel.tp="$tp" --set parallel.pp="$pp" --set train.grad_accum="$ga" --set run.dir="$dir" "$@" \
    > "$dir.log" 2>&1 || { echo "FAIL: torchrun ($tp, $pp, $dp) ($dir) exited $?"; show_log "$dir.log"; exit 1; }
}
# from_step SRC STEP DST: a copy of run SRC whose newest checkpoint is step STEP.
from_step() {
  cp -r "$1" "$3"
  for d in "$3"/checkpoints/step_*; do [ "${d##*_}" -le "$2" ] || rm -rf "$d"; done
}
# check_val RUN REF: the val losses (steps 3 and 6) agree within 1e-5 relative.
check_val() {
  python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" <<'PY' || { echo "FAIL: val losses of $1 differ from $2"; exit 1; }
import json, sys
v = [{r["step"]: r["val_loss"] for r in map(json.loads, open(f)) if "val_loss" in r} for f in sys.argv[1:]]
assert sorted(v[0]) == sorted(v[1]) == [3, 6], v
bad = [(s, v[0][s], v[1][s]) for s in v[1] if abs(v[0][s] - v[1][s]) > 1e-5 * abs(v[1][s])]
assert not bad, bad
PY
}
resume_as() {  # resume_as SRC STEP TP PP DP NAME [extra --set ...]: resume and compare with the (2, 2, 1) run
  local srcrun=$1 step=$2 tp=$3 pp=$4 dp=$5 name=$6; shift 6
  from_step "$srcrun" "$step" "$tmp/$name"
  run "$tp" "$pp" "$dp" "$tmp/$name" --resume "$@"
  expect_log "$tmp/$name.log" "resumed from .*step_$step at step $step"
  check_same "$tmp/$name" "$ref"
  check_val "$tmp/$name" "$ref"
}
ref="$tmp/a221"

run 2 2 1 "$tmp/a221" --set checkpoint.async=true  # written by a background thread on every rank
expect_log "$tmp/a221.log" "stage tensor-parallel over tp = 2"
resume_as "$tmp/a221" 2 1 1 4 r114
resume_as "$tmp/a221" 2 4 1 1 r411
expect_log "$tmp/r411.log" "tensor parallel: tp = 4"
resume_as "$tmp/a221" 2 1 2 2 r122
expect_log "$tmp/r122.log" "pipeline: pp rank 0 of 2"
resume_as "$tmp/a221" 2 1 1 1 r111
resume_as "$tmp/a221" 2 1 1 4 z114 --set parallel.zero1=true --set parallel.bucket_mb=0.01
expect_log "$tmp/z114.log" "ZeRO-1 dp rank 0: read"
# ZeRO-1 on -> off, and on -> tp + ZeRO-1, from the (1, 1, 4) ZeRO-1 run's step 4.
resume_as "$tmp/z114" 4 2 2 1 z_to221
resume_as "$tmp/z114" 4 2 1 2 z_to212 --set parallel.zero1=true --set parallel.bucket_mb=0.02
echo "resumed (2,2,1) -> (1,1,4), (4,1,1), (1,2,2), (1,1,1), (1,1,4)+zero1 -> (2,2,1), (2,1,2)+zero1: ok"

# Dropout 0.1 (inside the tp regions: attention probabilities; outside: residual dropout on every
# stage): resuming under the same (2, 2, 1) layout is exact because each (tp, pp) coordinate's region
# stream and each stage's default generator are in the checkpoint.
run 2 2 1 "$tmp/d221" --set model.dropout=0.1
ref="$tmp/d221"
resume_as "$tmp/d221" 2 2 2 1 d_to221 --set model.dropout=0.1
if grep -q "has no dropout generator stream" "$tmp/d_to221.log"; then echo "FAIL: dropout streams not restored"; exit 1; fi

# The (2, 2, 1) checkpoint: 4 rank files, each parameter tiled by its tp slices, nothing gathered.
ck="$tmp/a221/checkpoints/step_4"
expect_log "$tmp/a221.log" "sliced: every tp/pp rank wrote its own model and optimizer slices"
"$bin" ckpt verify "$ck" > "$tmp/verify.log" 2>&1 || { echo "FAIL: ckpt verify"; cat "$tmp/verify.log"; exit 1; }
expect_log "$tmp/verify.log" "all checksums match"
"$bin" ckpt inspect "$ck" > "$tmp/inspect.log" 2>&1 || { echo "FAIL: ckpt inspect"; cat "$tmp/inspect.log"; exit 1; }
expect_log "$tmp/inspect.log" "written by 4 rank(s)"
python3 - "$tmp/inspect.log" <<'PY' || { echo "FAIL: per-rank layout of $ck"; cat "$tmp/inspect.log"; exit 1; }
import re, sys
text = open(sys.argv[1]).read()
# "  model.<name> float32 [a, b] k slice(s)" then k lines "    [i] <region> rank_<r>.bin ..."
files = set(re.findall(r"rank_(\d)\.bin", text))
assert files == {"0", "1", "2", "3"}, files
entries = re.findall(r"\n  (model\.\S+) \S+ \[[^\]]*\] (\d+) slice", text)
assert entries, text[:500]
split = [n for n, k in entries if int(k) == 2]   # tp-sharded: one slice per tp rank
whole = [n for n, k in entries if int(k) == 1]   # replicated (norms, biases of row layers): one writer
assert len(split) + len(whole) == len(entries), entries
assert "model.tok_emb.weight" in split and "model.blocks.1.attn.wq.weight" in split, entries
assert "model.pos_emb" in whole and not any("norm" in n for n in split), entries
PY
bad="$tmp/bad"
cp -r "$ck" "$bad"
python3 -c "
import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=0x10; open(p,'wb').write(b)" "$bad/rank_3.bin"
if "$bin" ckpt verify "$bad" > "$tmp/bad.log" 2>&1; then echo "FAIL: verify accepted a flipped byte"; cat "$tmp/bad.log"; exit 1; fi
expect_log "$tmp/bad.log" "CORRUPT: .*checksum mismatch in tensor '.*rank_3.bin"
echo "reshard: ok"
