#!/usr/bin/env bash
# Per-rank in-memory snapshots under tensor and pipeline parallelism (issue 13), through torchrun
# --max-restarts (4 ranks, 127.0.0.1), snapshots every step:
#   full     one process: the whole state's snapshot bytes F;
#   ref_tp   (tp, pp, dp) = (2, 1, 2), 2 nodes x 2 ranks, no erasure coding: each rank stores its own
#            local state, about F / tp bytes (checked), fault-free reference;
#   mism     ref_tp cut back to its step-5 disk checkpoint and resumed under (1, 2, 2) while the SMPs
#            still hold ref_tp's step-10 snapshots: refused naming both layouts, the run falls back to
#            the disk checkpoint and finishes;
#   kill_tp  (2, 1, 2), 4 nodes x 1 rank, RS(3, 1), 1/2 dp shares: rank 3 SIGKILLed at a random step,
#            torchrun restarts, final weights bitwise equal to ref_tp;
#   ref_pp / kill_pp  the same for (1, 2, 2): per-rank bytes about a stage's share of F (the tied
#            embedding sits on both ends), rank 2 (stage 1) SIGKILLed, bitwise equal to ref_pp;
#   ref_z / kill_z  (2, 1, 2) with ZeRO-1: whole per-rank states (no dp shares), rank 1 SIGKILLed, bitwise.
source "$(dirname "$0")/mp_common.sh"
source "$(dirname "$0")/mp_snapshot_common.sh"
make_dataset
# 2 layers (pp = 2 puts one on each stage); 10 steps; global batch 16 = 4 x dp 2 x grad_accum 2.
snap=(--set model.n_layer=2 --set train.steps=10 --set train.log_every=1 --set snapshot.enabled=true
      --set snapshot.smp_idle_exit_s=60 --set checkpoint.every=5)
# vocab_multiple 4: 264 = 2 x 132 rows, no padding rows (the default pads each rank to 256 rows, which a
# per-rank snapshot holds too).
tp=(--set parallel.tp=2 --set train.grad_accum=2 --set parallel.vocab_multiple=4)
pp=(--set parallel.pp=2 --set train.grad_accum=2)
ec=(--set snapshot.ec_k=3 --set snapshot.ec_m=1)
# The killed runs write no disk checkpoint before the end: when the kill lands between a step's
# end and its snapshot's commit on every rank, the newest common snapshot is the step before, and a
# disk checkpoint of that step would be preferred (as new, and on disk), which is right but would not
# exercise the in-memory restore this test is about.
no_disk=(--set checkpoint.every=1000)

# go NAME SMP RANKS_PER_NODE PORT VICTIM KILL_AT -- extra --set ...
go() {
  local name=$1 smp="t$$$2" rpn=$3 port=$4 victim=$5 kill_at=$6
  shift 6
  snap_run "$name" "$smp" "$rpn" "$port" "$victim" "$kill_at" "" "$@"
}
# Every rank's "N snapshots of X MB (B bytes) per rank" line: the B values.
nbytes() { grep -o 'MB ([0-9]* bytes) per rank' "$1" | grep -o '[0-9]* bytes' | cut -d' ' -f1; }
# within NAME VALUES LO HI: every value lies in [LO, HI].
within() {
  local name=$1 vals=$2 lo=$3 hi=$4
  [ "$(echo "$vals" | wc -w)" -ge 1 ] || { echo "FAIL: no snapshot size line for $name"; exit 1; }
  for v in $vals; do
    awk -v v="$v" -v lo="$lo" -v hi="$hi" 'BEGIN { exit !(v >= lo && v <= hi) }' ||
      { echo "FAIL: $name: a rank's snapshot holds $v bytes, expected between $lo and $hi"; exit 1; }
  done
}
t0=$(date +%s)

# The whole state, one process (grad_accum 4: the same global batch).
STRATA_SNAPSHOT_RANKS_PER_NODE=1 "$bin" train "$recipe" "${common[@]}" "${snap[@]}" --set train.grad_accum=4 \
  --set snapshot.smp_name="t$$full" --set snapshot.port=$((base_port + 50)) --set run.dir="$tmp/full" > "$tmp/full.log" 2>&1 ||
  { echo "FAIL: one-process run"; show_log "$tmp/full.log"; exit 1; }
names+=("t$$full")
full_b=$(nbytes "$tmp/full.log" | head -1)
echo "whole state: $full_b bytes"

# (2, 1, 2): each rank its own tp half (replicated layer norms / position embedding and the RNG
# streams put it a little above F / 2).
go ref_tp rtp 2 $base_port -1 0 "${tp[@]}"
expect_log "$tmp/ref_tp.log" "each rank its own local state"
tp_b=$(nbytes "$tmp/ref_tp.log")
within ref_tp "$tp_b" "$(awk -v f="$full_b" 'BEGIN { print 0.45 * f }')" "$(awk -v f="$full_b" 'BEGIN { print 0.62 * f }')"
echo "tp = 2: per-rank snapshot bytes $(echo $tp_b | tr ' ' ,) = $(awk -v f="$full_b" -v s="$(echo "$tp_b" | head -1)" 'BEGIN { printf "%.3f", s / f }') of the whole state"

