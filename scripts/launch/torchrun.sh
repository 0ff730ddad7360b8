#!/usr/bin/env bash
# Runs `strata train` data-parallel under torchrun (from the LibTorch venv, --no-python).
#   scripts/launch/torchrun.sh [-n PROCS_PER_NODE] [torchrun options ... --] RECIPE [strata train options]
# Multi-node: pass torchrun's own options before `--`, e.g.
#   scripts/launch/torchrun.sh -n 8 --nnodes 2 --node-rank 0 --master-addr host0 --master-port 29500 -- recipe.yaml
# Environment: STRATA_VENV (default ~/.cache/strata/venv), STRATA_BIN (default build/bin/strata).
set -euo pipefail
launcher=torchrun
source "$(dirname "$0")/args.sh"
venv="${STRATA_VENV:-${STRATA_CACHE:-$HOME/.cache/strata}/venv}"
[ -x "$venv/bin/torchrun" ] || { echo "torchrun not found in $venv: run scripts/setup" >&2; exit 1; }
if [ ${#extra[@]} -eq 0 ]; then extra=(--standalone); fi
exec "$venv/bin/torchrun" --nproc-per-node "$nproc" "${extra[@]}" --no-python "$bin" train "$@"
