"""Near-duplicate fingerprints of many pieces at once: ``dedup.fingerprint``'s exact result, vectorized over a batch.

``dedup.fingerprint`` decodes, featurizes and shingles one piece with ~60 numpy calls; on pieces of ~700 events
their fixed cost dominates (measured on the 410 Bach chorales: ~5 µs per event). ``batch_fingerprints`` runs the
same steps once over a batch of pieces laid end to end, each step made segment-aware (a cumulative sum, a
forward fill, a difference or a shingle window never crosses from one piece into the next), so the cost per event
is that of numpy's inner loops. The result is equal, piece by piece, to ``dedup.fingerprint`` (hashes, anchors and
music key; ``tests/test_fingerprints.py`` checks it on hand-made pieces, random token sequences and the test corpus).

Decoding follows ``Tokenizer.decode_arrays`` step by step (see its docstring and the module docstring of
``musicgen.tokenizer``): tokens after a piece's first EOS are ignored; time, program and voice are running
registers that restart at each piece; a NOTE_ON ends at the next NOTE_ON/NOTE_OFF of its (voice, program, pitch),
else at the piece's last step; ``key="normalize"`` moves pitches back by the piece's first KEY.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musicgen.dedup import MAX_INTERVAL, MAX_RATIO_CLASS, Fingerprint, music_key, shingles
from musicgen.errors import UsageError
from musicgen.midi_io import DRUMS

__all__ = ["FingerprintBatch", "batch_fingerprints", "flat_fingerprints"]


@dataclass(frozen=True)
class FingerprintBatch:
    """Fingerprints of ``m`` pieces, concatenated: ``hashes`` uint64 (S,) each piece's sorted distinct shingles,
    ``anchors`` int16 (S,), ``offsets`` int64 (m+1,) piece j's rows ``offsets[j]:offsets[j+1]``, ``music`` (m,)
    music keys."""

    hashes: np.ndarray
    anchors: np.ndarray
    offsets: np.ndarray
    music: list[str]

    def __len__(self) -> int:
        return len(self.music)

    @property
    def sizes(self) -> np.ndarray:
        """int64 (m,) distinct shingles per piece."""
        return np.diff(self.offsets)

    def __getitem__(self, j: int) -> Fingerprint:
        lo, hi = int(self.offsets[j]), int(self.offsets[j + 1])
        return Fingerprint(self.hashes[lo:hi], self.anchors[lo:hi], self.music[j])


def _segment_starts(seg: np.ndarray, m: int) -> np.ndarray:
    """Index of the first row of each piece 0..m-1 in the piece-sorted ``seg`` (rows of an empty piece: where it
    would be), shape (m,)."""
    return np.searchsorted(seg, np.arange(m), side="left")


def _fill(mask: np.ndarray, values: np.ndarray, seg_first: np.ndarray, default: int) -> np.ndarray:
    """At each row, ``values`` at the latest row <= it of the same piece where ``mask`` is set, else ``default``;
    ``seg_first`` (n,) is the first row of each row's piece."""
    last = np.maximum.accumulate(np.where(mask, np.arange(mask.size), -1)) if mask.size else np.zeros(0, np.int64)
    ok = last >= seg_first
    return np.where(ok, values[np.maximum(last, 0)], default)


