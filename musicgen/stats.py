"""Musical statistics of note lists and set-to-set comparison (mgeval style).

Notes are any objects with ``pitch``, ``start``, ``end``, ``velocity``, ``program``, ``is_drum`` (e.g.
``musicgen.piece.Note``); times are in **beats** (quarter notes) in beat mode and seconds in seconds mode, so
"per beat" reads "per second" there. Pitch statistics (range, pitch classes, scale, polyphony) skip drum notes;
rhythm statistics (notes per beat, inter-onset intervals) use every note. A statistic with nothing to measure
(no pitched notes, one onset) is ``nan``; histograms are then all zeros.

The definitions follow MusPy's metrics (Dong et al. 2020) where one exists; each function says what it computes.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from musicgen.errors import UsageError

PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)  # natural minor
#: Inter-onset interval bins (beats): each IOI goes to the nearest center on a log scale (> 4 beats → the last).
IOI_CENTERS = (1 / 12, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0, 1.5, 2.0, 3.0, 4.0)
IOI_LABELS = ("1/12", "1/6", "1/4", "1/3", "1/2", "2/3", "3/4", "1", "3/2", "2", "3", "4+")
SCALAR_FEATURES = ("pitch_range", "pitch_classes_used", "pitch_class_entropy", "polyphony", "notes_per_beat",
                   "pitch_in_scale_rate")
#: Meter and texture shares (issue 13), each with the count it is a share of: pooled over a set of pieces, a share
#: is weighted by that count (``pooled_share``).
SHARE_FEATURES = {"on_beat_onset_share": "notes", "long_note_share": "pitched_notes",
                  "chord_onset_share": "pitched_notes"}
LONG_NOTE_BEATS = 4.0


def _pitched(notes: Iterable) -> list:
    return [n for n in notes if not n.is_drum]


# ------------------------------------------------------------------------------------------------- pitch statistics
def pitch_range(notes) -> float:
    """Highest minus lowest MIDI pitch of the pitched notes, in semitones (``nan`` if none)."""
    pitches = [n.pitch for n in _pitched(notes)]
    return float(max(pitches) - min(pitches)) if pitches else math.nan


def pitch_class_histogram(notes) -> np.ndarray:
    """Share of pitched notes on each pitch class C..B, shape (12,), sums to 1 (all zeros if no notes).

    Every note counts once, whatever its duration.
    """
    counts = np.bincount([n.pitch % 12 for n in _pitched(notes)], minlength=12).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def pitch_classes_used(notes) -> int:
    """Number of distinct pitch classes among the pitched notes (0..12)."""
    return int(np.count_nonzero(pitch_class_histogram(notes)))


def pitch_class_entropy(notes) -> float:
    """Shannon entropy of ``pitch_class_histogram`` in bits: 0 (one class) .. log2(12) ≈ 3.585 (all equal)."""
    hist = pitch_class_histogram(notes)
    if not hist.any():
        return math.nan
    p = hist[hist > 0]
    return float(-(p * np.log2(p)).sum())


def best_scale(notes) -> tuple[int, str, float]:
    """The major or natural-minor scale holding the most pitched notes: ``(root pitch class, mode, rate)``.

    ``rate`` is the share of pitched notes whose pitch class is in that scale. A major scale and its relative minor
    hold the same pitch classes, so ties go to the scale whose root is the more frequent pitch class, then to the
    first in the order C major .. B major, C minor .. B minor. ``nan`` rate if there are no pitched notes.
    """
    counts = np.bincount([n.pitch % 12 for n in _pitched(notes)], minlength=12)
    if not counts.any():
        return 0, "major", math.nan
    best, best_key = (0, "major", math.nan), (-1, -1)
    for mode, steps in (("major", MAJOR), ("minor", MINOR)):
        for root in range(12):
            key = (int(counts[[(root + s) % 12 for s in steps]].sum()), int(counts[root]))
            if key > best_key:
                best, best_key = (root, mode, key[0] / int(counts.sum())), key
    return best


def pitch_in_scale_rate(notes) -> float:
    """Share of pitched notes in the best-fitting major/minor scale (MusPy's "scale consistency"); 0..1."""
    return best_scale(notes)[2]


def polyphony(notes) -> float:
    """Mean number of pitched notes sounding, over the time when at least one sounds.

    Computed exactly: total note duration divided by the length of the union of the note intervals
    (MusPy computes the same on a piano roll). 1.0 for a monophonic line; ``nan`` if no notes.
    """
    spans = sorted((n.start, n.end) for n in _pitched(notes))
    if not spans:
        return math.nan
    covered, cur_start, cur_end = 0.0, spans[0][0], spans[0][1]
    for start, end in spans[1:]:
        if start > cur_end:
            covered += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    covered += cur_end - cur_start
    return float(sum(e - s for s, e in spans) / covered)


# ------------------------------------------------------------------------------------------------ rhythm statistics
def notes_per_beat(notes) -> float:
    """Number of notes (drums included) divided by the span from the first onset to the last offset, in beats."""
    notes = list(notes)
    if not notes:
        return math.nan
    span = max(n.end for n in notes) - min(n.start for n in notes)
    return float(len(notes) / span) if span > 0 else math.nan


def inter_onset_intervals(notes) -> np.ndarray:
    """Gaps between consecutive distinct onset times (chords count once), in beats, shape (onsets - 1,)."""
    onsets = np.unique(np.round([n.start for n in notes], 9))
    return np.diff(onsets)


def ioi_histogram(notes) -> np.ndarray:
    """Share of inter-onset intervals nearest (log scale) to each of ``IOI_CENTERS``, shape (12,).

    Labels: ``IOI_LABELS``; the last bin also takes every gap longer than 4 beats. All zeros with < 2 onsets.
    """
    iois = inter_onset_intervals(notes)
    counts = np.zeros(len(IOI_CENTERS))
    if iois.size:
        dist = np.abs(np.log2(iois)[:, None] - np.log2(IOI_CENTERS)[None, :])
        counts = np.bincount(dist.argmin(axis=1), minlength=len(IOI_CENTERS)).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def on_beat_onset_share(notes) -> float:
    """Share of notes (drums included) whose onset falls on a beat, a whole number of beats from the start (within
    1e-6); 0..1, ``nan`` if no notes. Every note counts, so a chord on the beat counts as many times as it has notes
    (issue 13's "onsets on a beat", 80% of the chorales' notes). In beat mode a beat is a quarter note."""
    starts = np.array([n.start for n in notes], dtype=np.float64)
    if not starts.size:
        return math.nan
    frac = starts % 1.0
    return float(np.mean(np.minimum(frac, 1.0 - frac) < 1e-6))


def long_note_share(notes, beats: float = LONG_NOTE_BEATS) -> float:
    """Share of pitched notes lasting at least ``beats`` beats (default 4, a whole note); 0..1, ``nan`` if none."""
    pitched = _pitched(notes)
    if not pitched:
        return math.nan
    return float(np.mean([n.end - n.start >= beats - 1e-9 for n in pitched]))


def chord_onset_share(notes) -> float:
    """Share of pitched notes that start together with at least two other pitched notes (block-chord texture);
    0..1, ``nan`` if none. Onsets are compared to 1e-9."""
    starts = np.round([n.start for n in _pitched(notes)], 9)
    if not starts.size:
        return math.nan
    _, inverse, counts = np.unique(starts, return_inverse=True, return_counts=True)
    return float(np.mean(counts[inverse] >= 3))


def piece_features(notes) -> dict:
    """Every statistic of one piece: the ``SCALAR_FEATURES`` and ``SHARE_FEATURES`` (floats) plus
    ``pitch_class_histogram`` and ``ioi_histogram`` (lists of 12 floats) and the counts ``notes`` (all notes) and
    ``pitched_notes``."""
    notes = list(notes)
    out = {name: float(globals()[name](notes)) for name in SCALAR_FEATURES + tuple(SHARE_FEATURES)}
    out["pitch_class_histogram"] = pitch_class_histogram(notes).tolist()
    out["ioi_histogram"] = ioi_histogram(notes).tolist()
    out.update(notes=len(notes), pitched_notes=len(_pitched(notes)))
    return out


def pooled_share(features: Sequence[dict], name: str) -> float:
    """A ``SHARE_FEATURES`` share over a whole set of pieces (``piece_features`` dicts): each piece's share weighted
    by the count it is a share of, so it equals the share among all the set's (pitched) notes; ``nan`` if the
    count is 0 everywhere."""
    if name not in SHARE_FEATURES:
        raise UsageError(f"name: expected one of {list(SHARE_FEATURES)}, got {name!r}")
    weights = np.array([f[SHARE_FEATURES[name]] for f in features], dtype=np.float64)
    values = np.array([f[name] for f in features], dtype=np.float64)
    keep = weights > 0
    return float((values[keep] * weights[keep]).sum() / weights[keep].sum()) if keep.any() else math.nan


# ------------------------------------------------------------------------------------------------ comparing two sets
def histogram_overlap(p, q) -> float:
    """Overlapped area of two histograms on the same bins, each normalized to sum 1: Σ min(p_i, q_i), 0..1."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise UsageError(f"histogram_overlap: shapes differ, {p.shape} vs {q.shape}")
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    return float(np.minimum(p / p.sum(), q / q.sum()).sum())


def overlapped_area(a, b, bandwidth: float | None = None, grid_size: int = 4096) -> float:
    """Overlapped area ∫ min(p_a, p_b) of two Gaussian kernel density estimates (mgeval, Yang & Lerch 2020), 0..1.

    Args:
        a, b: 1-D samples of a scalar feature (``nan`` values are dropped), e.g. one value per piece.
        bandwidth: kernel standard deviation for both sets; default one shared by both, Scott's rule
            ``s · n^(-1/5)`` with ``s`` the pooled within-set standard deviation and ``n`` the mean set size,
            floored at 1% of the pooled spread so constant sets still give a proper density. (A bandwidth per set,
            as before 2026-11-30, made two nearly constant sets look disjoint: 60 of 64 values at 4.0 against 64 at
            4.0 overlapped by 0.04, the narrow spike of one against the wider density of the other.)
        grid_size: integration points, spanning both sets ± 5 bandwidths.

    Returns:
        1.0 for identical sets, near 0 for well-separated ones; ``nan`` if a set has no finite values.
        (mgeval compares intra- and inter-set distance distributions; here the feature values are compared
        directly, which reads more plainly: "how much of the real distribution the samples cover".)
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return math.nan
    both = np.concatenate([a, b])
    spread = both.std() or max(abs(both.mean()), 1.0)
    if bandwidth is not None and not bandwidth > 0:
        raise UsageError(f"bandwidth: expected a number > 0, got {bandwidth!r}")
    if bandwidth is None:
        within = math.sqrt((a.var() * a.size + b.var() * b.size) / both.size)
        bandwidth = max(within * (both.size / 2) ** -0.2, 0.01 * spread)
    bws = [bandwidth, bandwidth]
    grid = np.linspace(both.min() - 5 * bandwidth, both.max() + 5 * bandwidth, grid_size)

    def density(x: np.ndarray, bw: float) -> np.ndarray:
        z = (grid[:, None] - x[None, :]) / bw
        return np.exp(-0.5 * z * z).sum(axis=1) / (x.size * bw * math.sqrt(2 * math.pi))

    return float(min(np.minimum(density(a, bws[0]), density(b, bws[1])).sum() * (grid[1] - grid[0]), 1.0))


def compare_feature_sets(generated: Sequence[dict], real: Sequence[dict]) -> dict:
    """Summarize two lists of ``piece_features`` dicts and how much they overlap.

    Returns ``{feature: {"generated_mean", "generated_std", "real_mean", "real_std", "overlap", "generated_values",
    "real_values"}}`` for each scalar and share feature (KDE overlap of the per-piece values, which are listed; the
    shares also get ``generated_pooled`` and ``real_pooled``, see ``pooled_share``), and for the two histograms the
    pooled histograms (``generated``, ``real``: means of the per-piece histograms weighted by each piece's note
    count) and their overlap.
    """
    out: dict = {}
    for name in SCALAR_FEATURES + tuple(SHARE_FEATURES):
        g = np.array([f[name] for f in generated], dtype=np.float64)
        r = np.array([f[name] for f in real], dtype=np.float64)
        out[name] = {"generated_mean": _nanstat(np.nanmean, g), "generated_std": _nanstat(np.nanstd, g),
                     "real_mean": _nanstat(np.nanmean, r), "real_std": _nanstat(np.nanstd, r),
                     "overlap": overlapped_area(g, r),
                     "generated_values": g.tolist(), "real_values": r.tolist()}
        if name in SHARE_FEATURES:
            out[name].update(generated_pooled=pooled_share(generated, name), real_pooled=pooled_share(real, name))
    for name in ("pitch_class_histogram", "ioi_histogram"):
        g = _pooled(generated, name)
        r = _pooled(real, name)
        out[name] = {"generated": g.tolist(), "real": r.tolist(), "overlap": histogram_overlap(g, r)}
    return out


def _nanstat(fn, x: np.ndarray) -> float:
    return float(fn(x)) if np.isfinite(x).any() else math.nan


def _pooled(features: Sequence[dict], name: str) -> np.ndarray:
    """Mean of per-piece histograms weighted by each piece's note count (so long pieces count more)."""
    total = np.zeros(12)
    for f in features:
        total += np.asarray(f[name]) * f["notes"]
    return total / total.sum() if total.sum() else total
