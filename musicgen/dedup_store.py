"""Near-duplicate clusters of a whole token store, with memory per piece, not per event.

``dedup.find_duplicates`` holds every piece's fingerprint (~10 bytes a note) and sorts them all at once: 3.3 GiB at
200k files. ``store_duplicates`` gives the same clusters, pairs and group descriptions (the same arithmetic on the
same shingles, so byte-identical ``clusters.npz``; ``tests/test_dedup_store.py``) in three passes:

1. *fingerprints*: the store's pieces are read a run of ``BATCH_EVENTS`` tokens at a time from the memory-mapped
   shards and fingerprinted together (``fingerprints.flat_fingerprints``); each shingle row ``(hash, piece,
   anchor)`` is appended to one of ``P`` partition files by the top bits of its hash (``P`` chosen so a partition
   holds about ``PARTITION_ROWS`` rows; ``P = 1`` stays in memory). Kept per piece: shingle count and music key.
2. *pairs*: per partition, the rows sorted by hash give the pieces that share each shingle; the pair counts
   (``dedup.pair_counts``, sparse) are summed over the partitions: every shingle lies in exactly one partition, so
   the sums are ``dedup.similar_pairs``'s counts. Clusters: ``dedup.cluster_ids``.
3. *groups*: per partition again, each group member's shingles shared with the group's first piece (its
   reference) and their anchor differences, for ``dedup.describe_groups``'s containment and transposition (a median
   over the shared shingles, from a sparse histogram of differences per member).

Peak memory: one batch, one partition and its sort, the pair counts (per distinct near-duplicate pair) and ~100
bytes per piece. The partition files live in ``CACHE/.dedup/`` and are removed afterwards.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicgen.dedup import (DEFAULT_NGRAM, DEFAULT_THRESHOLD, MAX_DF, MIN_COMMON, Pairs, cluster_ids, pair_counts,
                            pairs_from_counts)
from musicgen.fingerprints import flat_fingerprints

BATCH_EVENTS = 2**19  # tokens fingerprinted at once (~0.5 M: ~80 MB of temporaries)
PARTITION_ROWS = 2**20  # shingle rows per partition (~1 M: 14 MB of rows; their pair counts ~100-300 MB at most)
SPILL_DIR = ".dedup"
_ROW = (("hash", np.uint64), ("owner", np.int32), ("anchor", np.int16))

__all__ = ["StoreDuplicates", "store_duplicates"]


@dataclass(frozen=True)
class StoreDuplicates:
    """``clusters`` int64 (n,), ``pairs`` (``dedup.Pairs``), ``music`` (n,) music keys, ``groups``: per group of two
    or more pieces (largest first, ties by first piece) ``(members int64, similarity list, semitones list)`` as
    ``dedup.describe_groups`` computes them (unrounded similarity)."""

    clusters: np.ndarray
    pairs: Pairs
    music: list[str]
    groups: list[tuple[np.ndarray, list[float], list[int | None]]]


class _Partitions:
    """Shingle rows split by the top bits of their hash: in memory (one partition) or in files under ``folder``."""

    def __init__(self, folder: Path, parts: int):
        self.parts, self.bits = parts, parts.bit_length() - 1
        self.folder = folder
        self.memory: list[list[np.ndarray]] = [[] for _ in _ROW]
        if parts > 1:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            self.files = [[open(folder / f"{p:04d}.{name}", "wb") for name, _ in _ROW] for p in range(parts)]

    def add(self, hashes: np.ndarray, owner: np.ndarray, anchors: np.ndarray) -> None:
        cols = (hashes, owner.astype(np.int32), anchors)
        if self.parts == 1:
            for kept, col in zip(self.memory, cols):
                kept.append(col)
            return
        part = (hashes >> np.uint64(64 - self.bits)).astype(np.int64)
        order = np.argsort(part, kind="stable")  # stable: owners stay ascending within a partition
        cuts = np.searchsorted(part[order], np.arange(self.parts + 1))
        cols = [c[order] for c in cols]
        for p in np.flatnonzero(np.diff(cuts)).tolist():
            for f, col in zip(self.files[p], cols):
                col[cuts[p]:cuts[p + 1]].tofile(f)

    def close(self) -> None:
        if self.parts > 1:
            for files in self.files:
                for f in files:
                    f.close()

    def read(self, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Partition ``p``'s rows sorted by hash (owners ascending within a hash): hashes, owner int64, anchors."""
        if self.parts == 1:
            cols = [np.concatenate(c) if c else np.zeros(0, dt) for c, (_, dt) in zip(self.memory, _ROW)]
        else:
            cols = [np.fromfile(self.folder / f"{p:04d}.{name}", dtype=dt) for name, dt in _ROW]
        order = np.argsort(cols[0], kind="stable")
        return cols[0][order], cols[1][order].astype(np.int64), cols[2][order]

    def remove(self) -> None:
        self.memory = [[] for _ in _ROW]
        if self.parts > 1:
            shutil.rmtree(self.folder, ignore_errors=True)


