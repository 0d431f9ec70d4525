"""Classifier two-sample test: excerpt cutting and features by hand, a separable toy with a known answer, and music21's
bundled Bach chorales against themselves (≈ 0.5) and against folk tunes (≈ 1.0)."""

import math
from pathlib import Path

import numpy as np
import pytest

from musicgen import twosample
from musicgen.errors import UsageError
from musicgen.piece import Note
from musicgen.tokenizer import Tokenizer

TOK = Tokenizer()


def ids(*events):
    return [TOK.bos_id] + [TOK.token(name, value) for name, value in events] + [TOK.eos_id]


# body positions: 0 PROG 1 VEL 2 ON60 3 SH12 | 4 OFF60 5 ON62 6 SH6 7 SH6 | 8 OFF62 9 ON64 10 SH12 | 11 OFF64
PIECE = ids(("PROGRAM", 40), ("VELOCITY", 25), ("NOTE_ON", 60), ("TIME_SHIFT", 12), ("NOTE_OFF", 60),
            ("NOTE_ON", 62), ("TIME_SHIFT", 6), ("TIME_SHIFT", 6), ("NOTE_OFF", 62), ("NOTE_ON", 64),
            ("TIME_SHIFT", 12), ("NOTE_OFF", 64))


def test_excerpts_start_after_time_shifts_and_never_overlap():
    # time-step boundaries: 0, 4 (after SH12), 8 (after SH6 SH6), 11 (after SH12)
    assert twosample.excerpt_starts(TOK, PIECE, 4) == [0, 4, 8]
    assert twosample.excerpt_starts(TOK, PIECE, 3) == [0, 4, 8]  # 3..4 skipped: position 3 is no boundary
    assert twosample.excerpt_starts(TOK, PIECE, 5) == [0]  # next would start at 8 and run past the end (12)
    assert twosample.excerpt_starts(TOK, PIECE, 13) == []
    with pytest.raises(UsageError, match="length: expected a positive integer, got 0"):
        twosample.excerpt_starts(TOK, PIECE, 0)


def test_excerpts_keep_program_velocity_and_time_of_the_piece():
    notes, index = twosample.excerpts(TOK, [PIECE, PIECE[:3]], 4)
    assert index.tolist() == [0, 0, 0]  # the 1-token second piece gives none
    # velocity bin 25 → 98, program 40 carried into later excerpts; times in beats from the piece's start; a note
    # sounding at an excerpt's end is closed at its last step; an OFF without its ON is ignored
    assert notes == [[Note(60, 0.0, 1.0, 98, 40)], [Note(62, 1.0, 2.0, 98, 40)], [Note(64, 2.0, 3.0, 98, 40)]]


def test_excerpts_keep_the_voice_of_the_piece():
    from musicgen.config import TokenizerConfig

    tok = Tokenizer(TokenizerConfig(voices=2))
    piece = [tok.bos_id] + [tok.token(n, v) for n, v in (
        ("VOICE", 1), ("NOTE_ON", 60), ("TIME_SHIFT", 12), ("NOTE_OFF", 60), ("NOTE_ON", 62), ("TIME_SHIFT", 12),
        ("NOTE_OFF", 62))] + [tok.eos_id]
    notes, _ = twosample.excerpts(tok, [piece], 3)
    assert notes == [[Note(60, 0.0, 1.0, 78, 0, False, 1)], [Note(62, 1.0, 2.0, 78, 0, False, 1)]]


def test_excerpt_features_by_hand():
    notes = [Note(60, 0.0, 1.0, 80), Note(64, 0.0, 1.0, 80), Note(67, 1.0, 1.5, 80), Note(65, 1.5, 2.0, 80)]
    f = dict(zip(twosample.FEATURE_NAMES, twosample.excerpt_features(notes)))
    assert len(f) == len(twosample.FEATURE_NAMES) == 39
    assert f["pitch_range"] == 7 and f["pitch_classes_used"] == 4 and f["pitch_class_entropy"] == pytest.approx(2)
    assert f["polyphony"] == pytest.approx(3 / 2) and f["notes_per_beat"] == 2 and f["pitch_in_scale_rate"] == 1
    assert [f[f"pc_{n}"] for n in ("C", "E", "F", "G", "D")] == [0.25, 0.25, 0.25, 0.25, 0]
    assert f["ioi_1"] == 0.5 and f["ioi_1/2"] == 0.5  # gaps 1 and 0.5
    # onsets 0, 1 on the beat, 1.5 on the half beat
    assert [f[n] for n in twosample.ONSET_PHASES] == pytest.approx([2 / 3, 1 / 3, 0, 0])
    assert f["top_line_interval"] == 2.5 and f["top_line_stepwise"] == 0.5  # 64 → 67 → 65
    assert f["bass_line_interval"] == 4.5  # 60 → 67 → 65
    assert f["mean_pitch"] == 64 and f["mean_log2_duration"] == -0.5
    # sixteenths and a triplet: on beat, half, quarter, elsewhere
    assert twosample._onset_phases(np.array([0, 0.25, 1 / 3, 0.5, 0.75])).tolist() == [0.2, 0.2, 0.4, 0.2]
    empty = twosample.excerpt_features([])
    assert math.isnan(empty[0]) and not empty[6:30].any()


