#!/usr/bin/env bash
# Keras (cuDNN) vs native PyTorch (cuDNN) training tokens/s on one GPU: LSTM, GRU, SimpleRNN at batch 64 and 256
# (Embedding 128 → 2 × 256 → Dense 390, 128 events per window, stateful both sides, loss only, Adam + clipnorm 1.0),
# 3 interleaved repetitions of 3 warm-up + 20 timed steps each, with benchmarks/train.py --device cuda.
# On the GPU musicgen's fused layers hand LSTM/GRU to Keras' stock cuDNN path (musicgen/fused_rnn.py); Keras has no
# cuDNN SimpleRNN, so that row is the fused loop on the GPU against torch's cuDNN RNN.
#
#   benchmarks/gpu.sh                 # writes benchmarks/gpu_results.md (override with OUT=...)
#
# Needs a CUDA build of each framework: pip install "tensorflow[and-cuda]" "jax[cuda12]" torch (the CUDA wheel
# from PyPI, not the +cpu one). VARIANTS defaults to tensorflow,jax,native; add tensorflow:stock to see that the
# fused layer changes nothing on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-benchmarks/gpu_results.md}
VARIANTS=${VARIANTS:-tensorflow,jax,native}
python - <<'PY' || { echo "no GPU visible to torch: nothing measured" >&2; exit 1; }
import torch, sys
sys.exit(0 if torch.cuda.is_available() else 1)
PY
tmp="$OUT.tmp.$$"
{
  echo "# GPU training speed (benchmarks/gpu.sh), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  python -c "import keras, tensorflow, torch; print('keras', keras.__version__, 'tensorflow', tensorflow.__version__, 'torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())"
  python -c "import jax; print('jax', jax.__version__, jax.devices())" || true
  for batch in 64 256; do
    echo
    python benchmarks/train.py --device cuda --batch "$batch" --variants "$VARIANTS" --reps 3 --steps 20 --warmup 3
  done
  echo '```'
} > "$tmp" 2>&1
mv "$tmp" "$OUT"
cat "$OUT"
