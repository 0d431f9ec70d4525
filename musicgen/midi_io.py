"""Files → notes, and notes → ``pretty_midi``.

Reading:
    * MIDI (``.mid`` / ``.midi``, any case) through symusic, read in ticks and converted here in float64
      (beats = ticks / ticks_per_quarter; seconds through the file's whole tempo map).
    * MusicXML / ABC / Humdrum kern (``.mxl .musicxml .xml .abc .krn``) through music21. ``quarterLength`` offsets
      are beats; the tempo map comes from the score's ``MetronomeMark`` objects, else 120 quarter notes per minute.
      Ties are merged, grace notes and unpitched percussion are skipped, notes without a velocity get 90 (what
      music21 itself writes to MIDI); an ABC songbook (several ``X:`` tunes) or any other file music21 reads as an
      ``Opus`` gives its first tune only.

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

import numpy as np

from musicgen.errors import IngestError, UsageError

MIDI_SUFFIXES = (".mid", ".midi")
MUSIC21_SUFFIXES = (".mxl", ".musicxml", ".xml", ".abc", ".krn")
MUSIC_SUFFIXES = MIDI_SUFFIXES + MUSIC21_SUFFIXES
DEFAULT_QPM = 120.0
DEFAULT_MAX_NOTES = 200_000
MUSIC21_DEFAULT_VELOCITY = 90
TIME_MODES = ("beat", "seconds")


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
    """

    pitch: int
    start: float
    end: float
    velocity: int
    program: int = 0
    is_drum: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"Note.pitch: expected an integer in [0, 127], got {self.pitch!r}")
        if not (math.isfinite(self.start) and math.isfinite(self.end) and 0 <= self.start < self.end):
            raise ValueError(f"Note: expected 0 <= start < end (finite), got start={self.start!r} end={self.end!r}")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"Note.velocity: expected an integer in [1, 127], got {self.velocity!r}")
        if not 0 <= self.program <= 127:
            raise ValueError(f"Note.program: expected an integer in [0, 127], got {self.program!r}")


@dataclass(frozen=True)
class Piece:
    """The notes of one file, sorted by (start, pitch), with the first tempo in quarter notes per minute.

    ``qpm`` lets beat-mode tokens be turned back into seconds; in seconds mode it is informational.
    """

    notes: list[Note]
    qpm: float
    time_mode: str


def _check_time_mode(time_mode: str) -> None:
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
    cb = np.asarray(change_beats, dtype=np.float64)
    qpm = np.asarray(change_qpm, dtype=np.float64)
    if cb.size == 0:
        cb, qpm = np.zeros(1), np.array([DEFAULT_QPM])
    if cb[0] > 0:  # before the first mark the first tempo applies
        cb = np.concatenate([[0.0], cb])
        qpm = np.concatenate([qpm[:1], qpm])
    spb = 60.0 / qpm
    at_change = np.concatenate([[0.0], np.cumsum(np.diff(cb) * spb[:-1])])
    idx = np.clip(np.searchsorted(cb, beats, side="right") - 1, 0, cb.size - 1)
    return at_change[idx] + (beats - cb[idx]) * spb[idx]


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


