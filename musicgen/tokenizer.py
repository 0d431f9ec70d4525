"""Notes ⇄ event tokens (Performance RNN style), built from one range table.

Range table, in this order, ids contiguous (``Tokenizer.ranges`` gives ``name -> (first_id, size)``)::

    PAD, BOS, EOS                      one id each (value 0)
    NOTE_ON(min_pitch..max_pitch)      value = MIDI pitch
    NOTE_OFF(min_pitch..max_pitch)     value = MIDI pitch
    TIME_SHIFT(1..max_shift_steps)     value = grid steps
    VELOCITY(1..velocity_bins)         only if velocity_bins > 0; value = bin
    PROGRAM(0..128)                    only if programs; value = GM program, 128 = drums
    VOICE(0..voices-1)                 only if voices > 0; value = the part (track) a note belongs to (with
                                       voice_events="implied" only where a NOTE_OFF's pitch does not name it)
    TIME_SIG(0..63)                    only if meter; value = time_signature_value(numerator, denominator)
    KEY(0..23)                         only if key; value = tonic pitch class + 12 * minor (pretty_midi's key_number)
    STYLE(0..len(styles)-1)            only if styles; value = index of the piece's style in ``config.styles``

With the default ``TokenizerConfig()`` that is 3 + 128 + 128 + 48 + 32 + 129 = 468 ids (voices off); ``voices=4``
adds 4 (472).

Voices: a note's *voice* is its part: the index of its track (MIDI) or part (music21) among those with notes
(``Note.voice``); with ``voices=N`` voices N and above share voice N-1, with ``voices=0`` every note is voice 0. The
tokenizer's *instrument* is the pair (voice, program), so two parts of one program that sing the same pitch stay two
notes.

Grid: beat mode has ``steps_per_quarter`` steps per quarter note (times in quarter notes); seconds mode has steps of
``step_seconds`` (times in seconds). ``step = floor(time / step_size + 0.5)``; a note that lands on zero length gets one
step. Of two notes of the same pitch and instrument (voice, program) that overlap, the earlier is cut at the later
onset (two with the same onset keep the longer; of identical ones, the last given): one sounding note per (voice,
program, pitch), so without voices unison parts of one program merge (``scripts/roundtrip.py`` measures it). Pitches
outside [min_pitch, max_pitch] are dropped; with ``programs=False`` every note is program 0 and drum notes are dropped.

Velocity bins (``B = velocity_bins``): ``bin(v) = 1 + ((v - 1) * B) // 127`` for v in 1..127; a bin decodes to its
centre ``(lo + hi) // 2`` where lo/hi are the smallest/largest velocity in the bin (B = 32: bin 1 is 1..4 → 2,
bin 20 is 77..80 → 78, bin 32 is 125..127 → 126). With ``B = 0`` notes decode at ``default_velocity``.

Event order: time shifts (a gap longer than ``max_shift_steps`` is a chain of full shifts plus the remainder), then at
each step the note events sorted by (voice, NOTE_OFF before NOTE_ON, program, pitch): without voices every NOTE_OFF,
then every NOTE_ON; with voices one voice after the other, each ending its notes before starting new ones (half the
VOICE events of all OFFs before all ONs). Before a note event come, in this order: VOICE when its voice differs from
the previous note event's, PROGRAM when its program differs (the first note always gets both, where the vocabulary
has them), VELOCITY (NOTE_ON only) when its bin differs from the last NOTE_ON's (the first NOTE_ON always gets one).
Voice and program are independent registers: a VOICE event does not change the program.

Implied voices (``voice_events="implied"``): a NOTE_OFF names its voice by its pitch. The decoder's rule: a NOTE_OFF
of a pitch that does not sound in the current voice (and program) ends the note of that pitch in the lowest voice
where it sounds, and that voice becomes the current one. So the encoder writes a VOICE before a NOTE_OFF only when
the pitch sounds in two or more voices just then (a unison) and the current voice is not the note's own; before a
NOTE_ON as above. The notes are the same as with every VOICE (``scripts/roundtrip.py --voice-events implied``), in
about a quarter fewer events on four-part chorales, where most VOICE events stood before a part's NOTE_OFF.

Meter and key (``musicgen.meter``): with ``meter`` a TIME_SIG event stands at each step where a bar of its meter
starts, after the TIME_SHIFTs that reach the step and before its note events: the first bar (4/4 at step 0 when the
piece has no time signature), then wherever the meter changes or a bar starts off the last meter's bar grid (a pickup
is a short bar of its own meter, 1/4 before 4/4); none at or after the piece's last step. With ``key`` one KEY event
follows BOS: the file's key signature when it has a mode, else ``musicgen.keys``'s analysis; in ``"normalize"`` the
notes are stored moved by ``normalize_shift(tonic)`` (tonic to C) and decoded moved back by the first KEY's tonic
(a note is kept when its pitch is in range both as written and as stored). ``transpose_tokens`` shifts KEY tonics too.

Styles: with ``styles`` a STYLE event names the piece's style right after BOS, before the KEY and any TIME_SIG
(``BOS STYLE KEY TIME_SIG …``); ``encode_pieces(pieces, styles=…)`` gives each piece its style index, and a piece given
none (``encode`` without ``style``) gets no STYLE event (style unknown). Decoding ignores STYLE (``musicgen.styles``
reads it). STYLE is last in the range table, so every other id is the same with and without styles.

Decoding is total: any sequence of valid ids decodes. PAD/BOS are ignored, decoding stops at the first EOS, the state
starts as voice 0, program 0 at ``default_velocity`` (the centre of its bin), a NOTE_OFF with no sounding note (of
that voice, program and pitch) is ignored, a NOTE_ON of a pitch already sounding ends the earlier note there, a note
closed at its own step (by a NOTE_OFF or a repeated NOTE_ON) is dropped, and notes still sounding at the end are closed
at the last step (given one step if they start there). Decoded notes never overlap in one (voice, program, pitch), so
``decode_notes(encode_notes(decode_notes(t))) == decode_notes(t)``.

The decoding methods live in ``musicgen.tokenizer_decode`` (``TokenDecoder``, a base class of ``Tokenizer``) with the
event kinds; this module builds the range table, encodes and transposes.
"""

