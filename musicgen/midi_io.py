"""Files → notes, and notes → ``pretty_midi``.

Reading: MIDI (``.mid`` / ``.midi``, any case) through symusic (``read_midi``), read in ticks and converted here in
float64 (beats = ticks / ticks_per_quarter; seconds through the file's whole tempo map). Score formats are read by
``musicgen.scores`` into the same ``Piece``; ``musicgen.reader.read_piece`` picks the reader by suffix.

Times are **quarter notes** in ``time_mode="beat"`` and **seconds** in ``time_mode="seconds"``. A note of zero length
in the file is given one tick (MIDI) so that ``Note`` can insist on ``end > start``; the tokenizer's grid decides
what survives after that.

symusic and music21 are imported inside the functions that need them, so ``import musicgen.midi_io`` (and the
sampler, which only writes MIDI) stays light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from musicgen.config import TIME_MODES
from musicgen.errors import IngestError, UsageError
from musicgen.meter import key_number

MIDI_SUFFIXES = (".mid", ".midi")
DEFAULT_QPM = 120.0
DEFAULT_MAX_NOTES = 200_000
# memory bounds: a larger file is refused before it is read ("too large: …"), so one huge or hostile file in a
# scraped folder costs neither the memory of reading it nor of parsing it
MAX_MIDI_BYTES = 32 << 20
MAX_SCORE_BYTES = 8 << 20  # MusicXML/ABC/kern: music21 needs ~100x the file size in memory
# what a standard MIDI file can hold: tempo is 1..0xFFFFFF microseconds per quarter; pretty_midi refuses to read a
# file whose last tick is past 1e7 (it calls such files corrupt)
MIN_FILE_QPM, MAX_FILE_QPM = 60e6 / 0xFFFFFF * 1.0001, 60e6
MAX_FILE_TICK = 9_999_000
FILE_TICKS_PER_QUARTER = 480  # what every MIDI file musicgen writes uses (pretty_midi's and most tools' default)
MUSIC21_DEFAULT_VELOCITY = 90
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


def _build_piece(pitch, start, end, velocity, program, is_drum, qpm: float, time_mode: str, max_notes: int,
                 voice=None, meters=(), key: int | None = None) -> Piece:
    """Validate raw arrays (times already in the piece's unit) and make a ``Piece`` sorted by (start, pitch, voice)
    (no ``Note`` objects). ``voice``: int array (n,), the part of each note (None: all 0); ``meters``, ``key``: as
    ``Piece``."""
    pitch = np.asarray(pitch, dtype=np.int64)
    if pitch.size == 0:
        raise IngestError("no notes")
    if pitch.size > max_notes:
        raise IngestError(f"too many notes: {pitch.size} > max_notes={max_notes}")
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    velocity, program = np.asarray(velocity, dtype=np.int64), np.asarray(program, dtype=np.int64)
    is_drum = np.asarray(is_drum, dtype=bool)
    voice = np.zeros(pitch.size, np.int64) if voice is None else np.asarray(voice, dtype=np.int64)
    ok = (pitch >= 0) & (pitch <= 127) & (start >= 0) & (end > start)  # NaN fails these; end < inf below
    if not ok.all() or not end.max() < math.inf:
        ok &= np.isfinite(end)
        if not ok.any():
            raise IngestError("no notes")
        pitch, start, end, velocity, program, is_drum, voice = (c[ok] for c in (pitch, start, end, velocity, program,
                                                                                 is_drum, voice))
    order = np.lexsort((voice, pitch, start))
    arrays = NoteArrays(pitch[order], start[order], end[order], np.minimum(np.maximum(velocity[order], 1), 127),
                        np.minimum(np.maximum(program[order], 0), 127), is_drum[order], voice[order])
    if not (math.isfinite(qpm) and qpm > 0):
        qpm = DEFAULT_QPM
    return Piece(arrays=arrays, qpm=float(qpm), time_mode=time_mode, meters=meters, key=key)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def load_symusic_core_only() -> None:
    """Load symusic's compiled parser (``symusic.core``) without running ``symusic/__init__``.

    For ingest worker processes, which use nothing else: ``import symusic`` also imports its SoundFont downloader
    (urllib, http.client, ssl, email), 40-80 ms per process, as long as parsing 400 small MIDI files. The module is
    registered under its own name, so the parse below and a later ``import symusic`` both use it; only the package
    attribute ``symusic.core`` is missing in such a process, which is why ordinary processes never call this. Does
    nothing when symusic is loaded already or its layout is not the expected one (then the normal import happens).
    """
    import importlib.machinery
    import importlib.util
    import sys

    if "symusic.core" in sys.modules or "symusic" in sys.modules:
        return
    try:
        folder = importlib.util.find_spec("symusic").submodule_search_locations[0]
        path = next(p for p in (Path(folder) / f"core{s}" for s in importlib.machinery.EXTENSION_SUFFIXES)
                    if p.is_file())
        spec = importlib.util.spec_from_file_location("symusic.core", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception:  # anything unexpected: leave it to the normal import
        return
    sys.modules["symusic.core"] = module


def _parse_midi(data: bytes):
    """symusic's tick-time parse of MIDI bytes (what ``symusic.Score.from_midi(data)`` does)."""
    import sys

    core = sys.modules.get("symusic.core")
    if core is None:
        import symusic.core as core
    return core.ScoreTick.from_midi(data, False)


def resample_midi(data: bytes, ticks_per_quarter: int = FILE_TICKS_PER_QUARTER, time_signatures=None) -> bytes:
    """MIDI bytes rewritten at a conventional resolution (symusic: notes, tempos, meters, keys, controls kept).

    music21 writes 10,080 ticks per quarter; at that resolution a piece of ~1,000 quarter notes passes tick 1e7,
    past which pretty_midi refuses a file as "likely corrupt". The resolution is lowered further (and the file's
    last tick kept under ``MAX_FILE_TICK``) only for a piece too long for ``ticks_per_quarter``. Bytes already at
    the target resolution are returned unchanged unless ``time_signatures`` (``(quarter notes, numerator,
    denominator)`` tuples) are given: then they replace the file's time signatures.

    Raises:
        IngestError: ``data`` is not a MIDI file symusic can read.
    """
    try:
        score = _parse_midi(data)
    except Exception as exc:
        raise IngestError(f"unreadable MIDI: {_first_line(exc)}") from None
    tpq = int(score.ticks_per_quarter)
    if tpq <= 0:
        raise IngestError(f"unreadable MIDI: ticks per quarter is {tpq}")
    quarters = score.end() / tpq
    target = max(1, min(int(ticks_per_quarter), int(MAX_FILE_TICK / quarters) if quarters > 0 else ticks_per_quarter))
    if target == tpq and time_signatures is None:
        return data
    if target != tpq:
        score = score.resample(target, min_dur=1)
    if time_signatures is not None:
        import symusic.core as core

        score.time_signatures.clear()
        for t, num, den in time_signatures:
            score.time_signatures.append(core.TimeSignatureTick(round(t * target), int(num), int(den)))
    return bytes(score.dumps_midi())


def _check_size(path: Path, limit: int) -> None:
    try:
        size = path.stat().st_size
    except OSError:
        raise IngestError(f"not a music file: {str(path)!r} is not a readable file") from None
    if size > limit:
        raise IngestError(f"too large: {size} bytes > {limit} (a cap that bounds the memory of one file)")


def symusic_meta(score, time_mode: str, change_beats, change_qpm) -> tuple[list[tuple[float, int, int]], int | None]:
    """``(meters, key)`` of a symusic tick-time score, as ``Piece`` holds them: every time signature
    ``(time, numerator, denominator)`` sorted by time (the last of one tick wins; time in quarter notes, or seconds
    through the tempo map), and the first key signature's key number (None when the file has none)."""
    tpq = float(score.ticks_per_quarter)
    rows = [(ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures]
    if len(rows) > 1:
        rows = sorted({t: (t, n, d) for t, n, d in rows}.values())
    meters = [(t / tpq, n, d) for t, n, d in rows if n > 0 and d > 0]
    if time_mode == "seconds" and meters:
        seconds = beats_to_seconds([m[0] for m in meters], change_beats, change_qpm).tolist()
        meters = [(t, n, d) for t, (_, n, d) in zip(seconds, meters)]
    keys = score.key_signatures
    if not len(keys):
        return meters, None
    first = keys[0] if len(keys) == 1 else min(keys, key=lambda k: k.time)
    return meters, key_number(first.key, bool(first.tonality)) if -7 <= first.key <= 7 else None


def read_midi(path: str | Path, time_mode: str = "beat", max_notes: int = DEFAULT_MAX_NOTES,
              data: bytes | None = None) -> Piece:
    """Read one MIDI file (symusic) into a ``Piece``: one voice per track with notes, times in quarter notes (beat
    mode) or seconds through the tempo map; ``data`` is the file's bytes when the caller has read them already.
    Arguments, result and errors as ``musicgen.reader.read_piece`` (which calls this for ``.mid/.midi``)."""
    check_time_mode(time_mode)
    path = Path(path)
    try:
        if data is None:
            _check_size(path, MAX_MIDI_BYTES)
            data = path.read_bytes()
    except OSError:
        raise IngestError(f"not a music file: {str(path)!r} is not a readable file") from None
    try:  # parsing bytes read here is faster than symusic's own file reading, and the same parser
        score = _parse_midi(data)
    except Exception as exc:  # symusic raises RuntimeError/ValueError for malformed files
        raise IngestError(f"unreadable MIDI: {_first_line(exc)}") from None
    tpq = float(score.ticks_per_quarter)
    if not tpq > 0:
        raise IngestError(f"unreadable MIDI: ticks per quarter is {score.ticks_per_quarter}")
    cols, counts, programs, drums = [], [], [], []
    for track in score.tracks:
        n = track.note_num()
        if n:
            cols.append(track.notes.numpy())
            counts.append(n)
            programs.append(track.program)
            drums.append(track.is_drum)
    total = sum(counts)
    if total == 0:
        raise IngestError("no notes")
    if total > max_notes:
        raise IngestError(f"too many notes: {total} > max_notes={max_notes}")
    time, duration, pitch, velocity = (np.concatenate([c[k] for c in cols]).astype(np.int64)
                                       for k in ("time", "duration", "pitch", "velocity"))
    tempos = score.tempos
    change_beats, change_qpm = _tempo_map([tp.time / tpq for tp in tempos],
                                          [60_000_000.0 / tp.mspq if tp.mspq > 0 else math.nan for tp in tempos])
    start, end = time / tpq, (time + np.maximum(duration, 1)) / tpq
    if time_mode == "seconds":
        start, end = beats_to_seconds(start, change_beats, change_qpm), beats_to_seconds(end, change_beats, change_qpm)
    meters, key = symusic_meta(score, time_mode, change_beats, change_qpm)
    return _build_piece(pitch, start, end, velocity, np.repeat(programs, counts), np.repeat(drums, counts),
                        float(change_qpm[0]), time_mode, max_notes, voice=np.repeat(np.arange(len(counts)), counts),
                        meters=meters, key=key)


def arrays_to_pretty_midi(pitch, start, end, velocity, instrument, qpm: float = DEFAULT_QPM,
                          time_mode: str = "beat", resolution: int = 480, voice=None, time_signatures=(),
                          key: int | None = None):
    """Build a ``pretty_midi.PrettyMIDI`` from note arrays (fast path used by the tokenizer's decoder).

    Args:
        pitch, velocity: int arrays, shape (n,).
        start, end: float arrays, shape (n,), in quarter notes (beat mode) or seconds.
        instrument: int array, shape (n,): the program 0..127, or 128 for drums.
        qpm: the tempo written to the file, clamped to what a MIDI file can hold ([3.58, 6e7]); beat times are
            turned into seconds at that tempo.
        time_mode: ``"beat"`` or ``"seconds"``.
        resolution: MIDI ticks per quarter note of the written file; lowered (and then the written tempo) when the
            last note would lie past tick 1e7, which pretty_midi refuses to read back. Times in seconds are kept.
        voice: int array, shape (n,), the part of each note, or None (one part).
        time_signatures: ``(time, numerator, denominator)`` tuples (time in the notes' unit), written as time
            signature changes.
        key: a key number (tonic + 12 * minor) written as a key signature at time 0, or None.
    Returns:
        PrettyMIDI with one instrument per distinct ``instrument`` value (ascending; drums last), or with ``voice``
        one per distinct ``(voice, instrument)`` (ascending; named "<program name> (voice k)").
    """
    import pretty_midi

    check_time_mode(time_mode)
    if not (math.isfinite(qpm) and qpm > 0):
        raise UsageError(f"qpm: expected a positive number, got {qpm!r}")
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    file_qpm = min(max(float(qpm), MIN_FILE_QPM), MAX_FILE_QPM)
    if time_mode == "beat":  # at the tempo the file can hold, so notes stay on its beats
        start, end = start * (60.0 / file_qpm), end * (60.0 / file_qpm)
    resolution = max(1, min(int(resolution), 0x7FFF))  # the header's 15-bit ticks per quarter
    last = float(end.max()) if end.size else 0.0
    if last * file_qpm / 60.0 * resolution > MAX_FILE_TICK:
        resolution = max(1, int(MAX_FILE_TICK / (last * file_qpm / 60.0)))
        file_qpm = max(MIN_FILE_QPM, min(file_qpm, MAX_FILE_TICK * 60.0 / (last * resolution)))
    pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=file_qpm)
    for t, num, den in time_signatures:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(int(num), int(den), float(t) * (
            60.0 / file_qpm if time_mode == "beat" else 1.0)))
    if key is not None:
        pm.key_signature_changes.append(pretty_midi.KeySignature(int(key), 0.0))
    instrument = np.asarray(instrument, dtype=np.int64)
    pitch, velocity = np.asarray(pitch, dtype=np.int64), np.asarray(velocity, dtype=np.int64)
    voices = np.zeros_like(instrument) if voice is None else np.asarray(voice, dtype=np.int64)
    for v, inst in sorted(set(zip(voices.tolist(), instrument.tolist()))):
        sel = np.flatnonzero((instrument == inst) & (voices == v))
        drum = inst == DRUMS
        name = "Drums" if drum else pretty_midi.program_to_instrument_name(inst)
        track = pretty_midi.Instrument(program=0 if drum else inst, is_drum=drum,
                                       name=name if voice is None else f"{name} (voice {v})")
        track.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, s, e, v in
                       zip(pitch[sel].tolist(), start[sel].tolist(), end[sel].tolist(), velocity[sel].tolist())]
        pm.instruments.append(track)
    return pm


def notes_to_pretty_midi(notes: list[Note], qpm: float = DEFAULT_QPM, time_mode: str = "beat"):
    """Notes → ``pretty_midi.PrettyMIDI``, one instrument per (program, is_drum), or per (voice, program, is_drum)
    when some note has a voice other than 0; beat times converted at ``qpm``."""
    voice = [n.voice for n in notes] if any(n.voice for n in notes) else None
    return arrays_to_pretty_midi([n.pitch for n in notes], [n.start for n in notes], [n.end for n in notes],
                                 [n.velocity for n in notes], [DRUMS if n.is_drum else n.program for n in notes],
                                 qpm=qpm, time_mode=time_mode, voice=voice)
