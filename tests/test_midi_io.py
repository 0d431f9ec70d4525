"""Reading music files into notes, and writing notes to pretty_midi.

MIDI files are built byte by byte here (``_midi``) so each odd case (1 tick per beat, 3.6 bpm, 1200 bpm, type 2,
drums only, hour-long gaps) is explicit; the expected notes are worked out by hand.
"""

import io
import struct

import numpy as np
import pretty_midi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.make_broken import vlq  # tests/data/make_broken.py: the MIDI byte helpers
from musicgen.errors import IngestError, UsageError
from musicgen.midi_io import notes_to_pretty_midi
from musicgen.piece import Note, Piece
from musicgen.reader import read_notes, read_piece


def _track(events: list[tuple[int, bytes]]) -> bytes:
    """events: (absolute tick, raw event bytes)."""
    data, now = b"", 0
    for tick, raw in sorted(events, key=lambda e: e[0]):
        data += vlq(tick - now) + raw
        now = tick
    data += b"\x00\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(data)) + data


def _tempo(tick: int, mspq: int) -> tuple[int, bytes]:
    return tick, b"\xff\x51\x03" + mspq.to_bytes(3, "big")


def _note(on: int, off: int, pitch: int, vel: int = 100, ch: int = 0) -> list[tuple[int, bytes]]:
    return [(on, bytes([0x90 | ch, pitch, vel])), (off, bytes([0x80 | ch, pitch, 0]))]


def _program(tick: int, program: int, ch: int = 0) -> tuple[int, bytes]:
    return tick, bytes([0xC0 | ch, program])


def _midi(tracks: list[list[tuple[int, bytes]]], tpq: int, fmt: int = 1) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks), tpq) + b"".join(_track(t) for t in tracks)


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _as_tuples(notes):
    return [(n.pitch, round(n.start, 9), round(n.end, 9), n.velocity, n.program, n.is_drum) for n in notes]


def test_midi_beats_and_seconds_with_tempo_change(tmp_path):
    # 480 ticks per quarter; 120 bpm, then 1200 bpm from beat 4; one piano note, one violin note (program 40)
    meta = [_tempo(0, 500_000), _tempo(4 * 480, 50_000)]
    piano = _note(0, 480, 60, 90)
    violin = [_program(0, 40, 1)] + _note(6 * 480, 7 * 480, 76, 50, 1)
    path = _write(tmp_path, "tempo.MID", _midi([meta, piano, violin], 480))
    beat = read_piece(path)
    assert beat.qpm == 120.0 and beat.time_mode == "beat"
    assert _as_tuples(beat.notes) == [(60, 0.0, 1.0, 90, 0, False), (76, 6.0, 7.0, 50, 40, False)]
    assert [n.voice for n in beat.notes] == [0, 1]  # the tempo track has no notes: piano is voice 0
    sec = read_piece(path, time_mode="seconds")
    # beat 6 = 4 beats at 0.5 s + 2 beats at 0.05 s = 2.1 s; beat 7 = 2.15 s
    assert _as_tuples(sec.notes) == [(60, 0.0, 0.5, 90, 0, False), (76, 2.1, 2.15, 50, 40, False)]
    assert read_notes(path) == beat.notes


def test_one_tick_per_beat_and_slowest_tempo(tmp_path):
    # tpq = 1 and the largest tempo value MIDI can hold (16.777215 s per quarter, about 3.6 bpm), type 0
    events = [_tempo(0, 0xFFFFFF)] + _note(0, 1, 48) + _note(2, 5, 50)
    path = _write(tmp_path, "slow.midi", _midi([events], 1, fmt=0))
    piece = read_piece(path, "seconds")
    assert piece.qpm == pytest.approx(60 / 16.777215)
    assert _as_tuples(piece.notes) == [(48, 0.0, 16.777215, 100, 0, False), (50, 33.55443, 83.886075, 100, 0, False)]
    assert _as_tuples(read_piece(path).notes) == [(48, 0.0, 1.0, 100, 0, False), (50, 2.0, 5.0, 100, 0, False)]


