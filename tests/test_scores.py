"""Score files → pieces: ABC books (one piece per tune, fast reader and music21 agree), opus files, broken tunes."""

from pathlib import Path

import pytest

from musicgen.errors import IngestError
from musicgen.scores import read_score_pieces
from musicgen.tokenizer import Tokenizer

DATA = Path(__file__).parent / "data"
TOK = Tokenizer()
V = ("VELOCITY", 23)  # velocity 90 in 32 bins: 1 + (89 * 32) // 127


def events(*names):
    """Token ids of BOS, PROGRAM 0, VELOCITY 23, the given events, EOS."""
    return [TOK.bos_id, TOK.token("PROGRAM", 0), TOK.token(*V)] + [TOK.token(n, v) for n, v in names] + [TOK.eos_id]


def on_off(pitch, steps):
    return [("NOTE_ON", pitch), ("TIME_SHIFT", steps), ("NOTE_OFF", pitch)]


# tests/data/book.abc, hand-tokenized: 12 steps per quarter, L:1/8 from the file header
BOOK_TOKENS = [
    # X:1 |:C2 D2|E2 F2:|G2 A2|B4|]  -- the repeat played: C D E F C D E F G A, B a half note
    events(*[e for p in (60, 62, 64, 65, 60, 62, 64, 65, 67, 69) for e in on_off(p, 12)], *on_off(71, 24)),
    # X:2 K:G (3FGA B2|]  -- F is F#; a triplet of eighths is three thirds of a quarter (4 steps each)
    events(*on_off(66, 4), *on_off(67, 4), *on_off(69, 4), *on_off(71, 12)),
    # X:3 [CE]2 c>B|]  -- a quarter chord, then c dotted eighth (9 steps) and B sixteenth (3)
    events(("NOTE_ON", 60), ("NOTE_ON", 64), ("TIME_SHIFT", 12), ("NOTE_OFF", 60), ("NOTE_OFF", 64),
           *on_off(72, 9), *on_off(71, 3)),
]


@pytest.mark.parametrize("fast", [True, False], ids=["symusic", "music21"])
def test_book_gives_three_pieces_with_hand_checked_tokens(fast):
    pieces = read_score_pieces(DATA / "book.abc", fast_abc=fast)
    assert [(p.index, p.title, p.reason) for p in pieces] == [(0, "Repeat", ""), (1, "Tuplet", ""), (2, "Chord", "")]
    assert {p.reader for p in pieces} == {"symusic" if fast else "music21"}
    assert [TOK.encode(p.piece).tolist() for p in pieces] == BOOK_TOKENS


def test_a_broken_tune_is_skipped_with_its_reason_and_the_others_kept():
    pieces = read_score_pieces(DATA / "broken_book.abc")
    assert [(p.index, p.title, p.reason) for p in pieces] == [(0, "First", ""), (1, "Empty", "no notes"),
                                                             (2, "Third", "")]
    assert [(n.pitch, n.start, n.end) for n in pieces[2].piece.notes] == [(64, 0.0, 1.0), (65, 1.0, 2.0)]  # L:1/4


def test_first_only_stops_at_the_first_piece_that_reads(tmp_path):
    book = tmp_path / "b.abc"
    book.write_text("X:1\nK:C\nz4|\n\nX:2\nT:Two\nK:C\nC4|\n\nX:3\nT:Three\nK:C\nD4|\n")
    assert [p.title for p in read_score_pieces(book, first_only=True)] == ["", "Two"]


def test_kern_opus_gives_one_piece_per_score_with_titles():
    pieces = read_score_pieces(DATA / "opus.krn")
    assert [(p.index, p.title, p.reader) for p in pieces] == [(0, "First", "music21"), (1, "Second", "music21")]
    assert [[(n.pitch, n.start, n.end) for n in p.piece.notes] for p in pieces] == [
        [(60, 0.0, 1.0), (62, 1.0, 2.0)], [(64, 0.0, 2.0)]]


def test_musicxml_opus_gives_the_scores_it_links_and_refuses_links_out_of_its_folder():
    pieces = read_score_pieces(DATA / "opus" / "opus.musicxml")
    assert [(p.index, p.title, p.reason) for p in pieces] == [
        (0, "The first", ""), (1, "two", ""), (2, "", "opus link '../book.abc' leaves the opus file's folder")]
    assert [[n.pitch for n in p.piece.notes] for p in pieces[:2]] == [[60, 62], [64, 65]]


def test_unreadable_files_raise_one_line(tmp_path):
    with pytest.raises(IngestError, match="not a music file"):
        read_score_pieces(tmp_path / "missing.abc")
    bad = tmp_path / "bad.musicxml"
    bad.write_text("<score-partwise><part")
    with pytest.raises(IngestError, match="unreadable musicxml file"):
        read_score_pieces(bad)


@pytest.mark.parametrize("fast, meters", [(False, ((0.0, 1, 4), (1.0, 4, 4))), (True, ((0.0, 4, 4),))],
                         ids=["music21", "symusic"])
def test_pickup_bar_and_key_of_an_abc_tune(tmp_path, fast, meters):
    # music21 reads the measures: the pickup is a bar of 1/4; abc2midi's MIDI holds only the tune's M:4/4
    path = tmp_path / "pickup.abc"
    path.write_text("X:1\nT:pickup\nM:4/4\nL:1/4\nK:Dm\nA|d2 f2|a4|]\n")
    piece = read_score_pieces(path, fast_abc=fast)[0].piece
    assert piece.meters == meters and piece.key == 14  # D minor


def test_score_bars_of_a_chorale_with_pickup_and_split_bar():
    import music21

    from musicgen.scores import score_bars

    # bwv108.6: a one-beat pickup; repeats played out; a bar split 1 + 3 at beat 33 (a line break in the source)
    bars = score_bars(music21.corpus.parse("bach/bwv108.6").expandRepeats())
    assert bars == [(0.0, 1, 4), (1.0, 4, 4), (13.0, 3, 4), (16.0, 1, 4), (17.0, 4, 4), (33.0, 1, 4), (34.0, 3, 4),
                    (37.0, 4, 4), (49.0, 3, 4)]
