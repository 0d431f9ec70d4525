"""One piece of music in memory: ``Note``, the column form ``NoteArrays``, and ``Piece`` (notes with tempo, meters
and key); and the tempo-map conversions ``beats_to_seconds`` / ``seconds_to_beats``. Reads and writes no file:
``musicgen.midi_io`` (MIDI) and ``musicgen.scores`` (MusicXML/ABC/kern) build these, and ``midi_io`` re-exports them.

Times are **quarter notes** in ``time_mode="beat"`` and **seconds** in ``time_mode="seconds"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from musicgen.config import TIME_MODES
from musicgen.errors import UsageError

DEFAULT_QPM = 120.0
DRUMS = 128  # the instrument id of the percussion channel (programs are 0..127): NoteArrays.instrument, PROGRAM(128)


@dataclass(frozen=True, slots=True)
class Note:
    """One sounding note.

    Args:
        pitch: MIDI pitch, 0..127 (for drums, the General MIDI percussion key).
        start: onset, in quarter notes (beat mode) or seconds (seconds mode); >= 0.
        end: release, same unit; must be > ``start``.
        velocity: MIDI velocity 1..127.
        program: General MIDI program 0..127 (ignored for drums, kept as given).
        is_drum: True for the percussion channel.
        voice: the part it belongs to: the index of its track (MIDI) or part (music21) among those with notes.
    """

    pitch: int
    start: float
    end: float
    velocity: int
    program: int = 0
    is_drum: bool = False
    voice: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"Note.pitch: expected an integer in [0, 127], got {self.pitch!r}")
        if not (math.isfinite(self.start) and math.isfinite(self.end) and 0 <= self.start < self.end):
            raise ValueError(f"Note: expected 0 <= start < end (finite), got start={self.start!r} end={self.end!r}")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"Note.velocity: expected an integer in [1, 127], got {self.velocity!r}")
        if not 0 <= self.program <= 127:
            raise ValueError(f"Note.program: expected an integer in [0, 127], got {self.program!r}")
        if not 0 <= self.voice:
            raise ValueError(f"Note.voice: expected an integer >= 0, got {self.voice!r}")


class NoteArrays(NamedTuple):
    """The columns of a list of notes, each shape (n,): what ``read_piece`` builds and the tokenizer encodes.

    ``pitch``, ``velocity``, ``program``, ``voice``: int64; ``start``, ``end``: float64 (the piece's unit); ``is_drum``:
    bool.
    """

    pitch: np.ndarray
    start: np.ndarray
    end: np.ndarray
    velocity: np.ndarray
    program: np.ndarray
    is_drum: np.ndarray
    voice: np.ndarray

    @classmethod
    def from_notes(cls, notes: list[Note]) -> NoteArrays:
        return cls(np.array([n.pitch for n in notes], np.int64), np.array([n.start for n in notes], np.float64),
                   np.array([n.end for n in notes], np.float64), np.array([n.velocity for n in notes], np.int64),
                   np.array([n.program for n in notes], np.int64), np.array([n.is_drum for n in notes], bool),
                   np.array([n.voice for n in notes], np.int64))

    @property
    def instrument(self) -> np.ndarray:
        """int64 (n,): the program, or 128 for drums (the tokenizer's instrument id)."""
        return np.where(self.is_drum, DRUMS, self.program)

    def to_notes(self) -> list[Note]:
        return [Note(*row) for row in zip(*(c.tolist() for c in self))]


class Piece:
    """The notes of one file, sorted by (start, pitch), with the first tempo in quarter notes per minute, its bars
    and its key.

    ``qpm`` lets beat-mode tokens be turned back into seconds; in seconds mode it is informational. Build it from
    ``notes`` (a list of ``Note``) or, on the fast path ``read_piece`` takes, from ``arrays`` (``NoteArrays``,
    already valid and sorted): then ``.notes`` is made on first use, and the tokenizer reads ``.arrays`` without it.
    ``meters``: the file's time signatures as ``(time, numerator, denominator)`` tuples sorted by time (time in the
    piece's unit; a score's pickup is a short bar of its own meter, see ``musicgen.meter``; empty: none in the
    file). ``key``: the file's first key signature as pretty_midi's key number (tonic + 12 * minor), or None when
    the file has none, or none with a mode. Immutable; equal when notes, qpm, time mode, meters and key are equal.
    """

    __slots__ = ("_notes", "_arrays", "qpm", "time_mode", "meters", "key")

    def __init__(self, notes: list[Note] | None = None, qpm: float = DEFAULT_QPM, time_mode: str = "beat", *,
                 arrays: NoteArrays | None = None, meters=(), key: int | None = None) -> None:
        if (notes is None) == (arrays is None):
            raise UsageError("Piece: expected exactly one of notes or arrays")
        if key is not None:
            if not (isinstance(key, (int, np.integer)) and 0 <= key < 24):
                raise UsageError(f"Piece.key: expected a key number in [0, 24) or None, got {key!r}")
            key = int(key)
        setattr_ = object.__setattr__
        setattr_(self, "_notes", notes)
        setattr_(self, "_arrays", arrays)
        setattr_(self, "qpm", qpm)
        setattr_(self, "time_mode", time_mode)
        setattr_(self, "meters", tuple(map(tuple, meters)))
        setattr_(self, "key", key)

    def __setattr__(self, name, value):
        raise AttributeError(f"Piece is immutable: cannot set {name!r}")

    @property
    def notes(self) -> list[Note]:
        if self._notes is None:
            object.__setattr__(self, "_notes", self._arrays.to_notes())
        return self._notes

    @property
    def arrays(self) -> NoteArrays:
        if self._arrays is None:
            object.__setattr__(self, "_arrays", NoteArrays.from_notes(self._notes))
        return self._arrays

    def __len__(self) -> int:
        return len(self._notes) if self._notes is not None else int(self._arrays.pitch.size)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Piece) and (self.qpm, self.time_mode, self.meters, self.key)
                == (other.qpm, other.time_mode, other.meters, other.key) and self.notes == other.notes)

    __hash__ = None

    def __repr__(self) -> str:
        extra = (f", meters={self.meters!r}" if self.meters else "") + (f", key={self.key}" if self.key is not None
                                                                         else "")
        return f"Piece({len(self)} notes, qpm={self.qpm!r}, time_mode={self.time_mode!r}{extra})"


