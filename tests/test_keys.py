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


# ------------------------------------------------------------------------------------------- the corpus's keys
def test_key_counts_and_draws():
    from musicgen.config import TokenizerConfig
    from musicgen.keys import draw_keys, key_counts
    from musicgen.meter import parse_key
    from musicgen.tokenizer import Tokenizer

    tok = Tokenizer(TokenizerConfig(velocity_bins=0, programs=False, key="token"))
    notes = [Note(60, 0.0, 1.0, 80), Note(64, 1.0, 2.0, 80)]
    pieces = [tok.encode_notes(notes, key=k) for k in (21, 21, 7, 21)]
    assert key_counts(pieces, tok) == {"G major": 1, "A minor": 3}  # key-number order, unused keys left out
    plain = Tokenizer(TokenizerConfig(velocity_bins=0, programs=False))
    assert key_counts([plain.encode_notes(notes)], plain) == {}
    drawn = draw_keys({"G major": 1, "A minor": 3}, 5, 4000)
    assert set(drawn.tolist()) == {7, 21} and abs(np.mean(drawn == parse_key("A minor")) - 0.75) < 0.03
    assert draw_keys({"G major": 1, "A minor": 3}, 5, 3).tolist() == drawn[:3].tolist()  # draw i: seed and i alone
    assert draw_keys({"G major": 1, "A minor": 3}, 6, 50).tolist() != drawn[:50].tolist()
    assert draw_keys(None, 5, 3) is None and draw_keys({}, 5, 3) is None


def test_rules_force_one_key_per_stream():
    from musicgen.config import TokenizerConfig
    from musicgen.rules import EventRules
    from musicgen.tokenizer import Tokenizer

    tok = Tokenizer(TokenizerConfig(velocity_bins=0, programs=False, key="token"))
    rules = EventRules(tok, 3, key=np.array([2, 14, 21]))
    rules.observe(np.full(3, tok.bos_id))
    allowed = np.isfinite(rules.apply(np.zeros((3, tok.vocab_size), np.float32)))
    assert [np.flatnonzero(row).tolist() for row in allowed] == [[tok.token("KEY", k)] for k in (2, 14, 21)]
    shared = EventRules(tok, 2, key=14)
    shared.observe(np.full(2, tok.bos_id))
    assert (np.isfinite(shared.apply(np.zeros((2, tok.vocab_size), np.float32))).sum(1) == 1).all()
    free = EventRules(tok, 2)
    free.observe(np.full(2, tok.bos_id))
    assert (np.isfinite(free.apply(np.zeros((2, tok.vocab_size), np.float32))).sum(1) == 24).all()
    with pytest.raises(ValueError, match="key: expected None, or KEY values"):
        EventRules(tok, 2, key=[0, 24])


def test_sample_draws_keys_from_the_record_or_lets_the_model_draw(tmp_path):
    import json

    from conftest import make_bundle

    from musicgen.cli import main
    from musicgen.config import TokenizerConfig

    cfg = TokenizerConfig(min_pitch=48, max_pitch=72, velocity_bins=0, programs=False, key="token")
    recorded = make_bundle(tmp_path / "recorded", cfg, with_keras=False, note_bias=2.0,
                           metrics={"key_pieces": {"E minor": 2}})
    old = make_bundle(tmp_path / "old", cfg, with_keras=False, note_bias=2.0, metrics={})
    for bundle, out in ((recorded, tmp_path / "r"), (old, tmp_path / "o")):
        out.mkdir()
        assert main(["sample", "--model", str(bundle), "-n", "8", "--length", "40", "--seed", "4", "-o",
                     str(out)]) == 0
    keys = {m: [json.loads((tmp_path / m / f"sample-{i:02d}.json").read_text())["key"] for i in range(1, 9)]
            for m in ("r", "o")}
    assert keys["r"] == ["E minor"] * 8  # the training pieces' only key
    assert len(set(keys["o"])) > 1  # no record (an older bundle): the untrained model draws its own, any of 24
