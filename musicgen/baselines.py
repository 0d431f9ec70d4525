"""Fair count-based baselines for ``musicgen evaluate``: fit on what the model saw, tuned on the valid split.

A baseline is only a fair yardstick when it sees the same training data as the model. A model trained with
``--transpose T`` saw each training piece at random shifts in ``[-T, T]`` (limited by ``tokenizer.transpose_bounds``,
as ``dataset.transposer`` draws them), so the baselines are fit on every one of those shifts of every training
piece. The Kneser-Ney order (2..max_order) and discount (``DISCOUNTS``) are chosen on the **valid** split and the
winner is scored on the evaluated split; the add-one unigram is a floor.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from musicgen.errors import UsageError
from musicgen.ngram import KneserNeyModel, UnigramModel

DISCOUNTS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def score_row(nll_nats: float, accuracy: float | None, events: int) -> dict:
    """One row of the score table: NLL in nats and bits per event, perplexity ``exp(nats)``, accuracy, events."""
    return {"nll_nats": nll_nats, "nll_bits": nll_nats / math.log(2), "perplexity": math.exp(min(nll_nats, 700.0)),
            "accuracy": accuracy, "events": events}


def all_transpositions(tokenizer, pieces: Sequence[np.ndarray], max_semitones: int) -> list[np.ndarray]:
    """Every piece at every shift ``s`` in ``[-max_semitones, max_semitones]`` its ``transpose_bounds`` allow.

    Shift 0 is always included, so ``max_semitones=0`` returns the pieces as they are. A piece with a range of
    12 notes or less gets ``2 · max_semitones + 1`` copies; one near the pitch limits gets fewer.
    """
    if not (isinstance(max_semitones, int) and max_semitones >= 0):
        raise UsageError(f"max_semitones: expected an integer >= 0, got {max_semitones!r}")
    out = []
    for piece in pieces:
        piece = np.asarray(piece)
        lo, hi = tokenizer.transpose_bounds(piece) if max_semitones else (0, 0)
        for shift in range(max(int(lo), -max_semitones), min(int(hi), max_semitones) + 1):
            out.append(tokenizer.transpose_tokens(piece, shift) if shift else piece)
    return out


def _events(pieces: Sequence[np.ndarray]) -> int:
    return int(sum(len(p) - 1 for p in pieces if len(p) >= 2))


def baseline_scores(train: Sequence[np.ndarray], valid: Sequence[np.ndarray], evaluated: Sequence[np.ndarray],
                    vocab_size: int, max_order: int = 8, discounts: Sequence[float] = DISCOUNTS) -> dict:
    """Fit on ``train``, choose the Kneser-Ney order/discount on ``valid``, score on ``evaluated``.

    Args:
        train: the training pieces as the model saw them (see ``all_transpositions``).
        valid: pieces for choosing the order (2..max_order) and discount (lowest mean NLL).
        evaluated: pieces the rows are scored on.
        vocab_size: token classes.
        max_order: highest Kneser-Ney order tried (1: unigram only).
        discounts: discounts tried, each in (0, 1].

    Returns:
        ``{"unigram": row, "kneser_ney": row + {"order", "discount"}, "kn_selection": {"orders", "discounts",
        "valid_nll"}}`` (rows as ``score_row``; ``kneser_ney`` and ``kn_selection`` only when ``max_order >= 2``;
        ``valid_nll`` is the grid of valid NLLs, one row per order).
    """
    if not (isinstance(max_order, int) and max_order >= 1):
        raise UsageError(f"max_order: expected an integer >= 1, got {max_order!r}")
    events = _events(evaluated)
    uni = UnigramModel(vocab_size=vocab_size).fit(train)
    targets = np.concatenate([np.asarray(p[1:]) for p in evaluated if len(p) >= 2])
    out = {"unigram": score_row(uni.nll(evaluated), float(np.mean(targets == int(uni.probs.argmax()))), events)}
    if max_order < 2:
        return out
    kn = KneserNeyModel(order=max_order, vocab_size=vocab_size).fit(train)
    orders = list(range(2, max_order + 1))
    grid = kn.nll_grid(valid, orders, discounts)
    i, j = np.unravel_index(int(np.argmin(grid)), grid.shape)
    best = kn.variant(order=orders[i], discount=float(discounts[j]))
    out["kneser_ney"] = {**score_row(best.nll(evaluated), None, events), "order": best.order,
                         "discount": best.discount}
    out["kn_selection"] = {"orders": orders, "discounts": [float(d) for d in discounts],
                           "valid_nll": grid.tolist(), "valid_events": _events(valid),
                           "train_events": _events(train)}
    return out
