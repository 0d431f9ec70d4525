"""A piece's key: the file's key signature when it names its mode, else a key-finding analysis.

``analyze_keys`` is music21's key-weight analysis (``music21.analysis.discrete``; ``Score.analyze('key')`` uses the
Aarden–Essen weights) vectorized in numpy: a duration-weighted pitch-class histogram (each note adds its length to
its pitch class; drums left out) is correlated (Pearson) with the 12 rotations of the major and of the minor
profile, and the best of the 24 keys wins. The weights below are music21's (``AardenEssen().getWeights`` and
``KrumhanslSchmuckler().getWeights``; ``tests/test_keys.py`` checks they still are), copied so that reading a key
never imports music21. Keys are pretty_midi key numbers, ``tonic + 12 * minor`` (``musicgen.meter.key_name``).

The corpus's keys at sampling (``key_counts``, ``draw_keys``): a key-mode model could draw its own KEY after BOS,
but training's transposition moves the KEY of every piece by up to ±N semitones (in ``normalize`` mode only the KEY),
so the model learns a smeared distribution: the shipped chorale model put 3-6% of its samples in each of seven keys
no training piece has. So ``musicgen train`` records how many training pieces are in each key (``metrics.json`` →
``key_pieces``, ``{"A minor": 41, ...}``) and ``musicgen sample`` without ``--key`` draws each sample's KEY from
those counts and forces it (``rules.EventRules(key=...)``); a bundle without the record lets the model draw.
"""

from __future__ import annotations

import numpy as np

from musicgen.errors import UsageError
from musicgen.meter import key_name, parse_key
from musicgen.styles import draw_counted

METRIC = "key_pieces"  # metrics.json: {key name: training pieces}
KEYS_SALT = 0x6B3E5  # mixed into the sample seed for the key draws: the event draws stay as they were

PROFILES = {
    "aarden": (np.array([17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062, 0.145624,
                         8.15494, 0.232998, 4.95122]),
               np.array([18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161, 4.56621,
                         1.93186, 7.37619, 1.75623])),
    "krumhansl": (np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88]),
                  np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])),
}
DEFAULT_PROFILE = "aarden"  # what music21's analyze('key') uses


def _rotations(profile: np.ndarray) -> np.ndarray:
    """(12, 12): row k is the profile with its tonic on pitch class k (``weights[(j - k) % 12]`` at column j)."""
    j = np.arange(12)
    return profile[(j[None, :] - j[:, None]) % 12]


def pitch_class_histograms(pitch, weight, piece_of, n_pieces: int) -> np.ndarray:
    """float64 (n_pieces, 12): per piece, the total ``weight`` (e.g. note lengths in quarter notes) of each pitch
    class. ``pitch``, ``weight``, ``piece_of``: arrays of shape (n,) (MIDI pitch, weight, piece index)."""
    pitch, piece_of = np.asarray(pitch, np.int64), np.asarray(piece_of, np.int64)
    hist = np.bincount(piece_of * 12 + pitch % 12, weights=np.asarray(weight, np.float64), minlength=n_pieces * 12)
    return hist.reshape(n_pieces, 12)


def key_correlations(histograms: np.ndarray, profile: str = DEFAULT_PROFILE) -> np.ndarray:
    """float64 (n, 24): Pearson correlation of each histogram (n, 12) with each key's profile, key number order
    (0..11 major on C..B, 12..23 minor); 0 where a histogram is flat."""
    if profile not in PROFILES:
        raise UsageError(f"profile: expected one of {sorted(PROFILES)}, got {profile!r}")
    h = np.atleast_2d(np.asarray(histograms, np.float64))
    rows = np.concatenate([_rotations(p) for p in PROFILES[profile]])  # (24, 12)
    rows = rows - rows.mean(axis=1, keepdims=True)
    hc = h - h.mean(axis=1, keepdims=True)
    den = np.sqrt((hc ** 2).sum(axis=1))[:, None] * np.sqrt((rows ** 2).sum(axis=1))[None, :]
    num = hc @ rows.T
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def analyze_keys(histograms: np.ndarray, profile: str = DEFAULT_PROFILE) -> np.ndarray:
    """int64 (n,): the best key number for each pitch-class histogram (n, 12) (ties: the lowest key number; an
    empty or flat histogram gives 0, C major)."""
    return np.argmax(key_correlations(histograms, profile), axis=1).astype(np.int64)


def analyze_piece_key(piece, profile: str = DEFAULT_PROFILE) -> int:
    """The analysed key number of a ``Piece`` (drums left out; note lengths in the piece's unit as weights)."""
    a = piece.arrays
    pitched = ~a.is_drum
    hist = pitch_class_histograms(a.pitch[pitched], (a.end - a.start)[pitched], np.zeros(int(pitched.sum()),
                                                                                         np.int64), 1)
    return int(analyze_keys(hist, profile)[0])


def piece_key(piece, profile: str = DEFAULT_PROFILE) -> tuple[int, str]:
    """``(key number, source)``: the file's key signature (``piece.key``, source ``"signature"``) when it has one
    with a mode, else the analysis (``"analysis"``)."""
    if piece.key is not None:
        return int(piece.key), "signature"
    return analyze_piece_key(piece, profile), "analysis"


# ------------------------------------------------------------------------------------------- the corpus's keys
def key_counts(pieces, tokenizer) -> dict[str, int]:
    """``{key name: pieces}`` over token pieces (each piece's first KEY event), in key-number order, unused keys left
    out; ``{}`` for a vocabulary without KEY events."""
    if "KEY" not in tokenizer.ranges:
        return {}
    first, size = tokenizer.ranges["KEY"]
    counts = np.zeros(size, np.int64)
    for tokens in pieces:
        head = np.asarray(tokens[:8], np.int64)  # BOS [STYLE] KEY: the head is enough
        found = head[(head >= first) & (head < first + size)]
        if found.size:
            counts[found[0] - first] += 1
    return {key_name(k): int(counts[k]) for k in range(size) if counts[k]}


def draw_keys(counts: dict | None, seed: int, count: int) -> np.ndarray | None:
    """int64 (count,): a key number per sample drawn from ``counts`` (``key_counts``' form) by an RNG of its own
    (``KEYS_SALT``; draw i depends on ``seed`` and i alone); None without counts (an older bundle)."""
    return draw_counted(counts, parse_key, seed, count, KEYS_SALT)
