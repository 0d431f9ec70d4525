"""baselines: every transposition the model trained on, Kneser-Ney chosen on valid and scored elsewhere."""

import math

import numpy as np
import pytest

from musicgen.baselines import all_transpositions, baseline_scores
from musicgen.config import TokenizerConfig
from musicgen.errors import UsageError
from musicgen.ngram import KneserNeyModel, UnigramModel
from musicgen.tokenizer import Tokenizer

TOK = Tokenizer(TokenizerConfig(min_pitch=60, max_pitch=66, velocity_bins=0, programs=False, max_shift_steps=4))


def piece(*pitches):
    out = [TOK.bos_id]
    for p in pitches:
        out += [TOK.token("NOTE_ON", p), TOK.token("TIME_SHIFT", 1), TOK.token("NOTE_OFF", p)]
    return np.array(out + [TOK.eos_id], dtype=np.int32)


def test_every_allowed_shift_of_every_piece():
    a, b = piece(62, 64), piece(60, 60)  # a may move -2..+2 in [60, 66], b only 0..+6
    out = all_transpositions(TOK, [a, b], 3)
    assert [t.tolist() for t in out] == [piece(62 + s, 64 + s).tolist() for s in (-2, -1, 0, 1, 2)] + \
        [piece(60 + s, 60 + s).tolist() for s in (0, 1, 2, 3)]
    assert [len(all_transpositions(TOK, [a, b], t)) for t in (0, 1)] == [2, 2 + 3]
    assert all_transpositions(TOK, [a], 0)[0] is a
    with pytest.raises(UsageError, match="max_semitones: expected an integer >= 0, got -1"):
        all_transpositions(TOK, [a], -1)


def test_unigram_row_by_hand_and_kneser_ney_chosen_on_valid():
    train = [np.array([0, 1, 2, 1]), np.array([0, 1, 1])]
    rows = baseline_scores(train, [np.array([0, 1, 2])], [np.array([0, 1, 2])], vocab_size=3, max_order=1)
    assert list(rows) == ["unigram"]
    assert rows["unigram"]["nll_nats"] == pytest.approx(UnigramModel(vocab_size=3).fit(train).nll([[0, 1, 2]]))
    assert rows["unigram"]["accuracy"] == pytest.approx(0.5)  # always guesses 1: right on 1, wrong on 2
    assert rows["unigram"]["nll_bits"] == pytest.approx(rows["unigram"]["nll_nats"] / math.log(2))

    rng = np.random.default_rng(0)
    motif = [0, 4, 7, 4, 2, 5, 9, 5]
    train = [np.array(motif * 6) for _ in range(3)] + [rng.integers(0, 10, size=40) for _ in range(5)]
    valid = [np.array(motif * 3), rng.integers(0, 10, size=30)]
    evaluated = [np.array(motif[3:] + motif * 2)]
    rows = baseline_scores(train, valid, evaluated, vocab_size=10, max_order=4, discounts=(0.5, 1.0))
    fits = {(n, d): KneserNeyModel(order=n, vocab_size=10, discount=d).fit(train)
            for n in (2, 3, 4) for d in (0.5, 1.0)}
    best = min(fits, key=lambda k: fits[k].nll(valid))
    kn = rows["kneser_ney"]
    assert (kn["order"], kn["discount"]) == best
    assert kn["nll_nats"] == pytest.approx(fits[best].nll(evaluated), rel=1e-12)
    assert kn["events"] == len(evaluated[0]) - 1 and kn["accuracy"] is None
    sel = rows["kn_selection"]
    assert sel["orders"] == [2, 3, 4] and sel["discounts"] == [0.5, 1.0] and sel["train_events"] == 3 * 47 + 5 * 39
    assert sel["valid_nll"][1][1] == pytest.approx(fits[(3, 1.0)].nll(valid), rel=1e-12)
    with pytest.raises(UsageError, match="max_order: expected an integer >= 1, got 0"):
        baseline_scores(train, valid, evaluated, vocab_size=10, max_order=0)
