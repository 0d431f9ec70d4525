"""musicgen.corpus_export: output names, ABC books split into tunes, MIDI at 480 ticks per quarter, failures counted.

Source files are written by hand into tmp folders; the one export of a real bundled corpus (and its ingest) is in
tests/test_corpus.py.
"""

import pytest
import symusic

from musicgen import corpus_export
from musicgen.corpus_export import ExportReport, _export_chunk, _pieces, export_corpus, score_to_midi, split_abc
from musicgen.errors import UsageError

BOOK = "% header\nL:1/4\n\nX:1\nT:One\nK:C\nC D|\n\nX:2\nT:Two\nK:G\nG A|\n"


def test_split_abc_keeps_header_with_each_tune():
    text = "% header\nM:4/4\n\nX:1\nT:One\nK:C\nCDEF|\n\nX:2\nT:Two\nK:G\nGABc|\n"
    assert split_abc(text) == ["% header\nM:4/4\n\nX:1\nT:One\nK:C\nCDEF|\n\n",
                               "% header\nM:4/4\n\nX:2\nT:Two\nK:G\nGABc|\n"]
    assert split_abc("no tunes here") == ["no tunes here"]


def test_piece_names_are_safe_and_count_the_tunes_of_a_book(tmp_path):
    (tmp_path / "my book!.abc").write_text(BOOK)
    (tmp_path / "one.abc").write_text("X:5\nT:Only\nK:C\nE F|\n")
    (tmp_path / "..odd..krn").write_text("**kern\n4c\n*-\n")
    files = sorted(tmp_path.iterdir())
    got = [(name, path.rsplit("/", 1)[1], text is not None) for name, path, text in _pieces(files)]
    assert got == [("odd", "..odd..krn", False), ("my_book-0001", "my book!.abc", True),
                   ("my_book-0002", "my book!.abc", True), ("one", "one.abc", False)]
    assert [text for _, _, text in _pieces(files)][1:3] == split_abc(BOOK)


def test_score_to_midi_writes_480_ticks_per_quarter():
    import music21

    part = music21.stream.Part([music21.note.Note("C4", quarterLength=1), music21.note.Note("G4", quarterLength=2)])
    score = symusic.Score.from_midi(score_to_midi(music21.stream.Score([part])))
    assert score.ticks_per_quarter == 480
    notes = [(n.pitch, n.time, n.duration) for track in score.tracks for n in track.notes]
    assert notes == [(60, 0, 480), (67, 480, 960)]


def test_a_piece_without_notes_or_unreadable_is_a_reason(tmp_path):
    (tmp_path / "rest.abc").write_text("X:1\nL:1/4\nK:C\nz2|\n")
    (tmp_path / "bad.krn").write_text("this is not kern at all\n")
    items = [("rest", str(tmp_path / "rest.abc"), None), ("bad", str(tmp_path / "bad.krn"), None),
             ("tune", "book.abc", split_abc(BOOK)[1])]
    (rest, bad, tune) = _export_chunk(items)
    assert rest == (None, "no notes")
    assert bad[0] is None and bad[1].startswith("music21 ")
    notes = [(n.pitch, n.time, n.duration) for t in symusic.Score.from_midi(tune[0]).tracks for n in t.notes]
    assert tune[1] == "" and notes == [(67, 0, 480), (69, 480, 480)]


def test_export_writes_a_file_per_piece_and_counts_failures(tmp_path, monkeypatch):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "book.abc").write_text(BOOK)
    (src / "rest.abc").write_text("X:1\nL:1/4\nK:C\nz2|\n")
    monkeypatch.setattr(corpus_export, "_source_files", lambda name: sorted(src.iterdir()))
    report = export_corpus("mine", out, workers=1, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["book-0001.mid", "book-0002.mid"]
    assert (report.written, dict(report.failed)) == (2, {"no notes": 1})
    assert report.summary() == f"exported 2 pieces of 'mine' to {out}; 1 failed (1 no notes)"
    assert export_corpus("mine", tmp_path / "one", limit=1, workers=1, progress=False).written == 1
    assert export_corpus("mine", tmp_path / "odd", every=2, workers=1, progress=False).written == 1
    assert sorted(p.name for p in (tmp_path / "odd").iterdir()) == ["book-0001.mid"]  # pieces 1 and 3 of 3; 3 fails
    assert ExportReport("x", out).summary() == f"exported 0 pieces of 'x' to {out}"


def test_bad_arguments_name_themselves(tmp_path):
    with pytest.raises(UsageError, match="name: unknown corpus 'mozart'; expected one of bach, ryans"):
        export_corpus("mozart", tmp_path / "out", workers=1, progress=False)
    with pytest.raises(UsageError, match=r"--limit: expected an integer >= 0 \(0 = all\), got -1"):
        export_corpus("bach", tmp_path / "out", limit=-1, workers=1, progress=False)
    with pytest.raises(UsageError, match=r"--every: expected an integer >= 1 \(1 = all\), got 0"):
        export_corpus("bach", tmp_path / "out", every=0, workers=1, progress=False)
