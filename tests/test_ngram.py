"""Unigram and interpolated Kneser-Ney baselines, checked against probabilities worked out by hand."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.errors import UsageError
from musicgen.ngram import KneserNeyModel, UnigramModel

# Toy corpus, vocabulary {0, 1, 2}. Predicted events (every token after the first), "_" = before the start:
#   piece A: 0→1, 1→2, 2→1        piece B: 0→1, 1→1
TOY = [np.array([0, 1, 2, 1], dtype=np.int32), np.array([0, 1, 1], dtype=np.int32)]

# Continuation counts N1+(• w) from the bigram types {01, 12, 21, 11}: w=0: 0, w=1: 3, w=2: 1 (sum 4, 2 types).
# P1(w) = max(N - .75, 0)/4 + .75·2/4 · 1/3
P1 = [0.125, 0.6875, 0.1875]


def test_unigram_add_one_by_hand():
    # targets 1, 2, 1, 1, 1 → counts [0, 4, 1], N = 5; (c + 1) / (5 + 3)
    model = UnigramModel(alpha=1.0, vocab_size=3).fit(TOY)
    np.testing.assert_allclose(model.probs, [1 / 8, 5 / 8, 2 / 8])
    assert model.nll([np.array([0, 1, 2])]) == pytest.approx(-(math.log(5 / 8) + math.log(2 / 8)) / 2)


def test_bigram_kneser_ney_by_hand():
    model = KneserNeyModel(order=2, discount=0.75, vocab_size=3).fit(TOY)
    # c(0•) = 2 (only 0→1), 1 type: P(w|0) = max(c - .75, 0)/2 + .75·1/2 · P1(w)
    np.testing.assert_allclose(model.distribution([0]), [0.046875, 0.8828125, 0.0703125])
    # c(1•) = 2 (1→2, 1→1), 2 types: P(w|1) = max(c - .75, 0)/2 + .75·2/2 · P1(w)
    np.testing.assert_allclose(model.distribution([1]), [0.09375, 0.640625, 0.265625])
    # c(2•) = 1 (2→1), 1 type
    np.testing.assert_allclose(model.distribution([2]), [0.09375, 0.765625, 0.140625])
    expected = -(math.log(0.8828125) + math.log(0.265625)) / 2
    assert model.nll([np.array([0, 1, 2])]) == pytest.approx(expected)


def test_trigram_kneser_ney_by_hand_with_padding_and_unseen_context():
    model = KneserNeyModel(order=3, discount=0.75, vocab_size=3).fit(TOY)
    # Trigram counts: _01: 2, 012: 1, 121: 1, 011: 1.
    # Order-2 continuation counts (distinct left neighbours): 01: {_}, 12: {0}, 21: {1}, 11: {0} → 1 each.
    # P2(w|1) = max(N - .75, 0)/2 + .75·2/2 · P1 = [0.09375, 0.640625, 0.265625]
    # P3(w|0 1) = max(c - .75, 0)/2 + .75·2/2 · P2(w|1)
    np.testing.assert_allclose(model.distribution([0, 1]), [0.0703125, 0.60546875, 0.32421875])
    # start of a piece: context (_, 0), c = 2, one type; P2(1|0) = .25 + .75·P1(1) = 0.765625
    assert model.prob([0], 1) == pytest.approx(1.25 / 2 + 0.375 * 0.765625)
    # context (2, 2) never seen at order 3: passes P2(w|2) through; P2(1|2) = .25 + .75·0.6875
    assert model.prob([2, 2], 1) == pytest.approx(0.765625)
    # only the last order-1 tokens of a long context matter
    assert model.prob([2, 2, 0, 1], 2) == pytest.approx(0.32421875)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_distributions_sum_to_one_for_many_contexts(order):
    rng = np.random.default_rng(order)
    pieces = [rng.integers(0, 7, size=rng.integers(2, 40)) for _ in range(12)]
    model = KneserNeyModel(order=order, vocab_size=9).fit(pieces)  # tokens 7 and 8 never occur
    contexts = [[], [0], [3, 3], [8, 8, 8, 8], list(pieces[0][:6]), list(pieces[3][-4:])]
    for ctx in contexts:
        dist = model.distribution(ctx)
        assert dist.shape == (9,)
        assert np.all(dist > 0)
        assert dist.sum() == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 4), min_size=0, max_size=15), min_size=1, max_size=5),
       st.integers(1, 4), st.floats(0.1, 1.0))
def test_property_sum_to_one_and_nll_matches_probs(raw, order, discount):
    pieces = [np.array(p, dtype=np.int64) for p in raw]
    model = KneserNeyModel(order=order, discount=discount, vocab_size=5).fit(pieces)
    for ctx in ([], [1], [4, 0, 2]):
        assert model.distribution(ctx).sum() == pytest.approx(1.0, abs=1e-12)
    scored = [p for p in pieces if p.size >= 2]
    if scored:
        by_hand = [-math.log(model.prob(p[:j], p[j])) for p in scored for j in range(1, p.size)]
        assert model.nll(scored) == pytest.approx(np.mean(by_hand))


def test_higher_order_beats_unigram_on_repetitive_music():
    motif = [0, 4, 7, 4, 2, 5, 9, 5]
    train = [np.array([10] + motif * 20), np.array([10] + motif * 15)]
    test = [np.array([10] + motif * 5)]
    uni = UnigramModel(vocab_size=11).fit(train).nll(test)
    kn = [KneserNeyModel(order=n, vocab_size=11).fit(train).nll(test) for n in (1, 2, 3)]
    assert kn[2] < kn[1] < uni  # the 3-gram resolves "4 → 2 or 7" from the token before
    assert kn[2] < 0.2


def test_errors_name_the_argument():
    with pytest.raises(UsageError, match="order"):
        KneserNeyModel(order=0)
    with pytest.raises(UsageError, match="discount"):
        KneserNeyModel(discount=1.5)
    with pytest.raises(UsageError, match="vocabulary of size 3"):
        KneserNeyModel(order=2, vocab_size=3).fit([np.array([0, 5])])
    with pytest.raises(UsageError, match=r"order: expected an integer in \[1, 32\], got 33"):
        KneserNeyModel(order=33)
    with pytest.raises(UsageError, match="at most the fitted order 2, got 3"):
        KneserNeyModel(order=2, vocab_size=3).fit(TOY).variant(order=3)
    with pytest.raises(UsageError, match="call fit"):
        KneserNeyModel(order=2, vocab_size=3).distribution([0])
    with pytest.raises(UsageError, match="nothing to score"):
        KneserNeyModel(order=2, vocab_size=3).fit(TOY).nll([np.array([1])])


def _reference_kn(train, order, vocab, d):
    """Interpolated Kneser-Ney straight from the formulas, with Python tuples as keys (slow, obviously right)."""
    from collections import Counter, defaultdict

    grams = [Counter() for _ in range(order + 1)]  # grams[k][tuple of k shifted tokens] = raw count
    for p in train:
        padded = [0] * (order - 1) + [int(t) + 1 for t in p]
        for j in range(order, len(padded)):  # every predicted token (the piece's first is only a context)
            for k in range(1, order + 1):
                grams[k][tuple(padded[j - k + 1:j + 1])] += 1
    cont = [Counter() for _ in range(order + 1)]
    for k in range(1, order):
        for g in grams[k + 1]:
            cont[k][g[1:]] += 1

    def tables(k):
        counts = grams[k] if k == order else cont[k]
        total, types = defaultdict(int), defaultdict(int)
        for g, c in counts.items():
            total[g[:-1]] += c
            types[g[:-1]] += 1
        return counts, total, types

    prepared = [None] + [tables(k) for k in range(1, order + 1)]

    def prob(window):  # window: order shifted tokens, the last one predicted
        p = 1.0 / vocab
        for k in range(1, order + 1):
            counts, total, types = prepared[k]
            g = tuple(window[order - k:])
            if total[g[:-1]]:
                p = max(counts[g] - d, 0) / total[g[:-1]] + d * types[g[:-1]] / total[g[:-1]] * p
        return p

    return prob


@pytest.mark.parametrize("order", [8, 10])
def test_high_orders_on_a_large_vocabulary_match_the_formulas(order):
    """(V + 1) ** order overflows 64 bits here (5001 ** 8 > 2 ** 63): the dense context ids must not care."""
    vocab = 5000
    rng = np.random.default_rng(order)
    alphabet = rng.choice(vocab, size=6, replace=False)  # few symbols, so long contexts repeat
    train = [alphabet[rng.integers(0, 6, size=rng.integers(order, 60))] for _ in range(15)]
    train.append(np.array([vocab - 1, *alphabet[:order + 2]]))  # the largest token id occurs
    test = [alphabet[rng.integers(0, 6, size=30)], np.array([vocab - 1, *alphabet[:order + 3]])]
    model = KneserNeyModel(order=order, vocab_size=vocab, discount=0.8).fit(train)
    reference = _reference_kn(train, order, vocab, 0.8)
    expected = [reference([0] * (order - 1 - j) + [int(t) + 1 for t in p[max(j - order + 1, 0):j + 1]])
                for p in test for j in range(1, len(p))]
    np.testing.assert_allclose(np.exp(model.log_probs(test)), expected, rtol=1e-12)
    for ctx in ([], list(test[1][:order])):
        assert model.distribution(ctx).sum() == pytest.approx(1.0, abs=1e-12)


def test_variant_equals_a_fresh_fit():
    rng = np.random.default_rng(3)
    train = [rng.integers(0, 6, size=rng.integers(2, 50)) for _ in range(20)]
    test = [rng.integers(0, 6, size=40)]
    big = KneserNeyModel(order=6, vocab_size=7).fit(train)
    for order, d in ((1, 0.75), (3, 0.5), (6, 1.0)):
        fresh = KneserNeyModel(order=order, vocab_size=7, discount=d).fit(train)
        np.testing.assert_allclose(big.variant(order, d).log_probs(test), fresh.log_probs(test), rtol=1e-12)


@pytest.mark.slow
def test_fitting_two_million_events_at_order_8_takes_seconds():
    import time

    rng = np.random.default_rng(0)
    pieces = [rng.integers(0, 468, size=700) for _ in range(3000)]  # 2.1M events, like 7 x the chorales
    started = time.perf_counter()
    KneserNeyModel(order=8, vocab_size=468).fit(pieces)
    assert time.perf_counter() - started < 60  # about 5 s on one shared core


def test_nll_grid_equals_the_variants_one_by_one():
    rng = np.random.default_rng(5)
    train = [rng.integers(0, 5, size=rng.integers(2, 40)) for _ in range(10)]
    test = [rng.integers(0, 5, size=30), rng.integers(0, 5, size=3)]
    model = KneserNeyModel(order=4, vocab_size=6).fit(train)
    grid = model.nll_grid(test, orders=[1, 2, 4], discounts=[0.3, 1.0])
    assert grid.shape == (3, 2)
    for i, n in enumerate([1, 2, 4]):
        for j, d in enumerate([0.3, 1.0]):
            assert grid[i, j] == pytest.approx(model.variant(n, d).nll(test), rel=1e-12)
    with pytest.raises(UsageError, match="discount"):
        model.nll_grid(test, orders=[2], discounts=[0.0])
