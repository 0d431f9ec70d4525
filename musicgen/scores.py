"""Score files → pieces: one file may hold many (an ABC tune book, a MusicXML or kern opus).

``read_score_pieces(path)`` reads a ``.abc .mxl .musicxml .xml .krn`` file into a list of ``ScorePiece``, one per
tune or score, in file order, each either a ``Piece`` or the reason it was skipped (one broken tune never costs its
neighbours). A MusicXML ``<opus>`` document gives the scores it links to (files in its own folder). ABC books are
split at their ``X:`` lines (``musicgen.abc.split_abc``; the file header travels with each tune) and each tune is
read on its own: by symusic's ABC reader (abc2midi, milliseconds) unless ``musicgen.abc.fast_reader_refusal`` names a
construct where it and music21 differ by design or abc2midi reports an error; then by music21. Everything else goes
through music21; a file music21 reads as an ``Opus`` gives each of its scores.

music21 reading: ``quarterLength`` offsets are beats; repeats and endings are played out (``expandRepeats``, as
music21's own MIDI export does; a piece whose repeat marks music21 cannot expand is read as written and its reader is
``"music21 (repeats as written)"``); ties are merged, grace notes and unpitched percussion are skipped, notes without
a velocity get 90 (what music21 itself writes to MIDI); the tempo map comes from ``MetronomeMark`` objects, else 120
quarter notes per minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from musicgen.errors import IngestError
from musicgen.midi_io import (DEFAULT_MAX_NOTES, MAX_SCORE_BYTES, MUSIC21_DEFAULT_VELOCITY, _build_piece, _check_size,
                              _first_line)
from musicgen.piece import Piece, _tempo_map, beats_to_seconds
from musicgen.safeio import TimeLimitExceeded, time_limit

MUSIC21_SUFFIXES = (".mxl", ".musicxml", ".xml", ".abc", ".krn")
READERS = ("symusic", "music21", "music21 (repeats as written)")


class ScorePiece(NamedTuple):
    """One tune or score of a file: ``piece`` when it was read, else ``reason`` (one line) and ``piece=None``.

    ``index`` counts pieces from 0 in file order; ``title`` is the tune's ``T:`` / the score's title ("" if none);
    ``reader`` is one of ``READERS`` ("" when the piece could not be read at all).
    """

    index: int
    title: str
    reader: str
    piece: Piece | None
    reason: str


def _parse_music21(source, fmt: str | None = None):
    import music21

    # forceSource/storePickle: never read or write music21's pickle cache (no pickle anywhere)
    if fmt is None:
        return music21.converter.parse(str(source), forceSource=True, storePickle=False)
    return music21.converter.parse(source, format=fmt, forceSource=True, storePickle=False)


def _expanded(score):
    """``(score with repeats played out, reader name)``; the score as written when music21 cannot expand it."""
    import music21

    if not score.recurse().getElementsByClass(music21.stream.Measure):
        return score, "music21"
    try:
        return score.expandRepeats(), "music21"
    except Exception:  # music21.repeat.ExpanderException and friends on unbalanced repeat marks
        return score, "music21 (repeats as written)"


def music21_piece(score, time_mode: str = "beat", max_notes: int = DEFAULT_MAX_NOTES) -> tuple[Piece, str]:
    """The notes of one music21 ``Score`` (or ``Part``/``Stream``) as ``(Piece, reader name)``; repeats played out.

    Raises:
        IngestError: ``"no notes"``, ``"too many notes: …"``.
    """
    import music21

    score, reader = _expanded(score)
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    rows: list[tuple] = []
    voice = 0  # the index of a part among the parts with notes
    for part in parts:
        voice += bool(rows) and rows[-1][6] == voice  # the part before gave notes: this one is the next voice
        inst = part.getInstrument(returnDefault=True)
        program = inst.midiProgram if inst.midiProgram is not None else 0
        drum = inst.midiChannel == 9 or isinstance(inst, music21.instrument.UnpitchedPercussion)
        for el in part.flatten().stripTies().notes:
            if el.duration.isGrace or el.quarterLength <= 0:
                continue
            vel = el.volume.velocity if el.volume.velocity is not None else MUSIC21_DEFAULT_VELOCITY
            start = float(el.offset)
            for p in getattr(el, "pitches", ()):
                rows.append((p.midi, start, start + float(el.quarterLength), vel, program, drum, voice))
            if len(rows) > max_notes:
                raise IngestError(f"too many notes: more than max_notes={max_notes}")
    if not rows:
        raise IngestError("no notes")
    marks = score.flatten().getElementsByClass(music21.tempo.MetronomeMark)
    change_beats, change_qpm = _tempo_map([float(m.offset) for m in marks],
                                          [m.getQuarterBPM() or float("nan") for m in marks])
    pitch, start, end, vel, program, drum, voice = (np.array(col) for col in zip(*rows))
    if time_mode == "seconds":
        start, end = beats_to_seconds(start, change_beats, change_qpm), beats_to_seconds(end, change_beats, change_qpm)
    bars = score_bars(score)
    bar_times = np.array([t for t, _, _ in bars], np.float64)
    if time_mode == "seconds" and bars:
        bar_times = beats_to_seconds(bar_times, change_beats, change_qpm)
    piece = _build_piece(pitch, start, end, vel, program, drum, float(change_qpm[0]), time_mode, max_notes,
                         voice=voice, meters=[(t, n, d) for t, (_, n, d) in zip(bar_times.tolist(), bars)],
                         key=score_key(score))
    return piece, reader


def score_bars(score) -> list[tuple[float, int, int]]:
    """The bars of a music21 score (repeats as in ``score``) as ``meter.meter_changes`` entries ``(quarter notes,
    numerator, denominator)``: the measures of its first part with measures, each a bar of its notated meter, or
    of its own length when shorter or longer (a pickup, a bar split at a line break, a short last bar:
    ``meter.short_bar_meter``). Empty when the score has no measures."""
    import music21

    from musicgen.meter import meter_changes, short_bar_meter

    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    for part in parts:
        measures = list(part.getElementsByClass(music21.stream.Measure))
        if measures:
            break
    else:
        return []
    bars, meter = [], (4, 4)
    for i, m in enumerate(measures):
        if m.timeSignature is not None:
            meter = (int(m.timeSignature.numerator), int(m.timeSignature.denominator))
        start = float(m.offset)
        length = float(measures[i + 1].offset) - start if i + 1 < len(measures) else float(m.duration.quarterLength)
        if length > 0:
            bars.append((start, *short_bar_meter(length, *meter)))
    return meter_changes(bars)


def score_key(score) -> int | None:
    """Key number (tonic + 12 * minor) of the first key signature of a music21 score when it names its mode (a
    ``music21.key.Key``, MusicXML's ``<mode>``), else None."""
    import music21

    from musicgen.meter import key_number

    for ks in score.recurse().getElementsByClass(music21.key.KeySignature):
        mode = getattr(ks, "mode", None)
        if mode in ("major", "minor") and -7 <= ks.sharps <= 7:
            return key_number(ks.sharps, mode == "minor")
        return None
    return None


def _title(score) -> str:
    meta = getattr(score, "metadata", None)
    title = (getattr(meta, "title", None) or "") if meta is not None else ""
    return " ".join(str(title).split())[:200]


def _reason(exc: BaseException, what: str) -> str:
    if isinstance(exc, IngestError):
        return str(exc) or "unreadable"
    return f"unreadable {what}: {_first_line(exc)}"


def read_abc_tune(text: str, time_mode: str = "beat", max_notes: int = DEFAULT_MAX_NOTES,
                  fast: bool = True) -> tuple[Piece, str]:
    """One ABC tune (header included) → ``(Piece, reader name)``: symusic when ``fast`` and it is faithful for this
    tune (``musicgen.abc.fast_reader_refusal``) and works, else music21.

    Raises:
        IngestError: the tune cannot be read by either reader, or has no notes.
    """
    from musicgen import abc

    if fast and abc.fast_reader_refusal(text) is None:
        try:
            return abc.read_abc_fast(text, time_mode, max_notes), "symusic"
        except IngestError as exc:
            if str(exc).startswith("too many notes"):
                raise
        # abc2midi failed or reported an error in the tune: music21 decides
    try:
        score = _parse_music21(text, "abc")
    except Exception as exc:
        raise IngestError(f"unreadable abc tune: {_first_line(exc)}") from None
    import music21

    if isinstance(score, music21.stream.Opus):  # a tune that music21 still splits: its first score
        scores = list(score.scores)
        if not scores:
            raise IngestError("no notes")
        score = scores[0]
    return music21_piece(score, time_mode, max_notes)


def _read_abc_book(path: Path, time_mode: str, max_notes: int, time_limit_s: int, first_only: bool,
                   fast: bool) -> list[ScorePiece]:
    from musicgen.abc import split_abc

    out = []
    for tune in split_abc(path.read_text(encoding="utf-8", errors="replace")):
        try:
            with time_limit(time_limit_s):
                piece, reader = read_abc_tune(tune.text, time_mode, max_notes, fast)
            out.append(ScorePiece(tune.index, tune.title, reader, piece, ""))
        except TimeLimitExceeded:
            out.append(ScorePiece(tune.index, tune.title, "", None, f"timed out after {time_limit_s} s"))
        except Exception as exc:  # IngestError, or a reader bug on one odd tune: skip that tune only
            out.append(ScorePiece(tune.index, tune.title, "", None, _reason(exc, "abc tune")))
        if first_only and out[-1].piece is not None:
            break
    return out


_XLINK = "{http://www.w3.org/1999/xlink}"


def musicxml_opus_links(path: Path) -> list[tuple[str, str]] | None:
    """``(href, title)`` of each ``<score>`` of a MusicXML ``<opus>`` document (a file listing score files), or None
    when ``path`` is not one. Only the first 4 kB are looked at before the file is parsed."""
    import xml.etree.ElementTree as ET

    with open(path, "rb") as fh:
        head = fh.read(4096)
    if b"<opus" not in head:
        return None
    try:
        root = ET.parse(path).getroot()  # ElementTree resolves no external entities
    except ET.ParseError:
        return None
    if root.tag != "opus":
        return None
    return [(el.get(f"{_XLINK}href", ""), el.get(f"{_XLINK}title", "")) for el in root.iter("score")]


def _opus_member(opus: Path, href: str) -> Path:
    target = (opus.parent / href).resolve()
    if not href or Path(href).is_absolute() or opus.parent.resolve() not in target.parents:
        raise IngestError(f"opus link {href!r} leaves the opus file's folder")
    if not target.is_file():
        raise IngestError(f"opus link {href!r}: no such file")
    _check_size(target, MAX_SCORE_BYTES)
    return target


def _scores_of(path: Path, time_limit_s: int) -> list[tuple[str, object]]:
    """``(title, music21 score or IngestError)`` of every score in ``path`` (an opus gives several)."""
    import music21

    links = musicxml_opus_links(path) if path.suffix.lower() in (".xml", ".musicxml") else None
    sources = [(path, "")] if links is None else [(href, title) for href, title in links]
    if not sources:
        raise IngestError("no notes")
    out = []
    for source, title in sources:
        what = f"{path.suffix.lower()[1:]} file"
        try:
            with time_limit(time_limit_s):
                parsed = _parse_music21(source if links is None else _opus_member(path, source))
        except TimeLimitExceeded:
            if links is None:
                raise IngestError(f"timed out after {time_limit_s} s") from None
            parsed = IngestError(f"timed out after {time_limit_s} s")
        except Exception as exc:
            if links is None:
                raise IngestError(_reason(exc, what)) from None
            parsed = IngestError(_reason(exc, what))
        if isinstance(parsed, music21.stream.Opus):
            out += [(_title(score), score) for score in parsed.scores]
        else:
            out.append((title or ("" if isinstance(parsed, IngestError) else _title(parsed)), parsed))
    if not out:
        raise IngestError("no notes")
    return out


def _read_music21_file(path: Path, time_mode: str, max_notes: int, time_limit_s: int) -> list[ScorePiece]:
    what = f"{path.suffix.lower()[1:]} file"
    out = []
    for index, (title, score) in enumerate(_scores_of(path, time_limit_s)):
        try:
            if isinstance(score, IngestError):
                raise score
            with time_limit(time_limit_s):
                piece, reader = music21_piece(score, time_mode, max_notes)
            out.append(ScorePiece(index, title, reader, piece, ""))
        except TimeLimitExceeded:
            out.append(ScorePiece(index, title, "", None, f"timed out after {time_limit_s} s"))
        except Exception as exc:
            out.append(ScorePiece(index, title, "", None, _reason(exc, what)))
    return out


def read_score_pieces(path: str | Path, time_mode: str = "beat", max_notes: int = DEFAULT_MAX_NOTES,
                      time_limit_s: int = 0, first_only: bool = False, fast_abc: bool = True) -> list[ScorePiece]:
    """Every tune/score of a ``.abc .mxl .musicxml .xml .krn`` file, in file order (see the module docstring).

    Args:
        path: the score file (suffix any case).
        time_mode: ``"beat"`` (quarter notes) or ``"seconds"``.
        max_notes: a piece with more notes is skipped ("too many notes: …").
        time_limit_s: seconds allowed per ABC tune, and per music21 parse of another file (0 = none; SIGALRM, so
            only in a process's main thread).
        first_only: stop after the first piece that reads (what ``reader.read_piece`` wants).
        fast_abc: use symusic's ABC reader where faithful (False: music21 for every tune).
    Returns:
        ``ScorePiece`` list, at least one entry.
    Raises:
        IngestError: the whole file is unreadable, too large, or (non-ABC) its parse timed out.
    """
    path = Path(path)
    if path.suffix.lower() not in MUSIC21_SUFFIXES:
        raise IngestError(f"not a music file: suffix {path.suffix!r} is not one of {' '.join(MUSIC21_SUFFIXES)}")
    if not path.is_file():
        raise IngestError(f"not a music file: {str(path)!r} is not a readable file")
    _check_size(path, MAX_SCORE_BYTES)
    if path.suffix.lower() == ".abc":
        try:
            return _read_abc_book(path, time_mode, max_notes, time_limit_s, first_only, fast_abc)
        except OSError as exc:
            raise IngestError(f"not a music file: {str(path)!r} is not readable ({exc.strerror})") from None
    return _read_music21_file(path, time_mode, max_notes, time_limit_s)

