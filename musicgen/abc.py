"""ABC tune books: split into tunes, and the fast reader (symusic's ABC reader, i.e. its bundled ``abc2midi``).

``split_abc(text)`` cuts a book at its ``X:`` lines; each tune keeps the file header (the lines before the first
``X:``: ``L:``, ``M:``, ``%%`` directives…). ``read_abc_fast(tune)`` runs symusic's bundled ``abc2midi`` on one tune
(a few milliseconds, against ~0.2 s for music21) and reads the MIDI it writes with symusic. abc2midi plays repeats,
endings, broken rhythm, tuplets, chords, and key, meter and tempo changes, as music21 does; where the two differ by
design (``fast_reader_refusal`` lists the cases, measured on every tune of music21's bundled ABC books by
``benchmarks/abc_agreement.py``) the tune goes to music21. What abc2midi adds for a performance and the score does
not say is undone: guitar chords and grace notes are off (``-NGUI -NGRA``), every note gets music21's velocity 90 and
program 0, chord notes start together (``%%MIDI chordattack 0``; abc2midi strums them 10 ticks apart), and times
within 2 ticks of a multiple of 4 ticks (of 480 per quarter) are moved onto it (abc2midi starts notes a tick late and
ends them a tick early).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicgen.errors import IngestError
from musicgen.midi_io import DEFAULT_MAX_NOTES, MUSIC21_DEFAULT_VELOCITY, _build_piece, _parse_midi, symusic_meta
from musicgen.piece import Piece, _tempo_map, beats_to_seconds

ABC2MIDI_TIMEOUT_S = 60
ABC2MIDI_FLAGS = ("-NGUI", "-NGRA", "-NFER", "-silent")  # no guitar-chord accompaniment, grace notes, fermatas
_X_LINE = re.compile(r"^[ \t]*X:", re.MULTILINE)
_SNAP_TICKS = 4  # abc2midi writes 480 ticks per quarter: its late onsets / early offsets are 1-2 ticks


@dataclass(frozen=True)
class AbcTune:
    """One tune of a book: ``index`` (0-based order in the file), ``number`` (its ``X:`` value, as written),
    ``title`` (first ``T:``, "" if none), ``text`` (file header + the tune's lines)."""

    index: int
    number: str
    title: str
    text: str


def _field(lines: list[str], name: str) -> str:
    for line in lines:
        if line.startswith(name):
            return " ".join(line[len(name):].split())
    return ""


def split_abc(text: str) -> list[AbcTune]:
    """The tunes of an ABC file, each prefixed with the file header (the lines before the first ``X:``).

    A file without an ``X:`` line is one tune (index 0) holding the whole text.
    """
    starts = [m.start() for m in _X_LINE.finditer(text)]
    if not starts:
        lines = text.splitlines()
        return [AbcTune(0, "", _field(lines, "T:")[:200], text)]
    header = text[:starts[0]]
    if header and not header.endswith("\n"):
        header += "\n"
    tunes = []
    for i, (a, b) in enumerate(zip(starts, starts[1:] + [len(text)])):
        body = text[a:b]
        lines = [ln.lstrip() for ln in body.splitlines()]
        tunes.append(AbcTune(i, _field(lines, "X:"), _field(lines, "T:")[:200], header + body))
    return tunes


# Constructs on which abc2midi and music21 read different notes, measured on every tune of music21's bundled ABC
# books (benchmarks/abc_agreement.py); a tune with one of them is read by music21. name -> (pattern, why)
_REFUSE: dict[str, tuple[re.Pattern, str]] = {
    "midi directive": (re.compile(r"^[ \t]*%%MIDI", re.MULTILINE),
                       "%%MIDI directives (programs, drones, transposition) change abc2midi's notes, not music21's"),
    "voices": (re.compile(r"^[ \t]*V:|\[V:", re.MULTILINE), "several voices: abc2midi and music21 align them apart"),
}


def fast_reader_refusal(text: str) -> str | None:
    """Why symusic's reader must not read this tune (the name of a construct in ``_REFUSE``), or None."""
    for name, (pattern, _) in _REFUSE.items():
        if pattern.search(text):
            return name
    return None


def abc2midi_path() -> str:
    """The ``abc2midi`` program shipped inside the symusic package (what ``symusic.Score.from_abc`` runs)."""
    import importlib.util

    spec = importlib.util.find_spec("symusic")
    if spec is None or not spec.submodule_search_locations:
        raise IngestError("symusic is not installed: no ABC reader")
    path = Path(spec.submodule_search_locations[0]) / "bin" / "abc2midi"
    if not os.access(path, os.X_OK):
        raise IngestError(f"symusic's abc2midi is missing or not executable: {str(path)!r}")
    return str(path)


_FIELD_LINE = re.compile(r"^[ \t]*(?:[A-Za-z+]:|%)")
# in a music line: strings and inline fields (kept), !long! decorations and the one-character decorations abc2midi
# performs (~ roll, T trill, H fermata, . staccato before a note); the last three groups are dropped
_MUSIC_TOKENS = re.compile(r'("[^"\n]*"|\[[A-Za-z]:[^\]\n]*\])|(![^!\n]*!|\+[a-z]+\+)|([~TH])|'
                           r'(\.(?=[~A-Ga-gz^_=\[(HLMOPSTuv.]))')
_PERFORMED = {"!roll!", "!trill!", "!trill(!", "!trill)!", "!staccato!", "!fermata!", "!invertedfermata!",
              "!mordent!", "!lowermordent!", "!uppermordent!", "!pralltriller!", "!turn!", "!invertedturn!",
              "!arpeggio!", "!tenuto!", "+trill+", "+roll+", "+fermata+", "+staccato+"}


def _drop_performance(line: str) -> str:
    def keep(m: re.Match) -> str:
        if m.group(1):
            return m.group(1)
        if m.group(2):
            return "" if m.group(2) in _PERFORMED else m.group(2)
        return ""

    return _MUSIC_TOKENS.sub(keep, line)


_DIRECTIVES = ("%%MIDI chordattack 0",  # abc2midi strums chord notes 10 ticks apart otherwise
               "%%propagate-accidentals octave")  # ABC 2.1 (and music21): an accidental holds for its octave only


def score_only(text: str) -> str:
    """The tune as abc2midi should play it to give the written notes (what music21 reads).

    The file header's fields (``L:``, ``M:``, ``Q:``…) move after the ``X:`` line (abc2midi ignores a file header;
    the tune's own fields still come later and win), with ``%%MIDI chordattack 0`` (abc2midi strums chords 10 ticks
    a note otherwise) and ``%%propagate-accidentals octave`` (ABC 2.1's rule, which music21 follows; abc2midi's
    default carries an accidental to every octave); no ``R:`` line (abc2midi swings a ``R:hornpipe``); in music lines
    no rolls, trills, fermatas or staccato dots (abc2midi plays ornament notes, doubles fermatas and halves staccato
    notes; music21 keeps the written note).
    """
    out, header, seen_x = [], [], False
    for line in text.split("\n"):
        stripped = line.lstrip()
        if not seen_x and not stripped.startswith("X:"):  # the file header: its fields go after X: (see below)
            if _FIELD_LINE.match(line) and not stripped.startswith(("K:", "R:", "%")):
                header.append(line)
        elif _FIELD_LINE.match(line):
            if stripped.startswith("R:"):
                continue
            out.append(line)
            if stripped.startswith("X:") and not seen_x:
                out += [*_DIRECTIVES, *header]
                seen_x = True
        else:
            out.append(_drop_performance(line))
    if not seen_x:
        return "\n".join([*_DIRECTIVES, *header, *out])
    return "\n".join(out)


def _abc2midi(text: str) -> bytes:
    """MIDI bytes abc2midi writes for the first tune of ``text``; an error it reports is an IngestError."""
    text = score_only(text)
    with tempfile.TemporaryDirectory(prefix="musicgen-abc-") as tmp:
        src, out = os.path.join(tmp, "tune.abc"), os.path.join(tmp, "tune.mid")
        with open(src, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            proc = subprocess.run([abc2midi_path(), src, "-o", out, *ABC2MIDI_FLAGS], capture_output=True,
                                  timeout=ABC2MIDI_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise IngestError(f"abc2midi timed out after {ABC2MIDI_TIMEOUT_S} s") from None
        messages = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        errors = [ln for ln in messages.splitlines() if ln.startswith("Error")]
        if proc.returncode != 0 or errors or not os.path.exists(out):
            detail = errors[0] if errors else f"exit status {proc.returncode}, no MIDI written"
            raise IngestError(f"abc2midi: {detail[:160]}")
        with open(out, "rb") as fh:
            return fh.read()


def _snap(beats: np.ndarray, tpq: float) -> np.ndarray:
    """Times (quarter notes) moved onto the nearest multiple of ``_SNAP_TICKS`` ticks when within 2 ticks of it."""
    ticks = beats * tpq
    snapped = np.round(ticks / _SNAP_TICKS) * _SNAP_TICKS
    return np.where(np.abs(snapped - ticks) <= 2.0, snapped, ticks) / tpq


def read_abc_fast(text: str, time_mode: str = "beat", max_notes: int = DEFAULT_MAX_NOTES) -> Piece:
    """One ABC tune (with its header) → ``Piece`` through abc2midi + symusic; velocity 90, program 0; tempos
    rounded to 0.01 quarter notes per minute (MIDI stores whole microseconds per quarter: 90 comes back 90.00009).

    Raises:
        IngestError: abc2midi reports an error in the tune or writes nothing, the tune has no notes or too many.
    """
    score = _parse_midi(_abc2midi(text))
    tpq = float(score.ticks_per_quarter)
    cols = [track.notes.numpy() for track in score.tracks if track.note_num()]
    if not cols:
        raise IngestError("no notes")
    time, duration, pitch = (np.concatenate([c[k] for c in cols]).astype(np.float64)
                             for k in ("time", "duration", "pitch"))
    start, end = _snap(time / tpq, tpq), _snap((time + np.maximum(duration, 1)) / tpq, tpq)
    tempos = score.tempos
    change_beats, change_qpm = _tempo_map([tp.time / tpq for tp in tempos],
                                          [round(60e6 / tp.mspq, 2) if tp.mspq > 0 else np.nan for tp in tempos])
    if time_mode == "seconds":
        start, end = beats_to_seconds(start, change_beats, change_qpm), beats_to_seconds(end, change_beats, change_qpm)
    n = pitch.size
    meters, key = symusic_meta(score, time_mode, change_beats, change_qpm)
    return _build_piece(pitch, start, end, np.full(n, MUSIC21_DEFAULT_VELOCITY), np.zeros(n, np.int64),
                        np.zeros(n, bool), float(change_qpm[0]), time_mode, max_notes, meters=meters, key=key)