def _decode(tokenizer, t: np.ndarray, seg: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(seg, pitch, start)`` int64 of every decoded non-drum note, sorted by (piece, start, pitch, instrument,
    voice) like ``decode_arrays``; ``t``/``seg`` the tokens and their piece, piece-sorted, EOS tails removed."""
    from musicgen.tokenizer import N_PROGRAMS, PITCHES, _KEY, _OFF, _ON, _PROG, _SHIFT, _VOICE
    from musicgen.meter import normalize_shift

    kind, value = tokenizer._kind[t], tokenizer._value[t]
    starts = _segment_starts(seg, m)
    first = starts[seg]
    shift = np.cumsum(np.where(kind == _SHIFT, value, 0))
    before = np.concatenate([[0], shift])[starts]  # shift total before each piece
    time = shift - before[seg]
    ends = np.append(starts[1:], t.size)
    final = np.where(ends > starts, np.concatenate([[0], time])[ends], 0)  # last step of each piece
    inst = _fill(kind == _PROG, value, first, 0)
    if getattr(tokenizer.config, "voice_events", "all") == "implied":  # NOTE_OFFs move the voice too
        from musicgen.event_arrays import implied_voice_track

        piece_start = np.zeros(t.size, bool)
        piece_start[starts[starts < t.size]] = True
        voice = implied_voice_track(kind, value, inst, _ON, _OFF, _VOICE, piece_start)
    else:
        voice = _fill(kind == _VOICE, value, first, 0)
    pos = np.flatnonzero((kind == _ON) | (kind == _OFF))
    voices = max(1, int(tokenizer.config.voices))
    key = ((seg[pos] * voices + voice[pos]) * N_PROGRAMS + inst[pos]) * PITCHES + value[pos]
    order = np.argsort(key, kind="stable")
    pos, key = pos[order], key[order]
    is_on, tm = kind[pos] == _ON, time[pos]
    next_same = np.append(key[1:] == key[:-1], False)
    end = np.where(next_same, np.append(tm[1:], 0), final[seg[pos]])
    keep = is_on & ~((end <= tm) & next_same)
    pos, start = pos[keep], tm[keep]
    pitch, note_seg, note_inst, note_voice = value[pos], seg[pos], inst[pos], voice[pos]
    if tokenizer.config.key == "normalize":
        at = np.flatnonzero(kind == _KEY)
        first_key = np.zeros(m, np.int64)  # no KEY: C
        if at.size:
            s, idx = np.unique(seg[at], return_index=True)
            first_key[s] = value[at[idx]] % 12
        pitch = pitch - np.where(note_inst == DRUMS, 0, normalize_shift(first_key[note_seg]))
        fits = (pitch >= tokenizer.config.min_pitch) & (pitch <= tokenizer.config.max_pitch)
        pitch, start, note_seg, note_inst, note_voice = (a[fits] for a in (pitch, start, note_seg, note_inst,
                                                                            note_voice))
    order = np.lexsort((note_voice, note_inst, pitch, start, note_seg))
    pitch, start, note_seg, note_inst = pitch[order], start[order], note_seg[order], note_inst[order]
    melodic = note_inst != DRUMS
    return note_seg[melodic], pitch[melodic], start[melodic]


def _features(seg: np.ndarray, pitch: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``dedup.note_features`` of every piece at once (notes sorted by piece, start, pitch; unison duplicates
    already dropped): ``(piece, feature code, anchor pitch)`` int64 of every note that has a predecessor in its
    piece."""
    if pitch.size < 2:
        return (np.zeros(0, np.int64),) * 3
    same = seg[1:] == seg[:-1]  # position k: note k+1 after note k of the same piece
    interval = np.clip(np.diff(pitch), -MAX_INTERVAL, MAX_INTERVAL) + MAX_INTERVAL
    ioi = np.diff(start).astype(np.float64)
    moving = (ioi > 0) & same
    k = np.arange(ioi.size)
    idx = np.where(moving, k, -1)
    prev = np.maximum.accumulate(np.concatenate([[-1], idx[:-1]]))
    seg_of = seg[1:]
    first_k = np.searchsorted(seg_of, seg_of, side="left")  # first position of this piece's features (or later)
    prev = np.where(prev >= first_k, prev, -1)
    prev_ioi = np.where(prev >= 0, ioi[np.maximum(prev, 0)], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.rint(2 * np.log2(np.where(moving & (prev_ioi > 0), ioi / np.maximum(prev_ioi, 1e-12), 1.0)))
    ratio = np.clip(ratio, -MAX_RATIO_CLASS, MAX_RATIO_CLASS).astype(np.int64) + MAX_RATIO_CLASS + 2
    relation = np.where(moving, np.where(prev_ioi > 0, ratio, 1), 0)
    code = interval * 16 + relation
    return seg_of[same], code[same], pitch[:-1][same]


def _shingles(seg: np.ndarray, features: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(piece, hash, window start)`` of every run of ``ngram`` features inside one piece (``dedup.shingles``)."""
    n = features.size - ngram + 1
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.int64)
    h = shingles(features, ngram)  # over the concatenated pieces; windows that cross a piece boundary are dropped
    inside = np.flatnonzero(seg[:n] == seg[ngram - 1:])
    return seg[inside], h[inside], inside


def batch_fingerprints(pieces: Sequence[np.ndarray], tokenizer, ngram: int) -> FingerprintBatch:
    """``dedup.fingerprint(p, tokenizer, ngram)`` of every piece (int token arrays, shapes (T_j,)), computed at once.

    Raises:
        UsageError: a token id outside the tokenizer's vocabulary (as ``Tokenizer.decode_arrays``).
    """
    lengths = np.array([len(p) for p in pieces], np.int64)
    t = np.concatenate([np.asarray(p, np.int64).ravel() for p in pieces]) if len(pieces) else np.zeros(0, np.int64)
    return flat_fingerprints(t, lengths, tokenizer, ngram)


def flat_fingerprints(t: np.ndarray, lengths: np.ndarray, tokenizer, ngram: int) -> FingerprintBatch:
    """``batch_fingerprints`` of pieces given end to end: tokens ``t`` int (sum(lengths),), ``lengths`` int64 (m,)."""
    m = int(lengths.size)
    t = np.asarray(t, np.int64)
    if t.size and (t.min() < 0 or t.max() >= tokenizer.vocab_size):
        bad = t[(t < 0) | (t >= tokenizer.vocab_size)][0]
        raise UsageError(f"tokens: id {bad} is outside [0, {tokenizer.vocab_size})")
    seg = np.repeat(np.arange(m, dtype=np.int64), lengths)
    eos = np.cumsum(t == tokenizer.eos_id)
    before = np.concatenate([[0], eos])[np.concatenate([[0], np.cumsum(lengths)[:-1]])] if m else eos
    live = eos - before[seg] == 0  # rows before the piece's first EOS
    t, seg = t[live], seg[live]
    nseg, pitch, start = _decode(tokenizer, t, seg, m)
    first = np.ones(pitch.size, bool)
    first[1:] = (pitch[1:] != pitch[:-1]) | (start[1:] != start[:-1]) | (nseg[1:] != nseg[:-1])
    fseg, features, anchors = _features(nseg[first], pitch[first], start[first])
    wseg, h, at = _shingles(fseg, features, ngram)
    order = np.lexsort((h, wseg))  # stable: the first window of a repeated shingle comes first
    wseg, h, at = wseg[order], h[order], at[order]
    new = np.ones(h.size, bool)
    new[1:] = (h[1:] != h[:-1]) | (wseg[1:] != wseg[:-1])
    wseg, h, at = wseg[new], h[new], at[new]
    offsets = np.searchsorted(wseg, np.arange(m + 1), side="left").astype(np.int64)
    fcuts = np.searchsorted(fseg, np.arange(m + 1), side="left")
    music = [music_key(features[fcuts[j]:fcuts[j + 1]]) for j in range(m)]
    return FingerprintBatch(h, anchors[at].astype(np.int16), offsets, music)
