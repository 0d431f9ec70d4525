"""The token cache's storage: entry packs, the sharded token store, and loading them (the manifest: ``cache_manifest``).

Cache folder layout (``musicgen ingest CORPUS_DIR --out DIR``)::

    DIR/shards/          the kept pieces (``musicgen.shards``): token shards (uint16 when the vocabulary fits, else
                         int32; up to 64 MiB each), memory-mapped, with an index per shard: offsets, ``keys`` =
                         ``piece_key`` (sha256 of the file's bytes, + ``#<index>`` after a file's first piece), paths
                         relative to the corpus, piece indices in their file, qpm, transposition bounds; and the
                         near-duplicate clusters the split reads
    DIR/manifest.json    a row per piece of every music file (``index``, ``title``, ``reader`` for score formats)
                         ``kept`` / ``skipped`` (with the reason), a row per other file ``ignored``
    DIR/tokenizer.json   the TokenizerConfig the tokens were made with
    DIR/entries/<config hash>/<16 hex>.npz   one pack per worker chunk (up to 64 files, every piece of each;
                         ``safeio.save_pack``): keys unicode (m) piece keys, offsets int64 (m+1), values int32
                         (tokens), reasons unicode (m, "" when kept), qpm float64 (m), index int64 (m), titles and
                         readers unicode (m)

A cache of an older musicgen holds ``DIR/tokens.npz`` instead of ``DIR/shards/``: ``load_tokens`` refuses it with a
one-line message, and ``ingest`` of the music folder rewrites it as shards (from the packs, nothing is parsed again).

``musicgen.corpus.ingest`` writes these files (through the helpers here) and re-exports the public names; this
module imports nothing from ``musicgen.corpus``, and re-exports the manifest's (``musicgen.cache_manifest``). Every
write is atomic (``musicgen.safeio``); a damaged pack or shard index is detected on load, a token id outside the
vocabulary when its piece is read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from musicgen import __version__
from musicgen.cache_manifest import (MANIFEST_FORMAT, load_manifest, manifest_text, store_stamp, tokens_current,
                                     write_manifest)
from musicgen.config import TokenizerConfig
from musicgen.errors import MusicgenError, UsageError
from musicgen.safeio import load_pack, save_pack
from musicgen.shards import SHARD_BYTES, Column, PieceSequence, ShardStore, has_store, write_store

CRASH_REASON = "parser crashed (worker process died)"
_NO_TOKENS = np.zeros(0, np.int32)

__all__ = ["CRASH_REASON", "MANIFEST_FORMAT", "KnownPieces", "PieceResult", "TokenSet", "config_hash", "file_key_of",
           "is_token_cache", "load_manifest", "load_tokens", "manifest_text", "piece_key", "store_stamp",
           "tokens_current", "write_manifest", "write_pack", "write_tokens"]


@dataclass
class TokenSet:
    """Tokenized pieces: ``pieces[i]`` int32 array, shape (T_i,), ``[BOS, …, EOS]``; ``qpms`` float64 (n,).

    From ``load_tokens``, ``pieces`` is a lazy ``shards.PieceSequence`` (each piece read when indexed) and ``keys``,
    ``paths``, ``indices`` are lazy ``shards.Column`` sequences; built by hand they may be lists.

    ``keys[i]`` is the piece's cache key (``piece_key``), ``paths[i]`` its file relative to the corpus and
    ``indices[i]`` its position in that file (0 for a single-piece file; an ABC book's tunes count 0, 1, …).
    """

    pieces: list[np.ndarray]
    keys: list[str]
    qpms: np.ndarray
    paths: list[str]
    tokenizer_config: TokenizerConfig
    indices: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.indices:
            self.indices = [0] * len(self.pieces)

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def n_events(self) -> int:
        if isinstance(self.pieces, PieceSequence):
            return int(self.pieces.lengths.sum())
        return int(sum(p.size for p in self.pieces))


def config_hash(config: TokenizerConfig) -> str:
    """16 hex digits identifying the tokenizer config (and the cache format) that made a set of tokens."""
    text = json.dumps({"config": config.to_dict(), "format": MANIFEST_FORMAT, "musicgen": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class PieceResult(NamedTuple):
    """What ingest knows of one piece of a file: its cache ``key`` (``piece_key``), ``index`` in the file, ``title``
    ("" if none), ``reader`` ("" for MIDI or when unread), ``reason`` ("" when kept), ``tokens`` int32 (T,) (empty
    when skipped; in ``KnownPieces`` a lazy view of its pack once the pack is known) and ``qpm``; ``pack`` the entry
    pack holding it ("" when unknown)."""

    key: str
    index: int
    title: str
    reader: str
    reason: str
    tokens: np.ndarray
    qpm: float
    pack: str = ""  # the entry pack (file name) that holds it, when known

    @classmethod
    def skipped(cls, key: str, reason: str, index: int = 0, title: str = "", reader: str = "") -> PieceResult:
        """A piece that is not kept, for ``reason``: no tokens, qpm 0."""
        return cls(key, index, title, reader, reason, _NO_TOKENS, 0.0)


def piece_key(file_key: str, index: int) -> str:
    """The cache key of piece ``index`` of the file whose content hash is ``file_key``: the hash itself for the first
    (or only) piece, ``"<hash>#<index>"`` for the others."""
    return file_key if index == 0 else f"{file_key}#{index}"


def file_key_of(key: str) -> str:
    """The file's content hash inside a piece key (inverse of ``piece_key`` for the file part)."""
    return key.split("#", 1)[0]


def write_pack(folder: Path, pieces: list[PieceResult]) -> str:
    """One pack holding every piece of a chunk of files (all pieces of a file always go into the same pack); returns
    its file name."""
    keys = [p.key for p in pieces]
    name = f"{hashlib.sha256(''.join(keys).encode()).hexdigest()[:16]}.npz"
    save_pack(folder / name, keys,
              [p.tokens for p in pieces], reasons=np.array([p.reason for p in pieces], dtype=np.str_),
              qpm=np.array([p.qpm for p in pieces], np.float64),
              index=np.array([p.index for p in pieces], np.int64),
              titles=np.array([p.title for p in pieces], dtype=np.str_),
              readers=np.array([p.reader for p in pieces], dtype=np.str_))
    return name


_PACK_COLUMNS = ("reasons", "qpm", "index", "titles", "readers")


def _read_packs(folder: Path, vocab_size: int, seen: set[str] | None = None,
                origin: dict[str, str] | None = None) -> dict[str, list[PieceResult]]:
    """``file key -> its pieces`` from every sound pack in ``folder``; damaged packs are left out (redone), and so
    are files that crashed a worker (looked at again). Packs named in ``seen`` are skipped and the others added to
    it; ``origin`` (when given) gets ``piece key -> pack file name`` of every piece returned."""
    found: dict[str, list[PieceResult]] = {}
    for path in sorted(folder.glob("*.npz")):
        if seen is not None:
            if path.name in seen:
                continue
            seen.add(path.name)
        pack = load_pack(path, _PACK_COLUMNS, vocab_size)
        if pack is None:
            continue
        keys, tokens, cols = pack
        kinds = [cols[c].dtype.kind for c in _PACK_COLUMNS]
        if kinds != ["U", "f", "i", "U", "U"]:
            continue
        files: dict[str, list[PieceResult]] = {}
        for row in zip(keys, cols["index"].tolist(), cols["titles"].tolist(), cols["readers"].tolist(),
                       cols["reasons"].tolist(), tokens, cols["qpm"].tolist()):
            files.setdefault(file_key_of(row[0]), []).append(PieceResult(*row))
        for fkey, pieces in files.items():
            if all(p.reason != CRASH_REASON and (p.reason or p.tokens.size >= 2) for p in pieces) \
                    and fkey not in found:
                found[fkey] = sorted(pieces, key=lambda p: p.index)
                if origin is not None:
                    origin.update((p.key, path.name) for p in pieces)
    return found


class KnownPieces:
    """This run's knowledge of files and pieces, filled on demand: ``files`` (file key -> its ``PieceResult`` list,
    from the entry packs or this run's workers) and ``tokens`` (piece key -> (tokens, qpm) of kept pieces, from the
    last run's store when its config matches and it is trusted, then the packs). Each source is read at most
    once; ``read_new_packs`` reads packs that another engine wrote since. ``origin`` says where each piece's tokens
    were found: ``piece key -> pack file name`` (in ``entries``) or ``-> i`` (piece i of the last run's store);
    pieces added without a pack have none.

    Memory stays per piece, not per token: a piece whose pack is known keeps only a lazy view of it (``InPack``),
    read back when its shard is written (``piece``; the last ``PACKS_HELD`` packs read are held). ``summarize``
    (``summarize(file key, pieces) -> rows or None``), when given, is called by ``add`` while the tokens are at hand;
    a result that is not None is kept in ``rows[file key]``, and ``files`` then only says which files are known
    (values None: ingest keeps what it needs of them itself)."""

    PACKS_HELD = 16

    def __init__(self, out: Path, entries: Path, config: TokenizerConfig, vocab_size: int, trust_tokens: bool,
                 summarize=None):
        self.files: dict[str, list[PieceResult]] = {}
        self.config = config
        self.tokens: dict[str, tuple[np.ndarray, float]] = {}
        self.origin: dict[str, str | int] = {}
        self.rows: dict[str, object] = {}
        self._summarize = summarize
        self._seen_packs: set[str] = set()
        self._npz = (lambda: _kept_in_cache(out, config)) if trust_tokens else None
        self._packs = lambda: _read_packs(entries, vocab_size, self._seen_packs, self.origin)
        self._entries, self._vocab_size = entries, vocab_size
        self._held: dict[str, dict[str, np.ndarray]] = {}

    def add(self, file_key: str, pieces: list[PieceResult]) -> None:
        # one string object per key, not one more from the worker (memory)
        pieces = [p._replace(key=file_key) if p.key == file_key and p.key is not file_key else p for p in pieces]
        if self._summarize is not None:
            rows = self._summarize(file_key, pieces)
            if rows is not None:
                self.rows[file_key] = rows
        light = []
        for p in pieces:
            pack = p.pack or self.origin.get(p.key)
            if isinstance(pack, str) and pack and not p.reason:
                self.origin[p.key] = pack
                p = p._replace(tokens=InPack(self, pack, p.key, int(p.tokens.size)), pack=pack)
            light.append(p)
            if not p.reason:
                self.tokens[p.key] = (p.tokens, p.qpm)
        self.files[file_key] = light if self._summarize is None else None  # with summarize: only known (memory)

    def read_pack(self, pack: str, key: str) -> np.ndarray:
        """Tokens (int32 (T,)) of piece ``key`` in entry pack ``pack``; raises ``MusicgenError`` when the pack
        vanished or is damaged."""
        found = self._held.get(pack)
        if found is None:
            got = load_pack(self._entries / pack, _PACK_COLUMNS, self._vocab_size)
            if got is None:
                raise MusicgenError(f"entry pack {pack!r} vanished or is damaged while the store was written; "
                                    f"rerun `musicgen ingest`")
            if len(self._held) >= self.PACKS_HELD:
                self._held.pop(next(iter(self._held)))
            found = self._held[pack] = dict(zip(got[0], got[1]))
        return found[key]

    def piece(self, key: str) -> tuple[np.ndarray, float]:
        """``(tokens int32 (T,), qpm)`` of kept piece ``key``, read from its pack or the last store if need be."""
        tokens, qpm = self.tokens[key]
        return (tokens if isinstance(tokens, np.ndarray) else np.asarray(tokens)), qpm

    def _read_packs_once(self) -> None:
        if self._packs is not None:
            for fkey, pieces in self._packs().items():
                if fkey not in self.files:
                    self.add(fkey, pieces)
            self._packs = None

    def read_new_packs(self, file_keys: list[str]) -> None:
        """Add the pieces of these files from packs written since the packs were last read (by another engine)."""
        wanted = set(file_keys)
        for fkey, pieces in _read_packs(self._entries, self._vocab_size, self._seen_packs, self.origin).items():
            if fkey in wanted and fkey not in self.files:
                self.add(fkey, pieces)

    def missing_files(self, file_keys: list[str]) -> list[str]:
        """The files found in no pack (to tokenize)."""
        if any(k not in self.files for k in file_keys):
            self._read_packs_once()
        return [k for k in file_keys if k not in self.files]

    def missing_tokens(self, keys: list[str]) -> list[str]:
        """The kept pieces whose tokens are in neither tokens.npz nor a pack."""
        for source in ("npz", "packs"):
            if all(k in self.tokens for k in keys):
                break
            if source == "npz" and self._npz is not None:
                for key, value in self._npz().items():
                    if key not in self.tokens:
                        self.tokens[key] = value
                        self.origin[key] = value[0].i
                self._npz = None
            elif source == "packs":
                self._read_packs_once()
        return [k for k in keys if k not in self.tokens]


class InPack:
    """Tokens of a piece that lie in an entry pack (``KnownPieces``): ``size`` without reading them; ``np.asarray``
    or ``tolist`` reads them."""

    __slots__ = ("known", "pack", "key", "size")

    def __init__(self, known: KnownPieces, pack: str, key: str, size: int):
        self.known, self.pack, self.key, self.size = known, pack, key, size

    def __array__(self, dtype=None, copy=None):
        out = self.known.read_pack(self.pack, self.key)
        return out if dtype is None else out.astype(dtype)

    def tolist(self) -> list:
        return self.known.read_pack(self.pack, self.key).tolist()


def _kept_in_cache(out: Path, config: TokenizerConfig) -> dict[str, tuple[np.ndarray, float]]:
    try:
        tokens = load_tokens(out)
    except MusicgenError:
        return {}
    if tokens.tokenizer_config != config:
        return {}
    return {k: (_Lazy(tokens.pieces, i), float(q)) for i, (k, q) in enumerate(zip(tokens.keys, tokens.qpms.tolist()))}


class _Lazy:
    """Piece ``i`` of a store, read when the new store is written (a warm run with a few new files reads none of the
    old pieces into memory at once)."""

    def __init__(self, pieces: PieceSequence, i: int):
        self.pieces, self.i = pieces, i
        self.size = int(pieces.store.offsets[i + 1] - pieces.store.offsets[i])

    def __array__(self, dtype=None, copy=None):
        out = self.pieces[self.i]
        return out if dtype is None else out.astype(dtype)

    def tolist(self) -> list:
        return self.pieces[self.i].tolist()


def write_tokens(out: Path, kept_keys: list[str], results: KnownPieces, paths: list[str], indices: list[int],
                 shard_bytes: int = SHARD_BYTES, on_shard=None, reuse: bool = True, write_shards=None) -> None:
    """Write the store ``out/shards/`` (``shards.write_store``): the kept pieces ``kept_keys`` in that order, their
    tokens and qpm from ``results.tokens``, ``paths[i]`` / ``indices[i]`` the file and position of piece i; shards a
    killed run finished are kept unless ``reuse`` is False; ``write_shards`` writes the shards that are not (another
    engine: ``shards.write_store``). Removes an old-format ``out/tokens.npz``."""
    from musicgen.tokenizer import Tokenizer

    write_store(out, kept_keys, paths, indices, lambda i: results.tokens[kept_keys[i]], Tokenizer(results.config),
                config_hash(results.config), shard_bytes=shard_bytes, on_shard=on_shard, reuse=reuse,
                write_shards=write_shards)
    (out / "tokens.npz").unlink(missing_ok=True)


def is_token_cache(path: str | Path) -> bool:
    """True when ``path`` is a folder written by ``ingest`` (it holds tokenizer.json and shards/, or an old-format
    tokens.npz, which ``load_tokens`` then refuses with a message to re-ingest)."""
    path = Path(path)
    return (has_store(path) or (path / "tokens.npz").is_file()) and (path / "tokenizer.json").is_file()


def load_tokens(cache_dir: str | Path) -> TokenSet:
    """Open a token cache written by ``ingest``: a ``TokenSet`` whose pieces, keys, paths and indices are read from
    the memory-mapped shards when used (``shards.PieceSequence`` / ``shards.Column``); nothing is loaded whole.

    Raises:
        UsageError: ``cache_dir`` is not a folder.
        MusicgenError: tokenizer.json or the store missing, unreadable or inconsistent (shard indexes that do not
            match index.json, pieces under 2 events, a dtype that is not the store's); an old-format cache
            (tokens.npz); a token id outside the vocabulary when its piece is read.
    """
    from musicgen.tokenizer import Tokenizer

    cache = Path(cache_dir)
    if not cache.is_dir():
        raise UsageError(f"cache_dir: no such folder: {str(cache_dir)!r}")
    if not has_store(cache) and (cache / "tokens.npz").is_file():
        raise MusicgenError(f"token cache {str(cache)!r} is in the old tokens.npz format; rerun `musicgen ingest` on "
                            f"its music folder to rewrite it as shards (nothing is parsed again)")
    try:
        config = TokenizerConfig.load(cache / "tokenizer.json")
    except FileNotFoundError:
        raise MusicgenError(f"token cache {str(cache)!r}: missing tokenizer.json; run `musicgen ingest`") from None
    except Exception as exc:
        raise MusicgenError(f"token cache {str(cache)!r} is damaged ({type(exc).__name__}: {exc}); "
                            f"rerun `musicgen ingest`") from None
    store = ShardStore(cache)
    vocab = Tokenizer(config).vocab_size
    if store.vocab_size != vocab or len(store) < 1:
        raise MusicgenError(f"token cache {str(cache)!r} is inconsistent: {len(store)} pieces of a "
                            f"{store.vocab_size}-id vocabulary, tokenizer.json has {vocab} ids; "
                            f"rerun `musicgen ingest`")
    return TokenSet(pieces=PieceSequence(store), keys=Column(store, "keys"), qpms=store.qpm,
                    paths=Column(store, "paths"), tokenizer_config=config, indices=Column(store, "indices"))
