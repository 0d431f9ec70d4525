"""A folder of music files → a cached token set (scan, tokenize in workers, reuse); music21 corpora → MIDI files.

``ingest`` scans the corpus (``musicgen.corpus_files``) and tokenizes new or changed files in crash-isolated workers
(``musicgen.ingest_pool``); ``tokens_for`` serves training/evaluation. Cache storage (layout, packs, token shards,
manifest, ``load_tokens``) is ``musicgen.cache``, re-exported here.

Re-running reuses the result of every file whose content and tokenizer config are unchanged: from the manifest and
token store of the last run, else from the packs (which a killed run leaves behind for the files it finished). A
file's size and mtime, recorded in the manifest, spare re-hashing it. Every write is atomic (temporary name, then
``os.replace``), so a run killed even by ``kill -9`` leaves the previous cache readable; a damaged pack is detected on
load and its files are redone.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from musicgen.cache import (CRASH_REASON, MANIFEST_FORMAT, KnownPieces, PieceResult, TokenSet, config_hash,
                            file_key_of, is_token_cache, load_manifest, load_tokens, store_stamp, tokens_current,
                            write_manifest, write_tokens)
from musicgen.config import TokenizerConfig
from musicgen.corpus_files import _check_corpus_dir, _scan, find_music_files
from musicgen.dedup_store import CLUSTERS_FILE, record_clusters
from musicgen.errors import MusicgenError, UsageError
from musicgen.ingest_pool import CHUNK_FILES, FILES_PER_WORKER, beam_engine, idle_cores, tokenize_files
from musicgen.ingest_table import FileTable, pack_rows
from musicgen.ingest_worker import piece_rows
from musicgen.midi_io import MIDI_SUFFIXES
from musicgen.shards import SHARD_BYTES, SHARDS_DIR
from musicgen.styles import check_paths, style_of_key, styled_key
from musicgen.safeio import CacheLock, atomic_write_text, check_output_dir, resolve_workers, sha256_file

__all__ = ["CHUNK_FILES", "CRASH_REASON", "FILES_PER_WORKER", "MANIFEST_FORMAT", "IngestReport", "TokenSet",
           "config_hash", "export_corpus", "find_music_files", "ingest", "is_token_cache", "list_corpora",
           "load_tokens", "tokens_for"]

DEFAULT_CACHE_ROOT = Path("data/tokens")
ENGINES = ("local", "beam")
DEFAULT_TIME_LIMIT_S = 300  # per ABC tune and per MusicXML/kern parse (music21 can take minutes on odd files); 0 = none


# --------------------------------------------------------------------------------------------------------- results
@dataclass
class IngestReport:
    """What one ``ingest`` call found and did.

    ``files``: music files found; ``kept`` / ``skipped``: pieces (a MIDI file is one piece, an ABC book one per
    tune, an opus one per score; a duplicate or unreadable file counts as one skipped piece); ``reasons``: skipped
    pieces per short reason; ``tokenized`` / ``reused``: files parsed this run (0 when warm) / taken from the cache.
    """

    corpus_dir: Path
    out_dir: Path
    kept: int = 0
    skipped: int = 0
    ignored: int = 0
    events: int = 0
    tokenized: int = 0
    reused: int = 0
    reasons: Counter = field(default_factory=Counter)
    files: int = 0

    @property
    def found(self) -> int:
        """Music files found."""
        return self.files

    @property
    def pieces(self) -> int:
        return self.kept + self.skipped

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / "manifest.json"

    def summary(self) -> str:
        why = ", ".join(f"{n} {r}" for r, n in sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])))
        return (f"ingested {self.found} files, {self.pieces} pieces: {self.kept} kept, {self.skipped} skipped"
                + (f" ({why})" if why else "") + f", {self.events} events")


# ------------------------------------------------------------------------------------------------------- ingesting
def _short_reason(reason: str) -> str:
    return reason.split(":")[0] if not reason.startswith("duplicate of") else "duplicate"


def _retry(reason: str) -> bool:
    """A duplicate may be the only copy now; a crash may have been the machine (out of memory): look again."""
    return reason.startswith("duplicate of") or reason == CRASH_REASON


def ingest(corpus_dir: str | Path, out_dir: str | Path | None = None, config: TokenizerConfig | None = None,
           workers: int = 0, progress: bool = True, rebuild: bool = False,
           time_limit_s: int = DEFAULT_TIME_LIMIT_S, shard_bytes: int = SHARD_BYTES, engine: str = "local",
           beam_options: tuple[str, ...] = ()) -> IngestReport:
    """Tokenize every music file under ``corpus_dir`` into the cache folder ``out_dir``.

    Args:
        corpus_dir: folder searched recursively.
        out_dir: cache folder; default ``data/tokens/<corpus folder name>``.
        config: tokenizer config (default ``TokenizerConfig()``); part of the cache key.
        workers: worker processes that parse and tokenize (0 = automatic: one per ``FILES_PER_WORKER`` files to
            tokenize, at most one per idle core; starting a process costs more than a small corpus gains). Parsing
            always happens in worker processes, so a parser that crashes skips only its file.
        progress: show a tqdm bar on stderr.
        rebuild: re-check every entry and rewrite the token store even when the manifest says it is current (shards
            whose pieces are unchanged keep their files).
        shard_bytes: size limit of a token shard in bytes (``musicgen.shards``; tests lower it).
        time_limit_s: a MusicXML/ABC/kern file whose music21 parse takes longer is skipped ("timed out after N s");
            0 = no limit (MIDI files parse in milliseconds and have none).
        engine: "local" (a process pool here) or "beam" (Apache Beam pipelines for parsing/tokenizing and for
            writing shards, ``musicgen.ingest_beam``; the same worker function and an identical store).
        beam_options: Beam pipeline options as ``KEY=VALUE`` strings (engine "beam"; default: the DirectRunner).
    Returns:
        IngestReport with kept / skipped / ignored counts, events, and ``tokenized`` (files parsed this run).
        With ``config.styles`` every music file must lie in a top-level subfolder named after one of them (its
        style, ``musicgen.styles``); its pieces get that STYLE event.
    Raises:
        UsageError: ``corpus_dir`` is missing or a file, or no file in it gives any tokens; with styles, a music file
            directly in ``corpus_dir`` or in a folder that is not a style.
    """
    from musicgen.tokenizer import Tokenizer

    corpus = _check_corpus_dir(corpus_dir).resolve()
    config = config or TokenizerConfig()
    resolve_workers(workers)  # validates; the count is chosen once the files to tokenize are known
    if engine not in ENGINES:
        raise UsageError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "beam":
        beam_engine().require_beam()
        beam_engine().parse_options(beam_options)
    elif beam_options:
        raise UsageError(f"--beam-option: only with --engine beam, got {beam_options[0]!r} with --engine {engine}")
    if not isinstance(time_limit_s, int) or time_limit_s < 0:
        raise UsageError(f"time_limit_s: expected an integer >= 0 (0 = no limit), got {time_limit_s!r}")
    out = Path(out_dir) if out_dir is not None else DEFAULT_CACHE_ROOT / corpus.name
    check_output_dir(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    with CacheLock(out):
        run = _Run(corpus, out, config, workers, progress, time_limit_s, shard_bytes, engine, tuple(beam_options))
        return _ingest_locked(run, Tokenizer(config), rebuild)


@dataclass
class _Run:
    corpus: Path
    out: Path
    config: TokenizerConfig
    workers: int
    progress: bool
    time_limit_s: int
    shard_bytes: int = SHARD_BYTES
    engine: str = "local"
    beam_options: tuple[str, ...] = ()


_PIECE_FIELDS = ("key", "index", "title", "reader", "reason", "events", "tonality", "meter")


def _trusted_rows(prev_rows: list[dict] | None, fkey: str) -> list[dict] | None:
    """The last manifest's piece rows of an unchanged file, unless one of them should be looked at again."""
    if not prev_rows or any("key" not in r or file_key_of(r["key"]) != fkey or _retry(r.get("reason", ""))
                            for r in prev_rows):
        return None
    return [{k: r[k] for k in _PIECE_FIELDS if k in r} for r in prev_rows]