def test_type2_drums_only_zero_length_and_hour_gap(tmp_path):
    # type 2 (independent sequences), drums on channel 10 only, a zero-length hit, a hit one hour later (120 bpm)
    hour = 3600 * 2 * 96
    drums = _note(0, 0, 36, 110, ch=9) + _note(hour, hour + 48, 38, 64, ch=9)
    path = _write(tmp_path, "drums.mid", _midi([drums], 96, fmt=2))
    piece = read_piece(path, "seconds")
    assert [(n.pitch, n.is_drum, n.velocity) for n in piece.notes] == [(36, True, 110), (38, True, 64)]
    assert piece.notes[0].end == pytest.approx(0.5 / 96)  # zero length in the file becomes one tick
    assert piece.notes[1].start == pytest.approx(3600.0) and piece.notes[1].end == pytest.approx(3600.25)


def test_many_notes_and_the_max_notes_guard(tmp_path):
    events = []
    for i in range(20_000):
        events += _note(i * 10, i * 10 + 10, 30 + i % 60, 1 + i % 127)
    path = _write(tmp_path, "many.mid", _midi([events], 120))
    piece = read_piece(path)
    assert len(piece.notes) == 20_000
    assert piece.notes[-1].start == pytest.approx(19_999 * 10 / 120)
    with pytest.raises(IngestError, match="too many notes: 20000 > max_notes=1000"):
        read_piece(path, max_notes=1000)


@pytest.mark.parametrize("name, data, reason", [
    ("garbage.mid", b"this is not a midi file at all", "unreadable MIDI"),
    ("empty.mid", b"", "unreadable MIDI"),
    ("cut.mid", b"MThd\x00\x00\x00\x06\x00", "unreadable MIDI"),
    ("silent.mid", _midi([[_tempo(0, 500_000)]], 480), "no notes"),
    ("notes.txt", b"C D E", "not a music file"),
    ("broken.xml", b"<score-partwise><part", "unreadable xml"),
])
def test_bad_files_raise_ingest_error(tmp_path, name, data, reason):
    with pytest.raises(IngestError, match=reason):
        read_piece(_write(tmp_path, name, data))


def test_missing_file_and_bad_time_mode(tmp_path):
    with pytest.raises(IngestError, match="not a music file"):
        read_piece(tmp_path / "nope.mid")
    with pytest.raises(UsageError, match="time_mode"):
        read_piece(tmp_path / "nope.mid", time_mode="ticks")


_VALID = _midi([[_tempo(0, 500_000)] + _note(0, 96, 60) + _note(96, 192, 64, 70) + _note(0, 384, 36, 90, 9)], 96)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.integers(1, len(_VALID)), mode=st.sampled_from(["beat", "seconds"]))
def test_corrupted_midi_never_crashes(tmp_path, edits, cut, mode):
    data = bytearray(_VALID)
    for pos, byte in edits:
        data[pos] = byte
    path = _write(tmp_path, "fuzz.mid", bytes(data[:cut]))
    try:
        piece = read_piece(path, mode)
    except IngestError:
        return
    assert piece.notes and all(isinstance(n, Note) for n in piece.notes)


def test_abc_with_ties_tempo_and_chords(data_dir):
    piece = read_piece(data_dir / "tune.abc")
    assert piece.qpm == 90.0
    # C4 quarter, D4 tied over two quarters, [E4 G4] chord eighth, F4 eighth; ties merged into one note
    assert _as_tuples(piece.notes) == [(60, 0.0, 1.0, 90, 0, False), (62, 1.0, 3.0, 90, 0, False),
                                       (64, 3.0, 3.5, 90, 0, False), (67, 3.0, 3.5, 90, 0, False),
                                       (65, 3.5, 4.0, 90, 0, False)]
    sec = read_piece(data_dir / "tune.abc", "seconds")
    assert [n.end for n in sec.notes] == pytest.approx([2 / 3, 2.0, 7 / 3, 7 / 3, 8 / 3])


def test_abc_songbook_gives_its_first_tune(tmp_path):
    book = "%abc\nL:1/8\n\nX:7\nT:One\nK:G\nGA B2|\n\nX:8\nT:Two\nK:C\nc4 C4|\n"
    piece = read_piece(_write(tmp_path, "book.ABC", book.encode()))
    assert _as_tuples(piece.notes) == [(67, 0.0, 0.5, 90, 0, False), (69, 0.5, 1.0, 90, 0, False),
                                       (71, 1.0, 2.0, 90, 0, False)]


