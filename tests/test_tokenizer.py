"""Notes ⇄ tokens: hand-written token lists, round trips, total decoding, augmentation, persistence."""

import io
import json
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicgen.config import TokenizerConfig
from musicgen.errors import ConfigError, IngestError, UsageError
from musicgen.piece import Note, Piece
from musicgen.reader import read_piece
from musicgen.tokenizer import Tokenizer, stretch_notes, velocity_tables

BEAT = Tokenizer()
SECONDS = Tokenizer(TokenizerConfig.seconds())


def ids(tok: Tokenizer, *events) -> list[int]:
    """("NOTE_ON", 60) style events → ids, wrapped in BOS … EOS."""
    return [tok.bos_id] + [tok.token(name, value) for name, value in events] + [tok.eos_id]


def tuples(notes):
    return sorted((n.pitch, n.start, n.end, n.velocity, n.program, n.is_drum) for n in notes)


def test_default_range_table():
    assert BEAT.vocab_size == 3 + 128 + 128 + 48 + 32 + 129 == 468
    assert BEAT.ranges == {"PAD": (0, 1), "BOS": (1, 1), "EOS": (2, 1), "NOTE_ON": (3, 128), "NOTE_OFF": (131, 128),
                           "TIME_SHIFT": (259, 48), "VELOCITY": (307, 32), "PROGRAM": (339, 129)}
    assert (BEAT.pad_id, BEAT.bos_id, BEAT.eos_id) == (0, 1, 2)
    assert BEAT.token("NOTE_ON", 60) == 63 and BEAT.token("TIME_SHIFT", 1) == 259 and BEAT.token("PROGRAM", 128) == 467
    assert BEAT.describe(63) == ("NOTE_ON", 60) and BEAT.describe(306) == ("TIME_SHIFT", 48)
    assert [BEAT.describe(i) for i in range(BEAT.vocab_size)] == [BEAT.describe(BEAT.token(*BEAT.describe(i)))
                                                                 for i in range(BEAT.vocab_size)]
    assert SECONDS.vocab_size == 3 + 128 + 128 + 100 + 32 + 129
    with pytest.raises(UsageError, match="NOTE_ON value"):
        BEAT.token("NOTE_ON", 128)
    with pytest.raises(UsageError, match="token id"):
        BEAT.describe(468)


def test_small_table_without_velocity_or_programs():
    tok = Tokenizer(TokenizerConfig(velocity_bins=0, programs=False, min_pitch=60, max_pitch=71, max_shift_steps=4,
                                    steps_per_quarter=4))
    assert tok.vocab_size == 31 and "VELOCITY" not in tok.ranges and "PROGRAM" not in tok.ranges
    notes = [Note(60, 0.0, 1.0, 30), Note(36, 0.0, 1.0, 90, is_drum=True), Note(59, 0.0, 1.0, 90),
             Note(71, 0.5, 2.0, 120, program=40)]
    # drum and out-of-range notes dropped; program 40 forgotten; steps of a sixteenth
    # BOS ON60 SHIFT2 ON71 SHIFT2 OFF60 SHIFT4 OFF71 EOS
    assert tok.encode_notes(notes).tolist() == [1, 3, 28, 14, 28, 15, 30, 26, 2]
    assert tuples(tok.decode_notes([1, 3, 28, 14, 28, 15, 30, 26, 2])) == [(60, 0.0, 1.0, 80, 0, False),
                                                                          (71, 0.5, 2.0, 80, 0, False)]


def test_kind_mask_and_values_of_read_one_event_kind():
    tok = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=8, velocity_bins=4, voices=3))
    t = np.array([tok.bos_id, tok.token("VOICE", 2), tok.token("VELOCITY", 3), tok.token("NOTE_ON", 50),
                  tok.token("TIME_SHIFT", 6), tok.token("VOICE", 0), tok.token("NOTE_ON", 48)])
    assert tok.kind_mask(t, "VOICE").tolist() == [False, True, False, False, False, True, False]
    assert tok.values_of(t, "VOICE").tolist() == [2, 0] and tok.values_of(t, "NOTE_ON").tolist() == [50, 48]
    assert tok.values_of(t, "TIME_SHIFT").tolist() == [6] and tok.values_of(t, "VELOCITY").tolist() == [3]
    assert not tok.kind_mask(t, "KEY").any() and tok.values_of(t, "KEY").size == 0  # no KEY range here
    assert tok.kind_mask(t.reshape(1, -1), "NOTE_ON").shape == (1, 7)


def test_c_major_triad_then_rest():
    notes = [Note(60, 0.0, 1.0, 80), Note(64, 0.0, 1.0, 80), Note(67, 0.0, 1.0, 80), Note(72, 2.0, 3.0, 100)]
    tokens = BEAT.encode_notes(notes)
    assert tokens.dtype == np.int32
    assert tokens.tolist() == [1, 339, 326, 63, 67, 70, 270, 191, 195, 198, 270, 331, 75, 270, 203, 2]
    assert tokens.tolist() == ids(BEAT, ("PROGRAM", 0), ("VELOCITY", 20), ("NOTE_ON", 60), ("NOTE_ON", 64),
                                  ("NOTE_ON", 67), ("TIME_SHIFT", 12), ("NOTE_OFF", 60), ("NOTE_OFF", 64),
                                  ("NOTE_OFF", 67), ("TIME_SHIFT", 12), ("VELOCITY", 25), ("NOTE_ON", 72),
                                  ("TIME_SHIFT", 12), ("NOTE_OFF", 72))
    # velocities come back as bin centres: 80 is in bin 20 (77..80), 100 in bin 25 (97..100)
    assert tuples(BEAT.decode_notes(tokens)) == [(60, 0.0, 1.0, 78, 0, False), (64, 0.0, 1.0, 78, 0, False),
                                                 (67, 0.0, 1.0, 78, 0, False), (72, 2.0, 3.0, 98, 0, False)]


