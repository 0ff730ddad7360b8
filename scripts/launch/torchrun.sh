#!/usr/bin/env bash
# Runs `strata train` data-parallel under torchrun (from the LibTorch venv, --no-python).
#   scripts/launch/torchrun.sh [-n PROCS_PER_NODE] [torchrun options ... --] RECIPE [strata train options]
# Multi-node: pass torchrun's own options before `--`, e.g.
#   scripts/launch/torchrun.sh -n 8 --nnodes 2 --node-rank 0 --master-addr host0 --master-port 29500 -- recipe.yaml
# Environment: STRATA_VENV (default ~/.cache/strata/venv), STRATA_BIN (default build/bin/strata).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${STRATA_VENV:-${STRATA_CACHE:-$HOME/.cache/strata}/venv}"
bin="${STRATA_BIN:-$root/build/bin/strata}"
nproc=2
if [ "${1:-}" = "-n" ]; then nproc="$2"; shift 2; fi
extra=()
if printf '%s\n' "$@" | grep -qx -- '--'; then
  while [ "$1" != "--" ]; do extra+=("$1"); shift; done
  shift
fi
[ $# -ge 1 ] || { echo "usage: $0 [-n PROCS] [torchrun options --] RECIPE [strata train options]" >&2; exit 2; }
[ -x "$venv/bin/torchrun" ] || { echo "torchrun not found in $venv: run scripts/setup" >&2; exit 1; }
[ -x "$bin" ] || { echo "strata binary not found at $bin: run scripts/build" >&2; exit 1; }
if [ ${#extra[@]} -eq 0 ]; then extra=(--standalone); fi
exec "$venv/bin/torchrun" --nproc-per-node "$nproc" "${extra[@]}" --no-python "$bin" train "$@"
