#!/usr/bin/env bash
# Sophia vs AdamW benchmark (not a test; prints measurements): trains recipes/kjv-adamw.yaml and
# recipes/kjv-sophia.yaml (same model, data, batch, steps and schedule; only the optim section
# differs), prints validation loss per evaluation step side by side, AdamW's final validation loss
# and the first evaluation step at which Sophia reaches it (and that step as a fraction of AdamW's).
# Usage: scripts/bench/sophia.sh [--set key=value ...]   (passed to both runs; STRATA_BIN, default
# build/bin/strata; OUT, default runs/bench-sophia, holds the two run directories). Needs
# datasets/kjv-byte (scripts/pretrain or `strata prep --input datasets/kjv.txt --out datasets/kjv-byte`).
# SOPHIA_SET="--set optim.rho=0.1" adds overrides for the Sophia run only (a rho / lr sweep).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${STRATA_BIN:-$root/build/bin/strata}"
out="${OUT:-$root/runs/bench-sophia}"
cd "$root"
mkdir -p "$out"
# shellcheck disable=SC2086
for opt in adamw sophia; do
  extra=()
  if [ "$opt" = sophia ]; then read -r -a extra <<< "${SOPHIA_SET:-}"; fi
  if [ -n "${SKIP_TRAIN:-}" ] && [ -f "$out/$opt/metrics.jsonl" ]; then continue; fi
  rm -rf "${out:?}/$opt"
  "$bin" train "recipes/kjv-$opt.yaml" --set run.dir="$out/$opt" "$@" ${extra[@]+"${extra[@]}"} > "$out/$opt.log" 2>&1 ||
    { echo "$opt run failed:"; tail -20 "$out/$opt.log"; exit 1; }
done
python3 - "$out/adamw/metrics.jsonl" "$out/sophia/metrics.jsonl" <<'PY'
import json, sys
def val(path):
    rows = [json.loads(l) for l in open(path)]
    return {int(r["step"]): r["val_loss"] for r in rows if "val_loss" in r}, [r for r in rows if "win_rate" in r]
a, _ = val(sys.argv[1])
s, refreshes = val(sys.argv[2])
print(f"{'step':>6} {'adamw val':>10} {'sophia val':>11}")
for step in sorted(set(a) | set(s)):
    print(f"{step:>6} {a.get(step, float('nan')):>10.4f} {s.get(step, float('nan')):>11.4f}")
last = max(a)
target = a[last]
hit = next((st for st in sorted(s) if s[st] <= target), None)
print(f"AdamW final validation loss (step {last}): {target:.4f}; Sophia final: {s[max(s)]:.4f}")
if hit is None:
    print("Sophia does not reach it within the run")
else:
    print(f"Sophia reaches it at step {hit} ({hit / last:.2f} of AdamW's steps)")
if refreshes:
    w = [r["win_rate"] for r in refreshes]
    print(f"Sophia win_rate over {len(w)} refreshes: first {w[0]:.3f}, max {max(w):.3f}, last {w[-1]:.3f}")
PY
