#!/usr/bin/env bash
# Preemption with real signals: SIGTERM to one process (or to one rank of two under torchrun) ends
# the run at a step boundary with a checkpoint and exit status 0 (all ranks agree on the step); the
# resumed run equals an uninterrupted one. The schedule is constant after warm-up, so the total
# step count can be chosen after the signal landed.
source "$(dirname "$0")/mp_common.sh"
make_dataset
sched=(--set schedule.name=constant --set schedule.warmup_steps=2 --set train.log_every=1)

wait_for_rows() {  # FILE N: until FILE has N lines (60 s at most)
  for _ in $(seq 1 600); do
    [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "FAIL: $1 never reached $2 rows"; exit 1
}
last_step() { ls "$1/checkpoints" | sed -n 's/^step_\([0-9]*\)$/\1/p' | sort -n | tail -1; }

# One process.
export STRATA_PREEMPT_MARKER="$tmp/marker"
"$bin" train "$recipe" "${common[@]}" "${sched[@]}" --set train.steps=100000 --set train.grad_accum=4 \
  --set run.dir="$tmp/p1" > "$tmp/p1.log" 2>&1 &
pid=$!
wait_for_rows "$tmp/p1/metrics.jsonl" 4
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: a preempted run exited $rc"; show_log "$tmp/p1.log"; exit 1; }
expect_log "$tmp/p1.log" "preempted (signal 15): checkpoint at step"
k=$(last_step "$tmp/p1")
[ "$(cat "$STRATA_PREEMPT_MARKER")" = "$k" ] || { echo "FAIL: marker says $(cat "$STRATA_PREEMPT_MARKER"), checkpoint $k"; exit 1; }
unset STRATA_PREEMPT_MARKER
n=$((k + 3))
"$bin" train "$recipe" "${common[@]}" "${sched[@]}" --set train.steps=$n --set train.grad_accum=4 --set run.dir="$tmp/p1" \
  --resume > "$tmp/p1r.log" 2>&1
"$bin" train "$recipe" "${common[@]}" "${sched[@]}" --set train.steps=$n --set train.grad_accum=4 --set run.dir="$tmp/ref1" \
  > "$tmp/ref1.log" 2>&1
check_same "$tmp/p1" "$tmp/ref1"
echo "one process: SIGTERM -> checkpoint at step $k, exit 0; resumed to $n = uninterrupted"

# torchrun, two ranks; only rank 1 gets the signal.
cat > "$tmp/rank_pid.sh" <<WRAP
#!/usr/bin/env bash
echo \$\$ > "$tmp/pid.\$RANK"
exec "$bin" "\$@"
WRAP
chmod +x "$tmp/rank_pid.sh"
tr_run() {  # DIR STEPS [extra]
  local dir=$1 steps=$2; shift 2
  "$venv/bin/torchrun" --standalone --nproc-per-node 2 --no-python "$tmp/rank_pid.sh" train "$recipe" "${common[@]}" \
    "${sched[@]}" --set train.steps="$steps" --set train.grad_accum=2 --set run.dir="$dir" "$@"
}
tr_run "$tmp/p2" 100000 > "$tmp/p2.log" 2>&1 &
tpid=$!
wait_for_rows "$tmp/p2/metrics.jsonl" 4
kill -TERM "$(cat "$tmp/pid.1")"
rc=0; wait $tpid || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: torchrun exited $rc after SIGTERM to rank 1"; show_log "$tmp/p2.log"; exit 1; }
expect_log "$tmp/p2.log" "preempted (signal 15)"
k=$(last_step "$tmp/p2")
n=$((k + 3))
tr_run "$tmp/p2" $n --resume > "$tmp/p2r.log" 2>&1 || { echo "FAIL: resume"; show_log "$tmp/p2r.log"; exit 1; }
"$bin" train "$recipe" "${common[@]}" "${sched[@]}" --set train.steps=$n --set train.grad_accum=4 --set run.dir="$tmp/ref2" \
  > "$tmp/ref2.log" 2>&1
check_same "$tmp/p2" "$tmp/ref2"
echo "torchrun: SIGTERM to rank 1 -> both ranks stopped after step $k with a checkpoint, exit 0; resumed to $n = uninterrupted"
echo "preempt: ok"