def _partitions_for(events: int) -> int:
    """A power of two: about one partition per ``PARTITION_ROWS`` shingles (measured: ~0.34 shingles per event on
    the chorales; a partition that holds more costs memory, not correctness)."""
    parts = 1
    while parts * PARTITION_ROWS < events // 3 and parts < 4096:
        parts *= 2
    return parts


def _fingerprint_store(store, tokenizer, ngram: int, spill: _Partitions) -> tuple[np.ndarray, list[str]]:
    """Pass 1: every piece's shingles into ``spill``; returns (shingles per piece int64 (n,), music keys)."""
    n = len(store)
    sizes, music = np.zeros(n, np.int64), []
    for shard in range(len(store.shards)):
        lo, hi = int(store.first_piece[shard]), int(store.first_piece[shard + 1])
        base = store.offsets[lo]
        i = lo
        while i < hi:
            j = int(np.searchsorted(store.offsets, store.offsets[i] + BATCH_EVENTS, side="right")) - 1
            j = min(max(j, i + 1), hi)
            a, b = int(store.offsets[i] - base), int(store.offsets[j] - base)
            tokens = np.array(store._map(shard)[a:b], dtype=np.int64)
            store.release()
            batch = flat_fingerprints(tokens, np.diff(store.offsets[i:j + 1]), tokenizer, ngram)
            sizes[i:j] = batch.sizes
            music += batch.music
            spill.add(batch.hashes, np.repeat(np.arange(i, j, dtype=np.int64), batch.sizes), batch.anchors)
            i = j
    spill.close()
    return sizes, music