def test_kern_file(data_dir):
    piece = read_piece(data_dir / "tune.krn")
    assert piece.qpm == 120.0  # no tempo in the file
    assert _as_tuples(piece.notes) == [(60, 0.0, 1.0, 90, 0, False), (67, 0.0, 2.0, 90, 0, False),
                                       (64, 1.0, 2.0, 90, 0, False)]
    assert [n.voice for n in piece.notes] == [1, 0, 1]  # two spines: two parts, in the order music21 gives them


def test_musicxml_slowest_tempo_and_bach_chorale(tmp_path):
    import music21

    s = music21.stream.Score()
    part = music21.stream.Part()
    part.insert(0, music21.tempo.MetronomeMark(number=1))
    part.append([music21.note.Note("A4", quarterLength=2), music21.note.Rest(), music21.note.Note("B4")])
    s.insert(0, part)
    path = s.write("musicxml", fp=tmp_path / "slow.musicxml")
    piece = read_piece(path, "seconds")
    assert piece.qpm == 1.0
    assert _as_tuples(piece.notes) == [(69, 0.0, 120.0, 90, 0, False), (71, 180.0, 240.0, 90, 0, False)]

    chorale = music21.corpus.parse("bach/bwv66.6")
    mxl = chorale.write("musicxml", fp=tmp_path / "bwv66.6.MXL")
    expected = sum(len(p.flatten().stripTies().notes) for p in chorale.parts)
    got = read_piece(mxl).notes
    assert len(got) == expected
    assert [sum(n.voice == k for n in got) for k in range(4)] == [len(p.flatten().stripTies().notes)
                                                                  for p in chorale.parts]


def test_notes_to_pretty_midi_groups_instruments_and_converts_beats():
    notes = [Note(60, 0.0, 1.0, 80), Note(36, 0.5, 0.75, 100, is_drum=True), Note(72, 2.0, 4.0, 64, program=40)]
    pm = notes_to_pretty_midi(notes, qpm=60.0, time_mode="beat")
    got = [(i.program, i.is_drum, [(n.pitch, n.start, n.end, n.velocity) for n in i.notes]) for i in pm.instruments]
    assert got == [(0, False, [(60, 0.0, 1.0, 80)]), (40, False, [(72, 2.0, 4.0, 64)]),
                   (0, True, [(36, 0.5, 0.75, 100)])]
    buf = io.BytesIO()
    notes_to_pretty_midi(notes, qpm=120.0, time_mode="beat").write(buf)
    back = pretty_midi.PrettyMIDI(io.BytesIO(buf.getvalue()))
    assert back.instruments[1].notes[0].end == pytest.approx(2.0)  # 4 beats at 120 bpm
    assert isinstance(Piece(notes, 120.0, "beat").notes[0], Note)


def test_piece_from_arrays_and_from_notes_agree(tmp_path):
    path = _write(tmp_path, "two.mid", _VALID)
    piece = read_piece(path)
    assert piece._notes is None  # read_piece builds no Note objects until asked
    assert read_piece(path, data=path.read_bytes()) == piece  # parsing bytes read by the caller: the same piece
    # hand-worked from _VALID (96 ticks per quarter): drum 36 over 4 beats, then 60 and 64 in sequence
    assert _as_tuples(piece.notes) == [(36, 0.0, 4.0, 90, 0, True), (60, 0.0, 1.0, 100, 0, False),
                                       (64, 1.0, 2.0, 70, 0, False)]
    a = piece.arrays
    assert a.pitch.tolist() == [36, 60, 64] and a.instrument.tolist() == [128, 0, 0]
    assert a.pitch.dtype == np.int64 and a.start.dtype == np.float64 and a.is_drum.dtype == bool
    from_notes = Piece(piece.notes, piece.qpm, "beat")
    assert from_notes == piece and [c.tolist() for c in from_notes.arrays] == [c.tolist() for c in a]
    assert len(piece) == 3 and repr(piece) == "Piece(3 notes, qpm=120.0, time_mode='beat')"
    with pytest.raises(AttributeError, match="immutable"):
        piece.qpm = 60.0
    with pytest.raises(UsageError, match="exactly one of notes or arrays"):
        Piece(piece.notes, 120.0, "beat", arrays=a)


