"""The sharded token store opened for reading: its pieces memory-mapped, read one at a time, never loaded whole.

The layout and how a store is written are in ``musicgen.shards`` (which re-exports the names here). ``ShardStore``
loads index.json and the numeric columns of every shard index (offsets, qpm, bounds: ~26 bytes a piece); tokens are
read piece by piece through ``np.load(mmap_mode="r")``, and the maps are dropped once the reads may have mapped
``MAP_BUDGET`` bytes, so that reading a large corpus in random piece order does not leave it in the RSS. A read counts
its bytes + ``PAGE_SPAN``: on this machine's kernel (6.18, large page-cache folios) one random 1.4 KB read mapped
160-900 KB of a shard (measured; the maps are also advised ``MADV_RANDOM``). Keys and paths are read one shard at a
time when asked for (``Column``); ``PieceSequence`` and ``take`` give lazy subsets of the pieces.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from musicgen.errors import MusicgenError

SHARDS_DIR = "shards"
INDEX = "index.json"
CLUSTERS = "clusters.npz"
MAP_BUDGET = 16 * 2**20  # bytes the maps may bring into the RSS before they are dropped (their pages leave it)
PAGE_SPAN = 2 * 2**20  # what one read may map: a fault maps the whole page-cache folio (up to 2 MiB, PMD size)

__all__ = ["CLUSTERS", "INDEX", "MAP_BUDGET", "PAGE_SPAN", "SHARDS_DIR", "Column", "PieceSequence", "ShardStore",
           "has_store", "take"]


def _advise(tokens: np.ndarray, advice: str) -> bool:
    """``madvise`` the memory map under ``tokens`` with ``mmap.<advice>``; False where the platform cannot."""
    advise = getattr(getattr(tokens, "_mmap", None), "madvise", None)
    if advise is None or not hasattr(mmap, advice):
        return False
    advise(getattr(mmap, advice))
    return True


def has_store(cache_dir: str | Path) -> bool:
    """True when ``cache_dir/shards/index.json`` exists."""
    return (Path(cache_dir) / SHARDS_DIR / INDEX).is_file()


class ShardStore:
    """A store opened for reading (layout: ``musicgen.shards``); ``len`` pieces, ``events`` tokens in all.

    Attributes: ``offsets`` int64 (n+1) of each piece in the virtual concatenation of all shards, ``qpm`` float64
    (n), ``bounds`` int16 (n, 2), ``vocab_size``, ``folder``.
    Raises ``MusicgenError`` (one line) when index.json or a shard index is missing, damaged or inconsistent.
    """

    def __init__(self, cache_dir: str | Path):
        self.folder = Path(cache_dir) / SHARDS_DIR
        where = self.folder / INDEX
        try:
            index = json.loads(where.read_text())
            self.shards = [dict(s) for s in index["shards"]]
            self.vocab_size, self.dtype = int(index["vocab_size"]), np.dtype(index["dtype"])
            offsets, qpm, bounds = [np.zeros(1, np.int64)], [], []
            for s in self.shards:
                with np.load(self.folder / f"{s['name']}.index.npz", allow_pickle=False) as z:
                    off, q, b = z["offsets"], z["qpm"], z["bounds"]
                if not (off.dtype == np.int64 and off.shape == (s["pieces"] + 1,) and off[0] == 0
                        and off[-1] == s["events"] and q.shape == (s["pieces"],) and b.shape == (s["pieces"], 2)):
                    raise ValueError(f"shard {s['name']}: columns do not match index.json")
                if np.any(np.diff(off) < 2):
                    raise ValueError(f"shard {s['name']}: offsets do not split its tokens into pieces of >= 2 events")
                offsets.append(off[1:] + offsets[-1][-1])
                qpm.append(q.astype(np.float64))
                bounds.append(b.astype(np.int16))
        except FileNotFoundError as exc:
            raise MusicgenError(f"token cache {str(self.folder.parent)!r}: missing {Path(exc.filename).name}; "
                                f"run `musicgen ingest`") from None
        except Exception as exc:  # JSON, zip CRC, missing member, pickled array, shapes
            raise MusicgenError(f"token cache {str(where)!r} is damaged or inconsistent ({type(exc).__name__}: "
                                f"{exc}); rerun `musicgen ingest`") from None
        self.offsets = np.concatenate(offsets)
        self.qpm = np.concatenate(qpm) if qpm else np.zeros(0)
        self.bounds = np.concatenate(bounds) if bounds else np.zeros((0, 2), np.int16)
        self.first_piece = np.cumsum([0] + [s["pieces"] for s in self.shards])
        # every shard mapped now (no page is read), kept for the store's life: see _map
        self._tokens: list[np.ndarray | None] = [self._open(shard) for shard in range(len(self.shards))]
        self._maps: dict[int, np.ndarray] = {}  # the maps read since the last release
        self._mapped_bytes = 0

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def events(self) -> int:
        return int(self.offsets[-1])

    @property
    def lengths(self) -> np.ndarray:
        """int64 (n,) events per piece."""
        return np.diff(self.offsets)

    def _open(self, shard: int) -> np.ndarray:
        name = self.shards[shard]["name"]
        try:
            tokens = np.load(self.folder / f"{name}.tokens.npy", mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise MusicgenError(f"token cache shard {name!r} is unreadable ({type(exc).__name__}: {exc}); "
                                f"rerun `musicgen ingest`") from None
        if tokens.dtype != self.dtype or tokens.shape != (self.shards[shard]["events"],):
            raise MusicgenError(f"token cache shard {name!r} is inconsistent: expected {self.dtype} "
                                f"({self.shards[shard]['events']},), got {tokens.dtype} {tokens.shape}; "
                                f"rerun `musicgen ingest`")
        _advise(tokens, "MADV_RANDOM")  # pieces are read in random order: no read-around into the RSS
        return tokens

    def _map(self, shard: int) -> np.ndarray:
        """The shard's tokens, memory-mapped. Every shard is mapped when the store is opened and stays mapped for
        the store's life (``release`` only drops its pages), so a store rewritten meanwhile (another ``musicgen
        ingest`` of the folder with another config, which removes the old shard files) does not pull the tokens from
        under a running training."""
        tokens = self._tokens[shard]
        if tokens is None:  # dropped by a release where madvise could not drop its pages
            tokens = self._tokens[shard] = self._open(shard)
        self._maps[shard] = tokens
        return tokens

    def release(self) -> None:
        """Drop the pages of the memory maps from this process's RSS (``MADV_DONTNEED``; the maps stay, the next
        read faults the pages in again). Where madvise cannot drop them, the maps themselves are dropped."""
        for shard, tokens in self._maps.items():
            if not _advise(tokens, "MADV_DONTNEED"):
                self._tokens[shard] = None
        self._maps.clear()
        self._mapped_bytes = 0

    def piece(self, i: int) -> np.ndarray:
        """Tokens of piece ``i``: a fresh int32 array, shape (T_i,). Ids outside the vocabulary are refused."""
        shard = int(np.searchsorted(self.first_piece, i, side="right") - 1)
        base = self.offsets[self.first_piece[shard]]
        lo, hi = int(self.offsets[i] - base), int(self.offsets[i + 1] - base)
        out = np.array(self._map(shard)[lo:hi], dtype=np.int32)  # a copy: no view keeps the map alive
        self._mapped_bytes += out.size * self.dtype.itemsize + PAGE_SPAN
        if self._mapped_bytes > MAP_BUDGET:
            self.release()
        if out.size and int(out.max()) >= self.vocab_size:
            raise MusicgenError(f"token cache shard {self.shards[shard]['name']!r} is inconsistent: token ids outside "
                                f"[0, {self.vocab_size}); rerun `musicgen ingest`")
        return out

    def column(self, name: str, shard: int) -> np.ndarray:
        """Column ``name`` (keys, paths, indices) of one shard's index, shape (m,)."""
        with np.load(self.folder / f"{self.shards[shard]['name']}.index.npz", allow_pickle=False) as z:
            return z[name]

    def clusters(self, threshold: float, ngram: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(cluster int64 (n,), rep int64 (C,))`` recorded for these dedup settings (``write_clusters``), or None."""
        found = self.recorded_clusters(threshold, ngram)
        return None if found is None else (found["cluster"], found["rep"])

    def recorded_clusters(self, threshold: float, ngram: int) -> dict | None:
        """Everything ``write_clusters`` recorded for these dedup settings, read once: ``cluster``, ``rep`` and, in
        stores written since music keys, ``music`` (unicode (n,)); None when missing, damaged or made with others."""
        try:
            with np.load(self.folder / CLUSTERS, allow_pickle=False) as z:
                if float(z["threshold"]) != float(threshold) or int(z["ngram"]) != int(ngram):
                    return None
                found = {k: z[k] for k in z.files}
        except Exception:
            return None
        ok = found["cluster"].shape == (len(self),) and found["rep"].dtype == np.int64
        return found if ok and ("music" not in found or found["music"].shape == (len(self),)) else None


class PieceSequence(Sequence):
    """A lazy sequence of the store's pieces (all, or those of ``index``): ``seq[i]`` reads piece i (int32 (T_i,));
    ``lengths`` and ``bounds`` come from the index without reading tokens; ``take`` makes a subset."""

    def __init__(self, store: ShardStore, index: np.ndarray | None = None):
        self.store, self.index = store, index

    @property
    def whole(self) -> bool:
        """True for the store's own piece order (not a subset)."""
        return self.index is None

    def _ids(self) -> np.ndarray:
        return np.arange(len(self.store)) if self.index is None else self.index

    def __len__(self) -> int:
        return len(self.store) if self.index is None else int(self.index.size)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"piece {i} of {n}")
        i = i + n if i < 0 else i
        return self.store.piece(int(i if self.index is None else self.index[i]))

    def take(self, positions) -> PieceSequence:
        """The pieces at ``positions`` (int indices into this sequence), lazily."""
        return PieceSequence(self.store, self._ids()[np.asarray(positions, np.int64)])

    @property
    def lengths(self) -> np.ndarray:
        return self.store.lengths[self._ids()]

    @property
    def bounds(self) -> np.ndarray:
        return self.store.bounds[self._ids()]


class Column(Sequence):
    """One column of the shard indexes (keys, paths or indices) as a lazy sequence of Python values, read one shard
    at a time; compares equal to a list with the same items."""

    def __init__(self, store: ShardStore, name: str):
        self.store, self.name = store, name
        self._shard, self._values = -1, []

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.name} {i} of {n}")
        i = i + n if i < 0 else i
        shard = int(np.searchsorted(self.store.first_piece, i, side="right") - 1)
        if shard != self._shard:
            self._shard, self._values = shard, self.store.column(self.name, shard).tolist()
        return self._values[i - int(self.store.first_piece[shard])]

    def __iter__(self):
        for shard in range(len(self.store.shards)):
            yield from self.store.column(self.name, shard).tolist()

    def __eq__(self, other) -> bool:
        return isinstance(other, (list, tuple, Column)) and len(other) == len(self) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Column({self.name!r}, {len(self)} items)"


def take(pieces: Sequence, positions: Iterable[int]):
    """``[pieces[i] for i in positions]``, lazily when ``pieces`` is a ``PieceSequence``."""
    if isinstance(pieces, PieceSequence):
        return pieces.take(np.fromiter(positions, np.int64))
    return [pieces[i] for i in positions]
