"""musicgen.reader: which reader a file goes to (by suffix, any case), the first piece vs every piece of a file.

The readers themselves are tested beside their modules (tests/test_midi_io.py, test_scores.py, test_abc.py); here
the notes are hand-written MIDI and ABC whose notes are read off by hand.
"""

import pretty_midi
import pytest

from musicgen import reader
from musicgen.errors import IngestError, UsageError
from musicgen.reader import MUSIC_SUFFIXES, read_notes, read_piece, read_pieces

BROKEN_BOOK = "L:1/4\n\nX:1\nT:First\nK:C\nC D|]\n\nX:2\nT:Empty\nK:C\nz2|]\n\nX:3\nT:Third\nK:C\nE F|]\n"


def _two_note_midi(path):
    """C4 for one beat, then E4 for two, at 60 qpm (so beats and seconds agree)."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=60)
    inst = pretty_midi.Instrument(program=0)
    inst.notes = [pretty_midi.Note(90, 60, 0.0, 1.0), pretty_midi.Note(90, 64, 1.0, 3.0)]
    pm.instruments.append(inst)
    pm.write(str(path))
    return path


def _rows(piece):
    return [(n.pitch, n.start, n.end) for n in piece.notes]


def test_midi_of_any_case_goes_to_the_midi_reader(tmp_path):
    path = _two_note_midi(tmp_path / "two.MIDI")
    piece = read_piece(path)
    assert _rows(piece) == [(60, 0.0, 1.0), (64, 1.0, 3.0)] and piece.qpm == 60.0
    assert read_notes(path) == piece.notes
    assert read_piece(path, data=path.read_bytes()) == piece


def test_abc_book_first_piece_and_every_piece(tmp_path):
    path = tmp_path / "book.Abc"
    path.write_text(BROKEN_BOOK)
    assert _rows(read_piece(path)) == [(60, 0.0, 1.0), (62, 1.0, 2.0)]  # tune 1: C D, quarter notes
    got = [(sp.index, sp.title, sp.reason, sp.piece and _rows(sp.piece)) for sp in read_pieces(path)]
    assert got == [(0, "First", "", [(60, 0.0, 1.0), (62, 1.0, 2.0)]), (1, "Empty", "no notes", None),
                   (2, "Third", "", [(64, 0.0, 1.0), (65, 1.0, 2.0)])]


def test_a_book_without_a_readable_tune_gives_the_first_reason(tmp_path):
    path = tmp_path / "rests.abc"
    path.write_text("L:1/4\n\nX:1\nK:C\nz2|]\n\nX:2\nK:C\nz4|]\n")
    with pytest.raises(IngestError, match="^no notes$"):
        read_piece(path)


def test_midi_file_is_one_unnamed_piece(tmp_path):
    path = _two_note_midi(tmp_path / "two.mid")
    [sp] = read_pieces(path, "seconds")
    assert (sp.index, sp.title, sp.reader, sp.reason) == (0, "", "", "")
    assert _rows(sp.piece) == [(60, 0.0, 1.0), (64, 1.0, 3.0)] and sp.piece.time_mode == "seconds"


def test_other_suffixes_and_time_modes_are_refused(tmp_path):
    assert MUSIC_SUFFIXES == (".mid", ".midi", ".mxl", ".musicxml", ".xml", ".abc", ".krn")
    (tmp_path / "notes.txt").write_text("C D E")
    with pytest.raises(IngestError, match=r"^not a music file: suffix '\.txt' is not one of \.mid \.midi \.mxl"):
        read_piece(tmp_path / "notes.txt")
    (tmp_path / "tune.abc").write_text(BROKEN_BOOK)
    for read in (read_piece, read_pieces):
        with pytest.raises(UsageError, match="time_mode: expected one of"):
            read(tmp_path / "tune.abc", "ticks")


def test_read_pieces_looks_read_piece_up_at_call_time(tmp_path, monkeypatch):
    """Ingest's crash and kill tests replace ``reader.read_piece``; ``read_pieces`` must then use the replacement."""
    calls = []
    real = reader.read_piece
    monkeypatch.setattr(reader, "read_piece", lambda path, mode: calls.append(mode) or real(path, mode))
    read_pieces(_two_note_midi(tmp_path / "two.mid"), "seconds")
    assert calls == ["seconds"]
