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
