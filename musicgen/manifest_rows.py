"""Ingest's manifest rows of a file's pieces, held compactly between tokenizing and writing the manifest.

A manifest row of a piece (``ingest_worker.piece_rows``) is a dict of some of ``FIELDS``; a 200k-file ingest holds
one per piece until the manifest is written. As a dict with its own strings it costs ~300 bytes; packed here as a
tuple of the ``FIELDS`` values (None where the row has no such field), with the few distinct tonality / meter /
reader / reason strings interned, ~130 (the piece key is the caller's string, shared). A file's rows pack to one
tuple when it has one piece (every MIDI file), else to a list of tuples.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

FIELDS = ("key", "index", "title", "reader", "reason", "events", "tonality", "meter")
_INTERNED = frozenset(("reader", "reason", "tonality", "meter"))

__all__ = ["FIELDS", "kept_of", "pack_rows", "unpack_rows"]


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