from __future__ import annotations

import math
import os

import numpy as np

from musicgen.config import TokenizerConfig
from musicgen.errors import IngestError, UsageError
from musicgen.event_arrays import _forward_fill, _lex_order, emit_tokens, velocity_tables  # noqa: F401
from musicgen.keys import piece_key
from musicgen.meter import (TS_DENOMINATORS, meter_events, normalize_shift, normalized_bounds,  # noqa: F401
                            time_signature_of, time_signature_value, with_meter_events)
from musicgen.piece import DRUMS, Note, NoteArrays, Piece
from musicgen.reader import read_piece
from musicgen.tokenizer_decode import (_BOS, _EOS, _KEY, _OFF, _ON, _PAD, _PROG, _SHIFT, _STYLE, _TSIG,  # noqa: F401
                                       _VEL, _VOICE, KINDS, N_PROGRAMS, PITCHES, TokenDecoder)

# TIME_SIG value = (numerator - 1) * 4 + index of the denominator in TS_DENOMINATORS = (2, 4, 8, 16); numerators 1..16
TS_VALUES = 16 * len(TS_DENOMINATORS)
KEY_VALUES = 24
DEFAULT_MAX_TOKENS = 20_000_000


class Tokenizer(TokenDecoder):
    """Event vocabulary for one ``TokenizerConfig``.

    Args:
        config: the ``TokenizerConfig`` (default: beat mode, 12 steps per quarter, 468 ids).
        max_tokens: ``encode`` refuses (``IngestError``) a piece that would need more tokens (guard against
            absurd files, e.g. a note a million bars in); default 20,000,000.

    Example:
        >>> tok = Tokenizer()
        >>> tok.token("NOTE_ON", 60), tok.describe(63)
        (63, ('NOTE_ON', 60))
    """

    def __init__(self, config: TokenizerConfig | None = None, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.config = config if config is not None else TokenizerConfig()
        self.max_tokens = max_tokens
        c = self.config
        table = [("PAD", 0, 0), ("BOS", 0, 0), ("EOS", 0, 0), ("NOTE_ON", c.min_pitch, c.max_pitch),
                 ("NOTE_OFF", c.min_pitch, c.max_pitch), ("TIME_SHIFT", 1, c.max_shift_steps)]
        if c.velocity_bins > 0:
            table.append(("VELOCITY", 1, c.velocity_bins))
        if c.programs:
            table.append(("PROGRAM", 0, N_PROGRAMS - 1))
        if c.voices:
            table.append(("VOICE", 0, c.voices - 1))
        if c.meter:
            table.append(("TIME_SIG", 0, TS_VALUES - 1))
        if c.key:
            table.append(("KEY", 0, KEY_VALUES - 1))
        if c.styles:
            table.append(("STYLE", 0, len(c.styles) - 1))
        self.table: tuple[tuple[str, int, int], ...] = tuple(table)
        self.ranges: dict[str, tuple[int, int]] = {}
        self._first_value: dict[str, int] = {}
        kind, value = [], []
        for name, lo, hi in self.table:
            self.ranges[name] = (len(kind), hi - lo + 1)
            self._first_value[name] = lo
            kind += [KINDS.index(name)] * (hi - lo + 1)
            value += range(lo, hi + 1)
        self.vocab_size = len(kind)
        self._kind = np.array(kind, dtype=np.int8)
        self._value = np.array(value, dtype=np.int64)
        self.pad_id, self.bos_id, self.eos_id = (self.ranges[n][0] for n in ("PAD", "BOS", "EOS"))
        self._vel_to_bin, self._bin_to_vel = velocity_tables(c.velocity_bins)
        # notes before any VELOCITY token: the centre of default_velocity's bin, so decoding is idempotent
        self.default_velocity = int(self._bin_to_vel[self._vel_to_bin[c.default_velocity]]) if c.velocity_bins \
            else c.default_velocity
        per_unit = c.steps_per_quarter if c.time_mode == "beat" else 1.0 / c.step_seconds
        self._per_unit = float(per_unit)
        # k / 100 (not k * 0.01) reproduces the literal 0.03 exactly, so on-grid times round-trip bit for bit
        self._divisor = float(round(per_unit)) if abs(per_unit - round(per_unit)) < 1e-9 else None

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, config={self.config!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and other.config == self.config

    # ---- ids -----------------------------------------------------------------------------------------------
    def token(self, name: str, value: int = 0) -> int:
        """The id of event ``name`` with ``value`` (pitch, steps, bin, program or voice; 0 for specials)."""
        if name not in self.ranges:
            raise UsageError(f"token: name {name!r} is not one of {list(self.ranges)}")
        first, size = self.ranges[name]
        lo = self._first_value[name]
        if not (isinstance(value, (int, np.integer)) and lo <= value < lo + size):
            raise UsageError(f"token: {name} value expected an integer in [{lo}, {lo + size - 1}], got {value!r}")
        return first + int(value) - lo

    def describe(self, token_id: int) -> tuple[str, int]:
        """``(name, value)`` of one id, e.g. ``("TIME_SHIFT", 12)``."""
        if not 0 <= token_id < self.vocab_size:
            raise UsageError(f"token id: expected an integer in [0, {self.vocab_size}), got {token_id!r}")
        return KINDS[self._kind[token_id]], int(self._value[token_id])

    def kind_mask(self, tokens, name: str) -> np.ndarray:
        """bool, shape of ``tokens`` (int ids): the ids of event kind ``name`` (all False when the vocabulary has
        none)."""
        t = np.asarray(tokens)
        if name not in self.ranges:
            return np.zeros(t.shape, bool)
        first, size = self.ranges[name]
        return (t >= first) & (t < first + size)

    def values_of(self, tokens, name: str) -> np.ndarray:
        """int64 (k,): the values (as ``describe`` gives them) of the events of kind ``name`` in ``tokens`` (int ids,
        shape (T,)), in order; empty when there are none or the vocabulary has no such kind."""
        t = np.asarray(tokens)
        return self._value[t[self.kind_mask(t, name)]]

    # ---- grid ----------------------------------------------------------------------------------------------
    def to_steps(self, times) -> np.ndarray:
        """Times (quarter notes or seconds) → int64 grid steps, rounded to the nearest step."""
        return np.floor(np.asarray(times, dtype=np.float64) * self._per_unit + 0.5).astype(np.int64)

    def from_steps(self, steps) -> np.ndarray:
        """Grid steps → float64 times (quarter notes or seconds)."""
        steps = np.asarray(steps, dtype=np.float64)
        return steps / self._divisor if self._divisor else steps * (1.0 / self._per_unit)

    # ---- encode --------------------------------------------------------------------------------------------
    def encode(self, source: str | os.PathLike | Piece, style: int | None = None) -> np.ndarray:
        """A file path or ``Piece`` → int32 tokens ``[BOS, …, EOS]``, shape (T,); ``style``: its style index (a
        STYLE event after BOS; styles vocabularies only; None: none).

        Raises ``IngestError`` if the file cannot be read or no note survives the pitch range; ``UsageError`` if a
        ``Piece`` was read in another time mode than this tokenizer's.
        """
        piece = source if isinstance(source, Piece) else read_piece(source, self.config.time_mode)
        result = self.encode_pieces([piece], None if style is None else [style])[0]
        if isinstance(result, IngestError):
            raise result
        return result

    def encode_pieces(self, pieces: list[Piece], styles=None) -> list[np.ndarray | IngestError]:
        """``encode`` of many pieces in one vectorized pass (the ingest fast path; same tokens, much less overhead).

        ``styles``: per piece its style index in ``config.styles`` (-1 or None: no STYLE event), or None for none.
        Returns, per piece, its int32 tokens ``[BOS, …, EOS]`` or the ``IngestError`` that ``encode`` would raise
        (no note in the pitch range, more than ``max_tokens``). Raises ``UsageError`` for a piece in another time
        mode than this tokenizer's, or a style index outside ``config.styles``.
        """
        styles = [-1 if s is None else s for s in styles] if styles is not None else [-1] * len(pieces)
        n_styles = len(self.config.styles)
        if len(styles) != len(pieces) or not all(isinstance(s, (int, np.integer)) and -1 <= s < n_styles
                                                 for s in styles):
            raise UsageError(f"styles: expected one style index in [0, {n_styles}) (or -1) per piece, got {styles!r}")
        for piece in pieces:
            if piece.time_mode != self.config.time_mode:
                raise UsageError(f"time_mode: piece is in {piece.time_mode!r}, tokenizer in "
                                 f"{self.config.time_mode!r}")
        arrays = [p.arrays for p in pieces]
        seg = np.repeat(np.arange(len(arrays)), [a.pitch.size for a in arrays])
        cols = [np.concatenate([getattr(a, name) for a in arrays]) if arrays else np.zeros(0)
                for name in ("pitch", "start", "end", "velocity", "instrument", "voice")]
        keys = np.array([piece_key(p)[0] for p in pieces], np.int64) if self.config.key else None
        meters = [p.meters for p in pieces] if self.config.meter else None
        tokens, offsets, too_long = self._encode_segments(seg, *cols, n_segments=len(arrays), keys=keys,
                                                          meters=meters)
        out: list[np.ndarray | IngestError] = []
        for i in range(len(arrays)):
            if too_long[i]:
                out.append(IngestError(f"too long: {too_long[i]} tokens > max_tokens={self.max_tokens}"))
            elif offsets[i + 1] - offsets[i] <= 2 + bool(self.config.key):
                out.append(IngestError(f"no notes in pitch range [{self.config.min_pitch}, {self.config.max_pitch}]"))
            elif styles[i] >= 0:  # BOS, STYLE, then the rest
                out.append(np.insert(tokens[offsets[i]:offsets[i + 1]], 1, self.token("STYLE", int(styles[i]))))
            else:
                out.append(tokens[offsets[i]:offsets[i + 1]])
        return out

    def encode_notes(self, notes: list[Note], key: int | None = None, meters=()) -> np.ndarray:
        """Notes (times in this tokenizer's unit) → int32 tokens ``[BOS, …, EOS]``, shape (T,); ``key`` and
        ``meters`` as ``encode_arrays``."""
        return self.encode_arrays([n.pitch for n in notes], [n.start for n in notes], [n.end for n in notes],
                                  [n.velocity for n in notes], [DRUMS if n.is_drum else n.program for n in notes],
                                  [n.voice for n in notes], key=key, meters=meters)

    def encode_arrays(self, pitch, start, end, velocity, instrument, voice=None, key: int | None = None,
                      meters=()) -> np.ndarray:
        """Vectorized ``encode_notes``: arrays of shape (n,); ``instrument`` is the program, or 128 for drums;
        ``voice`` the part of each note (>= 0; None: all 0; ignored when the config has no voices). ``key`` (key
        number; None: analysed, ``musicgen.keys``) and ``meters`` (``Piece.meters``) are used when the config has
        them."""
        pitch = np.asarray(pitch, dtype=np.int64).ravel()
        voice = np.zeros(pitch.size, np.int64) if voice is None else voice
        if self.config.key and key is None:
            key = piece_key(Piece(arrays=NoteArrays(pitch, np.asarray(start, np.float64).ravel(),
                                                    np.asarray(end, np.float64).ravel(), pitch, pitch,
                                                    np.asarray(instrument).ravel() == DRUMS, pitch)))[0]
        tokens, _, too_long = self._encode_segments(np.zeros(pitch.size, np.int64), pitch, start, end, velocity,
                                                    instrument, voice, n_segments=1,
                                                    keys=np.array([key], np.int64) if self.config.key else None,
                                                    meters=[meters] if self.config.meter else None)
        if too_long[0]:
            raise IngestError(f"too long: {too_long[0]} tokens > max_tokens={self.max_tokens}")
        return tokens

    def _encode_segments(self, seg, pitch, start, end, velocity, instrument, voice, n_segments: int, keys=None,
                         meters=None):
        """Encode the notes of ``n_segments`` pieces at once; ``seg`` (n,) says whose each note is (non-decreasing);
        ``keys`` int64 (n_segments,) key numbers (with ``config.key``), ``meters`` a ``Piece.meters`` per piece (with
        ``config.meter``).

        Returns ``(tokens, offsets, too_long)``: int32 tokens of all pieces concatenated, int64 offsets (pieces + 1),
        and int64 (pieces,) the token count of each piece refused for exceeding ``max_tokens`` (0 otherwise; such a
        piece is left as ``[BOS, EOS]``).
        """
        c = self.config
        pitch, velocity, inst, seg, voice = (np.asarray(a, dtype=np.int64).ravel() for a in (pitch, velocity,
                                                                                              instrument, seg, voice))
        start, end = np.asarray(start, dtype=np.float64).ravel(), np.asarray(end, dtype=np.float64).ravel()
        if inst.size and (inst.min() < 0 or inst.max() > DRUMS or not np.all(np.isfinite(start) & (start >= 0))
                          or not np.all(np.isfinite(end)) or voice.min() < 0):
            raise UsageError("notes: expected instrument in [0, 128], voice >= 0 and finite times with start >= 0")
        s, e = self.to_steps(start), self.to_steps(end)
        keep = (pitch >= c.min_pitch) & (pitch <= c.max_pitch)
        if c.key == "normalize":  # notes on C (the tonic moved the shorter way); kept when in range both ways
            pitch = pitch + np.where(inst == DRUMS, 0, normalize_shift(np.asarray(keys, np.int64) % 12)[seg])
            keep &= (pitch >= c.min_pitch) & (pitch <= c.max_pitch)
        if not c.programs:
            keep &= inst != DRUMS
            inst = np.zeros_like(inst)
        voice = np.minimum(voice, c.voices - 1) if c.voices else np.zeros_like(voice)
        pitch, velocity, inst, s, e, seg, voice = (a[keep] for a in (pitch, velocity, inst, s, e, seg, voice))
        e = np.maximum(e, s + 1)
        # cut the earlier of two overlapping notes of one (voice, program, pitch)
        key = ((seg * max(c.voices, 1) + voice) * N_PROGRAMS + inst) * PITCHES + pitch
        order = _lex_order(e, s, key)
        pitch, velocity, inst, s, e, key, seg, voice = (a[order] for a in (pitch, velocity, inst, s, e, key, seg,
                                                                           voice))
        same = key[1:] == key[:-1]
        e[:-1][same] = np.minimum(e[:-1][same], s[1:][same])
        ok = e > s
        pitch, velocity, inst, s, e, seg, voice = (a[ok] for a in (pitch, velocity, inst, s, e, seg, voice))
        vbin = self._vel_to_bin[np.clip(velocity, 0, 127)]
        n = pitch.size  # events: OFFs (kind 0) sort before ONs (kind 1) at the same step
        ev_time, ev_on = np.concatenate([e, s]), np.concatenate([np.zeros(n, bool), np.ones(n, bool)])
        ev_inst, ev_pitch, ev_bin, ev_seg = np.tile(inst, 2), np.tile(pitch, 2), np.tile(vbin, 2), np.tile(seg, 2)
        events = (ev_seg, ev_time, ev_on, ev_inst, ev_pitch, ev_bin, np.tile(voice, 2), np.ones(2 * n, bool))
        if c.meter:  # TIME_SIG pseudo-events (value in ev_pitch, ev_note False) sort before the notes of their step
            events = with_meter_events(events, meter_events(meters, self.to_steps, c.steps_per_quarter), seg, e,
                                       n_segments)
        ev_seg, ev_time, ev_on, ev_inst, ev_pitch, ev_bin, ev_voice, ev_note = events
        order = _lex_order(ev_pitch, ev_inst, ev_on, ev_voice, ev_note, ev_time, ev_seg)
        return emit_tokens(self, *(a[order] for a in (ev_seg, ev_time, ev_on, ev_inst, ev_pitch, ev_bin, ev_voice,
                                                      ev_note)), n_segments, keys)

    # ---- augmentation --------------------------------------------------------------------------------------
    def _pitched_notes(self, t: np.ndarray) -> np.ndarray:
        kind = self._kind[t]
        mask = (kind == _ON) | (kind == _OFF)
        if self.config.programs:
            mask &= self._instrument_of(t) != DRUMS
        return mask

    def transpose_bounds(self, tokens) -> tuple[int, int]:
        """``(lo, hi)``: every shift in ``lo..hi`` semitones keeps all non-drum pitches in range (lo <= 0 <= hi).

        Without pitched notes any shift is safe and the bounds are ``±(max_pitch - min_pitch)``. In ``key="normalize"``
        the stored notes do not move, but their decoded pitches (moved from C to the shifted key) must stay in range:
        the widest run of safe shifts around 0 (all of ``±(max_pitch - min_pitch)`` when every key is safe).
        """
        t = self._check_ids(tokens)
        c = self.config
        values = self._value[t][self._pitched_notes(t)]
        full = c.max_pitch - c.min_pitch
        if values.size == 0:
            return -full, full
        if c.key != "normalize":
            return c.min_pitch - int(values.min()), c.max_pitch - int(values.max())
        return normalized_bounds(int(values.min()), int(values.max()), self._first_key(self._kind[t], self._value[t]),
                                 c.min_pitch, c.max_pitch)

    def transpose_tokens(self, tokens, semitones: int) -> np.ndarray:
        """Shift every non-drum NOTE_ON/NOTE_OFF by ``semitones``, and every KEY's tonic (mod 12, mode kept); same
        shape and dtype as ``tokens``. With ``key="normalize"`` only the KEY events change (the notes stay on C).

        Vectorized: the instrument at each position is the last PROGRAM before it (program 0 before any), so pass
        whole pieces (a window cut after a PROGRAM 128 would treat its leading drum notes as pitched).
        Raises ``UsageError`` when a pitch would leave [min_pitch, max_pitch] (see ``transpose_bounds``).
        """
        arr = np.asarray(tokens)
        t = self._check_ids(arr)
        semitones = int(semitones)
        c = self.config
        lo, hi = self.transpose_bounds(t) if c.key == "normalize" else (None, None)
        mask = self._pitched_notes(t) if c.key != "normalize" else np.zeros(t.size, bool)
        keys = self._kind[t] == _KEY
        if semitones == 0 or not (mask.any() or keys.any()):
            return arr.copy()
        values = self._value[t][mask] + semitones
        if (values.size and (values.min() < c.min_pitch or values.max() > c.max_pitch)) or \
                (lo is not None and not lo <= semitones <= hi):
            lo, hi = self.transpose_bounds(t)
            raise UsageError(f"semitones: {semitones} moves pitches outside [{c.min_pitch}, {c.max_pitch}]; "
                             f"allowed {lo}..{hi}")
        t[mask] += semitones
        v = self._value[t[keys]]
        t[keys] += (v % 12 + semitones) % 12 - v % 12
        return t.astype(arr.dtype).reshape(arr.shape)

    @staticmethod
    def stretch_notes(notes: list[Note], factor: float) -> list[Note]:
        """Time-stretch augmentation; same as the module-level ``stretch_notes``."""
        return stretch_notes(notes, factor)


def stretch_notes(notes: list[Note], factor: float) -> list[Note]:
    """Multiply every onset and release by ``factor`` (> 0), e.g. 0.95–1.05 for seconds-mode augmentation."""
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
        raise UsageError(f"factor: expected a positive number, got {factor!r}")
    return [Note(n.pitch, n.start * factor, n.end * factor, n.velocity, n.program, n.is_drum, n.voice) for n in notes]
