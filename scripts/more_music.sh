#!/usr/bin/env bash
# "More training music" (docs/quality_default.md): the chorale recipe trained with --styles on the 410 Bach chorales
# plus every 4th of music21's 1,318 Palestrina mass movements (330, name order, so every movement type), at two weight
# seeds on one split, then scored on the valid chorales beside the recipe trained on the chorales alone.
#
#   scripts/more_music.sh            export, ingest, train both seeds, report (about 3 h on a 2-core CPU)
#   scripts/more_music.sh corpus     only export and ingest ($RUNS/more_music/, $RUNS/cache_more_music)
#   scripts/more_music.sh train S    only train weight seed S into $RUNS/more_music_wS
#   scripts/more_music.sh report     only the valid report (needs both seeds and BASE_W0, BASE_W1: chorale-only runs
#                                    of trained/default's recipe at weight seeds 0 and 1, split seed 0)
#
# The recipe is the one trained/default had in the ninth session (last pitch, dropout 0.4); the split seed is fixed
# at 0 so both weight seeds hold the same pieces, and the Bach pieces keep the split they have without Palestrina
# (the report checks that every bundle holds the same valid chorales). Every sample of a styled bundle takes style
# bach (--default-style bach; quality_report --style bach), its voice cap and key drawn from the Bach training pieces.
# Run by hand; wall times go to $RUNS/more_music.time.
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_BACKEND=${KERAS_BACKEND:-tensorflow}
RUNS=${RUNS:-/tmp/musicgen-runs}
BACH=${BACH:-data/bach_bars}  # `musicgen corpus export bach` (scripts/train_default.sh makes it)
CORPUS=$RUNS/more_music
CACHE=$RUNS/cache_more_music
STAGE=${1:-all}
mkdir -p "$RUNS"
timed() { local start; start=$(date +%s); "$@"; echo "$* : $(( $(date +%s) - start )) s, $(uptime)" >> "$RUNS/more_music.time"; }
if [ "$STAGE" = all ] || [ "$STAGE" = corpus ]; then
  [ -d "$BACH" ] || musicgen corpus export bach "$BACH"
  mkdir -p "$CORPUS"
  [ -d "$CORPUS/bach" ] || cp -r "$BACH" "$CORPUS/bach"
  [ -d "$CORPUS/palestrina" ] || timed musicgen corpus export palestrina "$CORPUS/palestrina" --every 4
  timed musicgen ingest "$CORPUS" --styles --voices auto --meter --key-mode normalize --out "$CACHE"
fi
train() {
  timed musicgen train "$CACHE" --last-pitch --cell gru --preset medium --batch-size 16 --bptt 64 --transpose 3 \
      --dropout 0.4 --epochs 60 --patience 6 --seed "$1" --split-seed 0 --default-style bach --verbose 2 \
      --no-tensorboard --out "$RUNS/more_music_w$1" > "$RUNS/more_music_w$1.log" 2>&1
}
if [ "$STAGE" = all ]; then
  train 0
  train 1
elif [ "$STAGE" = train ]; then
  train "${2:?give the weight seed}"
fi
if [ "$STAGE" = all ] || [ "$STAGE" = report ]; then
  : "${BASE_W0:?set BASE_W0 and BASE_W1 to the chorale-only runs (weight seeds 0 and 1, split seed 0)}"
  : "${BASE_W1:?set BASE_W1}"
  timed python scripts/quality_report.py --split valid --style bach --seed 0 1 2 \
      --bundle "last-pitch_w0=$BASE_W0@$BACH" --bundle "last-pitch_w1=$BASE_W1@$BACH" \
      --bundle "more-music_w0=$RUNS/more_music_w0@$CACHE" --bundle "more-music_w1=$RUNS/more_music_w1@$CACHE" \
      --corpus "$BACH" --reference 'last-pitch_w0 s=0' --out docs/quality_default.md --marker valid-more-music-2
fi
