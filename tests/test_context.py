"""Context features (metric position, key): hand-written sequences with hand-written answers, tracker == vectorized."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.config import TokenizerConfig
from musicgen.context import (ContextTracker, context_features, context_names, context_sizes, key_name,
                              parse_key)
from musicgen.errors import UsageError
from musicgen.tokenizer import Tokenizer, time_signature_value

TOK = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=8, velocity_bins=0, programs=False,
                                meter=True, key="token"))


def ids(tok, *events):
    out = []
    for name, value in events:
        if name == "TIME_SIG":
            value = time_signature_value(*value)
        out.append(tok.token(name, value))
    return np.array(out)


def tracked(tok, tokens):
    """Tracker rows for one stream."""
    tracker = ContextTracker(tok, 1)
    return np.concatenate([tracker.update([t]) for t in tokens]) if len(tokens) else np.zeros((0, 0), np.int32)


def test_sizes_and_names():
    assert context_sizes(TokenizerConfig()) == () and context_names(TokenizerConfig()) == ()
    assert context_sizes(TokenizerConfig(meter=True)) == (25, 17, 3)
    assert context_sizes(TokenizerConfig(key="normalize")) == (25,)
    assert context_sizes(TokenizerConfig(meter=True, key="token", steps_per_quarter=4)) == (9, 17, 3, 25)
    assert context_names(TOK.config) == ("step_in_beat", "beat_in_bar", "bar_start", "key")


# pickup bar of 1/4, then 4/4 (chained shifts across a bar), then 3/8, then a second piece
PIECES = [("BOS", 0), ("KEY", 14), ("TIME_SIG", (1, 4)), ("NOTE_ON", 50), ("TIME_SHIFT", 8), ("TIME_SHIFT", 4),
          ("TIME_SIG", (4, 4)), ("NOTE_OFF", 50), ("TIME_SHIFT", 6), ("NOTE_ON", 52), ("TIME_SHIFT", 6),
          ("TIME_SHIFT", 8), ("TIME_SHIFT", 8), ("TIME_SHIFT", 8), ("TIME_SHIFT", 8), ("TIME_SHIFT", 4),
          ("TIME_SIG", (3, 8)), ("TIME_SHIFT", 8), ("EOS", 0), ("BOS", 0), ("NOTE_ON", 50)]
EXPECTED = [(0, 0, 0, 0), (0, 0, 0, 15), (1, 1, 2, 15), (1, 1, 2, 15), (9, 1, 1, 15), (1, 1, 2, 15),
            (1, 1, 2, 15), (1, 1, 2, 15), (7, 1, 1, 15), (7, 1, 1, 15), (1, 2, 1, 15),
            (9, 2, 1, 15), (5, 3, 1, 15), (1, 4, 1, 15), (9, 4, 1, 15), (1, 1, 2, 15),
            (1, 1, 2, 15), (3, 2, 1, 15), (3, 2, 1, 15), (0, 0, 0, 0), (0, 0, 0, 0)]


def test_hand_written_pieces_with_pickup_meter_changes_and_two_pieces():
    tokens = ids(TOK, *PIECES)
    got = context_features(tokens, TOK)
    assert got.dtype == np.int32 and got.shape == (len(PIECES), 4)
    assert got.tolist() == [list(row) for row in EXPECTED]
    np.testing.assert_array_equal(tracked(TOK, tokens), got)


def test_half_note_and_sixteenth_beats_and_a_beat_shorter_than_a_step():
    tokens = ids(TOK, ("BOS", 0), ("TIME_SIG", (3, 2)), ("TIME_SHIFT", 8), ("TIME_SHIFT", 8), ("TIME_SHIFT", 8),
                 ("TIME_SIG", (5, 16)), ("TIME_SHIFT", 4), ("TIME_SHIFT", 8), ("TIME_SHIFT", 3))
    # 3/2: a beat is 24 steps; 5/16: a beat is 3 steps, a bar 15
    assert context_features(tokens, TOK)[:, :3].tolist() == [
        [0, 0, 0], [1, 1, 2], [9, 1, 1], [17, 1, 1], [1, 2, 1], [1, 1, 2], [2, 2, 1], [1, 5, 1], [1, 1, 2]]
    tok = Tokenizer(TokenizerConfig(steps_per_quarter=2, max_shift_steps=4, meter=True))  # 3/16: beat = half a step
    tokens = ids(tok, ("TIME_SIG", (3, 16)), ("TIME_SHIFT", 1), ("TIME_SHIFT", 1), ("TIME_SHIFT", 1))
    assert context_features(tokens, tok).tolist() == [[1, 1, 2], [1, 3, 1], [1, 2, 1], [1, 1, 2]]
    np.testing.assert_array_equal(tracked(tok, tokens), context_features(tokens, tok))


def test_unknown_before_a_time_signature_and_key_only_vocabulary():
    tokens = ids(TOK, ("TIME_SHIFT", 5), ("TIME_SIG", (2, 4)), ("TIME_SHIFT", 3), ("BOS", 0), ("TIME_SHIFT", 8),
                 ("KEY", 3), ("TIME_SIG", (2, 4)))
    assert context_features(tokens, TOK).tolist() == [
        [0, 0, 0, 0], [1, 1, 2, 0], [4, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 4], [1, 1, 2, 4]]
    tok = Tokenizer(TokenizerConfig(key="normalize"))
    tokens = np.array([tok.bos_id, tok.token("KEY", 23), tok.token("NOTE_ON", 60), tok.eos_id, tok.bos_id])
    assert context_features(tokens, tok).tolist() == [[0], [24], [24], [24], [0]]
    plain = Tokenizer()
    assert context_features([plain.bos_id, 5], plain).shape == (2, 0)
    assert ContextTracker(plain, 3).update([1, 1, 1]).shape == (3, 0)
    assert context_features([], TOK).shape == (0, 4)


def test_bad_ids_are_usage_errors():
    with pytest.raises(UsageError, match="outside"):
        context_features([0, TOK.vocab_size], TOK)
    with pytest.raises(UsageError, match="integer"):
        context_features(np.array([0.5]), TOK)


@st.composite
def streams(draw):
    """Token streams biased towards the events that move the context (BOS, TIME_SIG, KEY, shifts)."""
    kinds = {"BOS": (TOK.bos_id, 1), "EOS": (TOK.eos_id, 1), "PAD": (TOK.pad_id, 1)}
    for name in ("TIME_SHIFT", "TIME_SIG", "KEY", "NOTE_ON"):
        kinds[name] = TOK.ranges[name]
    names = sorted(kinds)
    weights = {"BOS": 1, "EOS": 1, "PAD": 1, "TIME_SHIFT": 8, "TIME_SIG": 2, "KEY": 1, "NOTE_ON": 3}
    pool = [n for n in names for _ in range(weights[n])]
    events = draw(st.lists(st.tuples(st.sampled_from(pool), st.integers(0, 10**6)), min_size=0, max_size=120))
    return np.array([kinds[n][0] + v % kinds[n][1] for n, v in events], np.int64)


@settings(max_examples=150, deadline=None)
@given(streams(), st.integers(1, 4))
def test_tracker_equals_vectorized_on_random_streams(tokens, batch):
    expected = context_features(tokens, TOK)
    np.testing.assert_array_equal(tracked(TOK, tokens).reshape(expected.shape), expected)
    # B streams side by side: stream b is tokens rolled by b, each tracked independently of the others
    rows = np.stack([np.roll(tokens, b) for b in range(batch)])
    tracker = ContextTracker(TOK, batch)
    got = np.stack([tracker.update(rows[:, t]) for t in range(rows.shape[1])], axis=1) if tokens.size else None
    for b in range(batch if tokens.size else 0):
        np.testing.assert_array_equal(got[b], context_features(rows[b], TOK))


@pytest.mark.parametrize("name, value", [("D minor", 14), ("d minor", 14), ("D", 2), ("Bb major", 10),
                                         ("F# MINOR", 18), ("  Cb  ", 11), ("e#", 5), ("A minor", 21)])
def test_parse_key(name, value):
    assert parse_key(name) == value


@pytest.mark.parametrize("name", ["H", "D dorian", "Dbb", "", "D  minor extra", "minor", "D-"])
def test_parse_key_is_strict(name):
    with pytest.raises(UsageError, match=r"^--key: expected .*TONIC.*got"):
        parse_key(name)


def test_key_names_round_trip():
    assert key_name(14) == "D minor" and key_name(10) == "Bb major" and key_name(6) == "F# major"
    assert [parse_key(key_name(v)) for v in range(24)] == list(range(24))
    with pytest.raises(UsageError):
        key_name(24)
