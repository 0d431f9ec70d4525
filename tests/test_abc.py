"""ABC books: splitting into tunes, the score-only rewrite for abc2midi, and the fast (symusic/abc2midi) reader."""

import pytest

from musicgen.abc import fast_reader_refusal, read_abc_fast, score_only, split_abc
from musicgen.errors import IngestError


def notes(piece):
    return [(n.pitch, n.start, n.end, n.velocity, n.program) for n in piece.notes]


def test_split_keeps_the_file_header_with_every_tune_and_reads_numbers_and_titles():
    text = "% header\nL:1/8\n\nX:1\nT:One\nK:C\nCDEF|\n\nX: 7\nT: Two words\nK:G\nGABc|\n"
    tunes = split_abc(text)
    assert [(t.index, t.number, t.title) for t in tunes] == [(0, "1", "One"), (1, "7", "Two words")]
    assert tunes[0].text == "% header\nL:1/8\n\nX:1\nT:One\nK:C\nCDEF|\n\n"
    assert tunes[1].text == "% header\nL:1/8\n\nX: 7\nT: Two words\nK:G\nGABc|\n"
    assert [(t.index, t.title, t.text) for t in split_abc("T:Loose\nK:C\nCD|")] == [(0, "Loose", "T:Loose\nK:C\nCD|")]


def test_score_only_moves_the_header_after_x_and_drops_what_abc2midi_would_perform():
    text = "L:1/8\nR:reel\n\nX:1\nT:T\nR:hornpipe\nK:C\n~G2 TA2 .B2 Hc2 \"Am\"d2 !trill!e2 !p!f2 [K:G]g2|\n"
    assert score_only(text) == ("X:1\n%%MIDI chordattack 0\n%%propagate-accidentals octave\nL:1/8\nT:T\nK:C\n"
                                "G2 A2 B2 c2 \"Am\"d2 e2 !p!f2 [K:G]g2|\n")


def test_refusals():
    assert fast_reader_refusal("X:1\nK:C\nCDE|\n") is None
    assert fast_reader_refusal("X:1\n%%MIDI program 40\nK:C\nCDE|\n") == "midi directive"
    assert fast_reader_refusal("X:1\nK:C\nV:1\nCDE|\nV:2\nC,D,E,|\n") == "voices"


def test_fast_reader_plays_repeats_tuplets_broken_rhythm_and_chords_as_written():
    text = ("X:1\nL:1/8\nM:2/4\nQ:1/4=90\nK:G\n|:F2 (3GAB|[CE]2 c>B:|\n")
    piece = read_abc_fast(text)
    assert piece.qpm == 90.0  # abc2midi stores 666,667 us per quarter; rounded back to 0.01
    once = [(66, 0.0, 1.0), (67, 1.0, 4 / 3), (69, 4 / 3, 5 / 3), (71, 5 / 3, 2.0),  # key G: F is F#
            (60, 2.0, 3.0), (64, 2.0, 3.0), (72, 3.0, 3.75), (71, 3.75, 4.0)]  # chord together, c dotted
    expected = once + [(p, a + 4, b + 4) for p, a, b in once]
    assert [(p, a, b) for p, a, b, _, _ in notes(piece)] == pytest.approx(sorted(expected, key=lambda n: (n[1], n[0])))
    assert {(v, prog) for *_, v, prog in notes(piece)} == {(90, 0)}  # music21's velocity, program 0
    sec = read_abc_fast(text, "seconds")
    assert sec.notes[-1].end == pytest.approx(8 * 60 / 90)


def test_fast_reader_reports_abc2midi_errors_and_empty_tunes():
    with pytest.raises(IngestError, match="abc2midi: Error .* Malformed note"):
        read_abc_fast("X:1\nK:C\nC D ^ F|\n")  # an accidental without a note
    with pytest.raises(IngestError, match="no notes"):
        read_abc_fast("X:1\nL:1/4\nK:C\nz2|\n")
