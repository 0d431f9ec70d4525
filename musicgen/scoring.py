"""Per-event log-likelihood of token pieces under a bundle's weights, in numpy (no TensorFlow).

The numpy step kernels of ``sampler.StepModel`` are the model: ``score_pieces`` feeds every piece from a start state
(zero, like Keras, unless one is given), one event at a time with all pieces of a batch stepping together, and
returns the negative log-probability of each next event. ``evaluate`` and the start-state checks are built on it.
A model with context inputs gets each piece's context from ``step_model.features`` (so build the ``StepModel`` with
the bundle's tokenizer).

Example::

    step = StepModel(bundle.weights, bundle.model_config, dtype=np.float64, tokenizer=bundle.tokenizer)
    scores = score_pieces(step, pieces)          # one PieceScore per piece
    nll = summarize(scores)["nll_nats"]          # mean over every target event
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

SCORE_BATCH = 64  # pieces stepped together


@dataclass
class PieceScore:
    """``nll``: float64 (T - 1,) nats of each target event ``tokens[1:]``; ``correct``: bool (T - 1,), whether the
    most likely event was the target; ``forbidden``: with masks (``score_pieces(rules=...)``), how many of the
    piece's events the rules forbade (those are scored without the mask)."""

    nll: np.ndarray
    correct: np.ndarray
    forbidden: int = 0


def score_pieces(step_model, pieces: Sequence[np.ndarray], start_state: list | None = None,
                 batch: int = SCORE_BATCH, max_events: int | None = None, rules=None) -> list[PieceScore]:
    """Score every piece from ``start_state`` (default zeros): NLL of each event after the first.

    Args:
        step_model: a ``sampler.StepModel`` (float64 for exact comparisons, float32 is faster).
        pieces: int token arrays, shape (T_i,); pieces shorter than 2 events get empty scores.
        start_state: per layer a tuple of arrays (units,) or (1, units): the state before the first event.
        batch: pieces stepped together (sorted by length so a batch wastes little).
        max_events: score only the first ``max_events`` targets of each piece (None: all).
        rules: None (the model's own distribution), or a function ``batch size -> rules.EventRules``: masks on.
            Each step's logits are then masked by the rules (which observe the piece as it goes) before the
            softmax, so the NLL is that of the model with the sampler's masks, the distribution music is drawn
            from. An event the rules forbid is scored without the mask and counted in ``PieceScore.forbidden``.
    """
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
    out: list[PieceScore | None] = [None] * len(pieces)
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        arrays = [np.asarray(pieces[i], dtype=np.int64) for i in idx]
        lengths = np.array([len(a) for a in arrays])
        steps = int(max(lengths.max() - 1, 0))
        if max_events is not None:
            steps = min(steps, max_events)
        tokens = np.zeros((len(idx), steps + 1), np.int64)
        context = np.zeros((len(idx), steps + 1, len(step_model.context)), np.int64) if step_model.context else None
        for row, a in enumerate(arrays):
            tokens[row, :min(len(a), steps + 1)] = a[:steps + 1]
            if context is not None:
                context[row, :min(len(a), steps + 1)] = step_model.features(a[:steps + 1])
        nll = np.zeros((len(idx), steps))
        correct = np.zeros((len(idx), steps), bool)
        forbidden = np.zeros((len(idx), steps), bool)
        state = step_model.init_state(len(idx), start_state)
        rows = np.arange(len(idx))
        masks = None if rules is None else rules(len(idx))
        if masks is not None:
            masks.observe(tokens[:, 0])
        for t in range(steps):
            logits, state = step_model.step(state, tokens[:, t], None if context is None else context[:, t])
            logits = np.asarray(logits, np.float64)
            target = tokens[:, t + 1]
            if masks is not None:
                masked = masks.apply(logits.copy())
                forbidden[:, t] = ~np.isfinite(masked[rows, target])
                logits = np.where(forbidden[:, t, None], logits, masked)
                masks.observe(np.where(t + 1 < lengths, target, masks.pad_id))  # past a piece's end: PAD
            top = logits.max(axis=1)
            lse = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
            nll[:, t] = lse - logits[rows, target]
            correct[:, t] = logits.argmax(axis=1) == target
        for row, i in enumerate(idx):
            n = max(min(lengths[row] - 1, steps), 0)
            out[i] = PieceScore(nll[row, :n].copy(), correct[row, :n].copy(), int(forbidden[row, :n].sum()))
    return out  # type: ignore[return-value]


def summarize(scores: Sequence[PieceScore], first: int | None = None, skip: int = 0) -> dict:
    """Mean NLL (nats and bits per event), perplexity and accuracy over events ``skip .. first`` of each piece.

    ``first=None`` takes every event from ``skip`` on; pieces with nothing in the range add nothing.
    """
    nll = [s.nll[skip:first] for s in scores]
    ok = [s.correct[skip:first] for s in scores]
    events = int(sum(len(a) for a in nll))
    if events == 0:
        return {"nll_nats": math.nan, "nll_bits": math.nan, "perplexity": math.nan, "accuracy": math.nan,
                "events": 0}
    mean = float(np.concatenate(nll).mean())
    return {"nll_nats": mean, "nll_bits": mean / math.log(2), "perplexity": math.exp(min(mean, 700.0)),
            "accuracy": float(np.concatenate(ok).mean()), "events": events}
