"""Any music file → pieces: the one place that dispatches on a file's suffix.

MIDI (``.mid`` / ``.midi``, any case) goes to ``musicgen.midi_io.read_midi`` (symusic); MusicXML / ABC / Humdrum kern
(``.mxl .musicxml .xml .abc .krn``) to ``musicgen.scores.read_score_pieces`` (music21, and symusic's ABC reader where
it is faithful). A MIDI file is one piece; a score file may hold many (an ABC book, an opus).

This module sits above both readers, so neither imports the other (``abc`` and ``scores`` use ``midi_io``'s note
containers and constants; ``midi_io`` calls no score reader). symusic and music21 are imported inside the readers, so
``import musicgen.reader`` stays light.
"""

from __future__ import annotations

from pathlib import Path

from musicgen.errors import IngestError
from musicgen.midi_io import DEFAULT_MAX_NOTES, MIDI_SUFFIXES, read_midi
from musicgen.piece import Note, Piece, check_time_mode
from musicgen.scores import MUSIC21_SUFFIXES, ScorePiece, read_score_pieces

MUSIC_SUFFIXES = MIDI_SUFFIXES + MUSIC21_SUFFIXES


def read_piece(path: str | Path, time_mode: str = "beat", max_notes: int = DEFAULT_MAX_NOTES,
               data: bytes | None = None) -> Piece:
    """Read one music file into a ``Piece``.

    Args:
        path: a ``.mid/.midi`` file (``midi_io.read_midi``) or ``.mxl/.musicxml/.xml/.abc/.krn`` file (the first
            piece that reads of an ABC book or opus; ``read_pieces`` gives them all).
        time_mode: ``"beat"`` (times in quarter notes) or ``"seconds"``.
        max_notes: guard against enormous inputs; a file with more notes is refused (default 200,000).
        data: the file's bytes when the caller has read them already (MIDI only; saves reading the file again).
    Returns:
        ``Piece`` with notes sorted by (start, pitch) and ``qpm`` the first tempo (120 when the file has none).
    Raises:
        IngestError: ``"not a music file: …"``, ``"unreadable MIDI: …"``, ``"no notes"``, ``"too many notes: …"``,
            ``"too large: …"`` (over ``MAX_MIDI_BYTES`` / ``MAX_SCORE_BYTES``, refused before reading).
        UsageError: ``time_mode`` is not one of ``("beat", "seconds")``.
    """
    check_time_mode(time_mode)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MUSIC_SUFFIXES:
        raise IngestError(f"not a music file: suffix {path.suffix!r} is not one of {' '.join(MUSIC_SUFFIXES)}")
    if suffix in MIDI_SUFFIXES:  # an unreadable path is reported by read_midi (one stat call fewer)
        return read_midi(path, time_mode, max_notes, data)
    pieces = read_score_pieces(path, time_mode, max_notes, first_only=True)
    for sp in pieces:
        if sp.piece is not None:
            return sp.piece
    raise IngestError(pieces[0].reason)


def read_notes(path: str | Path, time_mode: str = "beat") -> list[Note]:
    """The notes of ``read_piece(path, time_mode)``."""
    return read_piece(path, time_mode).notes


def read_pieces(path: str | Path, time_mode: str = "beat", time_limit_s: int = 0) -> list[ScorePiece]:
    """Every piece of any music file: a MIDI file is one piece (``read_piece``, reader ``""``, no time limit: it
    parses in milliseconds), a score file is ``read_score_pieces(path, time_mode, time_limit_s=…)``.

    Raises:
        IngestError: the file as a whole cannot be read (see ``read_piece`` / ``read_score_pieces``).
        UsageError: ``time_mode`` is not one of ``("beat", "seconds")``.
    """
    check_time_mode(time_mode)
    if str(path).lower().endswith(MIDI_SUFFIXES):
        return [ScorePiece(0, "", "", read_piece(path, time_mode), "")]  # read_piece looked up now: tests replace it
    return read_score_pieces(path, time_mode, time_limit_s=time_limit_s)