def check_time_mode(time_mode: str) -> None:
    """Raise ``UsageError`` naming ``time_mode`` unless it is one of ``TIME_MODES``."""
    if time_mode not in TIME_MODES:
        raise UsageError(f"time_mode: expected one of {TIME_MODES}, got {time_mode!r}")


def beats_to_seconds(beats: np.ndarray, change_beats: np.ndarray, change_qpm: np.ndarray) -> np.ndarray:
    """Map beat positions to seconds through a piecewise-constant tempo map.

    Args:
        beats: float array of positions in quarter notes.
        change_beats: sorted float array, where each tempo starts (the first should be 0).
        change_qpm: quarter notes per minute from each change on (positive).
    Returns:
        float64 array of seconds, same shape as ``beats``.
    """
    beats = np.asarray(beats, dtype=np.float64)
    cb, spb, at_change = _tempo_segments(change_beats, change_qpm)
    idx = np.clip(np.searchsorted(cb, beats, side="right") - 1, 0, cb.size - 1)
    return at_change[idx] + (beats - cb[idx]) * spb[idx]


def seconds_to_beats(seconds: np.ndarray, change_beats: np.ndarray, change_qpm: np.ndarray) -> np.ndarray:
    """Map times in seconds to beat positions through a piecewise-constant tempo map (inverse of
    ``beats_to_seconds``, same tempo map arguments).

    Args:
        seconds: float array of times in seconds.
        change_beats: sorted float array, where each tempo starts, in quarter notes (the first should be 0).
        change_qpm: quarter notes per minute from each change on (positive).
    Returns:
        float64 array of quarter notes, same shape as ``seconds``.
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    cb, spb, at_change = _tempo_segments(change_beats, change_qpm)
    idx = np.clip(np.searchsorted(at_change, seconds, side="right") - 1, 0, cb.size - 1)
    return cb[idx] + (seconds - at_change[idx]) / spb[idx]


def _tempo_segments(change_beats, change_qpm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(beat, seconds per beat, second)`` at the start of each tempo segment, each float64 (k,); an empty map is
    120 qpm, and the first tempo also holds before the first change."""
    cb = np.asarray(change_beats, dtype=np.float64)
    qpm = np.asarray(change_qpm, dtype=np.float64)
    if cb.size == 0:
        cb, qpm = np.zeros(1), np.array([DEFAULT_QPM])
    if cb[0] > 0:  # before the first mark the first tempo applies
        cb = np.concatenate([[0.0], cb])
        qpm = np.concatenate([qpm[:1], qpm])
    spb = 60.0 / qpm
    return cb, spb, np.concatenate([[0.0], np.cumsum(np.diff(cb) * spb[:-1])])


def _tempo_map(beats: list[float], qpms: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Clean (beat, qpm) pairs: finite positive tempos, sorted, the last change at each beat wins."""
    pairs = {}
    for b, q in zip(beats, qpms):
        if math.isfinite(b) and math.isfinite(q) and q > 0:
            pairs[max(float(b), 0.0)] = float(q)
    if not pairs:
        return np.zeros(1), np.array([DEFAULT_QPM])
    keys = sorted(pairs)
    return np.array(keys), np.array([pairs[k] for k in keys])
