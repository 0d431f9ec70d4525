"""What each token id means and how tokens decode: the event kinds (``KINDS``, their codes), and ``TokenDecoder``,
the decoding half of ``musicgen.tokenizer.Tokenizer`` (tokens → note arrays, ``Note`` lists, ``Piece``, PrettyMIDI;
the KEY and TIME_SIG events). Decoding is total; its rules are in ``musicgen.tokenizer``'s module doc, which builds
the vocabulary and encodes.
"""

from __future__ import annotations

import math

import numpy as np

from musicgen.errors import UsageError
from musicgen.event_arrays import _forward_fill, implied_voice_track
from musicgen.meter import normalize_shift, time_signature_of
from musicgen.midi_io import arrays_to_pretty_midi
from musicgen.piece import DRUMS, Note, Piece

N_PROGRAMS = 129
PITCHES = 128  # MIDI pitch numbers, for (instrument, pitch) keys
_PAD, _BOS, _EOS, _ON, _OFF, _SHIFT, _VEL, _PROG, _VOICE, _TSIG, _KEY, _STYLE = range(12)
KINDS = ("PAD", "BOS", "EOS", "NOTE_ON", "NOTE_OFF", "TIME_SHIFT", "VELOCITY", "PROGRAM", "VOICE", "TIME_SIG", "KEY",
         "STYLE")


