#!/usr/bin/env bash
# A rank that stops early makes the others fail with a clear error within parallel.timeout_s,
# never hang: (1) rank 1 never starts, (2) rank 1 is killed in the middle of training. The
# launched program is a wrapper that exits 0 itself, so torchrun does not stop rank 0 for us.
source "$(dirname "$0")/mp_common.sh"
make_dataset
cat > "$tmp/wrapper.sh" <<WRAP
#!/usr/bin/env bash
if [ "\$RANK" = 1 ]; then
  if [ "\$MODE" = never ]; then exit 0; fi
  "$bin" "\$@" > "$tmp/rank1.log" 2>&1 &
  pid=\$!
  sleep 6; kill -9 \$pid; wait \$pid 2> /dev/null; exit 0
fi
exec "$bin" "\$@"
WRAP
chmod +x "$tmp/wrapper.sh"
for mode in never killed; do
  start=$(date +%s)
  set +e
  MODE=$mode timeout 90 "$venv/bin/torchrun" --standalone --nproc-per-node 2 --no-python "$tmp/wrapper.sh" train "$recipe" \
    "${common[@]}" --set train.steps=100000 --set train.grad_accum=2 --set parallel.timeout_s=8 --set run.dir="$tmp/f_$mode" \
    > "$tmp/$mode.log" 2>&1
  rc=$?
  set -e
  took=$(($(date +%s) - start))
  [ $rc -ne 0 ] || { echo "FAIL ($mode): the job exited 0"; show_log "$tmp/$mode.log"; exit 1; }
  [ $rc -ne 124 ] || { echo "FAIL ($mode): the job hung (killed after 90 s)"; show_log "$tmp/$mode.log"; exit 1; }
  [ $took -le 40 ] || { echo "FAIL ($mode): took ${took}s to fail with an 8 s timeout"; exit 1; }
  # Rank 0's error names the operation, the group and the rank.
  expect_log "$tmp/$mode.log" "E .*world rank 0"
  expect_log "$tmp/$mode.log" "process group"
  echo "$mode: rank 0 failed after ${took}s: $(grep -m1 'E ' "$tmp/$mode.log" | cut -c1-300)"
done
# (3) A hung rank: rank 1 of 3 is stopped (SIGSTOP) mid-training, so its connections stay open and
# nothing fails fast; ranks 0 and 2 time out in the same collective and report, through the store,
# that they reached it and rank 1 did not. Rank 1 is stopped once it has logged training steps (not
# after a fixed time: on a loaded machine start-up alone can take that long, and a rank stopped while
# the groups are being created gives a different error).
cat > "$tmp/stopper.sh" <<WRAP
#!/usr/bin/env bash
if [ "\$RANK" = 1 ]; then
  STRATA_LOG_ALL_RANKS=1 "$bin" "\$@" > "$tmp/rank1_stopped.log" 2>&1 &
  pid=\$!
  for i in \$(seq 300); do grep -q " step " "$tmp/rank1_stopped.log" 2> /dev/null && break; sleep 0.2; done
  sleep 1; kill -STOP \$pid; sleep 25; kill -9 \$pid; wait \$pid 2> /dev/null; exit 0
fi
exec "$bin" "\$@"
WRAP
chmod +x "$tmp/stopper.sh"
set +e
timeout 90 "$venv/bin/torchrun" --standalone --nproc-per-node 3 --no-python "$tmp/stopper.sh" train "$recipe" \
  "${common[@]}" --set train.steps=100000 --set train.micro_batch=2 --set train.grad_accum=1 --set parallel.timeout_s=6 \
  --set run.dir="$tmp/f_stopped" > "$tmp/stopped.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { echo "FAIL (stopped): exit $rc"; show_log "$tmp/stopped.log"; exit 1; }
grep -q "ranks that reached" "$tmp/stopped.log" || { echo "(stopped) errors logged:"; grep -E " E " "$tmp/stopped.log" | head -5; }
expect_log "$tmp/stopped.log" "timed out after 6 s"
expect_log "$tmp/stopped.log" "ranks that reached all_reduce #[0-9]* of this group: \[0, 2\]; not reached within 3 s more: \[1\]"
echo "stopped: $(grep -m1 'ranks that reached' "$tmp/stopped.log" | grep -o 'ranks that reached.*' | cut -c1-200)"
echo "failure: ok"