def _pairs_of(spill: _Partitions, sizes: np.ndarray, threshold: float, min_common: int, max_df: int) -> Pairs:
    """Pass 2: ``dedup.similar_pairs`` from the partitions. With one partition its counts are the totals. With P, a
    pair that reaches ``need`` shared shingles in all has at least need / P in one partition (pigeonhole): only
    pairs with that many somewhere are candidates, and their totals are summed from each partition's counts (kept
    on disk meanwhile), so memory follows the candidates, not every pair that shares a shingle."""
    n = sizes.size
    if spill.parts == 1:
        h, owner, _ = spill.read(0)
        return pairs_from_counts(*pair_counts(h, owner, n, max_df), sizes, threshold, min_common)
    found = []
    for p in range(spill.parts):
        h, owner, _ = spill.read(p)
        codes, counts = pair_counts(h, owner, n, max_df)
        del h, owner
        np.save(spill.folder / f"{p:04d}.codes.npy", codes)
        np.save(spill.folder / f"{p:04d}.counts.npy", counts)
        need = np.maximum(min_common, np.floor(threshold * np.minimum(sizes[codes // n], sizes[codes % n])) - 1)
        found.append(codes[counts * spill.parts >= need])
    candidates = np.unique(np.concatenate(found))
    del found
    total = np.zeros(candidates.size, np.int64)
    for p in range(spill.parts):
        codes = np.load(spill.folder / f"{p:04d}.codes.npy")
        at = np.minimum(np.searchsorted(codes, candidates), max(codes.size - 1, 0))
        hit = codes[at] == candidates if codes.size else np.zeros(candidates.size, bool)
        total[hit] += np.load(spill.folder / f"{p:04d}.counts.npy")[at[hit]]
    return pairs_from_counts(candidates, total, sizes, threshold, min_common)


def _describe(spill: _Partitions, clusters: np.ndarray, sizes: np.ndarray):
    """Pass 3: per group member, shingles shared with its group's first piece and the median anchor difference."""
    n = clusters.size
    count = np.bincount(clusters, minlength=int(clusters.max()) + 1 if n else 0)
    ref = np.unique(clusters, return_index=True)[1].astype(np.int64)  # first piece of each cluster (ids 0..C-1)
    ref[count < 2] = -1
    common = np.zeros(n, np.int64)
    hist_code, hist_count = np.zeros(0, np.int64), np.zeros(0, np.int64)
    for p in range(spill.parts):
        h, owner, anchor = spill.read(p)
        r = ref[clusters[owner]]
        grouped = r >= 0
        h, owner, anchor, r = h[grouped], owner[grouped], anchor[grouped].astype(np.int64), r[grouped]
        order = np.lexsort((owner, r, h))  # runs of (shingle, group), owners ascending: the reference first
        h, owner, anchor, r = h[order], owner[order], anchor[order], r[order]
        start = np.ones(h.size, bool)
        start[1:] = (h[1:] != h[:-1]) | (r[1:] != r[:-1])
        run_first = np.maximum.accumulate(np.where(start, np.arange(h.size), 0))
        shared = owner[run_first] == r  # the reference holds this shingle
        np.add.at(common, owner[shared], 1)
        diff = anchor[shared] - anchor[run_first[shared]]
        code, k = np.unique(owner[shared] * 1024 + diff + 512, return_counts=True)
        hist_code, inverse = np.unique(np.concatenate([hist_code, code]), return_inverse=True)
        hist_count = np.bincount(inverse, weights=np.concatenate([hist_count, k]),
                                 minlength=hist_code.size).astype(np.int64)
    semitones = _medians(hist_code, hist_count, n)
    groups = np.flatnonzero(count >= 2).tolist()
    members_of = np.argsort(clusters, kind="stable")
    cuts = np.searchsorted(clusters[members_of], np.arange(count.size + 1))
    out = []
    for c in groups:
        members = members_of[cuts[c]:cuts[c + 1]]
        r = int(members[0])
        sim = [float(common[m] / min(sizes[r], sizes[m])) if sizes[r] and sizes[m] else 0.0 for m in members.tolist()]
        semi = [semitones[m] if common[m] else None for m in members.tolist()]
        out.append((members, sim, semi))
    out.sort(key=lambda g: (-g[0].size, int(g[0][0])))
    return out


def _medians(code: np.ndarray, count: np.ndarray, n: int) -> list[int]:
    """Per piece, ``round(median)`` of its anchor differences (``code = piece * 1024 + diff + 512`` with ``count``
    occurrences each, sorted by code), as ``np.round(np.median(...))``; 0 for a piece without any."""
    owner, diff = code // 1024, code % 1024 - 512
    total = np.bincount(owner, weights=count, minlength=n).astype(np.int64)
    cum = np.cumsum(count)
    before = np.concatenate([[0], np.cumsum(total)])[:-1]  # rows of earlier pieces
    has = total > 0
    lo_k = before + (total - 1) // 2
    hi_k = before + total // 2
    lo = diff[np.minimum(np.searchsorted(cum, lo_k, side="right"), max(diff.size - 1, 0))] if diff.size else lo_k
    hi = diff[np.minimum(np.searchsorted(cum, hi_k, side="right"), max(diff.size - 1, 0))] if diff.size else hi_k
    med = np.round((lo.astype(np.float64) + hi) / 2)
    return np.where(has, med, 0).astype(np.int64).tolist()


def store_duplicates(store, tokenizer, threshold: float = DEFAULT_THRESHOLD, ngram: int = DEFAULT_NGRAM,
                     keys=None, min_common: int = MIN_COMMON, max_df: int = MAX_DF) -> StoreDuplicates:
    """Near-duplicate clusters of every piece of ``store`` (a ``shards.ShardStore``), decoded with ``tokenizer``;
    equal to ``dedup.find_duplicates`` on the same pieces (see the module docstring). ``keys`` (n,) content keys:
    pieces with equal keys are joined."""
    n = len(store)
    spill = _Partitions(store.folder.parent / SPILL_DIR, _partitions_for(store.events))
    try:
        sizes, music = _fingerprint_store(store, tokenizer, ngram, spill)
        pairs = _pairs_of(spill, sizes, threshold, min_common, max_df)
        clusters = cluster_ids(n, pairs, keys)
        groups = _describe(spill, clusters, sizes)
    finally:
        spill.remove()
    return StoreDuplicates(clusters, pairs, music, groups)
