"""Ingest's fan-out: the files to tokenize, largest first, in crash-isolated worker processes, and how many.

``tokenize_files`` runs ``ingest_worker.tokenize_chunk`` over chunks of ``CHUNK_FILES`` files in a local process pool
(``safeio.run_isolated``: a parser that crashes costs its file only, skipped with ``cache.CRASH_REASON``), or hands
them to the Beam engine (``beam_engine()``, ``musicgen.ingest_beam``); either way the pieces go into a
``cache.KnownPieces``. ``musicgen.corpus.ingest`` is the driver and re-exports the constants.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from musicgen.cache import CRASH_REASON, KnownPieces, PieceResult
from musicgen.ingest_table import TokenizeItems
from musicgen.ingest_worker import cost, expected_pieces, tokenize_chunk
from musicgen.safeio import resolve_workers, run_isolated

FILES_PER_WORKER = 200  # workers=0 starts one process per this much work (in MIDI files; up to one per idle core)
CHUNK_FILES = 64  # files per worker task, and per entry pack

__all__ = ["CHUNK_FILES", "FILES_PER_WORKER", "beam_engine", "idle_cores", "tokenize_files"]


def idle_cores() -> int:
    """Cores not busy with other work (cores minus the 1-minute load average, at least 1): a second worker on a core
    that another job holds made a 410-file ingest 15 % slower, on an idle core 30 % faster."""
    cores = resolve_workers(0)
    try:
        return max(1, min(cores, round(cores - os.getloadavg()[0])))
    except OSError:  # no load average (not Unix)
        return cores


def beam_engine():
    """The ``musicgen.ingest_beam`` module (``musicgen ingest --engine beam``), imported when first asked for."""
    from musicgen import ingest_beam  # Beam itself is imported only inside its pipelines

    return ingest_beam


def tokenize_files(run, entries: Path, keys: list[str], music: list[str], first_with_key: dict[str, int],
                   results: KnownPieces) -> int:
    """Read and tokenize every piece of the files with these content keys (``music[first_with_key[key]]``, paths
    relative to ``run.corpus``) in worker processes (largest first); fills ``results``; returns how many files.
    ``run`` is ingest's settings (``corpus._Run``: corpus, workers, progress, config, time_limit_s, engine)."""
    if not keys:
        return 0
    paths = [os.path.join(run.corpus, music[first_with_key[k]]) for k in keys]
    expected = [expected_pieces(path) for path in paths]
    work = [cost(path, e) for path, e in zip(paths, expected)]
    paths = None
    order = sorted(range(len(keys)), key=lambda j: -work[j])  # stable: equal costs keep path order
    items = TokenizeItems(str(run.corpus), music, first_with_key, [keys[j] for j in order])
    costs, total_work, total_expected = [work[j] for j in order], sum(work), sum(expected)
    order = expected = work = None
    auto = min(idle_cores(), -(-total_work // FILES_PER_WORKER))
    workers = min(run.workers, len(items)) if run.workers else min(auto, len(items))
    if run.engine == "beam":
        beam_engine().tokenize_into(results, run, entries, items[:], costs, CHUNK_FILES, workers)
        return len(items)
    bar = None
    if run.progress:
        from tqdm import tqdm

        bar = tqdm(total=total_expected, unit="piece", desc="ingest", file=sys.stderr)
    try:
        for (path, key), result in run_isolated(tokenize_chunk, items, workers, run.config.to_json(), str(entries),
                                                run.time_limit_s, chunk=CHUNK_FILES):
            if result is None:
                result = [PieceResult.skipped(key, CRASH_REASON)]
            results.add(key, result)
            if bar is not None:
                bar.total = max(bar.total, bar.n + len(result))
                bar.update(len(result))
    finally:
        if bar is not None:
            bar.close()
    return len(items)
