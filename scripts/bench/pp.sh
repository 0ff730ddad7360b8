#!/usr/bin/env bash
# Pipeline bubble benchmark (not a test): simulated bubble fraction of GPipe, 1F1B and interleaved
# 1F1B against the closed forms (p-1)/(m+p-1) and (p-1)/(v*m+p-1), with t_b = 2 t_f, with and
# without a communication latency. Uses `strata pipeline` (the simulator; no processes started).
# Usage: scripts/bench/pp.sh [path/to/strata]   (default: $STRATA_BUILD_DIR or build, bin/strata)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-${STRATA_BUILD_DIR:-build}/bin/strata}"
[ -x "$bin" ] || { echo "pp.sh: $bin not found; build first (scripts/build)" >&2; exit 1; }
printf "%-12s %3s %3s %2s %8s | %-10s %-10s | %-10s\n" schedule p m v t_comm bubble theory "ratio"
for p in 2 4 8; do
  for m in 8 16 32; do
    for spec in "gpipe 1" "1f1b 1" "interleaved 2" "interleaved 4"; do
      read -r sch v <<<"$spec"
      for tc in 0 0.05; do
        line=$("$bin" pipeline -q -s "$sch" -p "$p" -m "$m" -v "$v" --t-f 1 --t-b 2 --t-comm "$tc" --rendezvous)
        read -r got want < <(sed -E 's/.*bubble ([0-9.]+) of wall time \(theory ([0-9.]+)\).*/\1 \2/' <<<"$line")
        printf "%-12s %3s %3s %2s %8s | %-10s %-10s | %-10s\n" "$sch" "$p" "$m" "$v" "$tc" "$got" "$want" \
          "$(awk -v a="$got" -v b="$want" 'BEGIN{ printf "%.3f", a/b }')"
      done
    done
  done
done
