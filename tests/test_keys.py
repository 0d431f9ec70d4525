"""musicgen.keys: music21's weights, the vectorized analysis on hand-made histograms, agreement with music21."""

import numpy as np
import pytest

from musicgen.keys import (PROFILES, analyze_keys, analyze_piece_key, key_correlations, piece_key,
                           pitch_class_histograms)
from musicgen.piece import Note, Piece


def test_weights_are_music21s():
    from music21.analysis import discrete

    for name, cls in (("aarden", discrete.AardenEssen), ("krumhansl", discrete.KrumhanslSchmuckler)):
        major, minor = PROFILES[name]
        assert major.tolist() == cls().getWeights("major") and minor.tolist() == cls().getWeights("minor")


def test_histograms_by_hand():
    hist = pitch_class_histograms([60, 72, 62, 61], [1.0, 0.5, 2.0, 1.0], [0, 0, 0, 1], 2)
    want = np.zeros((2, 12))
    want[0, 0], want[0, 2], want[1, 1] = 1.5, 2.0, 1.0
    np.testing.assert_array_equal(hist, want)


def test_analysis_by_hand():
    c_major = np.array([[4, 0, 2, 0, 3, 2, 0, 4, 0, 2, 0, 1]], float)  # tonic, third, fifth heavy
    a_minor = np.roll(np.array([[4, 0, 2, 3, 0, 2, 0, 4, 1, 0, 0, 2]], float), 9)  # a minor: tonic on A
    got = analyze_keys(np.concatenate([c_major, a_minor, np.roll(c_major, 7), np.zeros((1, 12))]))
    assert got.tolist() == [0, 21, 7, 0]  # C major, A minor, G major, empty → C major
    corr = key_correlations(c_major)
    assert corr.shape == (1, 24) and corr[0, 0] == pytest.approx(corr.max()) and -1 <= corr.min()
    with pytest.raises(Exception, match="profile"):
        key_correlations(c_major, "nope")


def test_piece_key_prefers_the_signature():
    notes = [Note(p, i, i + 1.0, 80) for i, p in enumerate([60, 64, 67, 72, 67, 64, 60])]
    drums = [Note(61, 0.0, 50.0, 80, is_drum=True)]  # a long C# on the drum channel is not a pitch
    assert piece_key(Piece(notes + drums)) == (0, "analysis")
    assert piece_key(Piece(notes, key=9)) == (9, "signature")


@pytest.mark.parametrize("name", ["bach/bwv1.6", "bach/bwv102.7", "bach/bwv10.7", "bach/bwv11.6"])
def test_agrees_with_music21_analyze_key(name):
    # bwv102.7 is written in G minor (its signature) and analysed as C minor by both
    import music21

    from musicgen.scores import music21_piece

    score = music21.corpus.parse(name)
    theirs = score.analyze("key")
    piece, _ = music21_piece(score)
    assert analyze_piece_key(piece) == theirs.tonic.pitchClass + 12 * (theirs.mode == "minor")