def test_ingest_workers_load_only_symusic_core(tmp_path):
    import subprocess
    import sys

    path = _write(tmp_path, "two.mid", _VALID)
    code = ("import sys; from musicgen import midi_io; midi_io.load_symusic_core_only(); "
            f"p = midi_io.read_midi({str(path)!r}); "
            "print('symusic' in sys.modules, [(n.pitch, n.start, n.end) for n in p.notes])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[0] == "False"  # the package (and its SoundFont downloader's urllib/http/ssl imports) never loaded
    assert out[1].strip() == str([(n.pitch, n.start, n.end) for n in read_piece(path).notes])


def test_music21_never_reads_or_writes_its_pickle_cache(data_dir, monkeypatch):
    import music21

    calls, real = [], music21.converter.parse

    def recording_parse(value, *args, **kwargs):
        calls.append(kwargs)
        return real(value, *args, **kwargs)

    monkeypatch.setattr(music21.converter, "parse", recording_parse)
    assert len(read_piece(data_dir / "tune.krn").notes) == 3
    assert calls == [{"forceSource": True, "storePickle": False}]


def test_notes_to_pretty_midi_keeps_voices_apart():
    notes = [Note(60, 0.0, 1.0, 80, voice=0), Note(60, 0.0, 1.0, 80, voice=1), Note(64, 1.0, 2.0, 80, voice=1)]
    pm = notes_to_pretty_midi(notes, qpm=60.0)
    assert [(i.name, [n.pitch for n in i.notes]) for i in pm.instruments] == [
        ("Acoustic Grand Piano (voice 0)", [60]), ("Acoustic Grand Piano (voice 1)", [60, 64])]
    with pytest.raises(ValueError, match="voice"):
        Note(60, 0.0, 1.0, 80, voice=-1)


def _time_signature(tick: int, num: int, den: int) -> tuple[int, bytes]:
    return tick, b"\xff\x58\x04" + bytes([num, den.bit_length() - 1, 24, 8])


def _key_signature(tick: int, sharps: int, minor: bool) -> tuple[int, bytes]:
    return tick, b"\xff\x59\x02" + bytes([sharps & 0xFF, int(minor)])


def test_meters_and_key_from_midi(tmp_path):
    # a one-quarter pickup bar (1/4), 4/4 from beat 1, 3/4 from beat 5; G minor (2 flats); 120 then 60 bpm at beat 3
    meta = [_tempo(0, 500_000), _tempo(3 * 480, 1_000_000), _time_signature(0, 1, 4), _time_signature(480, 4, 4),
            _time_signature(2400, 3, 4), _key_signature(0, -2, True), _key_signature(960, 0, False)]
    path = _write(tmp_path, "meter.mid", _midi([meta, _note(0, 8 * 480, 67)], 480))
    beat = read_piece(path)
    assert beat.meters == ((0.0, 1, 4), (1.0, 4, 4), (5.0, 3, 4)) and beat.key == 19
    # seconds: beat 1 = 0.5 s, beat 5 = 3 beats at 0.5 s + 2 at 1 s = 3.5 s
    assert read_piece(path, "seconds").meters == ((0.0, 1, 4), (0.5, 4, 4), (3.5, 3, 4))
    plain = read_piece(_write(tmp_path, "plain.mid", _midi([_note(0, 480, 60)], 480)))
    assert plain.meters == () and plain.key is None
    assert Piece(plain.notes) != Piece(plain.notes, key=0) and Piece(plain.notes, meters=[(0, 3, 4)]).meters == \
        ((0.0, 3, 4),)
    with pytest.raises(UsageError, match="Piece.key"):
        Piece(plain.notes, key=24)


def test_notes_to_pretty_midi_writes_meters_and_key():
    from musicgen.midi_io import arrays_to_pretty_midi

    pm = arrays_to_pretty_midi([60], [0.0], [2.0], [80], [0], qpm=60.0, time_signatures=[(0.0, 1, 4), (1.0, 4, 4)],
                               key=14)
    assert [(t.numerator, t.denominator, t.time) for t in pm.time_signature_changes] == [(1, 4, 0.0), (4, 4, 1.0)]
    assert [k.key_number for k in pm.key_signature_changes] == [14]
