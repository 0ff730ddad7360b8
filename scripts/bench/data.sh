#!/usr/bin/env bash
# Is the data side fast enough? `strata bench-data` times, in one process: `strata prep` on the
# King James Bible (MB/s, tokens/s), the training loader on the recipe's batches (tokens/s), and
# the trainer itself on a few steps of the recipe (tokens/s), and prints loader/trainer and
# prep/trainer ratios (target >= 20x). Not a test: it prints, it does not pass or fail.
# Environment: RECIPE (recipes/kjv-gpt-tiny.yaml), STEPS (30 timed trainer steps).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${STRATA_BUILD_DIR:-build}/bin/strata"
recipe="${RECIPE:-recipes/kjv-gpt-tiny.yaml}"
[ -x "$bin" ] || { echo "data.sh: build first ($bin missing)" >&2; exit 1; }
mkdir -p datasets
if [ ! -s datasets/kjv.txt ]; then
  bible gen1:1-rev22:21 > datasets/kjv.txt.tmp && mv datasets/kjv.txt.tmp datasets/kjv.txt
fi
if grep -q linuxdoc "$recipe"; then scripts/prep-corpora; else "$bin" prep --input datasets/kjv.txt --out datasets/kjv-byte; fi
# The result lines lose their log prefix, so bench/run's report (which drops log lines) keeps them.
"$bin" bench-data "$recipe" --input datasets/kjv.txt --train-steps "${STEPS:-30}" "$@" 2>&1 |
  sed -E '/ I (bench-data:|  (trainer|loader|prep) )/ s/^[0-9:.]+ I //'