def test_two_instruments_switch_programs():
    notes = [Note(60, 0.0, 1.0, 80), Note(76, 0.5, 1.5, 80, program=40)]
    assert BEAT.encode_notes(notes).tolist() == ids(
        BEAT, ("PROGRAM", 0), ("VELOCITY", 20), ("NOTE_ON", 60), ("TIME_SHIFT", 6), ("PROGRAM", 40), ("NOTE_ON", 76),
        ("TIME_SHIFT", 6), ("PROGRAM", 0), ("NOTE_OFF", 60), ("TIME_SHIFT", 6), ("PROGRAM", 40), ("NOTE_OFF", 76))


def test_drum_hits_and_one_step_minimum():
    notes = [Note(48, 0.0, 1.0, 40), Note(36, 0.0, 1 / 48, 127, is_drum=True), Note(42, 0.0, 0.25, 127, is_drum=True)]
    tokens = BEAT.encode_notes(notes)
    assert tokens.tolist() == ids(
        BEAT, ("PROGRAM", 0), ("VELOCITY", 10), ("NOTE_ON", 48), ("PROGRAM", 128), ("VELOCITY", 32), ("NOTE_ON", 36),
        ("NOTE_ON", 42), ("TIME_SHIFT", 1), ("NOTE_OFF", 36), ("TIME_SHIFT", 2), ("NOTE_OFF", 42), ("TIME_SHIFT", 9),
        ("PROGRAM", 0), ("NOTE_OFF", 48))
    # 127 is in bin 32 (125..127) → 126; 40 in bin 10 (37..40) → 38
    assert tuples(BEAT.decode_notes(tokens)) == [(36, 0.0, 1 / 12, 126, 0, True), (42, 0.0, 0.25, 126, 0, True),
                                                 (48, 0.0, 1.0, 38, 0, False)]


def test_long_gap_chains_time_shifts_and_overlaps_are_cut():
    notes = [Note(60, 0.0, 1.0, 80), Note(62, 10.0, 10.5, 80)]  # 108 steps of silence = 48 + 48 + 12
    assert BEAT.encode_notes(notes).tolist() == ids(
        BEAT, ("PROGRAM", 0), ("VELOCITY", 20), ("NOTE_ON", 60), ("TIME_SHIFT", 12), ("NOTE_OFF", 60),
        ("TIME_SHIFT", 48), ("TIME_SHIFT", 48), ("TIME_SHIFT", 12), ("NOTE_ON", 62), ("TIME_SHIFT", 6),
        ("NOTE_OFF", 62))
    overlap = [Note(60, 0.0, 2.0, 80), Note(60, 1.0, 3.0, 80), Note(64, 0.0, 0.5, 80), Note(64, 0.0, 1.0, 80)]
    # 60: the first is cut at the second's onset; 64: same onset, the longer is kept
    assert BEAT.encode_notes(overlap).tolist() == ids(
        BEAT, ("PROGRAM", 0), ("VELOCITY", 20), ("NOTE_ON", 60), ("NOTE_ON", 64), ("TIME_SHIFT", 12),
        ("NOTE_OFF", 60), ("NOTE_OFF", 64), ("NOTE_ON", 60), ("TIME_SHIFT", 24), ("NOTE_OFF", 60))


def test_seconds_mode_grid():
    notes = [Note(60, 0.0, 0.25, 80), Note(67, 1.001, 1.004, 80), Note(64, 2.75, 3.0, 80)]
    tokens = SECONDS.encode_notes(notes)
    assert tokens.tolist() == ids(
        SECONDS, ("PROGRAM", 0), ("VELOCITY", 20), ("NOTE_ON", 60), ("TIME_SHIFT", 25), ("NOTE_OFF", 60),
        ("TIME_SHIFT", 75), ("NOTE_ON", 67), ("TIME_SHIFT", 1), ("NOTE_OFF", 67), ("TIME_SHIFT", 100),
        ("TIME_SHIFT", 74), ("NOTE_ON", 64), ("TIME_SHIFT", 25), ("NOTE_OFF", 64))
    assert tuples(SECONDS.decode_notes(tokens)) == [(60, 0.0, 0.25, 78, 0, False), (64, 2.75, 3.0, 78, 0, False),
                                                    (67, 1.0, 1.01, 78, 0, False)]


def test_velocity_tables():
    to_bin, centre = velocity_tables(32)
    assert to_bin[[1, 4, 5, 77, 80, 81, 124, 125, 127]].tolist() == [1, 1, 2, 20, 20, 21, 31, 32, 32]
    assert centre[[1, 10, 20, 25, 31, 32]].tolist() == [2, 38, 78, 98, 122, 126]
    assert velocity_tables(127)[0][1:].tolist() == list(range(1, 128))
    assert velocity_tables(1)[1].tolist() == [0, 64]
    for bins in range(1, 128):
        to_bin, centre = velocity_tables(bins)
        assert to_bin[centre[1:]].tolist() == list(range(1, bins + 1))  # every bin non-empty, centre inside
        assert np.all(np.diff(to_bin[1:]) >= 0)


