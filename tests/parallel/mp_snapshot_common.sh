# Shared by the in-memory snapshot tests (mp_snapshot.sh, mp_snapshot_parallel.sh): the SMP cleanup,
# the victim wrapper and one torchrun launch with --max-restarts. Sourced after mp_common.sh; the caller
# defines the array `snap` (its snapshot settings).
base_port=$((20000 + RANDOM % 12000))  # below the ephemeral range (torchrun --standalone picks from it)
names=()
cleanup() {  # stop this test's SMPs (SIGTERM: they unlink their shared memory)
  for n in "${names[@]}"; do
    for f in /dev/shm/strata-"$n"-n*.lock; do [ -f "$f" ] && kill "$(cat "$f")" 2> /dev/null || true; done
  done
  sleep 0.5
  [ -n "${STRATA_KEEP_TMP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

# The launched program: the victim rank, in the first attempt only, is killed with SIGKILL once rank 0
# has logged KILL_AT steps; with KILL_NODES it also kills those nodes' SMPs and removes their shared memory.
# With DIE_MID_COMMIT=R the victim's SMP (it starts it) dies in its R-th erasure-coding round between
# COMMIT messages (STRATA_TEST_SMP_DIE_MID_COMMIT), and the kill follows once that SMP has said so.
cat > "$tmp/wrapper.sh" <<WRAP
#!/usr/bin/env bash
if [ "\${TORCHELASTIC_RESTART_COUNT:-0}" != 0 ] || [ "\$RANK" != "\$VICTIM" ]; then exec "$bin" "\$@"; fi
[ -n "\${DIE_MID_COMMIT:-}" ] && export STRATA_TEST_SMP_DIE_MID_COMMIT=\$DIE_MID_COMMIT
"$bin" "\$@" &
pid=\$!
due() {
  if [ -n "\${DIE_MID_COMMIT:-}" ]; then grep -qs "test fault" "\$RUN/smp-n\$KILL_NODES.log"; return; fi
  [ -f "\$RUN/metrics.jsonl" ] && [ "\$(wc -l < "\$RUN/metrics.jsonl")" -ge "\$KILL_AT" ]
}
while kill -0 \$pid 2> /dev/null; do
  if due; then
    for n in \$KILL_NODES; do
      kill -9 "\$(cat /dev/shm/strata-\$SMP-n\$n.lock)" 2> /dev/null
      rm -f /dev/shm/strata-\$SMP-n\$n-*
    done
    kill -9 \$pid
    exit 1
  fi
  sleep 0.05
done
wait \$pid
WRAP
chmod +x "$tmp/wrapper.sh"

# snap_run NAME SMP RANKS_PER_NODE PORT VICTIM KILL_AT KILL_NODES [extra --set ...]: 4 ranks under
# torchrun --max-restarts 1 with --resume, run directory $tmp/NAME, log $tmp/NAME.log (VICTIM -1: none).
snap_run() {
  local name=$1 smp=$2 rpn=$3 port=$4 victim=$5 kill_at=$6 kill_nodes=$7
  shift 7
  names+=("$smp")
  set +e
  VICTIM=$victim KILL_AT=$kill_at KILL_NODES="$kill_nodes" SMP=$smp RUN="$tmp/$name" STRATA_SNAPSHOT_RANKS_PER_NODE=$rpn \
    DIE_MID_COMMIT="${DIE_MID_COMMIT:-}" \
    timeout 240 "$venv/bin/torchrun" --standalone --nproc-per-node 4 --max-restarts 1 --monitor-interval 0.2 --no-python \
    "$tmp/wrapper.sh" train "$recipe" "${common[@]}" "${snap[@]}" --set snapshot.smp_name="$smp" --set snapshot.port="$port" \
    --set run.dir="$tmp/$name" --resume "$@" > "$tmp/$name.log" 2>&1
  local rc=$?
  set -e
  [ $rc -eq 0 ] || { echo "FAIL: run $name exited $rc"; tail -40 "$tmp/$name.log"; tail -5 "$tmp/$name"/smp-n*.log; exit 1; }
}
same_bits() {
  "$compare" "$1" "$2" 0 || { echo "FAIL: $1 is not bitwise equal to $2"; show_log "$1.log"; exit 1; }
}
