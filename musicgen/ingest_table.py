"""Ingest's per-file state, held compactly (a 200k-file corpus): ``FileTable`` and the packed manifest rows.

``FileTable`` holds, per music file, its content key, size, mtime, skip reason and its pieces' packed manifest rows
in flat lists and arrays (not a dict per file), gives the kept pieces' columns for the store and yields the manifest
rows in path order, one at a time (they are written as they come, never all held). ``TokenizeItems`` makes the
``(path, key)`` work items of a chunk when ``safeio.run_isolated`` sends it.

A manifest row of a piece (``ingest_worker.piece_rows``) is a dict of some of ``FIELDS``; a 200k-file ingest holds
one per piece until the manifest is written. As a dict with its own strings it costs ~300 bytes; packed here as a
tuple of the ``FIELDS`` values (None where the row has no such field), with the few distinct tonality / meter /
reader / reason strings interned, ~130 (the piece key is the caller's string, shared). A file's rows pack to one
tuple when it has one piece (every MIDI file), else to a list of tuples.
"""

from __future__ import annotations

import heapq
import os
import sys
from collections.abc import Iterator

import numpy as np

FIELDS = ("key", "index", "title", "reader", "reason", "events", "tonality", "meter")
_INTERNED = frozenset(("reader", "reason", "tonality", "meter"))

__all__ = ["FIELDS", "ROW_ORDER", "FileTable", "TokenizeItems", "kept_of", "pack_rows", "unpack_rows"]
ROW_ORDER = ("path", "index", "title", "key", "size", "mtime_ns", "status", "reader", "reason", "events", "tonality",
             "meter")  # a manifest row's fields, in this order (readable; equal rows compare and print alike)


def _pack(row: dict) -> tuple:
    unknown = set(row) - set(FIELDS)
    if unknown:
        raise ValueError(f"row: unexpected field {sorted(unknown)[0]!r} (expected some of {', '.join(FIELDS)})")
    return tuple(sys.intern(v) if k in _INTERNED and isinstance(v, str) else v
                 for k, v in ((k, row.get(k)) for k in FIELDS))


def pack_rows(rows: list[dict]) -> tuple | list[tuple]:
    """``rows`` (a file's piece rows, dicts of ``FIELDS`` values, none of them None) packed: one tuple for one row,
    else a list of tuples. ``unpack_rows`` gives them back equal, fields in ``FIELDS`` order."""
    return _pack(rows[0]) if len(rows) == 1 else [_pack(r) for r in rows]


def _each(packed: tuple | list[tuple]) -> list[tuple]:
    return [packed] if isinstance(packed, tuple) else packed


def unpack_rows(packed: tuple | list[tuple]) -> list[dict]:
    """The rows that ``pack_rows`` packed, as dicts (fields in ``FIELDS`` order)."""
    return [{k: v for k, v in zip(FIELDS, t) if v is not None} for t in _each(packed)]


def kept_of(packed: tuple | list[tuple]) -> Iterator[tuple[str, int]]:
    """``(piece key, index in its file)`` of each kept row (one without a reason) of a packed file, in order; a row
    without ``index`` (a MIDI file's) counts 0."""
    for t in _each(packed):
        if t[4] is None:
            yield t[0], (t[1] if t[1] is not None else 0)


class FileTable:
    """Per music file ``i`` (``music[i]``, paths relative to the corpus, sorted): ``keys[i]`` its content key (None:
    unreadable), ``sizes[i]`` / ``mtimes[i]`` int64 (bytes, ns), ``skipped[i]`` why it is skipped (unreadable,
    duplicate; absent otherwise) and ``rows[i]`` its pieces' manifest rows packed (``pack_rows``; set for the first
    file of each content key)."""

    def __init__(self, music: list[str]):
        n = len(music)
        self.music = music
        self.keys: list[str | None] = [None] * n
        self.sizes, self.mtimes = np.zeros(n, np.int64), np.zeros(n, np.int64)
        self.skipped: dict[int, str] = {}
        self.rows: list = [None] * n

    def __len__(self) -> int:
        return len(self.music)

    def kept_columns(self) -> tuple[list[str], list[str], list[int]]:
        """Piece keys, paths and indices in their file of the kept pieces, in path order (the store's order)."""
        keys, paths, indices = [], [], []
        for i in range(len(self.music)):
            if i not in self.skipped:
                for key, index in kept_of(self.rows[i]):
                    keys.append(key)
                    paths.append(self.music[i])
                    indices.append(index)
        return keys, paths, indices

    def file_rows(self, i: int) -> list[dict]:
        """Manifest rows of file ``i``, fields in ``ROW_ORDER``."""
        rec = {"path": self.music[i]}
        if self.keys[i] is not None:
            rec.update(key=self.keys[i], size=int(self.sizes[i]), mtime_ns=int(self.mtimes[i]))
        if i in self.skipped:
            return [_ordered({**rec, "status": "skipped", "reason": self.skipped[i]})]
        return [_ordered({"path": rec["path"], "size": rec["size"], "mtime_ns": rec["mtime_ns"], **row,
                          "status": "skipped" if "reason" in row else "kept"}) for row in unpack_rows(self.rows[i])]

    def manifest_rows(self, other: list[str]) -> Iterator[dict]:
        """Every file's manifest rows, ``other`` (sorted; not music) as ignored, in path order (a file's pieces in
        index order), one at a time."""
        ignored = ({"path": rel, "status": "ignored", "reason": "not a music file"} for rel in other)
        return heapq.merge((row for i in range(len(self.music)) for row in self.file_rows(i)), ignored,
                           key=lambda r: r["path"])


def _ordered(row: dict) -> dict:
    return {k: row[k] for k in ROW_ORDER if k in row}


class TokenizeItems:
    """``(absolute path, file key)`` of each file to tokenize, in the order of ``keys``; a slice is made when asked
    for (``run_isolated`` sends a chunk at a time), so the paths of a 200k-file corpus are not all held at once.
    ``first[key]`` is the number of the key's first file in ``music``."""

    def __init__(self, root: str, music: list[str], first: dict[str, int], keys: list[str]):
        self.root, self.music, self.first, self.keys = root, music, first, keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self.keys)))]
        key = self.keys[i]
        return os.path.join(self.root, self.music[self.first[key]]), key
