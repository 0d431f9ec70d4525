"""Memorization: n-gram index vs brute force, copy rate, held-out excerpts as long as the samples."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen import memorization
from musicgen.errors import UsageError

TRAIN = [np.array([1, 2, 3, 4, 5, 6]), np.array([7, 8, 9, 1, 2])]


def test_longest_shared_ngram_and_copy_rate_by_hand():
    index = memorization.NgramIndex(TRAIN)
    samples = [np.array([9, 1, 2, 3, 4, 0]),  # "1 2 3 4" from the first piece
               np.array([5, 6, 7, 8]),        # "5 6 7 8" only exists across the piece boundary: 2
               np.array([0, 0, 0])]
    assert [memorization.longest_shared_ngram(s, index) for s in samples] == [4, 2, 0]
    assert memorization.copy_rate(samples, index, 3) == pytest.approx(1 / 3)
    assert memorization.copy_rate(samples, TRAIN, 2) == pytest.approx(2 / 3)
    assert memorization.longest_shared_ngram(np.array([1, 2, 3, 4, 5, 6, 7]), index) == 6
    with pytest.raises(UsageError, match="n: expected a positive integer, got 0"):
        memorization.copy_rate(samples, index, 0)


def _brute_longest(sample, pieces):
    best = 0
    for p in pieces:
        for i in range(len(sample)):
            for j in range(len(p)):
                k = 0
                while i + k < len(sample) and j + k < len(p) and sample[i + k] == p[j + k]:
                    k += 1
                best = max(best, k)
    return best


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), max_size=12), min_size=1, max_size=4),
       st.lists(st.integers(0, 3), max_size=12))
def test_property_longest_shared_matches_brute_force(pieces, sample):
    index = memorization.NgramIndex([np.array(p, dtype=np.int64) for p in pieces])
    assert index.longest_shared(np.array(sample, dtype=np.int64)) == _brute_longest(sample, pieces)


def test_heldout_excerpts_are_non_overlapping_windows_of_the_sample_length():
    pieces = [np.arange(10), np.arange(3), np.arange(4)]
    got = memorization.heldout_excerpts(pieces, 4)
    assert [e.tolist() for e in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3]]  # 8, 9 and the 3-token piece: none
    with pytest.raises(UsageError, match="length: expected a positive integer, got 0"):
        memorization.heldout_excerpts(pieces, 0)


def test_memorization_compares_samples_with_equally_long_heldout_excerpts():
    train = [np.array([1, 2, 3, 4, 5, 6]), np.array([7, 8, 9, 1, 2])]
    samples = [np.array([9, 1, 2, 3, 4, 0]), np.array([5, 6, 7, 8, 0, 0]), np.array([0, 0, 0, 0, 0, 0])]
    # the whole held-out piece is one figure (5); cut to the samples' 6 tokens: [0 2 3 4 5 6] → 5 and
    # [0 0 0 7 8 9] → 3, the rest (1 2 3) is dropped
    heldout = [np.array([0, 2, 3, 4, 5, 6, 0, 0, 0, 7, 8, 9, 1, 2, 3])]
    mem = memorization.memorization(samples, train, heldout, copy_n=3)
    assert mem == {"copy_n": 3, "length": 6, "sample_longest": [4, 2, 0], "sample_longest_median": 2.0,
                   "copy_rate": pytest.approx(1 / 3), "heldout_longest_median": 4.0, "heldout_copy_rate": 1.0,
                   "heldout_excerpts": 2}
    short = memorization.memorization(samples, train, heldout, copy_n=5, length=4)
    # windows [0 2 3 4] [5 6 0 0] [0 7 8 9] → 3, 2, 3
    assert short["length"] == 4 and short["heldout_excerpts"] == 3 and short["heldout_longest_median"] == 3.0
    assert short["heldout_copy_rate"] == 0.0
    none = memorization.memorization([], train, [np.array([1, 2])], copy_n=3, length=4)
    assert math.isnan(none["copy_rate"]) and math.isnan(none["heldout_longest_median"])
    with pytest.raises(UsageError, match="copy_n: expected a positive integer, got 0"):
        memorization.memorization(samples, train, heldout, copy_n=0)

