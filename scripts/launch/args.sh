# Sourced by the launch scripts (torchrun.sh, mpirun.sh) with their arguments: reads `-n PROCS` and
# the launcher's own options before `--`, and checks the strata binary. The caller sets `launcher`
# (for the usage line). Sets root, bin, nproc and extra (the launcher's options); leaves RECIPE
# [strata train options] in "$@". Environment: STRATA_BIN (default build/bin/strata).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${STRATA_BIN:-$root/build/bin/strata}"
nproc=2
if [ "${1:-}" = "-n" ]; then nproc="$2"; shift 2; fi
extra=()
if printf '%s\n' "$@" | grep -qx -- '--'; then
  while [ "$1" != "--" ]; do extra+=("$1"); shift; done
  shift
fi
[ $# -ge 1 ] || { echo "usage: $0 [-n PROCS] [$launcher options --] RECIPE [strata train options]" >&2; exit 2; }
[ -x "$bin" ] || { echo "strata binary not found at $bin: run scripts/build" >&2; exit 1; }