def _on_grid_notes(draw, per_unit: int, overlapping: bool = False) -> list[Note]:
    """Notes on the grid with bin-centre velocities. ``overlapping=False``: notes of one (instrument, pitch) never
    overlap. ``overlapping=True``: few pitches and onsets, so unisons (same onset), overlaps, notes inside notes and
    exact duplicates (with different velocities) are common; in the order drawn."""
    if overlapping:
        raw = draw(st.lists(st.tuples(st.sampled_from([0, 40, 128]), st.integers(60, 62), st.integers(0, 24),
                                      st.integers(1, 30), st.integers(1, 32)), max_size=40))
    else:
        raw = draw(st.lists(st.tuples(st.sampled_from([0, 40, 128]), st.integers(21, 108), st.integers(0, 400),
                                      st.integers(1, 150), st.integers(1, 32)), max_size=40))
    centre = velocity_tables(32)[1]
    last_end, notes = {}, []
    for inst, pitch, s, length, b in (raw if overlapping else sorted(raw, key=lambda r: (r[0], r[1], r[2]))):
        if not overlapping and s < last_end.get((inst, pitch), 0):
            continue
        last_end[(inst, pitch)] = s + length
        notes.append(Note(pitch, s / per_unit, (s + length) / per_unit, int(centre[b]), 0 if inst == 128 else inst,
                          inst == 128))
    return notes


def _merge_rule(notes: list[Note], per_unit: int) -> list[tuple]:
    """The tokenizer's documented merge rule, written out: per (instrument, pitch), notes sorted by (start, end),
    the input order breaking ties; each ends at the next one's onset if that comes first; notes left without
    length vanish (so of two with one onset the longer stays, of identical ones the last given)."""
    rows = sorted(range(len(notes)), key=lambda i: (notes[i].is_drum, notes[i].program, notes[i].pitch,
                                                    notes[i].start, notes[i].end))
    kept = []
    for k, i in enumerate(rows):
        n = notes[i]
        end = n.end
        if k + 1 < len(rows):
            m = notes[rows[k + 1]]
            if (m.is_drum, m.program, m.pitch) == (n.is_drum, n.program, n.pitch):
                end = min(end, m.start)
        if round(end * per_unit) > round(n.start * per_unit):
            kept.append(Note(n.pitch, n.start, end, n.velocity, n.program, n.is_drum))
    return tuples(kept)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), mode=st.sampled_from(["beat", "seconds"]), overlapping=st.booleans())
def test_round_trip_applies_the_merge_rule(data, mode, overlapping):
    # on the grid, decode(encode(x)) is x itself when no two notes of one (instrument, pitch) overlap, and in
    # general exactly the merge rule of the tokenizer's docstring: unisons and overlaps of one voice are cut/merged
    tok, per_unit = (BEAT, 12) if mode == "beat" else (SECONDS, 100)
    notes = _on_grid_notes(data.draw, per_unit, overlapping)
    tokens = tok.encode_notes(notes)
    assert tokens[0] == tok.bos_id and tokens[-1] == tok.eos_id and tokens.dtype == np.int32
    got = tuples(tok.decode_notes(tokens))
    assert got == _merge_rule(notes, per_unit)
    if not overlapping:
        assert got == tuples(notes)


def test_merge_rule_by_hand():
    notes = [Note(60, 0.0, 2.0, 78), Note(60, 0.0, 1.0, 78),  # one onset: the longer (0-2) stays
             Note(60, 1.0, 1.5, 78),                          # inside it: cuts it at 1, then 1-1.5 stays
             Note(62, 0.0, 1.0, 38), Note(62, 0.0, 1.0, 98),  # identical but for velocity: the last given stays
             Note(62, 0.5, 1.0, 78, program=40)]               # another instrument: untouched
    assert tuples(BEAT.decode_notes(BEAT.encode_notes(notes))) == _merge_rule(notes, 12) == [
        (60, 0.0, 1.0, 78, 0, False), (60, 1.0, 1.5, 78, 0, False), (62, 0.0, 1.0, 98, 0, False),
        (62, 0.5, 1.0, 78, 40, False)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), small=st.booleans())
def test_decoding_is_total(data, small):
    tok = Tokenizer(TokenizerConfig(max_shift_steps=8, velocity_bins=4, min_pitch=58, max_pitch=65, voices=3)) \
        if small else BEAT
    tokens = data.draw(st.lists(st.integers(0, tok.vocab_size - 1), max_size=300))
    notes = tok.decode_notes(tokens)
    assert vtuples(tok.decode_notes(tok.encode_notes(notes))) == vtuples(notes)  # decoded notes never overlap
    buf = io.BytesIO()
    tok.decode(np.array(tokens, dtype=np.int64), qpm=97.0).write(buf)
    back = pretty_midi.PrettyMIDI(io.BytesIO(buf.getvalue()))
    assert sum(len(i.notes) for i in back.instruments) == len(notes)