def _build_piece(pitch, start, end, velocity, program, is_drum, qpm: float, time_mode: str, max_notes: int) -> Piece:
    """Validate raw arrays (times already in the piece's unit) and make a sorted ``Piece``."""
    pitch = np.asarray(pitch, dtype=np.int64)
    if pitch.size == 0:
        raise IngestError("no notes")
    if pitch.size > max_notes:
        raise IngestError(f"too many notes: {pitch.size} > max_notes={max_notes}")
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    velocity = np.clip(np.asarray(velocity, dtype=np.int64), 1, 127)
    program = np.clip(np.asarray(program, dtype=np.int64), 0, 127)
    is_drum = np.asarray(is_drum, dtype=bool)
    ok = (pitch >= 0) & (pitch <= 127) & np.isfinite(start) & np.isfinite(end) & (start >= 0) & (end > start)
    if not ok.any():
        raise IngestError("no notes")
    order = np.lexsort((pitch[ok], start[ok]))
    cols = [c[ok][order].tolist() for c in (pitch, start, end, velocity, program, is_drum)]
    notes = [Note(*row) for row in zip(*cols)]
    if not (math.isfinite(qpm) and qpm > 0):
        qpm = DEFAULT_QPM
    return Piece(notes=notes, qpm=float(qpm), time_mode=time_mode)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _read_midi(path: Path, time_mode: str, max_notes: int) -> Piece:
    import symusic

    try:
        score = symusic.Score(str(path), ttype="tick")
    except Exception as exc:  # symusic raises RuntimeError/ValueError/IOError for malformed files
        raise IngestError(f"unreadable MIDI: {_first_line(exc)}") from None
    tpq = float(score.ticks_per_quarter)
    if not tpq > 0:
        raise IngestError(f"unreadable MIDI: ticks per quarter is {score.ticks_per_quarter}")
    total = sum(t.note_num() for t in score.tracks)
    if total == 0:
        raise IngestError("no notes")
    if total > max_notes:
        raise IngestError(f"too many notes: {total} > max_notes={max_notes}")
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("time", "end", "pitch", "velocity", "program", "drum")}
    for track in score.tracks:
        if track.note_num() == 0:
            continue
        arr = track.notes.numpy()
        t = arr["time"].astype(np.int64)
        cols["time"].append(t)
        cols["end"].append(t + np.maximum(arr["duration"].astype(np.int64), 1))
        cols["pitch"].append(arr["pitch"].astype(np.int64))
        cols["velocity"].append(arr["velocity"].astype(np.int64))
        cols["program"].append(np.full(t.size, int(track.program), dtype=np.int64))
        cols["drum"].append(np.full(t.size, bool(track.is_drum)))
    c = {k: np.concatenate(v) for k, v in cols.items()}
    tempo_ticks = [float(tp.time) / tpq for tp in score.tempos]
    tempo_qpm = [60_000_000.0 / tp.mspq if tp.mspq > 0 else float("nan") for tp in score.tempos]
    change_beats, change_qpm = _tempo_map(tempo_ticks, tempo_qpm)
    start, end = c["time"] / tpq, c["end"] / tpq
    if time_mode == "seconds":
        start, end = beats_to_seconds(start, change_beats, change_qpm), beats_to_seconds(end, change_beats, change_qpm)
    return _build_piece(c["pitch"], start, end, c["velocity"], c["program"], c["drum"], float(change_qpm[0]),
                        time_mode, max_notes)


