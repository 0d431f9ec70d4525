#!/usr/bin/env bash
# Train the cell comparison and the shipped default model on music21's Bach chorales, with musicgen's own CLI.
# Run by hand (about an hour on a 2-core CPU); the results are committed:
#   docs/compare/<cell>/   metrics.json, history.csv, evaluation.{json,txt} of each cell after the same 30-epoch budget
#   docs/compare/README.md and val_loss.png, written by scripts/compare_report.py
#   trained/default/       the best cell of the comparison, continued to 60 epochs (`--resume --epochs 60`)
# Needs the jax extra for speed on CPU (`pip install -e ".[jax]"`); KERAS_BACKEND=tensorflow works too, slower.
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
CORPUS=data/bach
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
  musicgen evaluate "$RUNS/$cell" "$CORPUS" --num-samples 16 --length 512 --seed 0 \
      --json "docs/compare/$cell/evaluation.json" > "docs/compare/$cell/evaluation.txt"
  cp "$RUNS/$cell/metrics.json" "$RUNS/$cell/history.csv" "docs/compare/$cell/"
done
python scripts/compare_report.py > /dev/null

best=$(python -c "import json; print(min(['lstm', 'gru', 'simple_rnn'], key=lambda c: json.load(open(f'docs/compare/{c}/metrics.json'))['val_nll']))")
musicgen train "$CORPUS" --cell "$best" --out "$RUNS/$best" --resume --epochs 60 --verbose 2 > "$RUNS/$best-resume.log" 2>&1
musicgen evaluate "$RUNS/$best" "$CORPUS" --seed 0 --save   # evaluation.json, checksummed in bundle.json
rm -rf trained/default.new && cp -r "$RUNS/$best" trained/default.new
rm -rf trained/default.new/checkpoints trained/default.new/logs
rm -rf trained/default && mv trained/default.new trained/default
python scripts/report_default.py --corpus "$CORPUS"   # rewrites the numbers README.md and trained/default/README.md quote
