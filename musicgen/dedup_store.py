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

With ``workers`` > 1 each pass runs in a process pool: pass 1 over ranges of pieces (each range writes its own
partition files, named by its first piece, so owners stay ascending when a partition's files are read in name
order), passes 2 and 3 one partition per task; the driver only merges per-piece arrays. A store small enough for
one partition is done in this process, in memory.

Peak memory per process: one batch, one partition and its sort, the pair counts of one partition (per pair that
shares a shingle there) and ~100 bytes per piece. The partition files live in ``CACHE/.dedup/`` and are removed
afterwards.

``record_clusters`` is what ingest calls: it clusters a store with ``store_duplicates`` and writes ``clusters.json``
and ``shards/clusters.npz`` (it lives here, not in ``dedup``, so ``dedup`` ← ``fingerprints`` ← ``dedup_store``
stays a line, not a circle).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ProcessPoolExecutor
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


class _Writer:
    """Appends shingle rows to the partition files of one range of pieces (``tag``), by the top bits of the hash."""

    def __init__(self, folder: Path, parts: int, tag: str):
        self.parts, self.bits = parts, parts.bit_length() - 1
        self.files = [[open(folder / f"{p:04d}.{tag}.{name}", "wb") for name, _ in _ROW] for p in range(parts)]

    def add(self, hashes: np.ndarray, owner: np.ndarray, anchors: np.ndarray) -> None:
        part = (hashes >> np.uint64(64 - self.bits)).astype(np.int64) if self.bits else np.zeros(hashes.size, int)
        order = np.argsort(part, kind="stable")  # stable: owners stay ascending within a partition
        cuts = np.searchsorted(part[order], np.arange(self.parts + 1))
        cols = [c[order] for c in (hashes, owner.astype(np.int32), anchors)]
        for p in np.flatnonzero(np.diff(cuts)).tolist():
            for f, col in zip(self.files[p], cols):
                col[cuts[p]:cuts[p + 1]].tofile(f)

    def close(self) -> None:
        for files in self.files:
            for f in files:
                f.close()