class TokenDecoder:
    """Mixin: the decoding methods of ``Tokenizer``, which provides ``config``, ``vocab_size``, ``eos_id``, the id
    tables ``_kind`` (int8, shape (vocab_size,), codes of ``KINDS``) and ``_value`` (int64, same shape),
    ``_bin_to_vel``, ``default_velocity``, ``from_steps``, ``kind_mask`` and ``token``."""

    # ---- decode --------------------------------------------------------------------------------------------
    def _check_ids(self, tokens) -> np.ndarray:
        t = np.asarray(tokens)
        if t.size and not np.issubdtype(t.dtype, np.integer):
            raise UsageError(f"tokens: expected integer ids, got dtype {t.dtype}")
        t = t.astype(np.int64).ravel()
        if t.size and (t.min() < 0 or t.max() >= self.vocab_size):
            bad = t[(t < 0) | (t >= self.vocab_size)][0]
            raise UsageError(f"tokens: id {bad} is outside [0, {self.vocab_size})")
        return t

    def _instrument_of(self, t: np.ndarray) -> np.ndarray:
        kind = self._kind[t]
        return _forward_fill(kind == _PROG, self._value[t], 0)

    def _voices(self, kind: np.ndarray, value: np.ndarray, inst: np.ndarray, piece_start=None) -> np.ndarray:
        """int64 (n,): the voice in force at each position (``kind``/``value`` of ids, ``inst`` the program there)."""
        if getattr(self.config, "voice_events", "all") == "implied":
            return implied_voice_track(kind, value, inst, _ON, _OFF, _VOICE, piece_start)
        return _forward_fill(kind == _VOICE, value, 0)

    def voice_track(self, tokens) -> np.ndarray:
        """int64, shape (T,) of ``tokens``: the voice a note event at each position belongs to (the voice register
        after it): the last VOICE's value, or with ``voice_events="implied"`` also the voice whose note a NOTE_OFF
        ended (0 before any). Total; PAD/BOS/EOS change nothing."""
        t = self._check_ids(tokens)
        return self._voices(self._kind[t], self._value[t], self._instrument_of(t))

    def in_force(self, tokens, names) -> list[int]:
        """The ids of the register events in force at the end of ``tokens``, in the order of ``names`` (e.g.
        ``("VOICE", "PROGRAM", "VELOCITY")``), one per kind that occurs: its last event, and for VOICE the voice
        register (``voice_track``: with implied voices a NOTE_OFF may have moved it since the last VOICE)."""
        t = self._check_ids(tokens)
        out = []
        for name in names:
            hits = t[self.kind_mask(t, name)]
            if hits.size:
                out.append(self.token("VOICE", int(self.voice_track(t)[-1])) if name == "VOICE" else int(hits[-1]))
        return out

    def decode_arrays(self, tokens) -> dict[str, np.ndarray]:
        """Tokens → note arrays sorted by (start, pitch, instrument, voice): ``pitch``, ``start``, ``end`` (grid
        steps, int64), ``velocity``, ``instrument`` (program, 128 = drums), ``voice`` (0 without VOICE events), each
        shape (n,). Total; see the module doc."""
        t = self._check_ids(tokens)
        eos = np.flatnonzero(t == self.eos_id)
        if eos.size:
            t = t[:eos[0]]
        kind, value = self._kind[t], self._value[t]
        time = np.cumsum(np.where(kind == _SHIFT, value, 0))
        final = int(time[-1]) if time.size else 0
        inst = _forward_fill(kind == _PROG, value, 0)
        voice = self._voices(kind, value, inst)
        default_v = self.default_velocity
        vel = _forward_fill(kind == _VEL, self._bin_to_vel[np.where(kind == _VEL, value, 0)], default_v)
        pos = np.flatnonzero((kind == _ON) | (kind == _OFF))
        key = (voice[pos] * N_PROGRAMS + inst[pos]) * PITCHES + value[pos]
        order = np.argsort(key, kind="stable")
        pos, key = pos[order], key[order]
        is_on, tm = kind[pos] == _ON, time[pos]
        next_same = np.append(key[1:] == key[:-1], False)
        end = np.where(next_same, np.append(tm[1:], 0), final)
        zero = end <= tm  # closed at its own step (dropped) or still sounding at the very end (one step)
        keep = is_on & ~(zero & next_same)
        end = np.where(zero, tm + 1, end)
        pos, start, end = pos[keep], tm[keep], end[keep]
        pitch = value[pos]
        if self.config.key == "normalize":  # back from C to the key of the first KEY event (none: C)
            key = self._first_key(kind, value)
            pitch = pitch - np.where(inst[pos] == DRUMS, 0, normalize_shift(0 if key is None else key % 12))
            fits = (pitch >= self.config.min_pitch) & (pitch <= self.config.max_pitch)
            pos, start, end, pitch = pos[fits], start[fits], end[fits], pitch[fits]
        out = dict(pitch=pitch, start=start, end=end, velocity=vel[pos], instrument=inst[pos], voice=voice[pos])
        order = np.lexsort((out["voice"], out["instrument"], out["pitch"], out["start"]))
        return {k: v[order] for k, v in out.items()}

    @staticmethod
    def _first_key(kind: np.ndarray, value: np.ndarray) -> int | None:
        at = np.flatnonzero(kind == _KEY)
        return int(value[at[0]]) if at.size else None

    def decode_meta(self, tokens) -> tuple[int | None, list[tuple[int, int, int]]]:
        """``(key, meters)`` of tokens (up to the first EOS): the first KEY value (None without one; later KEY
        events are ignored, a well-formed piece has one) and every TIME_SIG as ``(grid step, numerator,
        denominator)`` in order. Total."""
        t = self._check_ids(tokens)
        eos = np.flatnonzero(t == self.eos_id)
        t = t[:eos[0]] if eos.size else t
        kind, value = self._kind[t], self._value[t]
        step = np.cumsum(np.where(kind == _SHIFT, value, 0))
        at = np.flatnonzero(kind == _TSIG)
        return self._first_key(kind, value), [(int(step[i]), *time_signature_of(int(value[i]))) for i in at]

    def decode_piece(self, tokens, qpm: float = 120.0) -> Piece:
        """Tokens → ``Piece`` with notes (``decode_notes``), meters (TIME_SIG events, times in this tokenizer's
        unit) and key (the first KEY event, else None); ``encode`` of it gives back well-formed tokens. Total."""
        key, meters = self.decode_meta(tokens)
        times = self.from_steps([m[0] for m in meters]).tolist()
        return Piece(self.decode_notes(tokens), qpm, self.config.time_mode, key=key,
                     meters=[(t, n, d) for t, (_, n, d) in zip(times, meters)])

    def decode_notes(self, tokens) -> list[Note]:
        """Tokens → ``Note`` list (times in quarter notes or seconds), sorted by (start, pitch, instrument, voice).
        Total."""
        a = self.decode_arrays(tokens)
        start, end = self.from_steps(a["start"]).tolist(), self.from_steps(a["end"]).tolist()
        return [Note(p, s, e, v, 0 if i == DRUMS else i, i == DRUMS, k) for p, s, e, v, i, k in
                zip(a["pitch"].tolist(), start, end, a["velocity"].tolist(), a["instrument"].tolist(),
                    a["voice"].tolist())]

    def decode(self, tokens, qpm: float = 120.0):
        """Tokens → ``pretty_midi.PrettyMIDI``; beat-mode steps are converted to seconds at ``qpm``. Total.

        One instrument per program, or with voices per (voice, program) (named "<program name> (voice k)"); each
        TIME_SIG event becomes a time signature change, the first KEY event a key signature at time 0.
        """
        a = self.decode_arrays(tokens)
        key, meters = self.decode_meta(tokens)
        c = self.config
        if c.time_mode == "beat":
            resolution = c.steps_per_quarter * max(1, round(480 / c.steps_per_quarter))
        else:  # a tick divides the step at this tempo when it can
            per_quarter = max(1, round(60.0 / (qpm * c.step_seconds)))
            resolution = per_quarter * max(1, math.ceil(480 / per_quarter))
        return arrays_to_pretty_midi(a["pitch"], self.from_steps(a["start"]), self.from_steps(a["end"]),
                                     a["velocity"], a["instrument"], qpm=qpm, time_mode=c.time_mode,
                                     resolution=resolution, voice=a["voice"] if c.voices else None,
                                     time_signatures=[(float(self.from_steps(s)), n, d) for s, n, d in meters],
                                     key=key)