# Another layout over the same SMPs: the step-10 snapshots are refused, the step-5 checkpoint loads.
cp -r "$tmp/ref_tp" "$tmp/mism"
rm -rf "$tmp/mism/checkpoints/step_10"
go mism rtp 2 $base_port -1 0 "${pp[@]}" --set train.steps=12
expect_log "$tmp/mism.log" "holds the per-rank state of (tp 1, pp 0, dp \*) under tp=2 pp=1 dp=2 zero1=off, but this run has the per-rank state of (tp 0, pp 1, dp \*) under tp=1 pp=2 dp=2 zero1=off"
expect_log "$tmp/mism.log" "falling back to the disk checkpoint"
expect_log "$tmp/mism.log" "resumed from .*step_5 at step 5"
[ "$(wc -l < "$tmp/mism/metrics.jsonl")" -ge 12 ] || { echo "FAIL: the refused run did not finish 12 steps"; exit 1; }
echo "layout mismatch: $(grep -o 'the snapshot of step [0-9]* on rank [0-9]* holds .*; not loading it' "$tmp/mism.log" | head -1)"

# (2, 1, 2) with erasure coding and 1/2 dp shares; rank 3 killed.
at=${STRATA_KILL_AT:-$((3 + RANDOM % 5))}  # STRATA_KILL_AT pins the kill step (to reproduce a run)
go kill_tp ktp 1 $((base_port + 10)) 3 $at "${tp[@]}" "${ec[@]}" "${no_disk[@]}"
expect_log "$tmp/kill_tp.log" "each of the 2 dp ranks stores a 1/2 share"
! grep -q "states differ" "$tmp/kill_tp.log" || { echo "FAIL: the dp replicas of a tp coordinate captured different states"; exit 1; }
expect_log "$tmp/kill_tp.log" "resuming from the in-memory snapshot of step"
expect_log "$tmp/kill_tp.log" "restored rank 0's own state (.*per-rank state of (tp 0, pp 0, dp \*) under tp=2 pp=1 dp=2"  # other ranks log warnings only
same_bits "$tmp/kill_tp" "$tmp/ref_tp"
share_b=$(nbytes "$tmp/kill_tp.log")
half=$(echo "$tp_b" | sort -n | head -1)
within kill_tp "$share_b" $((half / 2 - 64)) $((half / 2 + 1024))
echo "(2,1,2) rank 3 killed after step $at: $(grep -o 'resuming from the in-memory snapshot of step [0-9]*' "$tmp/kill_tp.log" | head -1), bitwise equal; dp shares $(echo $share_b | tr ' ' ,) bytes"

# (1, 2, 2): a stage's state; rank 2 (stage 1, dp 0) killed.
go ref_pp rpp 2 $((base_port + 20)) -1 0 "${pp[@]}"
pp_b=$(nbytes "$tmp/ref_pp.log")
within ref_pp "$pp_b" "$(awk -v f="$full_b" 'BEGIN { print 0.4 * f }')" "$(awk -v f="$full_b" 'BEGIN { print 0.75 * f }')"
echo "pp = 2: per-rank snapshot bytes $(echo $pp_b | tr ' ' ,) (whole state $full_b)"
at=${STRATA_KILL_AT:-$((3 + RANDOM % 5))}  # STRATA_KILL_AT pins the kill step (to reproduce a run)
go kill_pp kpp 1 $((base_port + 30)) 2 $at "${pp[@]}" "${ec[@]}" "${no_disk[@]}"
expect_log "$tmp/kill_pp.log" "each of the 2 dp ranks stores a 1/2 share"
! grep -q "states differ" "$tmp/kill_pp.log" || { echo "FAIL: the dp replicas of a stage captured different states"; exit 1; }
expect_log "$tmp/kill_pp.log" "resuming from the in-memory snapshot of step"
same_bits "$tmp/kill_pp" "$tmp/ref_pp"
echo "(1,2,2) rank 2 killed after step $at: $(grep -o 'resuming from the in-memory snapshot of step [0-9]*' "$tmp/kill_pp.log" | head -1), bitwise equal"
# (2, 1, 2) with ZeRO-1: each dp rank holds its own optimizer pieces, so its state is stored whole (no
# 1/dp shares); rank 1 (tp 1, dp 0) killed.
go ref_z rz 2 $((base_port + 40)) -1 0 "${tp[@]}" --set parallel.zero1=true
at=${STRATA_KILL_AT:-$((3 + RANDOM % 5))}
go kill_z kz 1 $((base_port + 60)) 1 $at "${tp[@]}" --set parallel.zero1=true "${ec[@]}" "${no_disk[@]}"
! grep -q "dp ranks stores a 1/2 share" "$tmp/kill_z.log" || { echo "FAIL: ZeRO-1 states were split into dp shares"; exit 1; }
expect_log "$tmp/kill_z.log" "resuming from the in-memory snapshot of step"
expect_log "$tmp/kill_z.log" "restored rank 0's own state (.*per-rank state of (tp 0, pp 0, dp 0) under tp=2 pp=1 dp=2 zero1=on"
same_bits "$tmp/kill_z" "$tmp/ref_z"
echo "(2,1,2) + ZeRO-1 rank 1 killed after step $at: $(grep -o 'resuming from the in-memory snapshot of step [0-9]*' "$tmp/kill_z.log" | head -1), bitwise equal"
echo "snapshot_parallel: ok ($(($(date +%s) - t0)) s)"
