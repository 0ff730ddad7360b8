#!/usr/bin/env bash
# In-memory snapshots under torchrun --max-restarts (4 ranks, 127.0.0.1), each run compared bitwise
# with a fault-free run of the same layout:
#   (a) SIGKILL one rank at a random step (2 nodes x 2 ranks, no erasure coding): the restarted
#       ranks restore from their SMP's shared memory;
#   (b) lose one node (4 nodes x 1 rank, RS(3, 1), no disk checkpoint to fall back on): its rank, its
#       SMP and its shared memory go; the replacement SMP rebuilds the node's snapshot from the other
#       nodes' data and parity;
#   (c) lose m + 1 = 2 nodes: unrecoverable, the run falls back to the disk checkpoint the SMP
#       persisted (snapshot.persist_every) and says so;
#   (d) the erasure-coding leader dies between its COMMIT messages (half the group committed the new
#       version) and its node is lost: rebuilt at that version from the other three nodes.
# With erasure coding (b, c) the 4 ranks form one dp group and each stores a 1/4 share of the state:
# restores all-gather the shares, and node 0's SMP fetches the other shares to persist rank 0's state.
source "$(dirname "$0")/mp_common.sh"
source "$(dirname "$0")/mp_snapshot_common.sh"
make_dataset
snap=(--set train.steps=30 --set train.grad_accum=1 --set train.log_every=1 --set snapshot.enabled=true
      --set snapshot.smp_idle_exit_s=60)

# go NAME RANKS_PER_NODE PORT [VICTIM KILL_AT KILL_NODES] -- extra --set ...
go() {
  local name=$1 rpn=$2 port=$3 victim=${4:--1} kill_at=${5:-0} kill_nodes=${6:-}
  shift 6 || shift $#
  snap_run "$name" "t$$$name" "$rpn" "$port" "$victim" "$kill_at" "$kill_nodes" "$@"
}
ec=(--set snapshot.ec_k=3 --set snapshot.ec_m=1)
persist=(--set snapshot.persist_every=4)

t0=$(date +%s)
go ref22 2 $base_port -1 0 "" ; go ref41 1 $((base_port + 10)) -1 0 "" "${ec[@]}" "${persist[@]}"
expect_log "$tmp/ref41/smp-n0.log" "erasure coding RS(3, 1)"
same_bits "$tmp/ref41" "$tmp/ref22"  # snapshots do not change the run
# With erasure coding each of the 4 dp ranks stores a 1/4 share of the state (ref22 stores full copies).
expect_log "$tmp/ref41.log" "each of the 4 dp ranks stores a 1/4 share"
nbytes() { grep -o 'MB ([0-9]* bytes) per rank' "$1" | head -1 | grep -o '[0-9]* bytes' | cut -d' ' -f1; }
full_b=$(nbytes "$tmp/ref22.log"); share_b=$(nbytes "$tmp/ref41.log")
awk -v f="$full_b" -v s="$share_b" 'BEGIN { exit !(f > 0 && s > 0.25 * f - 1024 && s < 0.25 * f + 1024) }' ||
  { echo "FAIL: a dp share is $share_b bytes, expected a quarter of the full $full_b bytes plus a small header"; exit 1; }
echo "dp shares: $share_b bytes per rank vs $full_b bytes for a full copy"

# (a) one rank SIGKILLed at a random step; its node's SMP survives.
at=$((4 + RANDOM % 16))
go kill_rank 2 $((base_port + 20)) 3 $at ""
expect_log "$tmp/kill_rank.log" "resuming from the in-memory snapshot of step"
same_bits "$tmp/kill_rank" "$tmp/ref22"
echo "(a) rank 3 killed after step $at: $(grep -o 'resuming from the in-memory snapshot of step [0-9]*' "$tmp/kill_rank.log" | head -1), bitwise equal"

# (b) node 2 lost (rank, SMP, shared memory): rebuilt by erasure coding.
at=$((6 + RANDOM % 14))
go kill_node 1 $((base_port + 30)) 2 $at "2" "${ec[@]}"
expect_log "$tmp/kill_node/smp-n2.log" "rebuilt 1 ranks"
expect_log "$tmp/kill_node.log" "resuming from the in-memory snapshot of step"
same_bits "$tmp/kill_node" "$tmp/ref22"
echo "(b) node 2 lost after step $at: $(grep -o 'rebuilt .* in [0-9.]* s' "$tmp/kill_node/smp-n2.log" | head -1), bitwise equal"

# (c) nodes 1 and 2 lost: more than m = 1, back to the persisted disk checkpoint.
at=$((10 + RANDOM % 10))
go kill_two 1 $((base_port + 40)) 1 $at "1 2" "${ec[@]}" "${persist[@]}"
expect_log "$tmp/kill_two/smp-n1.log" "unrecoverable"
expect_log "$tmp/kill_two.log" "falling back to the disk checkpoint"
expect_log "$tmp/kill_two/smp-n0.log" "persisted snapshot step"
same_bits "$tmp/kill_two" "$tmp/ref22"
echo "(c) nodes 1, 2 lost after step $at: $(grep -o 'falling back to the disk checkpoint .*' "$tmp/kill_two.log" | head -1), bitwise equal"
# (d) the erasure-coding leader (node 0's SMP) dies between the COMMIT messages of its R-th round and
# node 0 goes with it: nodes 0-1 committed step v, nodes 2-3 hold v encoded but not committed (and
# the step before committed). The replacement SMP must rebuild node 0 at v from the other three.
r=$((2 + RANDOM % 3))
DIE_MID_COMMIT=$r go leader 1 $((base_port + 50)) 0 0 "0" "${ec[@]}"
expect_log "$tmp/leader/smp-n0.log" "test fault"
v=$(grep -o 'exiting after committing step [0-9]*' "$tmp/leader/smp-n0.log" | head -1 | grep -o '[0-9]*$')
expect_log "$tmp/leader/smp-n0.log" "rebuilt 1 ranks (.*) at step $v by erasure coding"
expect_log "$tmp/leader.log" "resuming from the in-memory snapshot of step"
same_bits "$tmp/leader" "$tmp/ref22"
echo "(d) leader SMP died in round $r after committing step $v on nodes 0-1 of 0-3: node 0 $(grep -o 'rebuilt .* in [0-9.]* s' "$tmp/leader/smp-n0.log" | head -1), $(grep -o 'resuming from the in-memory snapshot of step [0-9]*' "$tmp/leader.log" | head -1), bitwise equal"
echo "snapshot: ok ($(($(date +%s) - t0)) s)"
