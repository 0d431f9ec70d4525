#!/bin/bash
# Small-corpus ingest of two checkouts alternated in one session (the 410 chorales in /work/data/bach_bars):
# benchmarks/ingest.py (cold runs in fresh processes) twice, then benchmarks/ingest_small.py (in one process) three
# times, each side in turn.      benchmarks/ingest_ab.sh MAIN_CHECKOUT BRANCH_CHECKOUT
main=${1:?main checkout}; branch=${2:?branch checkout}
small=$(cd "$(dirname "$0")" && pwd)/ingest_small.py
for r in 1 2; do
  for side in main branch; do
    if [ $side = main ]; then code=$main; else code=$branch; fi
    echo "== round $r $side $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    (cd "$code" && PYTHONPATH=$code nice -n 15 python benchmarks/ingest.py --corpus /work/data/bach_bars --repeat 5 2>&1 \
      | grep -v "^ingest\|it/s" | tail -8)
  done
done
for r in 1 2 3; do
  for side in main branch; do
    if [ $side = main ]; then code=$main; else code=$branch; fi
    (cd "$code" && PYTHONPATH=$code nice -n 15 python "$small" 4 "round $r $side (load $(cut -d' ' -f1 /proc/loadavg))")
  done
done