def _cut_overlaps(notes):
    """Reference for the overlap rule: of two notes of one pitch and instrument, the earlier ends at the later's
    onset; at the same onset the longer is kept."""
    out = sorted(tuples(notes), key=lambda n: (n[4], n[5], n[0], n[1], n[2]))
    kept = []
    for i, n in enumerate(out):
        nxt = out[i + 1] if i + 1 < len(out) else None
        end = min(n[2], nxt[1]) if nxt and nxt[4:] == n[4:] and nxt[0] == n[0] else n[2]
        if end > n[1]:
            kept.append((n[0], n[1], end) + n[3:])
    return sorted(kept)


def test_bach_chorale_round_trip(tmp_path):
    import music21

    path = music21.corpus.parse("bach/bwv66.6").write("midi", fp=tmp_path / "bwv66.6.mid")
    piece = read_piece(path)
    tokens = BEAT.encode(path)
    assert tokens.tolist() == BEAT.encode(piece).tolist()
    expected = _cut_overlaps(piece.notes)  # voices in unison share pitch and program
    assert len(expected) == len(piece.notes) - 9
    assert tuples(BEAT.decode_notes(tokens)) == expected  # on the grid, and velocity 90 is a bin centre
    out = tmp_path / "decoded.mid"
    BEAT.decode(tokens, qpm=piece.qpm).write(str(out))
    assert tuples(read_piece(out).notes) == expected

    sec = read_piece(path, "seconds")
    on_grid = [Note(n.pitch, np.floor(n.start * 100 + 0.5) / 100, np.floor(n.end * 100 + 0.5) / 100, n.velocity)
               for n in sec.notes]
    assert tuples(SECONDS.decode_notes(SECONDS.encode(sec))) == _cut_overlaps(on_grid)
    with pytest.raises(UsageError, match="time_mode"):
        BEAT.encode(sec)


def test_encode_refuses_empty_and_absurd_pieces():
    tok = Tokenizer(TokenizerConfig(min_pitch=40, max_pitch=80))
    assert tok.encode_notes([]).tolist() == [tok.bos_id, tok.eos_id]
    with pytest.raises(IngestError, match=r"no notes in pitch range \[40, 80\]"):
        tok.encode(Piece([Note(20, 0.0, 1.0, 80)], 120.0, "beat"))
    far = [Note(60, 0.0, 1.0, 80), Note(62, 1e9, 1e9 + 1, 80)]  # 250 million shifts: refused before allocating
    with pytest.raises(IngestError, match="too long: 250000010 tokens > max_tokens=20000000"):
        tok.encode(Piece(far, 120.0, "beat"))
    with pytest.raises(IngestError, match="too long: 12 tokens > max_tokens=11"):
        Tokenizer(max_tokens=11).encode_notes([Note(60, 0.0, 1.0, 80), Note(62, 6.0, 7.0, 80)])
    assert Tokenizer(max_tokens=12).encode_notes([Note(60, 0.0, 1.0, 80), Note(62, 6.0, 7.0, 80)]).size == 12


def test_transpose_tokens_leaves_drums_alone():
    notes = [Note(60, 0.0, 1.0, 80), Note(36, 0.0, 0.5, 100, is_drum=True), Note(67, 1.0, 2.0, 80, program=40)]
    tokens = BEAT.encode_notes(notes)
    assert BEAT.transpose_bounds(tokens) == (-60, 60)
    up = BEAT.transpose_tokens(tokens, 2)
    assert up.dtype == tokens.dtype
    assert up.tolist() == ids(
        BEAT, ("PROGRAM", 0), ("VELOCITY", 20), ("NOTE_ON", 62), ("PROGRAM", 128), ("VELOCITY", 25), ("NOTE_ON", 36),
        ("TIME_SHIFT", 6), ("NOTE_OFF", 36), ("TIME_SHIFT", 6), ("PROGRAM", 0), ("NOTE_OFF", 62), ("PROGRAM", 40),
        ("VELOCITY", 20), ("NOTE_ON", 69), ("TIME_SHIFT", 12), ("NOTE_OFF", 69))
    assert BEAT.transpose_tokens(up, -2).tolist() == tokens.tolist()
    assert tuples(BEAT.decode_notes(BEAT.transpose_tokens(tokens, -60)))[0][0] == 0
    with pytest.raises(UsageError, match="semitones: 61 .* allowed -60..60"):
        BEAT.transpose_tokens(tokens, 61)
    drums_only = BEAT.encode_notes([Note(36, 0.0, 1.0, 100, is_drum=True)])
    assert BEAT.transpose_bounds(drums_only) == (-127, 127)
    assert BEAT.transpose_tokens(drums_only, 5).tolist() == drums_only.tolist()


def test_stretch_notes():
    got = stretch_notes([Note(60, 1.0, 2.0, 80, 5), Note(36, 0.0, 0.5, 90, is_drum=True)], 1.5)
    assert got == [Note(60, 1.5, 3.0, 80, 5), Note(36, 0.0, 0.75, 90, is_drum=True)]
    assert SECONDS.stretch_notes(got, 2 / 3)[0].end == pytest.approx(2.0)
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(UsageError, match="factor"):
            stretch_notes(got, bad)


def test_save_load_round_trip_through_the_config(tmp_path):
    tok = Tokenizer(TokenizerConfig(time_mode="seconds", step_seconds=0.02, velocity_bins=8, programs=False))
    tok.config.save(tmp_path / "tokenizer.json")
    assert json.loads((tmp_path / "tokenizer.json").read_text())["step_seconds"] == 0.02
    back = Tokenizer(TokenizerConfig.load(tmp_path / "tokenizer.json"))
    assert back == tok and back.config == tok.config and back.ranges == tok.ranges
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]
    assert not hasattr(Tokenizer, "save") and not hasattr(Tokenizer, "load")  # one way to persist: the config


