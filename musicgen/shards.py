"""The sharded token store: a token cache's kept pieces on disk (the layout), and writing them.

Layout (``DIR`` = a cache folder written by ``musicgen ingest``)::

    DIR/shards/index.json             written last: format, dtype ("uint16" when the vocabulary fits, else "int32"),
                                      vocab_size, pieces, events, and per shard its name, pieces and events
    DIR/shards/NAME.tokens.npy        the shard's pieces end to end, shape (T_s,), that dtype
    DIR/shards/NAME.index.npz         offsets int64 (m+1) into the shard's tokens, keys unicode (m) (``piece_key``),
                                      paths unicode (m) relative to the corpus, indices int64 (m) (piece in its file),
                                      qpm float64 (m), bounds int16 (m, 2) (``Tokenizer.transpose_bounds``)
    DIR/shards/clusters.npz           cluster int64 (n) near-duplicate cluster per piece (``dedup.cluster_ids``),
                                      rep int64 (C) the piece with the smallest key of each cluster, threshold, ngram

Pieces fill shards in order, greedily up to ``shard_bytes`` (default 64 MiB; a piece never straddles two shards).
``NAME`` is ``<5-digit shard number>-<12 hex of sha256(config hash, the shard's piece keys)>``: a shard is a pure
function of its pieces, so a writer that was killed reuses every shard it finished (same name, same bytes), an
index.json never names a file that a later run rewrote, and another engine (a Beam pipeline) that knows the shard
boundaries can write the same files. The small-corpus case is one shard.

Reading (``ShardStore``, the lazy ``PieceSequence`` and ``Column``, ``take``) is ``musicgen.shards_read``, whose
names are re-exported here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from musicgen.errors import MusicgenError
from musicgen.safeio import atomic_path, atomic_write_text, save_npz
from musicgen.shards_read import CLUSTERS, INDEX, SHARDS_DIR, Column, PieceSequence, ShardStore, has_store, take

STORE_FORMAT = 1
SHARD_BYTES = 64 * 2**20

__all__ = ["CLUSTERS", "INDEX", "SHARDS_DIR", "SHARD_BYTES", "Column", "PieceSequence", "ShardStore", "finish_store",
           "has_store", "plan_store", "shard_dtype", "shard_is_whole", "take", "write_clusters", "write_shard",
           "write_store"]


def shard_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id of the vocabulary fits, else int32."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.int32)


def _plan(sizes: Sequence[int], shard_bytes: int, itemsize: int) -> list[tuple[int, int]]:
    """Shard boundaries ``[(first piece, end piece), ...]``: greedy, a shard closes before the piece that would take
    it past ``shard_bytes`` (a piece larger than that gets a shard of its own)."""
    cuts, first, filled = [], 0, 0
    for i, size in enumerate(sizes):
        if filled and filled + size * itemsize > shard_bytes:
            cuts.append((first, i))
            first, filled = i, 0
        filled += size * itemsize
    if first < len(sizes):
        cuts.append((first, len(sizes)))
    return cuts


def _shard_name(number: int, config_hash: str, keys: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join([config_hash, *keys]).encode()).hexdigest()[:12]
    return f"{number:05d}-{digest}"


def _shard_is_whole(folder: Path, name: str, keys: Sequence[str], events: int, dtype: np.dtype) -> bool:
    try:
        with np.load(folder / f"{name}.index.npz", allow_pickle=False) as z:
            if z["keys"].tolist() != list(keys) or int(z["offsets"][-1]) != events:
                return False
        tokens = np.load(folder / f"{name}.tokens.npy", mmap_mode="r", allow_pickle=False)
        return tokens.dtype == dtype and tokens.shape == (events,)
    except Exception:  # missing, truncated, damaged: write it again
        return False


def plan_store(keys: Sequence[str], sizes: Sequence[int], config_hash: str, shard_bytes: int,
               dtype: np.dtype) -> list[dict]:
    """The shards of a store of pieces ``keys`` with ``sizes`` events each, in store order: per shard its ``number``,
    ``name``, pieces ``lo``..``hi`` (end excluded) and ``events``. A pure function of its arguments, so every engine
    that writes a store (``write_store`` here, a Beam pipeline in ``musicgen.ingest_beam``) cuts it alike."""
    plan = []
    for number, (lo, hi) in enumerate(_plan(sizes, shard_bytes, np.dtype(dtype).itemsize)):
        plan.append({"number": number, "name": _shard_name(number, config_hash, keys[lo:hi]), "lo": lo, "hi": hi,
                     "events": int(sum(sizes[lo:hi]))})
    return plan


def shard_is_whole(cache_dir: str | Path, shard: dict, keys: Sequence[str], dtype: np.dtype) -> bool:
    """True when ``shard`` (a ``plan_store`` item) is on disk, whole, with exactly ``keys`` (its pieces' keys)."""
    return _shard_is_whole(Path(cache_dir) / SHARDS_DIR, shard["name"], keys, shard["events"], np.dtype(dtype))


def write_shard(cache_dir: str | Path, name: str, keys: Sequence[str], paths: Sequence[str], indices: Sequence[int],
                got: Iterable[tuple[np.ndarray, float]], tokenizer, dtype: np.dtype, events: int | None = None) -> None:
    """Write one shard's two files (layout in the module docstring), atomically: ``got`` yields ``(tokens int (T,),
    qpm)`` of its piece j, whose key, path and index in its file are ``keys[j]``, ``paths[j]``, ``indices[j]``.
    With ``events`` (the shard's total) each piece is written to the file as ``got`` yields it, after the ``.npy``
    header that ``np.save`` writes (the same bytes; memory: one piece, not the shard)."""
    folder = Path(cache_dir) / SHARDS_DIR
    offsets, qpm, bounds = np.zeros(len(keys) + 1, np.int64), [], []
    if events is None:
        got = list(got)
        events = int(sum(np.asarray(t).size for t, _ in got))
    with atomic_path(folder / f"{name}.tokens.npy") as tmp, open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                 "fortran_order": False, "shape": (events,)})
        for j, (piece, q) in enumerate(got):
            piece = np.asarray(piece)
            offsets[j + 1] = offsets[j] + piece.size
            if offsets[j + 1] > events:
                break
            f.write(piece.astype(dtype).tobytes())
            qpm.append(q)
            bounds.append(tokenizer.transpose_bounds(piece.astype(np.int64)))
        if offsets[-1] != events or len(qpm) != len(keys):
            raise MusicgenError(f"shard {name!r}: expected {len(keys)} pieces of {events} events, got {len(qpm)} of "
                                f"{int(offsets[-1])}; rerun `musicgen ingest`")
    save_npz(folder / f"{name}.index.npz", offsets=offsets, keys=np.array(list(keys), dtype=np.str_),
             paths=np.array(list(paths), dtype=np.str_), indices=np.array(list(indices), np.int64),
             qpm=np.array(qpm, np.float64), bounds=np.array(bounds, np.int16).reshape(-1, 2))


