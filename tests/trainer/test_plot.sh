#!/usr/bin/env bash
# scripts/plot turns a run's metrics.jsonl into a PNG (skipped when matplotlib is absent).
set -euo pipefail
src="${STRATA_SOURCE_DIR:?}"
py="${STRATA_CACHE:-$HOME/.cache/strata}/venv/bin/python"
if ! "$py" -c 'import matplotlib' 2>/dev/null; then echo "SKIP: matplotlib not installed in the venv"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/run"
for s in 1 2 3 4 5; do
  echo "{\"step\": $s, \"loss\": $((6 - s)), \"tokens_per_s\": 1000}" >> "$tmp/run/metrics.jsonl"
done
echo '{"step": 5, "loss": 1, "val_loss": 1.5}' >> "$tmp/run/metrics.jsonl"
"$src/scripts/plot" "$tmp/run" --out "$tmp/p.png"
test "$(head -c 8 "$tmp/p.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" || { echo "not a PNG"; exit 1; }
test "$(stat -c %s "$tmp/p.png")" -gt 5000 || { echo "PNG suspiciously small"; exit 1; }
echo "plot test: ok"
