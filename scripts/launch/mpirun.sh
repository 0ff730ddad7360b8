#!/usr/bin/env bash
# Runs `strata train` data-parallel under OpenMPI's mpirun (parallel.backend auto = mpi).
#   scripts/launch/mpirun.sh [-n PROCS] [mpirun options ... --] RECIPE [strata train options]
# Multi-node: e.g. scripts/launch/mpirun.sh -n 16 --hostfile hosts -- recipe.yaml
# Environment: STRATA_BIN (default build/bin/strata).
set -euo pipefail
launcher=mpirun
source "$(dirname "$0")/args.sh"
root_flag=()
if [ "$(id -u)" -eq 0 ]; then root_flag=(--allow-run-as-root); fi
# --oversubscribe: more ranks than cores is fine for small runs; --bind-to none: LibTorch sets its threads.
exec mpirun -np "$nproc" --oversubscribe --bind-to none "${root_flag[@]}" -x STRATA_LOG_LEVEL -x STRATA_LOG_ALL_RANKS \
  "${extra[@]}" "$bin" train "$@"
