"""Validity masks for sampling: ``EventRules`` tracks each stream's voice, program, sounding notes and clock, and
forbids the events that would make a sequence ill formed. Pure numpy, no I/O; ``musicgen.sampler`` applies it.
"""

from __future__ import annotations

import numpy as np

from musicgen.context import ContextTracker, context_names
from musicgen.piece import DRUMS

NEG_INF = np.float32(-np.inf)

_ON, _OFF, _SHIFT, _VEL, _PROG, _EOS, _VOICE, _TSIG, _KEY, _BOS, _STYLE, _OTHER = range(12)
_KINDS = 12
_FREE, _NEEDS_STYLE, _NEEDS_KEY = range(3)  # EventRules.expect: what the next event must be


class EventRules:
    """Per-stream validity masks built from a tokenizer's range table, so sampled sequences stay well formed.

    Tracks, for each of B streams, the current voice and program (0 and 0 at start, as the decoder assumes; program
    128 = drums), the sounding pitches of every (voice, program) (a *slot*; slots are made as pairs come into use),
    the last velocity bin and the elapsed grid steps. ``apply`` then forbids: PAD and BOS always; EOS unless
    ``allow_eos``; a NOTE_OFF of a pitch not sounding in the current voice and program (with ``voice_events``
    "implied": in any voice of the current program, and the voice register moves to the voice whose note it ends, as
    the decoder's rule says); a NOTE_ON of a pitch already
    sounding there (the tokenizer never encodes one); a NOTE_ON outside ``pitch_range`` (pitched programs only, drums
    keep their full key range); any NOTE_ON while ``max_polyphony`` notes sound, or while ``voice_polyphony`` notes
    sound in the current voice. A note of the current slot sounding for ``max_note_steps`` grid steps or more must
    end next: only such NOTE_OFFs stay allowed, or the switch that reaches an overdue note elsewhere (a PROGRAM switch
    within the current voice when one is overdue there, else a VOICE switch); an RNN that misses one NOTE_OFF would
    otherwise hold that note to the end of the sample. ``well_formed=False`` drops the NOTE_ON/NOTE_OFF consistency
    masks (decoding needs none: it ignores a NOTE_OFF of a silent pitch and ends a note at its repeated NOTE_ON),
    leaving the model's own choice among note events; the state is tracked all the same.

    Meter, key and style (vocabularies with TIME_SIG / KEY / STYLE, see ``musicgen.context``): the event right after
    BOS must be a STYLE (``style``: that one) and the next a KEY (``key``: that one), as the encoder writes
    ``BOS STYLE KEY``; STYLE and KEY are forbidden anywhere else; a TIME_SIG is allowed only while the meter of
    the piece is unknown or at a bar start of the current meter, and only before any other event of its grid step
    (at most one per step, before the step's VOICE/PROGRAM/VELOCITY/note events, as the encoder writes them).

    Args:
        tokenizer: a ``Tokenizer`` (``ranges``, ``describe``, ``config``).
        batch: number of streams B.
        pitch_range: inclusive ``(lo, hi)`` MIDI pitches allowed for NOTE_ON, or None for the tokenizer's range.
        max_polyphony: at most this many notes sounding at once in a stream (0: no cap).
        allow_eos: let the model end a stream early with EOS.
        max_note_steps: longest note in grid steps before its NOTE_OFF is forced (0: no limit).
        well_formed: forbid a NOTE_OFF of a pitch not sounding and a NOTE_ON of a pitch already sounding.
        voice_polyphony: at most this many notes sounding at once in one voice (0: no cap); None takes the
            tokenizer config's ``voice_polyphony`` (1 when ingest found every part of the corpus monophonic).
        key: the KEY value (0..23) every stream must take after BOS: one int, or int (B,) one per stream (None: any
            KEY; key-mode vocabularies only).
        style: the STYLE value every stream must take after BOS: one int, or int (B,) one per stream (None: any;
            styles vocabularies only).
        programs: the programs (0..127, 128 = drums) that may start notes (None: all; PROGRAM vocabularies only):
            a PROGRAM switch to another is forbidden (unless it reaches an overdue note); while the current program
            is another (the start program 0 included), NOTE_ON and TIME_SHIFT are, so the stream switches first.
        max_voices: at most this many voices per stream (VOICE events 0..N-1 only): one int, or int (B,) one per
            stream (None or 0: no cap; voices vocabularies only). A VOICE the stream already used (e.g. in a primer)
            is never forbidden: observing VOICE(v) raises that stream's cap to v + 1 (``musicgen.voices``).
        context: keep ``self.context`` (a ``context.ContextTracker`` of the observed events) for a model with
            context inputs too; a TIME_SIG vocabulary keeps it anyway (the bar-start rule reads it). The sampler
            feeds the model from it, so the events are tracked once.
    """

    def __init__(self, tokenizer, batch: int, pitch_range: tuple[int, int] | None = None, max_polyphony: int = 0,
                 allow_eos: bool = False, max_note_steps: int = 0, well_formed: bool = True,
                 voice_polyphony: int | None = None, key=None, programs=None, context: bool = False,
                 style=None, max_voices=None):
        r = tokenizer.ranges
        self.vocab_size, self.batch, self.max_polyphony = tokenizer.vocab_size, batch, max_polyphony
        self.max_note_steps, self.well_formed = max_note_steps, well_formed
        if voice_polyphony is None:
            voice_polyphony = getattr(tokenizer.config, "voice_polyphony", 0)
        self.voice_polyphony = voice_polyphony
        self.on0, self.n_pitch = r["NOTE_ON"]
        self.off0 = r["NOTE_OFF"][0]
        if self.off0 != self.on0 + self.n_pitch:
            raise ValueError("tokenizer: NOTE_OFF ids must follow the NOTE_ON ids")
        self.min_pitch = tokenizer.describe(self.on0)[1]
        self.shift0, self.n_shift = r["TIME_SHIFT"]
        self.prog0 = r["PROGRAM"][0] if "PROGRAM" in r else None
        self.vel0 = r["VELOCITY"][0] if "VELOCITY" in r else None
        self.voice0 = r["VOICE"][0] if "VOICE" in r else None
        self.n_voice_ids = r["VOICE"][1] if "VOICE" in r else 0
        # voice_events "implied": a NOTE_OFF may end a note of its program in any voice (the decoder's rule picks it)
        self.implied = self.voice0 is not None and getattr(tokenizer.config, "voice_events", "all") == "implied"
        self.n_vel_ids = r["VELOCITY"][1] if "VELOCITY" in r else 0
        self.kind = np.full(self.vocab_size, _OTHER, np.int64)
        self.value = np.zeros(self.vocab_size, np.int64)
        names = {"NOTE_ON": _ON, "NOTE_OFF": _OFF, "TIME_SHIFT": _SHIFT, "VELOCITY": _VEL, "PROGRAM": _PROG,
                 "EOS": _EOS, "VOICE": _VOICE, "TIME_SIG": _TSIG, "KEY": _KEY, "BOS": _BOS,
                 "STYLE": _STYLE}
        for name, (first, size) in r.items():
            if name in names:
                self.kind[first:first + size] = names[name]
                self.value[first:first + size] = [tokenizer.describe(i)[1] for i in range(first, first + size)]
        self.static = np.zeros(self.vocab_size, np.float32)        # additive: 0 allowed, -inf forbidden
        self.pad_id = tokenizer.pad_id
        self.static[[tokenizer.pad_id, tokenizer.bos_id]] = NEG_INF
        if not allow_eos:
            self.static[tokenizer.eos_id] = NEG_INF
        pitches = np.arange(self.n_pitch) + self.min_pitch
        lo, hi = pitch_range if pitch_range is not None else (pitches[0], pitches[-1])
        self.range_add = np.where((pitches >= lo) & (pitches <= hi), 0, NEG_INF).astype(np.float32)
        self.range_limited = bool(np.isinf(self.range_add).any())
        n_voices = r["VOICE"][1] if self.voice0 is not None else 1
        n_programs = 129 if self.prog0 is not None else 1
        # slot_of[voice, program]: the slot of that pair (-1: none yet); note_add[b, slot] is the additive mask over
        # [NOTE_ON block | NOTE_OFF block] of that pair, onset[b, slot, pitch] the elapsed steps at each NOTE_ON
        self.slot_of = np.full((n_voices, n_programs), -1, np.int64)
        self.slot_voice, self.slot_program = np.zeros(0, np.int64), np.zeros(0, np.int64)
        self.note_add = np.zeros((batch, 0, 2 * self.n_pitch), np.float32)
        self.onset = np.zeros((batch, 0, self.n_pitch), np.int64)
        if n_voices == 1:  # without voices every program's slot is made now, in program order
            self._slots(np.zeros(n_programs, np.int64), np.arange(n_programs))
        self.rows = np.arange(batch)
        self.voice = np.zeros(batch, np.int64)
        self.program = np.zeros(batch, np.int64)
        self.slot = self._slots(self.voice, self.program)
        self.velocity_bin = np.zeros(batch, np.int64)              # 0: none seen yet
        self.sounding = np.zeros(batch, np.int64)
        self.voice_sounding = np.zeros((batch, n_voices), np.int64)
        self.elapsed = np.zeros(batch, np.int64)                   # grid steps since reset_clock
        self.due = np.full(batch, np.iinfo(np.int64).max)           # no note can be overdue before this elapsed
        self.done = np.zeros(batch, bool)
        self._init_meter_and_key(tokenizer, key, context, style)
        self.programs_allowed = None
        if programs is not None:
            if self.prog0 is None:
                raise ValueError("programs: the vocabulary has no PROGRAM events to choose among")
            self.programs_allowed = np.zeros(129, bool)
            self.programs_allowed[list(programs)] = True
            self.static[self.prog0:self.prog0 + 129][~self.programs_allowed] = NEG_INF
        self.voice_cap = None                                      # int64 (B,): VOICE values below it are allowed
        if max_voices is not None and np.any(np.asarray(max_voices) > 0):
            if self.voice0 is None:
                raise ValueError("max_voices: the vocabulary has no VOICE events to cap")
            cap = np.broadcast_to(np.asarray(max_voices, np.int64), (batch,))
            self.voice_cap = np.where(cap > 0, np.minimum(cap, self.n_voice_ids), self.n_voice_ids)
            self.voice_add = self._voice_mask(self.voice_cap)

    def _voice_mask(self, cap: np.ndarray) -> np.ndarray:
        """float32 (len(cap), voice ids): 0 for the VOICE values below each row's cap, -inf from it on."""
        return np.where(np.arange(self.n_voice_ids)[None, :] < cap[:, None], 0, NEG_INF).astype(np.float32)

    def _forced(self, ranges, kind: str, value, name: str, where: str):
        """``(block, ids)`` of the ``kind`` events (STYLE, KEY) that must follow BOS: the block's (first, end) ids (None
        when the vocabulary has none) and, from ``value`` (None, one int or int (B,)), each stream's id (None: any)."""
        block = (ranges[kind][0], ranges[kind][0] + ranges[kind][1]) if kind in ranges else None
        if value is None:
            return block, None
        values = np.broadcast_to(np.asarray(value, np.int64), (self.batch,))
        if block is None or values.min() < 0 or values.max() >= block[1] - block[0]:
            raise ValueError(f"{name}: expected None, or {kind} values in {where}, got {value!r}")
        return block, block[0] + values

    def _init_meter_and_key(self, tokenizer, key=None, context: bool = False, style=None) -> None:
        r = tokenizer.ranges
        # (first id, end id) of the STYLE / KEY block, and the id each stream must take (int64 (B,); None: any)
        self.style_block, self.style_ids = self._forced(r, "STYLE", style, "style", "a styles vocabulary")
        self.key_block, self.key_ids = self._forced(r, "KEY", key, "key", "a key-mode vocabulary")
        self.tsig_block = (r["TIME_SIG"][0], r["TIME_SIG"][0] + r["TIME_SIG"][1]) if "TIME_SIG" in r else None
        self.expect = np.full(self.batch, _FREE, np.int64)       # a STYLE or a KEY must come next
        self.step_settled = np.zeros(self.batch, bool)           # an event other than a shift/KEY at this grid step
        self.context = ContextTracker(tokenizer, self.batch) if self.tsig_block or context else None
        self.bar_column = context_names(tokenizer.config).index("bar_start") if self.tsig_block else None

    def _slots(self, voices: np.ndarray, programs: np.ndarray) -> np.ndarray:
        """Slot ids of the ``(voices[i], programs[i])`` pairs, int64 like ``voices``; new pairs get new slots (the
        arrays grow by doubling, so a model that switches programs at random costs no copy per step)."""
        new = self.slot_of[voices, programs] < 0
        if new.any():
            pairs = np.unique(np.stack([voices[new], programs[new]], axis=1), axis=0)
            first, k = self.slot_voice.size, len(pairs)
            if first + k > self.note_add.shape[1]:
                grow = max(2 * self.note_add.shape[1], first + k, 4)
                note_add = np.full((self.batch, grow, 2 * self.n_pitch), NEG_INF, np.float32)
                onset = np.zeros((self.batch, grow, self.n_pitch), np.int64)
                note_add[:, :first], onset[:, :first] = self.note_add[:, :first], self.onset[:, :first]
                self.note_add, self.onset = note_add, onset
            self.slot_of[pairs[:, 0], pairs[:, 1]] = np.arange(first, first + k)
            self.slot_voice = np.append(self.slot_voice, pairs[:, 0])
            self.slot_program = np.append(self.slot_program, pairs[:, 1])
            # nothing sounds in a new slot: no NOTE_OFF; NOTE_ON in the pitch range (drums: every key)
            self.note_add[:, first:first + k, :self.n_pitch] = np.where((pairs[:, 1] == DRUMS)[:, None], 0,
                                                                        self.range_add)
        return self.slot_of[voices, programs]

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Set forbidden events of each row of ``logits`` (B, V) to -inf, in place; returns ``logits``."""
        logits += self.static
        if self.voice_cap is not None:
            logits[:, self.voice0:self.voice0 + self.n_voice_ids] += self.voice_add
        if self.well_formed:
            add = self.note_add[self.rows, self.slot]
            if self.implied:  # the OFF block: a pitch sounding in any voice of the current program
                add[:, self.n_pitch:] = np.where(self._program_sounding(), 0, NEG_INF)
            logits[:, self.on0:self.off0 + self.n_pitch] += add
        elif self.range_limited:
            logits[self.program != DRUMS, self.on0:self.off0] += self.range_add
        if self.max_polyphony:
            full = self.sounding >= self.max_polyphony
            if full.any():
                logits[full, self.on0:self.off0] = NEG_INF
        if self.voice_polyphony:
            full = self.voice_sounding[self.rows, self.voice] >= self.voice_polyphony
            if full.any():
                logits[full, self.on0:self.off0] = NEG_INF
        if self.programs_allowed is not None:
            outside = ~self.programs_allowed[self.program]
            if outside.any():
                logits[outside, self.on0:self.off0] = NEG_INF
                logits[outside, self.shift0:self.shift0 + self.n_shift] = NEG_INF
                # a model that never writes PROGRAM (a one-program corpus: the tokenizer leaves program 0 implicit)
                # could wander among VOICE/VELOCITY events: once an allowed PROGRAM can be drawn, it must be
                can = outside & np.isfinite(logits[:, self.prog0:self.prog0 + 129]).any(axis=1)
                for first, size in ((self.voice0, self.n_voice_ids), (self.vel0, self.n_vel_ids)):
                    if first is not None and can.any():
                        logits[can, first:first + size] = NEG_INF
        if self.max_note_steps:
            self._force_overdue_offs(logits)
        if self.tsig_block is not None:
            bar = self.context.features()[:, self.bar_column]               # 0 unknown, 1 off, 2 on a bar start
            shut = self.step_settled | (bar == 1)
            if shut.any():
                logits[shut, self.tsig_block[0]:self.tsig_block[1]] = NEG_INF
        for block, ids, code in ((self.style_block, self.style_ids, _NEEDS_STYLE),
                                 (self.key_block, self.key_ids, _NEEDS_KEY)):
            if block is not None:  # only where it must come next, and then only it (that id, or any of the block)
                logits[self.expect != code, block[0]:block[1]] = NEG_INF
                rows = np.flatnonzero(self.expect == code)
                if rows.size:
                    keep = np.full((rows.size, self.vocab_size), NEG_INF, np.float32)
                    if ids is None:
                        keep[:, block[0]:block[1]] = 0
                    else:
                        keep[np.arange(rows.size), ids[rows]] = 0
                    logits[rows] += keep
        return logits

    def _program_sounding(self) -> np.ndarray:
        """bool (B, pitches): the pitches sounding in any voice of each stream's current program."""
        n = self.slot_voice.size
        same = self.slot_program[None, :] == self.program[:, None]                        # (B, slots)
        return ((self.note_add[:, :n, self.n_pitch:] == 0) & same[:, :, None]).any(axis=1)

    def _resolve_offs(self, idx: np.ndarray, p: np.ndarray) -> None:
        """Implied voices: rows ``idx`` take a NOTE_OFF of pitch index ``p`` that does not sound in their voice; the
        voice register moves to the lowest voice of the current program where it sounds (none: unchanged)."""
        here = self.note_add[idx, self.slot[idx], self.n_pitch + p] == 0
        idx, p = idx[~here], p[~here]
        if not idx.size:
            return
        n = self.slot_voice.size
        sounds = self.note_add[idx[:, None], np.arange(n)[None, :], (self.n_pitch + p)[:, None]] == 0  # (R, slots)
        cand = sounds & (self.slot_program[None, :] == self.program[idx][:, None])
        found = cand.any(axis=1)
        best = np.where(cand, self.slot_voice[None, :], np.iinfo(np.int64).max).argmin(axis=1)
        idx, best = idx[found], best[found]
        self.voice[idx] = self.slot_voice[best]
        self.slot[idx] = best

    def _force_overdue_offs(self, logits: np.ndarray) -> None:
        """Rows with an overdue note may only end it: its NOTE_OFF, or first the switch that reaches its slot."""
        rows = np.flatnonzero(self.elapsed >= self.due)                        # cheap test first: the hot path
        if not rows.size:
            return
        n = self.slot_voice.size
        sounding = self.note_add[rows, :n, self.n_pitch:] == 0                  # (R, slots, pitches)
        overdue = sounding & (self.elapsed[rows, None, None] - self.onset[rows, :n] >= self.max_note_steps)
        hit = overdue.any(axis=(1, 2))
        quiet = rows[~hit]                                                      # due passed, notes since ended
        if quiet.size:
            onsets = np.where(sounding[~hit], self.onset[quiet, :n], np.iinfo(np.int64).max)
            self.due[quiet] = np.minimum(onsets.min(axis=(1, 2)), np.iinfo(np.int64).max - self.max_note_steps) \
                + self.max_note_steps
        rows, overdue = rows[hit], overdue[hit]
        if not rows.size:
            return
        here = overdue[np.arange(rows.size), self.slot[rows]]                  # (R, pitches)
        forced = np.full((rows.size, self.vocab_size), NEG_INF, np.float32)
        forced[:, self.off0:self.off0 + self.n_pitch] = np.where(here, 0, NEG_INF)
        elsewhere = np.flatnonzero(~here.any(axis=1))
        if elsewhere.size:
            late = overdue[elsewhere].any(axis=2)                               # (E, slots) holding an overdue note
            in_voice = late & (self.slot_voice == self.voice[rows[elsewhere], None])
            by_program = in_voice.any(axis=1)        # a PROGRAM switch within the voice reaches one, else a VOICE
            e, s = np.nonzero(np.where(by_program[:, None], in_voice, late))
            switch = np.where(by_program[e], (self.prog0 or 0) + self.slot_program[s],
                              (self.voice0 or 0) + self.slot_voice[s])
            forced[elsewhere[e], switch] = 0
        allowed = logits[rows] + forced
        stuck = np.isneginf(allowed).all(axis=1)     # the switch is to a program --instruments left out (a primer's)
        logits[rows] = np.where(stuck[:, None], forced, allowed)

    def observe(self, tokens: np.ndarray, limit_steps: int | None = None) -> np.ndarray:
        """Update the state with the events just emitted, shape (B,); returns the tokens actually kept.

        Streams already done get PAD; a NOTE_OFF of a silent pitch or a NOTE_ON of a sounding one (possible in a
        primer) leaves the note count right. With ``limit_steps``, a TIME_SHIFT that reaches the limit is shortened
        to end exactly on it and finishes its stream; an EOS finishes its stream too (and is written as PAD: the notes
        still sounding are closed by ``closing_tokens``).
        """
        tokens = np.where(self.done, self.pad_id, tokens)
        kind, value = self.kind[tokens], self.value[tokens]
        present = np.bincount(kind, minlength=_KINDS)
        if present[_OFF] and self.implied:
            idx = np.flatnonzero(kind == _OFF)
            self._resolve_offs(idx, value[idx] - self.min_pitch)
        if present[_ON] or present[_OFF]:
            idx = np.flatnonzero((kind == _ON) | (kind == _OFF))
            slot, p = self.slot[idx], value[idx] - self.min_pitch
            on = kind[idx] == _ON
            was_sounding = self.note_add[idx, slot, self.n_pitch + p] == 0
            change = on.astype(np.int64) - was_sounding
            self.sounding[idx] += change
            self.voice_sounding[idx, self.voice[idx]] += change
            self.note_add[idx, slot, self.n_pitch + p] = np.where(on, 0, NEG_INF)
            self.note_add[idx, slot, p] = np.where(on, NEG_INF, np.where(self.slot_program[slot] == DRUMS, 0,
                                                                         self.range_add[p]))
            self.onset[idx[on], slot[on], p[on]] = self.elapsed[idx[on]]
            np.minimum.at(self.due, idx[on], self.elapsed[idx[on]] + self.max_note_steps)
        if present[_PROG] or present[_VOICE]:
            idx = np.flatnonzero(kind == _PROG)
            self.program[idx] = value[idx]
            idx = np.flatnonzero(kind == _VOICE)
            self.voice[idx] = value[idx]
            if self.voice_cap is not None and (value[idx] >= self.voice_cap[idx]).any():  # a primer's own voices
                self.voice_cap[idx] = np.maximum(self.voice_cap[idx], value[idx] + 1)
                self.voice_add[idx] = self._voice_mask(self.voice_cap[idx])
            idx = np.flatnonzero((kind == _PROG) | (kind == _VOICE))
            self.slot[idx] = self._slots(self.voice[idx], self.program[idx])
        if present[_VEL]:
            idx = np.flatnonzero(kind == _VEL)
            self.velocity_bin[idx] = value[idx]
        if present[_SHIFT]:
            idx = np.flatnonzero(kind == _SHIFT)
            self.elapsed[idx] += value[idx]
            if limit_steps is not None:
                over = idx[self.elapsed[idx] >= limit_steps]
                if over.size:
                    tokens[over] -= self.elapsed[over] - limit_steps
                    self.elapsed[over] = limit_steps
                    self.done[over] = True
        if present[_EOS]:
            idx = np.flatnonzero(kind == _EOS)
            tokens[idx] = self.pad_id
            self.done[idx] = True
        self._observe_meter_and_key(tokens, kind)
        return tokens

    def _observe_meter_and_key(self, tokens: np.ndarray, kind: np.ndarray) -> None:
        moved = tokens != self.pad_id
        key_next = _NEEDS_KEY if self.key_block is not None else _FREE
        after_bos = _NEEDS_STYLE if self.style_block is not None else key_next
        nxt = np.where(kind == _BOS, after_bos, np.where(kind == _STYLE, key_next, _FREE))
        self.expect = np.where(moved, nxt, self.expect)
        fresh = (kind == _SHIFT) | (kind == _BOS)
        settles = moved & ~fresh & (kind != _KEY) & (kind != _STYLE)
        self.step_settled = (self.step_settled & ~fresh) | settles
        if self.context is not None:
            self.context.update(tokens)

    def _sounding(self, stream: int) -> list[tuple[int, int, int]]:
        slot, p = np.nonzero(self.note_add[stream, :, self.n_pitch:] == 0)
        return sorted((int(self.slot_voice[s]), int(self.slot_program[s]), int(q) + self.min_pitch)
                      for s, q in zip(slot, p))

    def sounding_notes(self, stream: int) -> list[tuple[int, ...]]:
        """``(program, pitch)`` of every note sounding in ``stream``, sorted; ``(voice, program, pitch)`` when the
        vocabulary has VOICE events."""
        notes = self._sounding(stream)
        return notes if self.voice0 is not None else [n[1:] for n in notes]

    def closing_tokens(self, stream: int) -> list[int]:
        """NOTE_OFFs (with VOICE and PROGRAM switches where needed) that end every note still sounding in ``stream``;
        the current voice and program's first."""
        out, voice, program = [], int(self.voice[stream]), int(self.program[stream])
        for v, prog, pitch in sorted(self._sounding(stream), key=lambda n: ((n[0], n[1]) != (voice, program), n)):
            if v != voice:
                out.append(self.voice0 + v)
                voice = v
            if prog != program:
                out.append(self.prog0 + prog)
                program = prog
            out.append(self.off0 + pitch - self.min_pitch)
        return out

    def reset_clock(self) -> None:
        """Start counting elapsed steps (and stopping by time) from now, e.g. after the primer."""
        self.onset -= self.elapsed[:, None, None]
        self.due = np.where(self.due == np.iinfo(np.int64).max, self.due, self.due - self.elapsed)
        self.elapsed[:] = 0