def _ingest_locked(run: _Run, tokenizer, rebuild: bool) -> IngestReport:
    corpus, out, config, vocab_size = run.corpus, run.out, run.config, tokenizer.vocab_size
    chash = config_hash(config)
    entries = out / "entries" / chash
    entries.mkdir(parents=True, exist_ok=True)
    old = load_manifest(out / "manifest.json")
    same_config = old.get("config_hash") == chash
    old_rows: dict[str, list[dict]] = {}
    for row in old.get("files", []):
        if "key" in row:
            old_rows.setdefault(row["path"], []).append(row)
    music, other = _scan(corpus, exclude=out.resolve())
    style_of = dict(zip(music, check_paths(music, config.styles, corpus))) if config.styles else {}

    table = FileTable(music)  # per music file, compactly (a 200k-file corpus)
    first_with_key: dict[str, int] = {}  # file key -> its first file
    root = str(corpus)
    for i, rel in enumerate(music):
        path = os.path.join(root, rel)
        try:
            st = os.stat(path)
            prev = (old_rows.get(rel) or [{}])[0]
            same_stat = prev.get("size") == st.st_size and prev.get("mtime_ns") == st.st_mtime_ns and "key" in prev \
                and style_of_key(prev["key"]) == style_of.get(rel)
            fkey = file_key_of(prev["key"]) if same_stat else styled_key(sha256_file(path), style_of.get(rel))
        except OSError as exc:
            table.skipped[i] = f"unreadable: {exc.strerror or exc}"
            continue
        table.keys[i], table.sizes[i], table.mtimes[i] = fkey, st.st_size, st.st_mtime_ns
        if fkey in first_with_key:
            table.skipped[i] = f"duplicate of {music[first_with_key[fkey]]}"
        else:
            first_with_key[fkey] = i
            rows = _trusted_rows(old_rows.get(rel), fkey) if same_config and not rebuild else None
            if rows is not None:
                table.rows[i] = pack_rows(rows)
    old_rows = None

    def summarize(fkey: str, pieces: list[PieceResult]) -> None:  # manifest rows, made while tokens are here
        i = first_with_key.get(fkey)
        if i is not None:  # (not a stale pack's file)
            table.rows[i] = pack_rows(piece_rows(pieces, not _is_midi(music[i]), tokenizer))

    results = KnownPieces(out, entries, config, vocab_size, trust_tokens=same_config and not rebuild,
                          summarize=summarize)
    todo = [k for k, i in first_with_key.items() if table.rows[i] is None]
    tokenized = tokenize_files(run, entries, results.missing_files(todo), music, first_with_key, results)
    todo = None

    keys, paths, indices = table.kept_columns()
    if keys and (rebuild or not tokens_current(out, old, chash, keys)):
        lost = results.missing_tokens(keys)  # damaged entries: read those files again
        redo = list(dict.fromkeys(file_key_of(k) for k in lost))
        for fkey in redo:
            results.files.pop(fkey, None)
        tokenized += tokenize_files(run, entries, redo, music, first_with_key, results)
        keys, paths, indices = table.kept_columns()
        if keys:
            write_tokens(out, keys, results, paths, indices, shard_bytes=run.shard_bytes, reuse=not rebuild,
                         write_shards=None if run.engine == "local" else
                         beam_engine().shard_writer(run, entries, results, keys, paths, indices, idle_cores))
    kept_keys, kept_paths = keys, paths
    results = keys = paths = indices = None  # per-piece state the rest does not need: memory for the dedup
    if not kept_keys:
        (out / "tokens.npz").unlink(missing_ok=True)
        shutil.rmtree(out / SHARDS_DIR, ignore_errors=True)
        (out / CLUSTERS_FILE).unlink(missing_ok=True)
    clusters = record_clusters(out, config, workers=run.workers or idle_cores(), keys=kept_keys,
                               paths=kept_paths) if kept_keys else []  # near-duplicates, for the split
    kept_paths = None

    report = IngestReport(corpus_dir=corpus, out_dir=out, tokenized=tokenized, ignored=len(other),
                          reused=len(first_with_key) - tokenized, files=len(table))

    same_rows = isinstance(old.get("files"), list)
    old_files = iter(old["files"] if same_rows else ())
    for row in table.manifest_rows(other):  # counts first (the manifest has them before the rows); compare with old
        if row["status"] == "kept":
            report.kept += 1
            report.events += row["events"]
        elif row["status"] == "skipped":
            report.skipped += 1
            report.reasons[_short_reason(row["reason"])] += 1
        same_rows = same_rows and next(old_files, None) == row
    same_rows = same_rows and next(old_files, _END) is _END
    old_files = None

    manifest = {"format": MANIFEST_FORMAT, "corpus": str(corpus), "config_hash": chash, "tokenizer": config.to_dict(),
                "counts": {"files": report.found, "kept": report.kept, "skipped": report.skipped,
                           "ignored": report.ignored},
                "events": report.events, "kept_keys": kept_keys if report.kept else [],
                "shards": store_stamp(out) if report.kept else None, "clusters": clusters}
    same = same_rows and set(old) == set(manifest) | {"files"} and all(old[k] == v for k, v in manifest.items())
    if not same or not (out / "tokenizer.json").is_file():  # a warm run writes nothing
        atomic_write_text(out / "tokenizer.json", config.to_json() + "\n")
        write_manifest(out / "manifest.json", {**manifest, "files": table.manifest_rows(other)})
    if report.kept == 0:
        raise UsageError(f"corpus_dir: no usable music file in {str(corpus)!r}: {report.summary()}; "
                         f"see {out / 'manifest.json'}")
    return report


