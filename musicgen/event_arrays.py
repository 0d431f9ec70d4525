"""The tokenizer's vectorized kernels: velocity bins, a fast lexsort, forward fill, and the emitter that turns sorted
note events into token ids (``emit_tokens``). ``musicgen.tokenizer`` documents the events; nothing here reads files.
"""

from __future__ import annotations

import numpy as np


def velocity_tables(bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(to_bin, to_velocity)``: int64 arrays of shape (128,) (velocity → bin, 0 → bin 1) and (bins + 1,)."""
    v = np.arange(128)
    to_bin = 1 + (np.maximum(v - 1, 0) * bins) // 127  # 127 velocities 1..127 share the bins
    to_velocity = np.zeros(bins + 1, dtype=np.int64)
    for b in range(1, bins + 1):
        members = v[1:][to_bin[1:] == b]
        to_velocity[b] = (members[0] + members[-1]) // 2
    return to_bin.astype(np.int64), to_velocity


def _lex_order(*keys: np.ndarray) -> np.ndarray:
    """``np.lexsort(keys)`` (the last key primary, stable) for non-negative integer keys: packed into one int64 and
    argsorted when their bit widths fit in 63 bits (about 10x faster than lexsort), else lexsort itself."""
    keys = tuple(np.asarray(k, dtype=np.int64) for k in keys)
    widths = [int(k.max()).bit_length() if k.size else 0 for k in keys]
    if sum(widths) > 63 or any(k.size and k.min() < 0 for k in keys):
        return np.lexsort(keys)
    packed, shift = np.zeros(keys[0].shape, np.int64), 0
    for k, width in zip(keys, widths):
        if width:
            packed |= k << shift
        shift += width
    return np.argsort(packed, kind="stable")


def _forward_fill(mask: np.ndarray, values: np.ndarray, default: int) -> np.ndarray:
    """At each position, ``values`` at the latest position <= it where ``mask`` is set, else ``default``."""
    last = np.maximum.accumulate(np.where(mask, np.arange(mask.size), -1)) if mask.size else mask.astype(np.int64)
    return np.where(last >= 0, values[np.maximum(last, 0)], default)


def shared_offs(seg, inst, pitch, on) -> np.ndarray:
    """bool (n,) over note events in token order (``seg`` piece, ``inst``, ``pitch``, ``on`` NOTE_ON): the NOTE_OFFs
    whose (program, pitch) sounds in two or more voices just before them (so the pitch alone cannot say whose note
    ends). Each (voice, program, pitch) sounds at most once, as the encoder makes it."""
    n = seg.size
    out = np.zeros(n, bool)
    if not n:
        return out
    order = _lex_order(pitch, inst, seg)  # stable: token order within each (piece, program, pitch)
    delta = np.where(on[order], 1, -1)
    total = np.cumsum(delta)
    g_seg, g_inst, g_pitch = seg[order], inst[order], pitch[order]
    new = np.ones(n, bool)
    new[1:] = (g_seg[1:] != g_seg[:-1]) | (g_inst[1:] != g_inst[:-1]) | (g_pitch[1:] != g_pitch[:-1])
    base = _forward_fill(new, total - delta, 0)  # the running total before each group
    before = total - delta - base  # voices sounding the pitch just before the event
    out[order] = (delta < 0) & (before >= 2)
    return out


def implied_voice_track(kind, value, inst, on_code: int, off_code: int, voice_code: int,
                        piece_start=None) -> np.ndarray:
    """int64 (n,): the voice register after each event of ``voice_events="implied"`` tokens (``kind``/``value``
    codes and values, ``inst`` the program in force at each position). A VOICE sets it; a NOTE_OFF of a pitch that
    does not sound in the register's voice (of the program in force) moves it to the lowest voice where that pitch
    sounds (none: unchanged). Starts at voice 0, and again at each True of ``piece_start`` (bool (n,), None: one
    piece). A sequential pass over the note and VOICE events (a few hundred thousand per second)."""
    n = kind.size
    track = np.zeros(n, np.int64)
    idx = np.flatnonzero((kind == on_code) | (kind == off_code) | (kind == voice_code)
                         | (piece_start if piece_start is not None else False))
    starts = piece_start if piece_start is not None else np.zeros(n, bool)
    sounding: dict[tuple[int, int], set] = {}
    reg = 0
    at = np.zeros(n, bool)
    for i, k, v, prog, fresh in zip(idx.tolist(), kind[idx].tolist(), value[idx].tolist(), inst[idx].tolist(),
                                    starts[idx].tolist()):
        if fresh:
            sounding, reg = {}, 0
        if k == voice_code:
            reg = v
        elif k == on_code:
            sounding.setdefault((prog, v), set()).add(reg)
        elif k == off_code:
            voices = sounding.get((prog, v))
            if voices:
                if reg not in voices:
                    reg = min(voices)
                voices.discard(reg)
        track[i] = reg
        at[i] = True
    return _forward_fill(at | starts, track, 0)


def emit_tokens(tok, seg, time, on, inst, pitch, vbin, voice, note, n_segments: int, keys=None):
    """Sorted events of the ``Tokenizer`` ``tok`` → ``(tokens, offsets, too_long)`` (see
    ``Tokenizer._encode_segments``); state resets at each piece. Columns of shape (m,), sorted by (piece, step,
    TIME_SIG first, voice, NOTE_OFF first, instrument, pitch): ``seg`` piece, ``time`` grid step, ``on`` NOTE_ON,
    ``inst``, ``pitch``, ``vbin`` velocity bin, ``voice``, ``note`` (False for a TIME_SIG pseudo-event, its value in
    ``pitch``); ``keys`` int64 (n_segments,) the KEY value of each piece when ``tok.config.key``."""
    c, m = tok.config, tok.config.max_shift_steps
    first = np.ones(time.size, bool)  # the first event of its piece: shift from 0
    first[1:] = seg[1:] != seg[:-1]
    dt = np.where(first, time, np.diff(time, prepend=0))
    n_shift = (dt + m - 1) // m
    note_idx = np.flatnonzero(note)  # VOICE and PROGRAM registers change between note events only
    first_note = np.ones(note_idx.size, bool)
    first_note[1:] = seg[note_idx][1:] != seg[note_idx][:-1]
    prog = np.zeros(time.size, bool)
    if c.programs:
        prog[note_idx[1:]] = inst[note_idx][1:] != inst[note_idx][:-1]
        prog[note_idx] |= first_note
    vox = np.zeros(time.size, bool)
    if c.voices:
        vox[note_idx[1:]] = voice[note_idx][1:] != voice[note_idx][:-1]
        if c.voice_events == "implied":  # a NOTE_OFF whose pitch sounds in one voice only names that voice itself
            vox[note_idx] &= on[note_idx] | shared_offs(seg[note_idx], inst[note_idx], pitch[note_idx], on[note_idx])
        vox[note_idx] |= first_note
    vel = np.zeros(time.size, bool)
    if c.velocity_bins > 0:
        on_idx = np.flatnonzero(on)
        on_bin, on_seg = vbin[on_idx], seg[on_idx]
        change = np.ones(on_idx.size, bool)
        change[1:] = (on_bin[1:] != on_bin[:-1]) | (on_seg[1:] != on_seg[:-1])
        vel[on_idx] = change
    counts = n_shift + vox + prog + vel + 1
    head = 1 + bool(c.key)  # BOS, and KEY
    sizes = np.bincount(seg, weights=counts, minlength=n_segments).astype(np.int64) + head + 1
    too_long = np.where(sizes > tok.max_tokens, sizes, 0)
    if too_long.any():  # refuse those pieces before allocating their tokens
        fits = too_long[seg] == 0
        seg, time, on, inst, pitch, vbin, voice, note, dt, n_shift, vox, prog, vel, counts = (
            a[fits] for a in (seg, time, on, inst, pitch, vbin, voice, note, dt, n_shift, vox, prog, vel,
                              counts))
        sizes = np.where(too_long > 0, head + 1, sizes)
    offsets = np.zeros(n_segments + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.int32)
    out[offsets[:-1]], out[offsets[1:] - 1] = tok.bos_id, tok.eos_id
    if c.key:
        out[offsets[:-1] + 1] = tok.ranges["KEY"][0] + np.asarray(keys, np.int64)
    end = head + (head + 1) * seg + np.cumsum(counts)  # each earlier piece adds its head and EOS
    begin = end - counts
    event = np.where(on, tok.ranges["NOTE_ON"][0], tok.ranges["NOTE_OFF"][0]) + pitch - c.min_pitch
    out[end - 1] = np.where(note, event, tok.ranges["TIME_SIG"][0] + pitch) if c.meter else event
    if c.velocity_bins > 0:
        out[(end - 2)[vel]] = tok.ranges["VELOCITY"][0] + vbin[vel] - 1
    if c.programs:
        out[(end - 2 - vel)[prog]] = tok.ranges["PROGRAM"][0] + inst[prog]
    if c.voices:
        out[(end - 2 - vel - prog)[vox]] = tok.ranges["VOICE"][0] + voice[vox]
    shift0 = tok.ranges["TIME_SHIFT"][0]
    group_start = np.repeat(np.cumsum(n_shift) - n_shift, n_shift)
    out[np.repeat(begin, n_shift) + np.arange(group_start.size) - group_start] = shift0 + m - 1
    has = n_shift > 0
    out[(begin + n_shift - 1)[has]] = shift0 + (dt - (n_shift - 1) * m)[has] - 1
    return out, offsets, too_long
