#!/usr/bin/env bash
# Runs `strata train` data-parallel under OpenMPI's mpirun (parallel.backend auto = mpi).
#   scripts/launch/mpirun.sh [-n PROCS] [mpirun options ... --] RECIPE [strata train options]
# Multi-node: e.g. scripts/launch/mpirun.sh -n 16 --hostfile hosts -- recipe.yaml
# Environment: STRATA_BIN (default build/bin/strata).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${STRATA_BIN:-$root/build/bin/strata}"
nproc=2
if [ "${1:-}" = "-n" ]; then nproc="$2"; shift 2; fi
extra=()
if printf '%s\n' "$@" | grep -qx -- '--'; then
  while [ "$1" != "--" ]; do extra+=("$1"); shift; done
  shift
fi
[ $# -ge 1 ] || { echo "usage: $0 [-n PROCS] [mpirun options --] RECIPE [strata train options]" >&2; exit 2; }
[ -x "$bin" ] || { echo "strata binary not found at $bin: run scripts/build" >&2; exit 1; }
root_flag=()
if [ "$(id -u)" -eq 0 ]; then root_flag=(--allow-run-as-root); fi
# --oversubscribe: more ranks than cores is fine for small runs; --bind-to none: LibTorch sets its threads.
exec mpirun -np "$nproc" --oversubscribe --bind-to none "${root_flag[@]}" -x STRATA_LOG_LEVEL -x STRATA_LOG_ALL_RANKS \
  "${extra[@]}" "$bin" train "$@"
