"""The token cache's storage: entry packs, the consolidated tokens.npz, the manifest, and loading them.

Cache folder layout (``musicgen ingest CORPUS_DIR --out DIR``)::

    DIR/tokens.npz       tokens int32 (all pieces, concatenated), offsets int64 (n+1), qpm float64 (n),
                         keys unicode (n) = sha256 of each file's bytes, paths unicode (n) relative to the corpus
    DIR/manifest.json    every file found: music files ``kept`` / ``skipped`` (with the reason), others ``ignored``
    DIR/tokenizer.json   the TokenizerConfig the tokens were made with
    DIR/entries/<config hash>/<16 hex>.npz   one pack per worker chunk (up to 64 files; ``safeio.save_pack``):
                         keys unicode (m), offsets int64 (m+1), values int32 (tokens), reasons unicode (m, "" when
                         kept), qpm float64 (m)

``musicgen.corpus.ingest`` writes these files (through the helpers here) and re-exports the public names; this
module imports nothing from ``musicgen.corpus``. Every write is atomic (``musicgen.safeio``); a damaged pack or
tokens.npz is detected on load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicgen import __version__
from musicgen.config import TokenizerConfig
from musicgen.errors import MusicgenError, UsageError
from musicgen.safeio import load_pack, save_npz, save_pack

MANIFEST_FORMAT = 2  # 2: entries packed per worker chunk
CRASH_REASON = "parser crashed (worker process died)"


@dataclass
class TokenSet:
    """Tokenized pieces: ``pieces[i]`` int32 array, shape (T_i,), ``[BOS, …, EOS]``; ``qpms`` float64 (n,)."""

    pieces: list[np.ndarray]
    keys: list[str]
    qpms: np.ndarray
    paths: list[str]
    tokenizer_config: TokenizerConfig

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def n_events(self) -> int:
        return int(sum(p.size for p in self.pieces))


def config_hash(config: TokenizerConfig) -> str:
    """16 hex digits identifying the tokenizer config (and the cache format) that made a set of tokens."""
    text = json.dumps({"config": config.to_dict(), "format": MANIFEST_FORMAT, "musicgen": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_pack(folder: Path, keys: list[str], results: list[tuple[str, np.ndarray, float]]) -> None:
    save_pack(folder / f"{hashlib.sha256(''.join(keys).encode()).hexdigest()[:16]}.npz", keys, [r[1] for r in results],
              reasons=np.array([r[0] for r in results], dtype=np.str_), qpm=np.array([r[2] for r in results], np.float64))


def _read_packs(folder: Path, vocab_size: int) -> dict[str, tuple[str, np.ndarray, float]]:
    """``key -> (reason, tokens, qpm)`` of every sound pack in ``folder``; damaged packs are left out (redone)."""
    found = {}
    for path in folder.glob("*.npz"):
        pack = load_pack(path, ("reasons", "qpm"), vocab_size)
        if pack is None or pack[2]["reasons"].dtype.kind != "U" or pack[2]["qpm"].dtype != np.float64:
            continue
        keys, tokens, cols = pack
        for key, reason, t, q in zip(keys, cols["reasons"].tolist(), tokens, cols["qpm"].tolist()):
            if reason != CRASH_REASON and (reason or t.size >= 2):
                found[key] = (reason, t, q)
    return found


class _Results(dict):
    """``key -> (reason, tokens, qpm)``: this run's results, filled on demand from the last run's tokens.npz
    (when its config matches and it is trusted) and then the entry packs, each read at most once."""

    def __init__(self, out: Path, entries: Path, config: TokenizerConfig, vocab_size: int, trust_tokens: bool):
        super().__init__()
        self.sources = [lambda: _kept_in_cache(out, config) if trust_tokens else {},
                        lambda: _read_packs(entries, vocab_size)]

    def fill(self, keys: list[str]) -> list[str]:
        """Look ``keys`` up in the sources not read yet; returns the keys found nowhere (to tokenize)."""
        missing = [k for k in keys if k not in self]
        while missing and self.sources:
            for key, result in self.sources.pop(0)().items():  # keep all: a later fill may want them
                self.setdefault(key, result)
            missing = [k for k in missing if k not in self]
        return missing


def _kept_in_cache(out: Path, config: TokenizerConfig) -> dict[str, tuple[str, np.ndarray, float]]:
    try:
        tokens = load_tokens(out)
    except MusicgenError:
        return {}
    if tokens.tokenizer_config != config:
        return {}
    return {k: ("", piece, float(q)) for k, piece, q in zip(tokens.keys, tokens.pieces, tokens.qpms.tolist())}


def _load_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if data.get("format") == MANIFEST_FORMAT else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _manifest_text(manifest: dict) -> str:
    """JSON with one line per top-level field and per list item: readable, and written by the C encoder (an
    ``indent`` makes ``json`` use its pure-Python encoder, 5x slower on a large corpus)."""
    def value(v):
        return "[\n" + ",\n".join(f"  {json.dumps(x)}" for x in v) + "\n ]" if isinstance(v, list) and v \
            else json.dumps(v)

    return "{\n" + ",\n".join(f" {json.dumps(k)}: {value(v)}" for k, v in manifest.items()) + "\n}\n"


def _tokens_current(out: Path, old: dict, chash: str, kept_keys: list[str]) -> bool:
    """True when the last manifest's tokens.npz holds exactly ``kept_keys`` with this config and is untouched."""
    rec = old.get("tokens_npz") or {}
    try:
        st = (out / "tokens.npz").stat()
    except OSError:
        return False
    return (old.get("config_hash") == chash and old.get("kept_keys") == kept_keys
            and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns)