_END = object()


def _is_midi(rel: str) -> bool:
    return rel.lower().endswith(MIDI_SUFFIXES)




# --------------------------------------------------------------------------------------------------------- loading
def tokens_for(source: str | Path, config: TokenizerConfig | None = None, out_dir: str | Path | None = None,
               workers: int = 0, progress: bool = False, style: str | None = None) -> TokenSet:
    """Tokens for training/evaluation from either a token cache folder or a music folder (ingested, cached).

    Args:
        source: a folder written by ``ingest`` (used as is) or a folder of music files.
        config: tokenizer config; None takes the cache's own (or the default for a music folder). Given with a
            cache made with another config, it is a UsageError naming the differing fields. Its model-input-only
            fields (``config.MODEL_INPUTS``) are not part of the tokens: they are read (or ingested) under
            ``config.for_tokens()`` and returned under ``config``.
        out_dir, workers, progress: passed to ``ingest`` for a music folder.
        style: for a ``config`` with styles and a music folder with music files directly in it (no style folders):
            every piece takes this style (a name of ``config.styles``), read under the config without styles with
            its STYLE event put after BOS (STYLE is the table's last range, so every other id is the same). Without
            it such a folder is a UsageError; a folder of style folders, or a cache, ignores it. A folder with loose
            files beside folders named after styles is read in ``style`` too, with a one-line warning on stderr.
    """
    src = _check_corpus_dir(source)
    if style is not None and config is not None and config.styles and not is_token_cache(src):
        from musicgen.styles import style_of_path

        music = _scan(src)[0]
        if any(style_of_path(rel) is None for rel in music):
            styled = sorted({style_of_path(rel) for rel in music} & set(config.styles))
            if styled:  # loose files beside style folders: maybe a file left out of its folder
                print(f"musicgen: warning: {str(src)!r} has music files directly in it, so every file is read as style "
                      f"{style!r}, including those in its style folder(s) {', '.join(map(repr, styled))}; move the "
                      f"loose files into a style folder to keep the folders' styles", file=sys.stderr)
            return _in_one_style(src, config, style, out_dir, workers, progress)
    made = config.for_tokens() if config is not None else None
    if is_token_cache(src):
        tokens = load_tokens(src)
        if made is not None and made != tokens.tokenizer_config:
            a, b = dataclasses.asdict(made), dataclasses.asdict(tokens.tokenizer_config)
            diff = ", ".join(f"{k}={b[k]!r} (wanted {a[k]!r})" for k in a if a[k] != b[k])
            raise UsageError(f"corpus_dir: token cache {str(src)!r} was made with {diff}; ingest the music folder "
                             f"with the wanted settings instead")
    else:
        report = ingest(src, out_dir, made, workers=workers, progress=progress)
        try:
            tokens = load_tokens(report.out_dir)
        except MusicgenError:  # the store damaged behind the manifest's back: rebuild it from the entries
            report = ingest(src, out_dir, made, workers=workers, progress=progress, rebuild=True)
            tokens = load_tokens(report.out_dir)
    return dataclasses.replace(tokens, tokenizer_config=config) if made is not config else tokens