def test_import_is_light():
    code = ("import sys, musicgen.tokenizer; "
            "print(sorted(m for m in ('symusic', 'music21', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_encode_arrays_validates_its_inputs():
    got = BEAT.encode_arrays(np.array([60]), np.array([0.0]), np.array([1.0]), np.array([80]), np.array([128]))
    assert got.tolist() == ids(BEAT, ("PROGRAM", 128), ("VELOCITY", 20), ("NOTE_ON", 60), ("TIME_SHIFT", 12),
                               ("NOTE_OFF", 60))
    for inst, start in [(129, 0.0), (-1, 0.0), (0, -0.5), (0, float("nan"))]:
        with pytest.raises(UsageError, match="notes: expected"):
            BEAT.encode_arrays([60], [start], [1.0], [80], [inst])


# (pitch, onset in sevenths, length in fifths, velocity, program, drum, voice): off the grid, overlapping, few programs
_NOTE = st.tuples(st.integers(0, 127), st.integers(0, 200), st.integers(1, 60), st.integers(1, 127),
                  st.integers(0, 3), st.booleans(), st.integers(0, 4)).map(
    lambda r: Note(r[0], r[1] / 7, r[1] / 7 + r[2] / 5, *r[3:]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.lists(_NOTE, max_size=25), max_size=6), which=st.integers(0, 3))
def test_encode_pieces_equals_encode_one_by_one(pieces, which):
    # off-grid times, overlaps, drums, programs, pitches out of the small range, empty pieces: the batch must give
    # exactly what encode gives for each piece alone, errors included
    tok = [BEAT, Tokenizer(TokenizerConfig(max_shift_steps=8, velocity_bins=4, min_pitch=50, max_pitch=80)),
           Tokenizer(TokenizerConfig(velocity_bins=0, programs=False, max_shift_steps=12)),
           Tokenizer(TokenizerConfig(max_shift_steps=8, voices=3))][which]
    batch = tok.encode_pieces([Piece(notes, 120.0, "beat") for notes in pieces])
    assert len(batch) == len(pieces)
    for notes, got in zip(pieces, batch):
        try:
            want = tok.encode(Piece(notes, 120.0, "beat"))
        except IngestError as exc:
            assert isinstance(got, IngestError) and str(got) == str(exc)
        else:
            assert got.dtype == np.int32 and got.tolist() == want.tolist()


def test_encode_pieces_reports_each_pieces_error():
    tok = Tokenizer(max_tokens=11)
    short, long_ = [Note(60, 0.0, 1.0, 80)], [Note(60, 0.0, 1.0, 80), Note(62, 6.0, 7.0, 80)]
    got = tok.encode_pieces([Piece(short, 120.0, "beat"), Piece(long_, 120.0, "beat"),
                             Piece([Note(60, 0.0, 1.0, 80, is_drum=True)], 90.0, "beat")])
    # BOS PROGRAM(0) VELOCITY(20) ON60 SHIFT(12) OFF60 EOS
    assert got[0].tolist() == ids(tok, ("PROGRAM", 0), ("VELOCITY", 20), ("NOTE_ON", 60), ("TIME_SHIFT", 12),
                                  ("NOTE_OFF", 60))
    assert isinstance(got[1], IngestError) and str(got[1]) == "too long: 12 tokens > max_tokens=11"
    assert got[2].tolist() == ids(tok, ("PROGRAM", 128), ("VELOCITY", 20), ("NOTE_ON", 60), ("TIME_SHIFT", 12),
                                  ("NOTE_OFF", 60))  # the state (program, velocity, time) restarts per piece
    none_in_range = Tokenizer(TokenizerConfig(min_pitch=70)).encode_pieces([Piece(short, 120.0, "beat")])[0]
    assert str(none_in_range) == "no notes in pitch range [70, 127]"
    assert tok.encode_pieces([]) == []
    with pytest.raises(UsageError, match="time_mode"):
        tok.encode_pieces([Piece(short, 120.0, "seconds")])


@settings(max_examples=100, deadline=None)
@given(data=st.data(), n=st.integers(0, 40), wide=st.booleans())
def test_lex_order_is_lexsort(data, n, wide):
    from musicgen.tokenizer import _lex_order

    top = 2 ** 40 if wide else 5  # wide keys do not fit in 63 bits together: the lexsort fallback
    keys = [np.array(data.draw(st.lists(st.integers(0, top), min_size=n, max_size=n)), np.int64) for _ in range(3)]
    np.testing.assert_array_equal(_lex_order(*keys), np.lexsort(keys))


# ------------------------------------------------------------------------------------------------------- voices
VOICED = Tokenizer(TokenizerConfig(voices=3))


def vtuples(notes):
    return sorted((n.pitch, n.start, n.end, n.velocity, n.program, n.is_drum, n.voice) for n in notes)


def test_voice_events_by_hand():
    assert VOICED.vocab_size == 471 and VOICED.ranges["VOICE"] == (468, 3) and VOICED.token("VOICE", 2) == 470
    assert BEAT.ranges == {k: v for k, v in VOICED.ranges.items() if k != "VOICE"}  # existing ids unchanged
    # soprano and alto sing C4 together; the alto also has E4; program 0 for both
    notes = [Note(60, 0.0, 1.0, 78, voice=0), Note(60, 0.0, 2.0, 78, voice=1), Note(64, 0.0, 1.0, 78, voice=1)]
    tokens = VOICED.encode_notes(notes)
    assert tokens.tolist() == ids(VOICED, ("VOICE", 0), ("PROGRAM", 0), ("VELOCITY", 20), ("NOTE_ON", 60),
                                  ("VOICE", 1), ("NOTE_ON", 60), ("NOTE_ON", 64), ("TIME_SHIFT", 12),
                                  ("VOICE", 0), ("NOTE_OFF", 60), ("VOICE", 1), ("NOTE_OFF", 64), ("TIME_SHIFT", 12),
                                  ("NOTE_OFF", 60))
    assert vtuples(VOICED.decode_notes(tokens)) == vtuples(notes)
    a = VOICED.decode_arrays(tokens)
    assert a["voice"].tolist() == [0, 1, 1] and a["pitch"].tolist() == [60, 60, 64]
    # without voices the unison merges (the longer stays) and every note is voice 0
    assert vtuples(BEAT.decode_notes(BEAT.encode_notes(notes))) == [(60, 0.0, 2.0, 78, 0, False, 0),
                                                                    (64, 0.0, 1.0, 78, 0, False, 0)]
    # voices from N on share voice N - 1
    assert vtuples(VOICED.decode_notes(VOICED.encode_notes([Note(60, 0.0, 1.0, 78, voice=7)]))) == [
        (60, 0.0, 1.0, 78, 0, False, 2)]
    with pytest.raises(UsageError, match="voice >= 0"):
        VOICED.encode_arrays([60], [0.0], [1.0], [80], [0], [-1])


def test_voice_and_program_are_independent_registers():
    # a VOICE event keeps the program; a NOTE_OFF needs the voice and program its note started in
    tokens = ids(VOICED, ("PROGRAM", 40), ("NOTE_ON", 60), ("VOICE", 2), ("NOTE_ON", 60), ("TIME_SHIFT", 6),
                 ("NOTE_OFF", 60), ("PROGRAM", 0), ("VOICE", 0), ("NOTE_OFF", 60), ("TIME_SHIFT", 6),
                 ("PROGRAM", 40), ("NOTE_OFF", 60))
    got = [(n.pitch, n.start, n.end, n.program, n.voice) for n in VOICED.decode_notes(tokens)]
    assert got == [(60, 0.0, 1.0, 40, 0), (60, 0.0, 0.5, 40, 2)]


def _voiced_notes(draw, per_unit: int, overlapping: bool) -> list[Note]:
    """Notes on the grid in voices 0..4 (so voices 3 and 4 share voice 2 of ``VOICED``). ``overlapping=False``: notes
    of one (voice as encoded, instrument, pitch) never overlap, unisons across voices are common; ``True``: anything."""
    pitches = st.integers(60, 62) if overlapping else st.integers(58, 63)
    raw = draw(st.lists(st.tuples(st.integers(0, 4), st.sampled_from([0, 40, 128]), pitches, st.integers(0, 24),
                                  st.integers(1, 30), st.integers(1, 32)), max_size=40))
    centre = velocity_tables(32)[1]
    last_end, notes = {}, []
    for voice, inst, pitch, s, length, b in (raw if overlapping else sorted(raw, key=lambda r: r[:4])):
        key = (min(voice, 2), inst, pitch)
        if not overlapping and s < last_end.get(key, 0):
            continue
        last_end[key] = s + length
        notes.append(Note(pitch, s / per_unit, (s + length) / per_unit, int(centre[b]), 0 if inst == 128 else inst,
                          inst == 128, voice))
    return notes


def _voiced_merge_rule(notes: list[Note], per_unit: int) -> list[tuple]:
    """The merge rule with instrument = (voice as encoded, program, drum): see ``_merge_rule``."""
    def key(n):
        return min(n.voice, 2), n.is_drum, n.program, n.pitch

    rows = sorted(range(len(notes)), key=lambda i: (key(notes[i]), notes[i].start, notes[i].end))
    kept = []
    for k, i in enumerate(rows):
        n, end = notes[i], notes[i].end
        if k + 1 < len(rows) and key(notes[rows[k + 1]]) == key(n):
            end = min(end, notes[rows[k + 1]].start)
        if round(end * per_unit) > round(n.start * per_unit):
            kept.append(Note(n.pitch, n.start, end, n.velocity, n.program, n.is_drum, min(n.voice, 2)))
    return vtuples(kept)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), mode=st.sampled_from(["beat", "seconds"]), overlapping=st.booleans())
