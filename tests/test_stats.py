"""Musical statistics on hand-made notes with hand-written answers; overlap of feature sets."""

import math
from dataclasses import dataclass

import numpy as np
import pytest

from musicgen import stats
from musicgen.errors import UsageError


@dataclass(frozen=True)
class N:  # anything with these attributes will do; times in beats
    pitch: int
    start: float
    end: float
    velocity: int = 80
    program: int = 0
    is_drum: bool = False


# A C-major triad held for a beat (G held for two), D for half a beat, then F and C# one beat each, plus a kick drum.
PIECE = [N(60, 0, 1), N(64, 0, 1), N(67, 0, 2), N(62, 1, 1.5), N(65, 2, 3), N(61, 3, 4), N(36, 0, 0.25, is_drum=True)]


def test_pitch_statistics_by_hand():
    assert stats.pitch_range(PIECE) == 7.0  # 67 - 60; the drum's 36 does not count
    assert stats.pitch_classes_used(PIECE) == 6  # C C# D E F G
    expected = np.zeros(12)
    expected[[0, 1, 2, 4, 5, 7]] = 1 / 6
    np.testing.assert_allclose(stats.pitch_class_histogram(PIECE), expected)
    assert stats.pitch_class_entropy(PIECE) == pytest.approx(math.log2(6))
    # C major holds 5 of 6 (not C#); F major and D minor tie at 5/6 with an equally frequent root, C major is first
    assert stats.best_scale(PIECE) == (0, "major", pytest.approx(5 / 6))
    assert stats.pitch_in_scale_rate(PIECE) == pytest.approx(5 / 6)


def test_best_scale_prefers_the_frequent_root_between_relative_keys():
    a_minor = [N(p, i, i + 1) for i, p in enumerate([57, 59, 60, 62, 64, 65, 67, 69, 57, 69, 64, 57])]
    assert stats.best_scale(a_minor) == (9, "minor", pytest.approx(1.0))
    harmonic = a_minor + [N(68, 20, 21)]  # G#: not in A natural minor / C major, 12 of 13 notes stay in
    assert stats.best_scale(harmonic) == (9, "minor", pytest.approx(12 / 13))


def test_entropy_extremes():
    assert stats.pitch_class_entropy([N(60, 0, 1), N(72, 1, 2)]) == 0.0  # one class
    chromatic = [N(60 + i, i, i + 1) for i in range(12)]
    assert stats.pitch_class_entropy(chromatic) == pytest.approx(math.log2(12))
    assert stats.pitch_classes_used(chromatic) == 12


def test_polyphony_by_hand():
    # durations 1+1+2+.5+1+1 = 6.5 over the sounding time [0, 4] = 4
    assert stats.polyphony(PIECE) == pytest.approx(6.5 / 4)
    assert stats.polyphony([N(60, 0, 1), N(62, 2, 3)]) == 1.0  # silence in between does not count
    chord_then_note = [N(60, 0, 1), N(64, 0, 1), N(67, 0, 1), N(72, 1, 2)]
    assert stats.polyphony(chord_then_note) == pytest.approx(2.0)  # (3 + 1) beats of notes over 2 beats


def test_rhythm_statistics_by_hand():
    assert stats.notes_per_beat(PIECE) == pytest.approx(7 / 4)  # drum included, span 0..4
    np.testing.assert_allclose(stats.inter_onset_intervals(PIECE), [1, 1, 1])  # onsets 0, 1, 2, 3
    expected = np.zeros(12)
    expected[7] = 1.0  # the "1 beat" bin
    np.testing.assert_allclose(stats.ioi_histogram(PIECE), expected)
    onsets = [0, 0.25, 0.5, 1.0, 4 / 3, 4.0, 10.0]  # gaps 1/4, 1/4, 1/2, 1/3, 8/3 (nearest: 3), 6 (4+)
    hist = stats.ioi_histogram([N(60, t, t + 0.1) for t in onsets])
    expected = np.zeros(12)
    expected[[2, 4, 3, 10, 11]] = [2 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6]
    np.testing.assert_allclose(hist, expected)
    assert stats.IOI_LABELS[10] == "3" and len(stats.IOI_LABELS) == len(stats.IOI_CENTERS) == 12


def test_empty_and_drum_only_pieces():
    assert math.isnan(stats.pitch_range([]))
    assert math.isnan(stats.polyphony([]))
    assert math.isnan(stats.notes_per_beat([]))
    assert stats.pitch_class_histogram([]).sum() == 0
    drums = [N(36, 0, 0.5, is_drum=True), N(38, 1, 1.5, is_drum=True)]
    assert math.isnan(stats.pitch_class_entropy(drums)) and math.isnan(stats.pitch_in_scale_rate(drums))
    assert stats.notes_per_beat(drums) == pytest.approx(2 / 1.5)
    feats = stats.piece_features(drums)
    assert feats["notes"] == 2 and feats["ioi_histogram"][7] == 1.0


def test_histogram_overlap_by_hand():
    assert stats.histogram_overlap([1, 1, 0, 0], [0, 1, 1, 0]) == pytest.approx(0.5)
    assert stats.histogram_overlap([3, 1], [3, 1]) == pytest.approx(1.0)
    with pytest.raises(UsageError, match="shapes differ"):
        stats.histogram_overlap([1, 2], [1, 2, 3])


