"""``musicgen train --algorithm rtrl``: the same split and the same bundle as BPTT, trained by exact RTRL.

The RTRL mathematics lives in ``rtrl.py``; this module only connects it to the corpus split and the bundle, so that
``musicgen sample`` and ``musicgen evaluate`` work on RTRL-trained models unchanged.
"""

from __future__ import annotations

import math
import sys
from typing import Sequence

import numpy as np

from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
from musicgen.errors import UsageError
from musicgen.split import Split, split_corpus
from musicgen.train_result import TrainResult, split_metrics


def fit_rtrl(pieces: Sequence[np.ndarray], keys: Sequence[str], model_cfg: ModelConfig, train_cfg: TrainConfig, *,
             split: Split | None = None, tokenizer_config: TokenizerConfig | None = None, online: bool = False,
             update_every: int = 16, verbose: int = 1) -> TrainResult:
    """Train ``model_cfg`` (one recurrent layer, no dropout) by RTRL; returns a ``TrainResult``.

    Trains on ``split.train`` and validates on ``split.valid`` (``split_corpus(pieces, keys, train_cfg,
    tokenizer_config)`` when ``split`` is None), as BPTT does; the test part is never read.
    Transposition augmentation, stateful windows and resuming are BPTT features and are refused here.
    """
    from musicgen import rtrl
    from musicgen.models import build_model

    if not isinstance(update_every, int) or update_every < 1:
        raise UsageError(f"--update-every: expected a positive integer, got {update_every!r}")
    if train_cfg.transpose:
        raise UsageError(f"--transpose: not supported with --algorithm rtrl, got {train_cfg.transpose}")
    rtrl.check_budget(model_cfg)
    if split is None:
        split = split_corpus(pieces, keys, train_cfg, tokenizer_config)
    train_pieces, val_pieces = [pieces[i] for i in split.train], [pieces[i] for i in split.valid]
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if verbose else None
    result = rtrl.train_rtrl(train_pieces, model_cfg, val_pieces=val_pieces, epochs=train_cfg.epochs,
                             learning_rate=train_cfg.learning_rate, update_every=update_every,
                             clipnorm=train_cfg.clipnorm, online=online, seed=train_cfg.seed, log=log)
    model = build_model(model_cfg)
    model.set_weights(rtrl.to_keras_weights(result.weights, model_cfg))
    best = min(result.history, key=lambda row: row["val_nll"] if row["val_nll"] is not None else math.inf)
    metrics = {
        "algorithm": "rtrl",
        "online": online,
        "val_nll": result.val_nll,
        "val_perplexity": math.exp(result.val_nll) if result.val_nll is not None else None,
        "val_accuracy": None,
        "val_events": int(sum(max(len(p) - 1, 0) for p in val_pieces)),
        "val_pieces": len(val_pieces),
        "train_loss": result.train_nll,
        "train_pieces": len(train_pieces),
        "best_epoch": best["epoch"],
        "epochs_run": len(result.history),
        "wall_seconds": round(result.seconds, 3),
        "train_events_per_s": round(result.events / max(result.seconds, 1e-9), 1),
        "update_every": update_every,
        **split_metrics(split),
    }
    return TrainResult(model=model, metrics=metrics, history_csv=None)