def _sorted_rows(cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(cols[0], kind="stable")  # stable: owners ascending within a hash
    return cols[0][order], cols[1][order].astype(np.int64), cols[2][order]


def _read_partition(folder: Path, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partition ``p``'s rows (every range's file, in range order) sorted by hash: hashes, owner int64, anchors."""
    cols = []
    for name, dt in _ROW:
        files = sorted(folder.glob(f"{p:04d}.*.{name}"))
        cols.append(np.concatenate([np.fromfile(f, dtype=dt) for f in files]) if files else np.zeros(0, dt))
    return _sorted_rows(cols)


def _partitions_for(events: int) -> int:
    """A power of two: about one partition per ``PARTITION_ROWS`` shingles (measured: ~0.34 shingles per event on
    the chorales; a partition that holds more costs memory, not correctness)."""
    parts = 1
    while parts * PARTITION_ROWS < events // 3 and parts < 4096:
        parts *= 2
    return parts


def _fingerprint_pieces(store, tokenizer, ngram: int, lo: int, hi: int, sink) -> tuple[np.ndarray, list[str]]:
    """Pass 1 over pieces ``lo``..``hi`` (end excluded): their shingle rows to ``sink(hashes, owner, anchors)``,
    a batch of about ``BATCH_EVENTS`` tokens at a time (never across a shard); returns (shingles per piece, music
    keys) of the range."""
    sizes, music = np.zeros(hi - lo, np.int64), []
    i = lo
    while i < hi:
        shard = int(np.searchsorted(store.first_piece, i, side="right") - 1)
        end = min(hi, int(store.first_piece[shard + 1]))
        j = int(np.searchsorted(store.offsets, store.offsets[i] + BATCH_EVENTS, side="right")) - 1
        j = min(max(j, i + 1), end)
        base = store.offsets[store.first_piece[shard]]
        tokens = np.array(store._map(shard)[int(store.offsets[i] - base):int(store.offsets[j] - base)], np.int64)
        store.release()
        batch = flat_fingerprints(tokens, np.diff(store.offsets[i:j + 1]), tokenizer, ngram)
        sizes[i - lo:j - lo] = batch.sizes
        music += batch.music
        sink(batch.hashes, np.repeat(np.arange(i, j, dtype=np.int64), batch.sizes), batch.anchors)
        i = j
    return sizes, music


def _fingerprint_range(cache_dir: str, lo: int, hi: int, config_json: str, ngram: int, folder: str, parts: int):
    """Pool task of pass 1: pieces ``lo``..``hi`` of the store in ``cache_dir`` into partition files tagged ``lo``."""
    from musicgen.config import TokenizerConfig
    from musicgen.shards import ShardStore
    from musicgen.tokenizer import Tokenizer

    writer = _Writer(Path(folder), parts, f"{lo:012d}")
    try:
        return _fingerprint_pieces(ShardStore(cache_dir), Tokenizer(TokenizerConfig.from_json(config_json)), ngram,
                                   lo, hi, writer.add)
    finally:
        writer.close()


def _need(codes: np.ndarray, sizes: np.ndarray, threshold: float, min_common: int) -> np.ndarray:
    """A lower bound of the shared shingles pair ``code`` needs to be joined (``pairs_from_counts``'s test)."""
    n = sizes.size
    return np.maximum(min_common, np.floor(threshold * np.minimum(sizes[codes // n], sizes[codes % n])) - 1)


def _count_partition(folder: str, p: int, parts: int, threshold: float, min_common: int, max_df: int) -> np.ndarray:
    """Pool task of pass 2: partition ``p``'s pair counts (saved next to it) and its candidate pair codes: a pair
    that reaches ``need`` shared shingles in all has at least need / P in one partition (pigeonhole)."""
    folder = Path(folder)
    sizes = np.load(folder / "sizes.npy")
    h, owner, _ = _read_partition(folder, p)
    codes, counts = pair_counts(h, owner, sizes.size, max_df)
    del h, owner
    np.save(folder / f"{p:04d}.codes.npy", codes)
    np.save(folder / f"{p:04d}.counts.npy", counts)
    codes, counts = codes[counts * parts >= min_common], counts[counts * parts >= min_common]
    return codes[counts * parts >= _need(codes, sizes, threshold, min_common)]


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sorted distinct values of two int64 arrays (``np.union1d`` by sorting: numpy 2.4's hash-based ``np.unique``
    took 1.5 s where a sort takes 0.01 s, on 1.2 M codes here)."""
    c = np.concatenate([a, b])
    c.sort()
    return c[np.concatenate([[True], c[1:] != c[:-1]])] if c.size else c


def _totals(folder: Path, parts: int, candidates: np.ndarray) -> np.ndarray:
    """Shared shingles of each candidate pair, summed over the partitions' saved counts."""
    total = np.zeros(candidates.size, np.int64)
    for p in range(parts):
        codes = np.load(folder / f"{p:04d}.codes.npy")
        if not codes.size:
            continue
        at = np.minimum(np.searchsorted(codes, candidates), codes.size - 1)
        hit = codes[at] == candidates
        total[hit] += np.load(folder / f"{p:04d}.counts.npy")[at[hit]]
    return total


def _shared_with_reference(h, owner, anchor, clusters, ref) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pass 3 on sorted rows: per group member, the shingles it shares with its group's reference (first piece) and
    their anchor differences: ``(owners, shared counts, histogram codes owner * 1024 + diff + 512, their counts)``,
    each sorted."""
    r = ref[clusters[owner]]
    grouped = r >= 0
    h, owner, anchor, r = h[grouped], owner[grouped], anchor[grouped].astype(np.int64), r[grouped]
    order = np.lexsort((owner, r, h))  # runs of (shingle, group), owners ascending: the reference first if there
    h, owner, anchor, r = h[order], owner[order], anchor[order], r[order]
    start = np.ones(h.size, bool)
    start[1:] = (h[1:] != h[:-1]) | (r[1:] != r[:-1])
    run_first = np.maximum.accumulate(np.where(start, np.arange(h.size), 0))
    shared = owner[run_first] == r
    who, common = np.unique(owner[shared], return_counts=True)
    code, k = np.unique(owner[shared] * 1024 + anchor[shared] - anchor[run_first[shared]] + 512, return_counts=True)
    return who, common, code, k


def _describe_partition(folder: str, p: int):
    """Pool task of pass 3 on partition ``p`` (clusters and references saved in ``folder``)."""
    folder = Path(folder)
    return _shared_with_reference(*_read_partition(folder, p), np.load(folder / "clusters.npy"),
                                  np.load(folder / "ref.npy"))


def _references(clusters: np.ndarray) -> np.ndarray:
    """Per cluster id, its first piece, or -1 for a cluster of one piece; int64 (C,)."""
    count = np.bincount(clusters) if clusters.size else np.zeros(0, np.int64)
    ref = np.unique(clusters, return_index=True)[1].astype(np.int64)
    ref[count < 2] = -1
    return ref


def _groups(clusters: np.ndarray, sizes: np.ndarray, common: np.ndarray, hist: tuple[np.ndarray, np.ndarray]):
    """``StoreDuplicates.groups`` from the shared counts (n,) and the difference histogram of pass 3."""
    semitones = _medians(*hist, clusters.size)
    members_of = np.argsort(clusters, kind="stable")
    count = np.bincount(clusters) if clusters.size else np.zeros(0, np.int64)
    cuts = np.concatenate([[0], np.cumsum(count)])
    out = []
    for c in np.flatnonzero(count >= 2).tolist():
        members = members_of[cuts[c]:cuts[c + 1]]
        r = int(members[0])
        sim = [float(common[m] / min(sizes[r], sizes[m])) if sizes[r] and sizes[m] else 0.0 for m in members.tolist()]
        out.append((members, sim, [semitones[m] if common[m] else None for m in members.tolist()]))
    out.sort(key=lambda g: (-g[0].size, int(g[0][0])))
    return out


def _medians(code: np.ndarray, count: np.ndarray, n: int) -> list[int]:
    """Per piece, ``round(median)`` of its anchor differences (``code = piece * 1024 + diff + 512`` with ``count``
    occurrences each, sorted by code), as ``np.round(np.median(...))``; 0 for a piece without any."""
    owner, diff = code // 1024, code % 1024 - 512
    total = np.bincount(owner, weights=count, minlength=n).astype(np.int64)
    cum = np.cumsum(count)
    before = np.concatenate([[0], np.cumsum(total)])[:-1]  # rows of earlier pieces
    if not diff.size:
        return [0] * n
    lo = diff[np.minimum(np.searchsorted(cum, before + (total - 1) // 2, side="right"), diff.size - 1)]
    hi = diff[np.minimum(np.searchsorted(cum, before + total // 2, side="right"), diff.size - 1)]
    return np.where(total > 0, np.round((lo.astype(np.float64) + hi) / 2), 0).astype(np.int64).tolist()


def _merge_hist(hist: tuple[np.ndarray, np.ndarray], code: np.ndarray, k: np.ndarray):
    codes, inverse = np.unique(np.concatenate([hist[0], code]), return_inverse=True)
    return codes, np.bincount(inverse, weights=np.concatenate([hist[1], k]), minlength=codes.size).astype(np.int64)


def _in_memory(store, tokenizer, threshold, ngram, keys, min_common, max_df) -> StoreDuplicates:
    """The one-partition case, in this process."""
    n = len(store)
    held: list[list[np.ndarray]] = [[], [], []]
    sizes, music = _fingerprint_pieces(store, tokenizer, ngram, 0, n,
                                       lambda *cols: [k.append(c) for k, c in zip(held, cols)])
    rows = _sorted_rows([np.concatenate(c) if c else np.zeros(0, dt) for c, (_, dt) in zip(held, _ROW)])
    del held
    pairs = pairs_from_counts(*pair_counts(rows[0], rows[1], n, max_df), sizes, threshold, min_common)
    clusters = cluster_ids(n, pairs, keys)
    who, shared, code, k = _shared_with_reference(*rows, clusters, _references(clusters))
    common = np.zeros(n, np.int64)
    common[who] = shared
    return StoreDuplicates(clusters, pairs, music, _groups(clusters, sizes, common, (code, k)))


def _ranges(store, tasks: int) -> list[tuple[int, int]]:
    """The store's pieces cut into about ``tasks`` runs of equal events."""
    n = len(store)
    cuts = np.searchsorted(store.offsets, np.linspace(0, store.events, tasks + 1)[1:-1])
    cuts = np.unique(np.clip(np.concatenate([[0], cuts, [n]]), 0, n))
    return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def store_duplicates(store, tokenizer, threshold: float = DEFAULT_THRESHOLD, ngram: int = DEFAULT_NGRAM,
                     keys=None, min_common: int = MIN_COMMON, max_df: int = MAX_DF,
                     workers: int = 1) -> StoreDuplicates:
    """Near-duplicate clusters of every piece of ``store`` (a ``shards.ShardStore``), decoded with ``tokenizer``;
    equal to ``dedup.find_duplicates`` on the same pieces (see the module docstring). ``keys`` (n,) content keys:
    pieces with equal keys are joined. ``workers``: processes for the passes of a partitioned store (1: here)."""
    n, parts = len(store), _partitions_for(store.events)
    if parts == 1:
        return _in_memory(store, tokenizer, threshold, ngram, keys, min_common, max_df)
    from musicgen.safeio import _pool

    folder = store.folder.parent / SPILL_DIR
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pool = _pool(workers) if workers > 1 else None
    run = (lambda fn, *args: pool.map(fn, *args)) if pool is not None else map
    try:
        spans = _ranges(store, 4 * workers)
        got = list(run(_fingerprint_range, *zip(*[(str(store.folder.parent), lo, hi, tokenizer.config.to_json(),
                                                    ngram, str(folder), parts) for lo, hi in spans])))
        sizes = np.concatenate([g[0] for g in got])
        music = [m for g in got for m in g[1]]
        del got
        np.save(folder / "sizes.npy", sizes)
        candidates = np.zeros(0, np.int64)  # merged as they come: a pair may be a candidate in every partition
        for found in run(_count_partition, *zip(*[(str(folder), p, parts, threshold, min_common, max_df)
                                                  for p in range(parts)])):
            candidates = _union(candidates, found)
        pairs = pairs_from_counts(candidates, _totals(folder, parts, candidates), sizes, threshold, min_common)
        clusters = cluster_ids(n, pairs, keys)
        np.save(folder / "clusters.npy", clusters)
        np.save(folder / "ref.npy", _references(clusters))
        common, hist = np.zeros(n, np.int64), (np.zeros(0, np.int64), np.zeros(0, np.int64))
        for who, shared, code, k in run(_describe_partition, [str(folder)] * parts, range(parts)):
            common[who] += shared
            hist = _merge_hist(hist, code, k)
        return StoreDuplicates(clusters, pairs, music, _groups(clusters, sizes, common, hist))
    finally:
        if pool is not None:
            pool.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


CLUSTERS_FILE = "clusters.json"


def record_clusters(cache_dir, tokenizer_config: TokenizerConfig, threshold: float = DEFAULT_THRESHOLD,
                    ngram: int = DEFAULT_NGRAM, workers: int = 1, keys=None, paths=None) -> list[dict]:
    """Cluster the pieces of the token store that ingest just wrote into ``cache_dir`` with ``tokenizer_config``,
    write ``cache_dir/clusters.json`` and the store's ``shards/clusters.npz`` (what the split reads); returns
    ``describe_groups``'s list (members named by their corpus paths) for the manifest. Reuses the files while the
    store is unchanged. The pieces are read in batches from the memory-mapped shards and clustered by
    ``store_duplicates`` (memory per piece, not per note; the result of ``find_duplicates``) in
    ``workers`` processes. ``keys`` / ``paths``: the store's piece keys and corpus paths in store order when the
    caller holds them already (ingest; else read from the store).

    clusters.json: ``threshold``, ``ngram``, ``shards`` (size, mtime_ns of the store's index.json it was made from),
    ``paths`` and ``keys`` (the kept pieces, store order), ``cluster`` (int id per piece) and ``groups``.
    """
    import json

    from musicgen.cache import store_stamp
    from musicgen.safeio import atomic_path

    folder = Path(cache_dir)
    stamp = {"threshold": threshold, "ngram": ngram, "shards": store_stamp(folder), "music_keys": 1}
    try:
        old = json.loads((folder / CLUSTERS_FILE).read_text())
        if all(old.get(k) == v for k, v in stamp.items()):
            return old["groups"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    from musicgen.shards import Column, ShardStore, write_clusters
    from musicgen.tokenizer import Tokenizer

    store = ShardStore(folder)
    keys = list(Column(store, "keys")) if keys is None else keys
    dups = store_duplicates(store, Tokenizer(tokenizer_config), threshold, ngram, keys, workers=workers)
    paths = list(Column(store, "paths")) if paths is None else paths
    groups = [{"members": [paths[i] for i in members.tolist()], "similarity": [round(s, 3) for s in similarity],
               "semitones": semitones} for members, similarity, semitones in dups.groups]
    write_clusters(folder, dups.clusters, keys, threshold, ngram, dups.music)
    record = {**stamp, "paths": paths, "keys": keys, "cluster": dups.clusters, "groups": groups}
    with atomic_path(folder / CLUSTERS_FILE, keep_suffix=False) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for part in _json_parts(record):
            f.write(part)
    return groups


def _json_parts(record: dict, batch: int = 4096):
    """``json.dumps(record) + "\\n"`` in parts (equal text): a long list value (or int array) a batch of items at a
    time, so that the text of a 200k-piece clusters.json is never held whole."""
    import json

    yield "{"
    for i, (k, v) in enumerate(record.items()):
        yield f"{', ' if i else ''}{json.dumps(k)}: "
        if isinstance(v, (list, np.ndarray)) and len(v) > batch:
            for lo in range(0, len(v), batch):
                part = v[lo:lo + batch]
                text = json.dumps(part.tolist() if isinstance(part, np.ndarray) else list(part))[1:-1]
                yield ("[" if lo == 0 else ", ") + text
            yield "]"
        else:
            yield json.dumps(v.tolist() if isinstance(v, np.ndarray) else v)
    yield "}\n"