def finish_store(cache_dir: str | Path, plan: list[dict], tokenizer) -> dict:
    """Write index.json for the shards of ``plan`` (all on disk by now) and remove every other file of the store's
    folder (shards of an older store, clusters.npz of its pieces); returns index.json's content."""
    folder = Path(cache_dir) / SHARDS_DIR
    dtype = shard_dtype(tokenizer.vocab_size)
    shards = [{"name": s["name"], "pieces": s["hi"] - s["lo"], "events": s["events"]} for s in plan]
    index = {"format": STORE_FORMAT, "dtype": dtype.name, "vocab_size": int(tokenizer.vocab_size),
             "pieces": sum(s["pieces"] for s in shards), "events": int(sum(s["events"] for s in shards)),
             "shards": shards}
    atomic_write_text(folder / INDEX, json.dumps(index, indent=1) + "\n")
    wanted = {f"{s['name']}.{kind}" for s in shards for kind in ("tokens.npy", "index.npz")} | {INDEX, CLUSTERS}
    for path in folder.iterdir():
        if path.name not in wanted and not path.name.startswith("."):
            path.unlink(missing_ok=True)
    return index


def write_store(cache_dir: str | Path, keys: Sequence[str], paths: Sequence[str], indices: Sequence[int],
                piece: Callable[[int], tuple[np.ndarray, float]], tokenizer, config_hash: str,
                shard_bytes: int = SHARD_BYTES, on_shard: Callable[[int], None] | None = None,
                reuse: bool = True, write_shards: Callable[[list[dict]], None] | None = None) -> dict:
    """Write the store of ``cache_dir`` (layout in the module docstring) and return its index.json content.

    Args:
        keys / paths / indices: per kept piece, in store order.
        piece: ``piece(i) -> (tokens int (T,), qpm)`` of piece ``i``; called once per piece of a shard to write
            (and for its tokens' ``size``, which a lazy array may give without reading them).
        tokenizer: its ``vocab_size`` picks the dtype, its ``transpose_bounds`` fills ``bounds``.
        config_hash: the tokenizer config's hash (part of each shard's name).
        shard_bytes: the shard size limit in bytes of tokens.
        on_shard: called with each shard's number once its files exist (tests stop a run there).
        reuse: keep a shard already on disk under its name (False: write every shard again, e.g. after damage).
        write_shards: writes the listed ``plan_store`` shards (another engine, e.g. a Beam pipeline); default: one
            after another here, with ``write_shard``.

    Shards already on disk under their name are kept as they are (a killed run resumes); files of other shards are
    removed after index.json is written.
    """
    folder = Path(cache_dir) / SHARDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CLUSTERS).unlink(missing_ok=True)  # made for the pieces of the last store: ``write_clusters`` anew
    dtype = shard_dtype(tokenizer.vocab_size)
    plan = plan_store(keys, [int(piece(i)[0].size) for i in range(len(keys))], config_hash, shard_bytes, dtype)
    todo = [s for s in plan if not (reuse and shard_is_whole(cache_dir, s, keys[s["lo"]:s["hi"]], dtype))]
    if write_shards is not None and todo:
        write_shards(todo)
    for s in plan:
        if write_shards is None and s in todo:
            lo, hi = s["lo"], s["hi"]
            write_shard(cache_dir, s["name"], keys[lo:hi], paths[lo:hi], indices[lo:hi],
                        (piece(i) for i in range(lo, hi)), tokenizer, dtype, events=s["events"])
        if on_shard is not None:
            on_shard(s["number"])
    return finish_store(cache_dir, plan, tokenizer)


def write_clusters(cache_dir: str | Path, cluster: np.ndarray, keys: Sequence[str], threshold: float,
                   ngram: int, music: Sequence[str] | None = None) -> None:
    """Record the near-duplicate ``cluster`` (int64 (n,), numbered 0..C-1) of the store's pieces, per cluster the
    piece with the smallest key (what ``split_version`` 2 draws the cluster's part from), and each piece's music key
    (``dedup.Fingerprint.music``, what ``split_version`` 3 draws from) when given."""
    cluster = np.asarray(cluster, np.int64)
    rep = np.full(int(cluster.max()) + 1 if cluster.size else 0, -1, np.int64)
    smallest: dict[int, str] = {}
    for i, (c, k) in enumerate(zip(cluster.tolist(), keys)):
        if c not in smallest or k < smallest[c]:
            smallest[c], rep[c] = k, i
    extra = {} if music is None else {"music": np.asarray(list(music), dtype="U32").reshape(-1)}
    save_npz(Path(cache_dir) / SHARDS_DIR / CLUSTERS, cluster=cluster, rep=rep,
             threshold=np.float64(threshold), ngram=np.int64(ngram), **extra)

