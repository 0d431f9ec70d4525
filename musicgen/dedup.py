"""Near-duplicate detection: transposition-, tempo- and velocity-invariant fingerprints, clusters by union-find.

Fingerprint of one token piece (``fingerprint``):

1. decode the tokens to notes (``Tokenizer.decode_arrays``; VELOCITY, PROGRAM and VOICE are thereby dropped, drums
   left out) and order them by (onset, pitch); notes of one pitch and onset count once (unison parts), so the
   fingerprint is the same with voices on or off;
2. one *feature* per note after the first: the pitch interval to the previous note (semitones, clipped to ±48; so a
   transposed copy has the same features) and the onset relation to it: ``0`` for the same onset, else the ratio of
   this inter-onset interval to the previous non-zero one as ``round(2 log2 ratio)`` (clipped to ±6), so a copy at
   another tempo (seconds mode: stretched time shifts) has the same features; beat mode is tempo-free already;
3. shingles: every run of ``ngram`` consecutive features, hashed to uint64 (``ngram = 8`` notes is about two
   four-voice chords); the fingerprint is the set of distinct shingles, each with the pitch of its first note (the
   *anchor*, used only to report the transposition between two members).

The piece's *music key* (``Fingerprint.music``) is a hash of its whole feature sequence (step 2): equal for the same
notes whatever the file's bytes, tempo, velocities, programs, transposition or encoding (voices, meter, key
normalization), so the split (``musicgen.split``, ``split_version`` 3) draws a piece's part from its music and a
re-export of the same corpus keeps its split; ``""`` for a piece of fewer than two notes (the split then uses the
content key).

Similarity of two pieces A, B (``similar_pairs``) is the containment ``|A ∩ B| / min(|A|, |B|)`` of their shingle
sets: 1.0 for a transposed or re-tempoed copy and for an excerpt of a longer piece, near 0 for distinct music.
Pairs with at least ``threshold`` similarity (default 0.5, see docs/evaluation.md for the measurement on the Bach
chorales) and at least ``MIN_COMMON`` shared shingles are joined; clusters are the connected components
(union-find), so a chain a~b~c is one cluster. Pieces with equal content keys (identical files) are always joined.

Cost: pairs come from an inverted index (shingle → pieces) sorted in numpy, counted by a sparse product
(``pair_counts``); a shingle found in more than ``MAX_DF`` pieces (a stock formula, or a mass-duplicated piece) is
left out of the intersections, which bounds the work at ``MAX_DF`` pairs per stored shingle. The 410 Bach chorales
take 0.3 s (``scripts/duplicates_report.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musicgen.config import TokenizerConfig
from musicgen.errors import UsageError
from musicgen.midi_io import DRUMS

DEFAULT_NGRAM = 8
DEFAULT_THRESHOLD = 0.5
MIN_COMMON = 5  # shared shingles a joined pair needs at least (short pieces are matched only by content key)
MAX_DF = 256  # shingles in more pieces than this are left out of the pair counts
NUMPY_PAIRS = 2**22  # pair occurrences up to which ``pair_counts`` counts with numpy alone (no scipy import)
MAX_INTERVAL = 48
MAX_RATIO_CLASS = 6
_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Fingerprint:
    """``hashes``: sorted distinct uint64 shingles, shape (S,); ``anchors``: int16 pitch of each shingle's first note
    (its first occurrence), shape (S,); ``music``: the music key (32 hex digits, ``""`` under two notes; see the
    module docstring)."""

    hashes: np.ndarray
    anchors: np.ndarray
    music: str = ""

    def __len__(self) -> int:
        return int(self.hashes.size)


@dataclass(frozen=True)
class Pairs:
    """Near-duplicate pairs ``a[k] < b[k]`` (int64 piece indices) with ``similarity`` (float64 containment) and
    ``common`` (int64 shared shingles), each shape (P,), sorted by (a, b)."""

    a: np.ndarray
    b: np.ndarray
    similarity: np.ndarray
    common: np.ndarray

    def __len__(self) -> int:
        return int(self.a.size)


def note_features(pitch: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per note after the first, ordered by (start, pitch): int64 feature codes and the int64 pitch of the note
    each feature starts from; both shape (n - 1,). See the module docstring for what a feature encodes."""
    pitch, start = np.asarray(pitch, np.int64), np.asarray(start, np.int64)
    if pitch.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    interval = np.clip(np.diff(pitch), -MAX_INTERVAL, MAX_INTERVAL) + MAX_INTERVAL
    ioi = np.diff(start).astype(np.float64)
    moving = ioi > 0
    idx = np.where(moving, np.arange(ioi.size), -1)
    prev = np.maximum.accumulate(np.concatenate([[-1], idx[:-1]]))  # last earlier position with a non-zero gap
    prev_ioi = np.where(prev >= 0, ioi[np.maximum(prev, 0)], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.rint(2 * np.log2(np.where(moving & (prev_ioi > 0), ioi / np.maximum(prev_ioi, 1e-12), 1.0)))
    ratio = np.clip(ratio, -MAX_RATIO_CLASS, MAX_RATIO_CLASS).astype(np.int64) + MAX_RATIO_CLASS + 2
    relation = np.where(moving, np.where(prev_ioi > 0, ratio, 1), 0)  # 0 same onset, 1 first gap, 2.. ratio class
    return interval * 16 + relation, pitch[:-1]


def shingles(features: np.ndarray, ngram: int) -> np.ndarray:
    """uint64 hash of every run of ``ngram`` consecutive features, shape (max(n - ngram + 1, 0),)."""
    m = features.size - ngram + 1
    if m <= 0:
        return np.zeros(0, np.uint64)
    f = features.astype(np.uint64)
    h = np.full(m, np.uint64(ngram), np.uint64)
    with np.errstate(over="ignore"):
        for j in range(ngram):
            h = (h ^ f[j:j + m]) * _MIX
            h ^= h >> np.uint64(29)
    return h


def fingerprint(tokens: np.ndarray, tokenizer, ngram: int = DEFAULT_NGRAM) -> Fingerprint:
    """The shingle set of one piece (int token array, shape (T,)). ``tokenizer=None`` treats the ids as opaque
    symbols (shingles of raw ids, no invariance; for toy vocabularies without a tokenizer)."""
    if tokenizer is None:
        features, anchors = np.asarray(tokens, np.int64), np.zeros(len(tokens), np.int64)
    else:
        a = tokenizer.decode_arrays(tokens)  # sorted by (start, pitch, ...)
        pitch, start = a["pitch"][a["instrument"] != DRUMS], a["start"][a["instrument"] != DRUMS]
        first = np.ones(pitch.size, bool)
        first[1:] = (pitch[1:] != pitch[:-1]) | (start[1:] != start[:-1])
        features, anchors = note_features(pitch[first], start[first])
    h = shingles(features, ngram)
    hashes, first = np.unique(h, return_index=True)
    return Fingerprint(hashes, anchors[first].astype(np.int16), music_key(features) if tokenizer is not None else "")


def music_key(features: np.ndarray) -> str:
    """The music key of a piece from its ``note_features`` codes (int64, shape (n - 1,)): 32 hex digits of a sha256
    of the codes, ``""`` when there are none (fewer than two notes)."""
    if features.size == 0:
        return ""
    return hashlib.sha256(b"music-v1:" + np.ascontiguousarray(features, dtype="<i8").tobytes()).hexdigest()[:32]


def fingerprints(pieces: Sequence[np.ndarray], tokenizer_config: TokenizerConfig | None,
                 ngram: int = DEFAULT_NGRAM) -> list[Fingerprint]:
    """``fingerprint`` of every piece, decoded with ``tokenizer_config`` (None: opaque ids)."""
    if not (isinstance(ngram, int) and ngram >= 2):
        raise UsageError(f"ngram: expected an integer >= 2, got {ngram!r}")
    from musicgen.tokenizer import Tokenizer

    tok = Tokenizer(tokenizer_config) if tokenizer_config is not None else None
    return [fingerprint(p, tok, ngram) for p in pieces]


def similar_pairs(fps: Sequence[Fingerprint], threshold: float = DEFAULT_THRESHOLD, min_common: int = MIN_COMMON,
                  max_df: int = MAX_DF) -> Pairs:
    """Every pair of pieces with containment >= ``threshold`` and >= ``min_common`` shared shingles."""
    if not (isinstance(threshold, (int, float)) and 0 < threshold <= 1):
        raise UsageError(f"threshold: expected a number in (0, 1], got {threshold!r}")
    sizes = np.array([len(f) for f in fps], np.int64)
    if sizes.sum() == 0:
        return _pairs([], [], [], [])
    hashes = np.concatenate([f.hashes for f in fps])
    owner = np.repeat(np.arange(len(fps), dtype=np.int64), sizes)
    order = np.argsort(hashes, kind="stable")
    codes, common = pair_counts(hashes[order], owner[order], len(fps), max_df)
    del hashes, owner, order
    return pairs_from_counts(codes, common, sizes, threshold, min_common)


def pair_counts(hashes: np.ndarray, owner: np.ndarray, n: int, max_df: int = MAX_DF) -> tuple[np.ndarray, np.ndarray]:
    """Shingles shared by each pair of pieces a < b, counting only shingles found in 2..``max_df`` pieces:
    ``(codes, counts)``, int64, codes ``a * n + b`` ascending (pairs sharing none left out). ``hashes`` uint64 (S,)
    sorted, ``owner`` int64 (S,) the piece of each, ascending within a shingle (each shingle once per piece).

    Up to ``NUMPY_PAIRS`` pair occurrences (the sum of df (df - 1) / 2 over the shingles) every occurrence's code is
    made and counted with ``np.unique``; above, as the upper triangle of the sparse product ``M.T @ M`` of the 0/1
    matrix M (shingle, piece) (``scipy.sparse``: each occurrence an add in C++, memory per distinct pair)."""
    starts = np.flatnonzero(np.concatenate([[True], hashes[1:] != hashes[:-1]]))
    df = np.diff(np.append(starts, hashes.size))
    wanted = (df >= 2) & (df <= max_df)
    if int((df[wanted] * (df[wanted] - 1) // 2).sum()) <= NUMPY_PAIRS:
        codes = [np.zeros(0, np.int64)]
        for s in np.unique(df[wanted]).tolist():
            members = owner[starts[df == s][:, None] + np.arange(s)]
            i, j = np.triu_indices(s, 1)
            codes.append((members[:, i] * n + members[:, j]).ravel())
        return tuple(a.astype(np.int64) for a in np.unique(np.concatenate(codes), return_counts=True))
    from scipy import sparse

    row = np.repeat(np.arange(starts.size), df)
    keep = wanted[row]
    m = sparse.csr_matrix((np.ones(int(keep.sum()), np.int32), (row[keep], owner[keep])), shape=(starts.size, n))
    del starts, df, row, keep
    upper = sparse.triu(m.T @ m, k=1, format="csr")
    upper.sort_indices()
    codes = np.repeat(np.arange(n, dtype=np.int64) * n, np.diff(upper.indptr)) + upper.indices
    return codes, upper.data.astype(np.int64)


def pairs_from_counts(codes: np.ndarray, common: np.ndarray, sizes: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                      min_common: int = MIN_COMMON) -> Pairs:
    """The pairs of ``pair_counts``'s ``codes`` (``a * n + b``, ascending, n = sizes.size) and ``common`` shared
    shingles that reach ``threshold`` containment and ``min_common``; ``sizes`` int64 (n,) shingles per piece."""
    n = np.int64(sizes.size)
    a, b = codes // n, codes % n
    similarity = common / np.minimum(sizes[a], sizes[b])
    keep = (similarity >= threshold) & (common >= min_common)
    return _pairs(a[keep], b[keep], similarity[keep], common[keep])


def _pairs(a, b, similarity, common) -> Pairs:
    return Pairs(np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(similarity, np.float64),
                 np.asarray(common, np.int64))


def cluster_ids(n: int, pairs: Pairs, keys: Sequence[str] | None = None) -> np.ndarray:
    """Connected components of the pairs (and of equal ``keys``): int64 cluster id per piece, shape (n,), numbered
    0, 1, … in order of each cluster's first piece. Vectorized: every piece takes the smallest label among its
    neighbours, then labels jump to their label's label, until nothing changes (the label of a component ends as
    its first piece)."""
    a, b = [pairs.a.astype(np.int64)], [pairs.b.astype(np.int64)]
    if keys is not None:
        first: dict[str, int] = {}
        same = [(first[k], i) for i, k in enumerate(keys) if first.setdefault(k, i) != i]
        a.append(np.array([x for x, _ in same], np.int64))
        b.append(np.array([y for _, y in same], np.int64))
    a, b = np.concatenate(a), np.concatenate(b)
    label = np.arange(n, dtype=np.int64)
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        while True:  # pointer jumping
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, label):
            return np.unique(label, return_inverse=True)[1].astype(np.int64).reshape(n)
        label = new


def transposition(a: Fingerprint, b: Fingerprint) -> int | None:
    """Semitones that take piece ``a`` to piece ``b`` (median anchor difference over shared shingles; None if they
    share none). Octave-exact: a copy an octave up reports 12."""
    _, ia, ib = np.intersect1d(a.hashes, b.hashes, assume_unique=True, return_indices=True)
    if ia.size == 0:
        return None
    return int(np.round(np.median(b.anchors[ib].astype(np.int64) - a.anchors[ia].astype(np.int64))))


@dataclass(frozen=True)
class Duplicates:
    """``clusters``: int64 id per piece (n,); ``pairs``: the joined pairs; ``fingerprints``: one per piece."""

    clusters: np.ndarray
    pairs: Pairs
    fingerprints: list[Fingerprint]

    def groups(self) -> list[np.ndarray]:
        """Clusters of two or more pieces, as sorted int64 index arrays, largest first (ties by first index)."""
        found = [np.flatnonzero(self.clusters == c) for c in np.unique(self.clusters)]
        return sorted((g for g in found if g.size > 1), key=lambda g: (-g.size, g[0]))


def find_duplicates(pieces: Sequence[np.ndarray], keys: Sequence[str] | None,
                    tokenizer_config: TokenizerConfig | None, threshold: float = DEFAULT_THRESHOLD,
                    ngram: int = DEFAULT_NGRAM) -> Duplicates:
    """Fingerprint every piece, find the pairs at ``threshold`` or above and join them into clusters."""
    if keys is not None and len(keys) != len(pieces):
        raise UsageError(f"keys: expected {len(pieces)} content keys, got {len(keys)}")
    fps = fingerprints(pieces, tokenizer_config, ngram)
    pairs = similar_pairs(fps, threshold)
    return Duplicates(cluster_ids(len(pieces), pairs, keys), pairs, fps)


def containment(a: Fingerprint, b: Fingerprint) -> float:
    """``|A ∩ B| / min(|A|, |B|)`` of two shingle sets (0.0 when either is empty)."""
    if not len(a) or not len(b):
        return 0.0
    return float(np.intersect1d(a.hashes, b.hashes, assume_unique=True).size / min(len(a), len(b)))


def describe_groups(dups: Duplicates, names: Sequence[str]) -> list[dict]:
    """Each near-duplicate group (largest first) as JSON-ready ``{"members": [name, …], "similarity": [...],
    "semitones": [...]}``: the first member is the reference; ``similarity[k]`` (containment, 3 decimals) and
    ``semitones[k]`` (transposition, None if they share no shingle) relate member k to it (1.0 and 0 for itself)."""
    out = []
    for group in dups.groups():
        ref = dups.fingerprints[group[0]]
        out.append({"members": [names[i] for i in group.tolist()],
                    "similarity": [round(containment(ref, dups.fingerprints[i]), 3) for i in group.tolist()],
                    "semitones": [transposition(ref, dups.fingerprints[i]) for i in group.tolist()]})
    return out


def format_group(group: dict) -> str:
    """One line: ``3 pieces: a.mid | b.mid (+2 st, 0.919) | c.mid (0 st, 0.512)``."""
    rest = [f"{m} ({'?' if t is None else f'{t:+d}' if t else '0'} st, {s:.3f})"
            for m, s, t in zip(group["members"][1:], group["similarity"][1:], group["semitones"][1:])]
    return f"{len(group['members'])} pieces: " + " | ".join([group["members"][0], *rest])