def first_abc_tune(text: str) -> str:
    """The file header (lines before the first ``X:``) plus the first tune of an ABC songbook."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith("X:")]
    if len(starts) < 2:
        return text
    return "\n".join(lines[:starts[1]]) + "\n"


def _read_music21(path: Path, time_mode: str, max_notes: int) -> Piece:
    import music21

    try:
        if path.suffix.lower() == ".abc":  # parse only the first tune: a songbook can hold hundreds
            score = music21.converter.parse(first_abc_tune(path.read_text(errors="replace")), format="abc")
        else:
            score = music21.converter.parse(str(path))
    except Exception as exc:
        raise IngestError(f"unreadable {path.suffix.lower()[1:]} file: {_first_line(exc)}") from None
    if isinstance(score, music21.stream.Opus):
        scores = list(score.scores)
        if not scores:
            raise IngestError("no notes")
        score = scores[0]
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    rows: list[tuple] = []
    for part in parts:
        inst = part.getInstrument(returnDefault=True)
        program = inst.midiProgram if inst.midiProgram is not None else 0
        drum = inst.midiChannel == 9 or isinstance(inst, music21.instrument.UnpitchedPercussion)
        for el in part.flatten().stripTies().notes:
            if el.duration.isGrace or el.quarterLength <= 0:
                continue
            pitches = getattr(el, "pitches", ())
            vel = el.volume.velocity if el.volume.velocity is not None else MUSIC21_DEFAULT_VELOCITY
            start = float(el.offset)
            for p in pitches:
                rows.append((p.midi, start, start + float(el.quarterLength), vel, program, drum))
            if len(rows) > max_notes:
                raise IngestError(f"too many notes: more than max_notes={max_notes}")
    if not rows:
        raise IngestError("no notes")
    marks = score.flatten().getElementsByClass(music21.tempo.MetronomeMark)
    change_beats, change_qpm = _tempo_map([float(m.offset) for m in marks],
                                          [m.getQuarterBPM() or float("nan") for m in marks])
    pitch, start, end, vel, program, drum = (np.array(col) for col in zip(*rows))
    if time_mode == "seconds":
        start, end = beats_to_seconds(start, change_beats, change_qpm), beats_to_seconds(end, change_beats, change_qpm)
    return _build_piece(pitch, start, end, vel, program, drum, float(change_qpm[0]), time_mode, max_notes)


def read_piece(path: str | Path, time_mode: str = "beat", max_notes: int = DEFAULT_MAX_NOTES) -> Piece:
    """Read one music file into a ``Piece``.

    Args:
        path: a ``.mid/.midi`` file (symusic) or ``.mxl/.musicxml/.xml/.abc/.krn`` file (music21); suffix any case.
        time_mode: ``"beat"`` (times in quarter notes) or ``"seconds"``.
        max_notes: guard against enormous inputs; a file with more notes is refused (default 200,000).
    Returns:
        ``Piece`` with notes sorted by (start, pitch) and ``qpm`` the first tempo (120 when the file has none).
    Raises:
        IngestError: ``"not a music file: …"``, ``"unreadable MIDI: …"``, ``"no notes"``, ``"too many notes: …"``.
        UsageError: ``time_mode`` is not one of ``("beat", "seconds")``.
    """
    _check_time_mode(time_mode)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MUSIC_SUFFIXES:
        raise IngestError(f"not a music file: suffix {path.suffix!r} is not one of {' '.join(MUSIC_SUFFIXES)}")
    if not path.is_file():
        raise IngestError(f"not a music file: {str(path)!r} is not a readable file")
    if suffix in MIDI_SUFFIXES:
        return _read_midi(path, time_mode, max_notes)
    try:
        return _read_music21(path, time_mode, max_notes)
    except IngestError:
        raise
    except Exception as exc:  # music21 fails in many ways on odd files; one file must never stop an ingest
        raise IngestError(f"unreadable {suffix[1:]} file: {_first_line(exc)}") from None


def read_notes(path: str | Path, time_mode: str = "beat") -> list[Note]:
    """The notes of ``read_piece(path, time_mode)``."""
    return read_piece(path, time_mode).notes


def arrays_to_pretty_midi(pitch, start, end, velocity, instrument, qpm: float = DEFAULT_QPM,
                          time_mode: str = "beat", resolution: int = 480):
    """Build a ``pretty_midi.PrettyMIDI`` from note arrays (fast path used by the tokenizer's decoder).

    Args:
        pitch, velocity: int arrays, shape (n,).
        start, end: float arrays, shape (n,), in quarter notes (beat mode) or seconds.
        instrument: int array, shape (n,): the program 0..127, or 128 for drums.
        qpm: tempo written to the file; beat times are turned into seconds at this tempo.
        time_mode: ``"beat"`` or ``"seconds"``.
        resolution: MIDI ticks per quarter note of the written file.
    Returns:
        PrettyMIDI with one instrument per distinct ``instrument`` value (ascending; drums last).
    """
    import pretty_midi

    _check_time_mode(time_mode)
    if not (math.isfinite(qpm) and qpm > 0):
        raise UsageError(f"qpm: expected a positive number, got {qpm!r}")
    pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=float(qpm))
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    if time_mode == "beat":
        start, end = start * (60.0 / qpm), end * (60.0 / qpm)
    instrument = np.asarray(instrument, dtype=np.int64)
    pitch, velocity = np.asarray(pitch, dtype=np.int64), np.asarray(velocity, dtype=np.int64)
    for inst in np.unique(instrument).tolist():
        sel = np.flatnonzero(instrument == inst)
        drum = inst == 128
        track = pretty_midi.Instrument(program=0 if drum else inst, is_drum=drum,
                                       name="Drums" if drum else pretty_midi.program_to_instrument_name(inst))
        track.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, s, e, v in
                       zip(pitch[sel].tolist(), start[sel].tolist(), end[sel].tolist(), velocity[sel].tolist())]
        pm.instruments.append(track)
    return pm


def notes_to_pretty_midi(notes: list[Note], qpm: float = DEFAULT_QPM, time_mode: str = "beat"):
    """Notes → ``pretty_midi.PrettyMIDI``, one instrument per (program, is_drum); beat times converted at ``qpm``."""
    return arrays_to_pretty_midi([n.pitch for n in notes], [n.start for n in notes], [n.end for n in notes],
                                 [n.velocity for n in notes], [128 if n.is_drum else n.program for n in notes],
                                 qpm=qpm, time_mode=time_mode)
