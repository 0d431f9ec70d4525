"""Files → notes, and notes → ``pretty_midi``. The containers (``Note``, ``NoteArrays``, ``Piece``) and the tempo-map
conversions are in ``musicgen.piece`` (re-exported here).

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
from pathlib import Path

import numpy as np

from musicgen.errors import IngestError, UsageError
from musicgen.meter import key_number
from musicgen.piece import (DEFAULT_QPM, DRUMS, Note, NoteArrays, Piece, _tempo_map,  # noqa: F401 (re-exported)
                            beats_to_seconds, check_time_mode, seconds_to_beats)

MIDI_SUFFIXES = (".mid", ".midi")
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


def load_midi(midi):
    """A ``pretty_midi.PrettyMIDI`` from itself or a path; a missing/unreadable file is a ``UsageError``.

    A file pretty_midi refuses (its last tick past 1e7: a long piece at a fine resolution, as music21 writes) is read
    by ingest's reader (symusic), rewritten at 480 ticks per quarter (``midi_io.resample_midi``) and opened again.
    """
    import io

    import pretty_midi

    if isinstance(midi, pretty_midi.PrettyMIDI):
        return midi
    path = Path(midi)
    if not path.is_file():
        raise UsageError(f"MIDI file {str(path)!r} does not exist")
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # mido/pretty_midi raise many types for a bad file
        first = exc
    try:
        return pretty_midi.PrettyMIDI(io.BytesIO(resample_midi(path.read_bytes())))
    except Exception:
        raise UsageError(f"cannot read MIDI file {str(path)!r}: {type(first).__name__}: {first}") from None