def test_kde_overlapped_area():
    # two unit Gaussians one apart overlap by 2·Φ(-1/2)
    expected = 1 + math.erf(-0.5 / math.sqrt(2))
    assert stats.overlapped_area([0.0], [1.0], bandwidth=1.0) == pytest.approx(expected, abs=1e-4)
    values = np.random.default_rng(0).normal(size=50)
    assert stats.overlapped_area(values, values) == pytest.approx(1.0, abs=1e-4)
    assert stats.overlapped_area([5, 5, 5], [5, 5]) == pytest.approx(1.0, abs=1e-4)  # constant, equal sets
    assert stats.overlapped_area(values, values + 100) < 1e-6
    assert math.isnan(stats.overlapped_area([math.nan], [1.0]))
    # nearly constant sets (polyphony 4.0 of a four-part chorale): one bandwidth for both, so 60 of 64 equal values
    # overlap as much (a bandwidth per set put a narrow spike against a wide bump: 0.04)
    assert stats.overlapped_area([4.0] * 60 + [4.2, 4.3, 4.4, 4.5], [4.0] * 64) > 0.9
    assert stats.overlapped_area([4.0] * 64, [4.5] * 64) < 1e-6  # and two different constants stay apart
    assert stats.overlapped_area(values, values * 3) < 0.8  # one set three times as spread


def test_compare_feature_sets():
    real = [stats.piece_features(PIECE)] * 3
    same = stats.compare_feature_sets(real, real)
    assert same["pitch_range"]["real_mean"] == 7.0 and same["pitch_range"]["overlap"] == pytest.approx(1, abs=1e-4)
    assert same["pitch_class_histogram"]["overlap"] == pytest.approx(1.0)
    shifted = [stats.piece_features([N(n.pitch + 1, n.start, n.end, is_drum=n.is_drum) for n in PIECE])]
    diff = stats.compare_feature_sets(shifted, real)
    # pitch classes {1,2,3,5,6,8} vs {0,1,2,4,5,7}: shared 1, 2, 5 → 3 × 1/6
    assert diff["pitch_class_histogram"]["overlap"] == pytest.approx(0.5)
    assert diff["ioi_histogram"]["overlap"] == pytest.approx(1.0)


def test_meter_and_texture_shares_by_hand():
    # PIECE: every note (the drum too) starts on beat 0, 1, 2 or 3; the notes starting at 0 are C, E, G (+ drum)
    assert stats.on_beat_onset_share(PIECE) == 1.0
    assert stats.chord_onset_share(PIECE) == pytest.approx(3 / 6)  # C E G start together; the drum does not count
    assert stats.long_note_share(PIECE) == 0.0  # the longest pitched note, G, lasts 2 beats
    assert stats.long_note_share(PIECE, beats=2) == pytest.approx(1 / 6)
    offbeat = [N(60, 0, 4), N(62, 0.5, 1), N(64, 1 + 1 / 3, 2), N(65, 2.0000000001, 6.5), N(67, 3.75, 4)]
    assert stats.on_beat_onset_share(offbeat) == pytest.approx(2 / 5)  # 0 and 2 (to 1e-6); not 1/2, 4/3, 15/4
    chord_then_passing = [N(p, 1, 2) for p in (48, 60, 64, 67)] + [N(62, 1.5, 2)]
    assert stats.on_beat_onset_share(chord_then_passing) == pytest.approx(4 / 5)  # per note, not per onset (1/2)
    assert stats.long_note_share(offbeat) == pytest.approx(2 / 5)  # 4 beats exactly, and 4.5
    assert stats.chord_onset_share(offbeat) == 0.0
    two_chords = [N(p, 0, 1) for p in (48, 60, 64, 67)] + [N(p, 1, 2) for p in (50, 62)]
    assert stats.chord_onset_share(two_chords) == pytest.approx(4 / 6)  # a dyad is not a chord
    for fn in (stats.on_beat_onset_share, stats.long_note_share, stats.chord_onset_share):
        assert math.isnan(fn([]))
    drums = [N(36, 0.5, 5, is_drum=True)]
    assert stats.on_beat_onset_share(drums) == 0.0 and math.isnan(stats.long_note_share(drums))


def test_piece_features_counts_and_pooled_shares():
    feats = stats.piece_features(PIECE)
    assert (feats["notes"], feats["pitched_notes"]) == (7, 6)
    assert feats["chord_onset_share"] == pytest.approx(0.5) and feats["on_beat_onset_share"] == 1.0
    # one piece of 6 pitched notes with 3 in a chord, one of 4 notes in one chord: 7 of 10 notes, not (1/2 + 1)/2
    chord = stats.piece_features([N(p, 0, 4) for p in (48, 60, 64, 67)])
    assert stats.pooled_share([feats, chord], "chord_onset_share") == pytest.approx(7 / 10)
    assert stats.pooled_share([feats, chord], "long_note_share") == pytest.approx(4 / 10)
    # on the beat: all 7 notes of PIECE (drum included), the 4 of the chord; an off-beat piece adds 2 notes off it
    off = stats.piece_features([N(60, 0.5, 1), N(62, 1.5, 2)])
    assert stats.pooled_share([feats, chord, off], "on_beat_onset_share") == pytest.approx(11 / 13)
    assert math.isnan(stats.pooled_share([stats.piece_features([])], "long_note_share"))
    with pytest.raises(UsageError, match="name: expected one of .*, got 'pitch_range'"):
        stats.pooled_share([feats], "pitch_range")
    compared = stats.compare_feature_sets([chord], [feats, off])
    row = compared["long_note_share"]
    assert row["generated_pooled"] == 1.0 and row["real_pooled"] == 0.0 and row["real_values"] == [0.0, 0.0]
    assert compared["on_beat_onset_share"]["real_pooled"] == pytest.approx(7 / 9)
