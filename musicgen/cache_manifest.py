"""The token cache's manifest (``DIR/manifest.json``): its format, reading and writing it, the store stamp in it.

``musicgen.corpus.ingest`` writes the manifest: ``format`` (``MANIFEST_FORMAT``), ``corpus``, ``config_hash``,
``tokenizer``, ``counts``, ``events``, ``kept_keys`` (the store's pieces, in order), ``shards`` (``store_stamp``: size
and mtime of the store's index.json), ``clusters``, and ``files``: a row per piece of every music file (``kept`` /
``skipped`` with the reason), a row per other file ``ignored``. ``tokens_current`` tells from it whether the store
still holds exactly the kept pieces. ``musicgen.cache`` re-exports these names; this module imports none of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from musicgen.safeio import atomic_path

MANIFEST_FORMAT = 3  # 2: entries packed per worker chunk; 3: one row per piece (a file may hold many)

__all__ = ["MANIFEST_FORMAT", "load_manifest", "manifest_text", "store_stamp", "tokens_current", "write_manifest"]


def load_manifest(path: Path) -> dict:
    """The manifest at ``path`` (manifest.json), or ``{}`` when it is missing, unreadable or of another format."""
    try:
        data = json.loads(path.read_text())
        return data if data.get("format") == MANIFEST_FORMAT else {}
    except (OSError, ValueError, AttributeError):
        return {}


_END = object()


def _manifest_parts(manifest: dict):
    """The pieces of ``manifest_text``, in order (a list field's items one by one; a field may also be an iterator
    of items, written as a list as it yields them)."""
    yield "{\n"
    for i, (k, v) in enumerate(manifest.items()):
        yield f"{',' if i else ''}\n {json.dumps(k)}: " if i else f" {json.dumps(k)}: "
        items = iter(v) if isinstance(v, (list, Iterator)) else None
        first = next(items, _END) if items is not None else _END
        if first is not _END:
            yield f"[\n  {json.dumps(first)}"
            for x in items:
                yield f",\n  {json.dumps(x)}"
            yield "\n ]"
        else:
            yield json.dumps(v if items is None else [])
    yield "\n}\n"


def manifest_text(manifest: dict) -> str:
    """JSON with one line per top-level field and per list item: readable, and written by the C encoder (an
    ``indent`` makes ``json`` use its pure-Python encoder, 5x slower on a large corpus)."""
    return "".join(_manifest_parts(manifest))


def write_manifest(path: Path, manifest: dict) -> None:
    """``manifest_text(manifest)`` written atomically to ``path``, a line at a time (the text of a 200k-file
    manifest is never held whole)."""
    with atomic_path(path, keep_suffix=False) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for part in _manifest_parts(manifest):
            f.write(part)


def store_stamp(out: Path) -> dict | None:
    """Size and mtime of ``out/shards/index.json`` (written last by ``write_tokens``), or None without one."""
    try:
        st = (out / "shards" / "index.json").stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def tokens_current(out: Path, old: dict, chash: str, kept_keys: list[str]) -> bool:
    """True when the last manifest's store holds exactly ``kept_keys`` with this config and is untouched."""
    stamp = store_stamp(out)
    return (stamp is not None and old.get("config_hash") == chash and old.get("kept_keys") == kept_keys
            and old.get("shards") == stamp)