def test_round_trip_with_voices_keeps_every_voice(data, mode, overlapping):
    # with voices on, decode(encode(x)) is exactly x (voices included, voices >= 3 read as 2) when no two notes of
    # one (voice, program, pitch) overlap, whatever the other voices sing; in general the merge rule per voice
    tok = VOICED if mode == "beat" else Tokenizer(TokenizerConfig.seconds(voices=3))
    per_unit = 12 if mode == "beat" else 100
    notes = _voiced_notes(data.draw, per_unit, overlapping)
    got = vtuples(tok.decode_notes(tok.encode_notes(notes)))
    assert got == _voiced_merge_rule(notes, per_unit)
    if not overlapping:
        assert got == vtuples([Note(n.pitch, n.start, n.end, n.velocity, n.program, n.is_drum, min(n.voice, 2))
                               for n in notes])


def test_decode_writes_one_instrument_per_voice_and_program(tmp_path):
    notes = [Note(60, 0.0, 1.0, 78, voice=0), Note(60, 0.0, 1.0, 78, voice=1), Note(72, 0.0, 1.0, 78, 40, voice=1),
             Note(36, 0.0, 0.5, 78, is_drum=True, voice=2)]
    pm = VOICED.decode(VOICED.encode_notes(notes))
    assert [(i.name, i.program, i.is_drum, len(i.notes)) for i in pm.instruments] == [
        ("Acoustic Grand Piano (voice 0)", 0, False, 1), ("Acoustic Grand Piano (voice 1)", 0, False, 1),
        ("Violin (voice 1)", 40, False, 1), ("Drums (voice 2)", 0, True, 1)]
    pm.write(str(tmp_path / "v.mid"))
    back = read_piece(tmp_path / "v.mid")  # tracks read back in order: voice k is track k of those with notes
    assert sorted((n.pitch, n.program, n.is_drum, n.voice) for n in back.notes) == [
        (36, 0, True, 3), (60, 0, False, 0), (60, 0, False, 1), (72, 40, False, 2)]


