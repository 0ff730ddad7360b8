#!/usr/bin/env bash
# srun against a one-node slurmctld + slurmd + munge started here: dp = 2 reproduces the
# one-process run; the world comes from SLURM_* variables with the master from the node list.
source "$(dirname "$0")/mp_common.sh"
if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
  echo "FAIL: slurm-wlm / munge not installed (scripts/setup installs them)"; exit 1
fi
[ "$(id -u)" -eq 0 ] || { echo "SKIP: starting slurmctld/slurmd needs root"; exit 77; }
source "$(dirname "$0")/slurm_local.sh"
make_dataset
reference "$tmp/ref"
srun -N 1 -n 2 --kill-on-bad-exit=1 "$bin" train "$recipe" "${common[@]}" --set train.grad_accum=2 --set run.dir="$tmp/dp2" \
  > "$tmp/dp2.log" 2>&1 || { echo "FAIL: srun exited $?"; show_log "$tmp/dp2.log"; exit 1; }
expect_log "$tmp/dp2.log" "world: slurm launch: rank 0 of 2"
expect_log "$tmp/dp2.log" "store $(hostname -s):"
check_same "$tmp/dp2" "$tmp/ref"
echo "srun: ok"