def test_classifier_accuracy_separable_and_errors():
    rng = np.random.default_rng(0)
    real = np.column_stack([np.zeros(30), rng.normal(size=30)])
    gen = np.column_stack([np.ones(20), rng.normal(size=20)])
    gen[0, 1] = np.nan  # filled with the pooled median
    got = twosample.classifier_accuracy(real, gen, folds=4)
    assert got == {"accuracy": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n_per_class": 20, "folds": 4}
    with pytest.raises(UsageError, match="folds: 5 folds need at least 5 pieces per class"):
        twosample.classifier_accuracy(real, gen, groups_gen=np.arange(20) % 4)
    with pytest.raises(UsageError, match="X_real, X_gen: expected 2-D arrays with equal columns"):
        twosample.classifier_accuracy(real, gen[:, :1])
    with pytest.raises(UsageError, match="folds: expected an integer >= 2, got 1"):
        twosample.classifier_accuracy(real, gen, folds=1)


def _scale(k):  # 16 quarter notes up a C-major scale from C4 + k: one line, on the beat
    return TOK.encode_notes([Note(60 + k + [0, 2, 4, 5, 7, 9, 11, 12][i % 8], i, i + 1, 80) for i in range(16)])


def _chords(k):  # 16 eighth-note triads on F#: three voices, off-beat onsets
    return TOK.encode_notes([Note(66 + k + d, i / 2, i / 2 + 0.5, 80) for i in range(16) for d in (0, 3, 7)])


def test_two_sample_on_a_toy_with_a_known_answer():
    real, gen = [_scale(k) for k in range(6)], [_chords(k) for k in range(6)]
    got = twosample.two_sample(TOK, real, gen, length=16)
    # a scale's body is PROG VEL then ON SH OFF per note (50 tokens): excerpts at 0, 16, 34 → 3 per piece;
    # the chords' body is PROG VEL ON ON ON, 15 × (SH OFF OFF OFF ON ON ON), SH OFF OFF OFF (114 tokens), a step
    # starting after each SH at 6 + 7j: excerpts at 0, 20, 41, 62, 83 → 5 per piece
    assert got == {"accuracy": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n_real": 18, "n_generated": 30,
                   "n_per_class": 18, "length": 16, "folds": 5}
    with pytest.raises(UsageError, match="length: 600 events is longer than every piece in real_pieces"):
        twosample.two_sample(TOK, real, gen, length=600)


@pytest.fixture(scope="module")
def corpus_tokens():
    """16 Bach chorales and 16 Irish folk tunes from music21's bundled corpus, read and encoded by musicgen
    (about 10 s: music21 parses them)."""
    import music21

    root = Path(music21.corpus.__file__).parent
    bach = sorted((root / "bach").glob("bwv*.mxl"))[::25][:16]
    folk = sorted((root / "ryansMammoth").glob("*.abc"))[::60][:16]
    return [TOK.encode(p) for p in bach], [TOK.encode(p) for p in folk]


def test_bach_against_folk_tunes_is_easy(corpus_tokens):
    bach, folk = corpus_tokens
    got = twosample.two_sample(TOK, bach, folk, length=128)
    assert got["accuracy"] > 0.9 and got["n_per_class"] >= 30, got


def test_two_halves_of_bach_are_indistinguishable(corpus_tokens):
    bach, _ = corpus_tokens
    for seed in (0, 1):
        got = twosample.two_sample(TOK, bach[0::2], bach[1::2], length=128, seed=seed)
        assert got["ci_low"] <= 0.5 <= got["ci_high"] or got["accuracy"] < 0.65, got