def test_transpose_with_voices_moves_pitches_only():
    tokens = np.array(ids(VOICED, ("VOICE", 1), ("NOTE_ON", 60), ("VOICE", 2), ("PROGRAM", 128), ("NOTE_ON", 36),
                          ("TIME_SHIFT", 12), ("NOTE_OFF", 36), ("VOICE", 1), ("PROGRAM", 0), ("NOTE_OFF", 60)))
    assert VOICED.transpose_bounds(tokens) == (-60, 67)
    up = VOICED.transpose_tokens(tokens, 5)
    assert up.tolist() == ids(VOICED, ("VOICE", 1), ("NOTE_ON", 65), ("VOICE", 2), ("PROGRAM", 128),
                              ("NOTE_ON", 36), ("TIME_SHIFT", 12), ("NOTE_OFF", 36), ("VOICE", 1), ("PROGRAM", 0),
                              ("NOTE_OFF", 65))
    assert [(n.pitch, n.voice) for n in VOICED.decode_notes(up)] == [(36, 2), (65, 1)]


def test_voices_config_json_and_old_files(tmp_path):
    cfg = TokenizerConfig(voices=4, voice_polyphony=1)
    assert TokenizerConfig.from_json(cfg.to_json()) == cfg
    assert "voices" not in TokenizerConfig().to_dict()  # off: the JSON (and cache hash) of before the field
    old = {k: v for k, v in TokenizerConfig().to_dict().items()}
    assert TokenizerConfig.from_dict(old).voices == 0
    for bad in (dict(voices=-1), dict(voices=65), dict(voices=True), dict(voice_polyphony=1)):
        with pytest.raises(ConfigError, match="voice"):
            TokenizerConfig(**bad)


# ---- meter and key ---------------------------------------------------------------------------------------------
METER_KEY = Tokenizer(TokenizerConfig(meter=True, key="token", velocity_bins=0, programs=False))
NORMALIZE = Tokenizer(TokenizerConfig(meter=True, key="normalize", velocity_bins=0, programs=False))
PICKUP = Piece([Note(72, 0.0, 1.0, 80), Note(65, 1.0, 5.0, 80)], 100.0, "beat", meters=[(0.0, 1, 4), (1.0, 4, 4)],
               key=5)


def test_range_table_with_meter_and_key():
    tok = Tokenizer(TokenizerConfig(voices=2, meter=True, key="token"))
    assert tok.vocab_size == 468 + 2 + 64 + 24
    assert tok.ranges["TIME_SIG"] == (470, 64) and tok.ranges["KEY"] == (534, 24)


def test_pickup_and_key_by_hand():
    # KEY after BOS; TIME_SIG(1/4) at step 0, TIME_SIG(4/4) one quarter later, after the shift, before the notes
    assert METER_KEY.encode(PICKUP).tolist() == ids(METER_KEY, ("KEY", 5), ("TIME_SIG", 1), ("NOTE_ON", 72),
                                                    ("TIME_SHIFT", 12), ("TIME_SIG", 13), ("NOTE_OFF", 72),
                                                    ("NOTE_ON", 65), ("TIME_SHIFT", 48), ("NOTE_OFF", 65))
    # normalize: F major moves down 5 semitones to C; decoding moves the notes back
    got = NORMALIZE.encode(PICKUP)
    assert got.tolist() == ids(NORMALIZE, ("KEY", 5), ("TIME_SIG", 1), ("NOTE_ON", 67), ("TIME_SHIFT", 12),
                               ("TIME_SIG", 13), ("NOTE_OFF", 67), ("NOTE_ON", 60), ("TIME_SHIFT", 48),
                               ("NOTE_OFF", 60))
    assert NORMALIZE.decode_piece(got, 100.0) == PICKUP == METER_KEY.decode_piece(METER_KEY.encode(PICKUP), 100.0)
    assert NORMALIZE.decode_meta(got) == (5, [(0, 1, 4), (12, 4, 4)])


