"""What a trainer returns, shared by ``train`` (BPTT, Keras) and ``train_rtrl`` (RTRL) without importing either."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainResult:
    """``model``: stateless Keras model holding the best weights; ``metrics``: the final report, JSON-ready
    (``train.report`` / ``train_rtrl.fit_rtrl``); ``history_csv``: per-epoch history, or None; ``start_state``: the
    state sampling starts from (``start_state.compute_start_state``; None: zeros)."""

    model: object
    metrics: dict
    history_csv: Path | None
    start_state: list | None = None


def split_metrics(split) -> dict:
    """The split sizes recorded in metrics.json: pieces per part, clusters, split version."""
    sizes = split.sizes()
    return {"split": {**sizes, "version": split.version}}


def sampling_counts(train_pieces, tokenizer) -> dict:
    """What ``musicgen sample`` draws from, counted over the training pieces (``{}`` without a tokenizer): the style
    shares (``style_pieces``), voice counts (``voice_pieces``: voice caps) and keys (``key_pieces``), each where the
    vocabulary has those events; with styles, the voice and key counts per style as well (``styles.by_style``)."""
    from musicgen import keys, styles, voices

    if tokenizer is None:
        return {}
    cfg, out = tokenizer.config, {}
    if cfg.styles:
        out[styles.METRIC] = styles.style_counts(train_pieces, tokenizer)
    for on, metric, count in ((cfg.voices, voices.METRIC, voices.voice_counts),
                              (cfg.key, keys.METRIC, keys.key_counts)):
        if on:
            out[metric] = count(train_pieces, tokenizer)
            if cfg.styles:
                out[styles.by_style(metric)] = styles.counts_by_style(train_pieces, tokenizer, count)
    return out