def _write_tokens(out: Path, kept_keys: list[str], results: _Results, first_with_key: dict) -> None:
    pieces = [results[k][1] for k in kept_keys]
    offsets = np.zeros(len(pieces) + 1, np.int64)
    np.cumsum([p.size for p in pieces], out=offsets[1:])
    save_npz(out / "tokens.npz", tokens=np.concatenate(pieces).astype(np.int32), offsets=offsets,
             qpm=np.array([results[k][2] for k in kept_keys], np.float64), keys=np.array(kept_keys, dtype=np.str_),
             paths=np.array([first_with_key[k] for k in kept_keys], dtype=np.str_))


def is_token_cache(path: str | Path) -> bool:
    """True when ``path`` is a folder written by ``ingest`` (it holds tokens.npz and tokenizer.json)."""
    path = Path(path)
    return (path / "tokens.npz").is_file() and (path / "tokenizer.json").is_file()


def load_tokens(cache_dir: str | Path) -> TokenSet:
    """Load and validate a token cache written by ``ingest``.

    Raises:
        UsageError: ``cache_dir`` is not a folder.
        MusicgenError: tokens.npz or tokenizer.json missing, unreadable, or inconsistent (wrong dtype/shape,
            offsets not covering the tokens, ids outside the vocabulary).
    """
    from musicgen.tokenizer import Tokenizer

    cache = Path(cache_dir)
    if not cache.is_dir():
        raise UsageError(f"cache_dir: no such folder: {str(cache_dir)!r}")
    where = cache / "tokens.npz"
    try:
        config = TokenizerConfig.load(cache / "tokenizer.json")
        with np.load(where, allow_pickle=False) as z:
            arrays = {name: z[name] for name in ("tokens", "offsets", "qpm", "keys", "paths")}
    except FileNotFoundError as exc:
        raise MusicgenError(f"token cache {str(cache)!r}: missing {Path(exc.filename).name}; run `musicgen ingest`")
    except Exception as exc:  # BadZipFile, KeyError, ValueError, ConfigError: all a damaged cache
        raise MusicgenError(f"token cache {str(cache)!r} is damaged ({type(exc).__name__}: {exc}); "
                            f"rerun `musicgen ingest`") from None
    tokens, offsets, qpm, keys, paths = (arrays[k] for k in ("tokens", "offsets", "qpm", "keys", "paths"))
    n = qpm.shape[0] if qpm.ndim == 1 else -1
    problems = [msg for bad, msg in [
        (tokens.dtype != np.int32 or tokens.ndim != 1,
         f"tokens: expected int32 (T,), got {tokens.dtype} {tokens.shape}"),
        (offsets.dtype != np.int64 or offsets.shape != (n + 1,), f"offsets: expected int64 ({n + 1},), got "
                                                                 f"{offsets.dtype} {offsets.shape}"),
        (qpm.dtype != np.float64 or n < 1, f"qpm: expected float64 (n,) with n >= 1, got {qpm.dtype} {qpm.shape}"),
        (keys.shape != (n,) or keys.dtype.kind != "U", f"keys: expected unicode ({n},), got {keys.dtype} {keys.shape}"),
        (paths.shape != (n,) or paths.dtype.kind != "U", f"paths: expected unicode ({n},), got {paths.dtype}"),
    ] if bad]
    if not problems and (offsets[0] != 0 or offsets[-1] != tokens.size or np.any(np.diff(offsets) < 2)):
        problems.append(f"offsets do not split {tokens.size} tokens into pieces of >= 2 events")
    vocab = Tokenizer(config).vocab_size
    if not problems and tokens.size and (tokens.min() < 0 or tokens.max() >= vocab):
        problems.append(f"token ids outside [0, {vocab})")
    if problems:
        raise MusicgenError(f"token cache {str(where)!r} is inconsistent: {problems[0]}; rerun `musicgen ingest`")
    return TokenSet(pieces=np.split(tokens, offsets[1:-1]), keys=keys.tolist(), qpms=qpm, paths=paths.tolist(),
                    tokenizer_config=config)