def test_no_time_signature_is_four_four_and_the_last_step_has_none():
    piece = Piece([Note(60, 0.0, 8.0, 80)], 120.0, "beat", meters=[(8.0, 3, 4)])
    got = Tokenizer(TokenizerConfig(meter=True, velocity_bins=0, programs=False)).encode(piece)
    tok = Tokenizer(TokenizerConfig(meter=True, velocity_bins=0, programs=False))
    assert got.tolist() == ids(tok, ("TIME_SIG", 13), ("NOTE_ON", 60), ("TIME_SHIFT", 48), ("TIME_SHIFT", 48),
                               ("NOTE_OFF", 60))


def test_key_is_analysed_when_the_file_has_none():
    notes = [Note(p, i, i + 1.0, 80) for i, p in enumerate([67, 71, 74, 79, 74, 71, 67, 66, 67])]  # G major
    assert METER_KEY.decode_meta(METER_KEY.encode(Piece(notes)))[0] == 7
    assert METER_KEY.decode_meta(METER_KEY.encode_notes(notes))[0] == 7
    assert METER_KEY.decode_meta(METER_KEY.encode_notes(notes, key=2))[0] == 2


def test_transpose_moves_the_key_tonic():
    t = METER_KEY.encode(Piece(PICKUP.notes, key=23))  # B minor
    up = METER_KEY.transpose_tokens(t, 3)
    assert METER_KEY.decode_meta(up)[0] == 14 and METER_KEY.decode_notes(up)[0].pitch == 75  # D minor, notes too
    assert METER_KEY.decode_meta(METER_KEY.transpose_tokens(METER_KEY.encode(Piece(PICKUP.notes, key=11)), 1))[0] == 0
    n = NORMALIZE.encode(PICKUP)
    moved = NORMALIZE.transpose_tokens(n, 2)  # F major → G major: stored notes stay on C, the decoded ones move
    assert [NORMALIZE.describe(int(i)) for i in moved if NORMALIZE.describe(int(i))[0] == "NOTE_ON"] == \
        [("NOTE_ON", 67), ("NOTE_ON", 60)]
    # G's tonic reaches C by +5, so the stored C4 decodes to G3 (each key sits within a tritone of C)
    assert NORMALIZE.decode_meta(moved)[0] == 7 and [x.pitch for x in NORMALIZE.decode_notes(moved)] == [62, 55]
    assert NORMALIZE.transpose_bounds(n) == (-127, 127)
    assert METER_KEY.transpose_bounds(METER_KEY.encode(PICKUP)) == (-65, 55)


def test_decoded_midi_carries_meters_and_key(tmp_path):
    tokens = METER_KEY.encode(PICKUP)
    pm = METER_KEY.decode(tokens, qpm=100.0)
    assert [(ts.numerator, ts.denominator, round(ts.time, 6)) for ts in pm.time_signature_changes] == \
        [(1, 4, 0.0), (4, 4, 0.6)]
    assert [k.key_number for k in pm.key_signature_changes] == [5]
    pm.write(str(tmp_path / "p.mid"))
    back = read_piece(tmp_path / "p.mid")
    assert back.meters == PICKUP.meters and back.key == 5
    assert METER_KEY.encode(back).tolist() == tokens.tolist()


_METER = st.tuples(st.integers(0, 80), st.integers(1, 20), st.sampled_from([1, 2, 4, 8, 16, 32])).map(
    lambda r: (r[0] / 2, r[1], r[2]))
_META_TOKENIZERS = [Tokenizer(TokenizerConfig(meter=True, key="token", max_shift_steps=8, voices=3)),
                    Tokenizer(TokenizerConfig(meter=True, key="normalize", max_shift_steps=8, velocity_bins=4,
                                              min_pitch=50, max_pitch=80)),
                    Tokenizer(TokenizerConfig(meter=True, steps_per_quarter=4, programs=False))]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.tuples(st.lists(_NOTE, max_size=20), st.lists(_METER, max_size=5),
                                 st.one_of(st.none(), st.integers(0, 23))), max_size=5),
       which=st.integers(0, 2))
def test_meter_and_key_batch_equals_one_by_one_and_decode_encode_is_stable(pieces, which):
    tok = _META_TOKENIZERS[which]
    made = [Piece(notes, 120.0, "beat", meters=sorted(meters), key=key) for notes, meters, key in pieces]
    batch = tok.encode_pieces(made)
    for piece, got in zip(made, batch):
        try:
            want = tok.encode(piece)
        except IngestError as exc:
            assert isinstance(got, IngestError) and str(got) == str(exc)
            continue
        assert got.tolist() == want.tolist()
        assert tok.encode(tok.decode_piece(got)).tolist() == got.tolist()  # well-formed tokens come back the same


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), which=st.integers(0, 2))
def test_decoding_is_total_with_meter_and_key(data, which):
    tok = _META_TOKENIZERS[which]
    tokens = data.draw(st.lists(st.integers(0, tok.vocab_size - 1), max_size=300))
    piece = tok.decode_piece(tokens)
    key = 0 if tok.config.key and piece.key is None else piece.key  # no KEY decodes on C
    again = tok.encode_notes(piece.notes, key=key, meters=piece.meters)
    assert vtuples(tok.decode_notes(again)) == vtuples(piece.notes)
    buf = io.BytesIO()
    tok.decode(np.array(tokens, dtype=np.int64), qpm=97.0).write(buf)
    back = pretty_midi.PrettyMIDI(io.BytesIO(buf.getvalue()))
    assert sum(len(i.notes) for i in back.instruments) == len(piece.notes)
