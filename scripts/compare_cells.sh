#!/usr/bin/env bash
# The cell comparison (docs/compare/): LSTM, GRU and SimpleRNN trained alike for 30 epochs on the Bach chorales.
# Run by hand (about an hour on a 2-core CPU, the three side by side). The committed docs/compare/ results were made
# on 2026-11-26 with the legacy two-way split (before the three-way split by near-duplicate cluster); rerunning this
# script trains and scores them on the three-way split (valid chooses, test reports).
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
CORPUS=${CORPUS:-data/bach}
RUNS=${RUNS:-/tmp/musicgen-runs}
mkdir -p "$RUNS"
[ -d "$CORPUS" ] || musicgen corpus export bach "$CORPUS"
musicgen ingest "$CORPUS"
COMMON=(--preset medium --batch-size 16 --bptt 64 --transpose 3 --epochs 30 --patience 5 --seed 0 --verbose 2
        --no-tensorboard)
for cell in lstm gru simple_rnn; do   # the three run side by side, one core and a half each
  musicgen train "$CORPUS" --cell "$cell" --out "$RUNS/$cell" "${COMMON[@]}" > "$RUNS/$cell.log" 2>&1 &
done
wait
for cell in lstm gru simple_rnn; do
  mkdir -p "docs/compare/$cell"
  musicgen evaluate "$RUNS/$cell" "$CORPUS" --split valid --num-samples 16 --length 512 --seed 0 \
      --json "docs/compare/$cell/evaluation.json" > "docs/compare/$cell/evaluation.txt"
  cp "$RUNS/$cell/metrics.json" "$RUNS/$cell/history.csv" "docs/compare/$cell/"
done
python scripts/compare_report.py > /dev/null