def _in_one_style(src: Path, config: TokenizerConfig, style: str, out_dir, workers: int, progress: bool) -> TokenSet:
    """``tokens_for``'s ``style``: the folder's pieces under ``config`` without styles, each given STYLE ``style``."""
    import numpy as np

    from musicgen.styles import parse_style, with_style
    from musicgen.tokenizer import Tokenizer

    value = parse_style(style, config.styles, "the tokenizer")
    plain = tokens_for(src, config.replace(styles=()), out_dir, workers, progress)
    tokenizer = Tokenizer(config)
    pieces = [with_style(p, tokenizer, value).astype(np.int32) for p in plain.pieces]
    return dataclasses.replace(plain, pieces=pieces, tokenizer_config=config)


def list_corpora() -> list[tuple[str, str, int]]:
    """``(name, description, number of source files)`` of music21's corpora that ``export_corpus`` can write."""
    from musicgen.corpus_export import list_corpora as _list

    return _list()


def export_corpus(name: str, out_dir: str | Path, limit: int = 0, workers: int = 0, progress: bool = True,
                  every: int = 1):
    """Write a music21 bundled corpus as MIDI files (see ``musicgen.corpus_export.export_corpus``)."""
    from musicgen.corpus_export import export_corpus as _export

    return _export(name, out_dir, limit=limit, workers=workers, progress=progress, every=every)
