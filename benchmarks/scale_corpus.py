"""Synthetic corpora for the scale benchmarks: N MIDI files made from an exported corpus (e.g. the 410 Bach chorales).

Copy ``c`` of source file ``j`` is the file transposed by ``c % 12 - 5`` semitones and with every velocity shifted by
``c // 12 - 20`` (symusic), so every written file has distinct bytes (ingest keeps them all) and the copies of one
source are near-duplicates of each other (one dedup cluster, as far as ``dedup.MAX_DF`` lets the index see them).
Files go to ``OUT/NNN/`` folders of 1000 files each. Existing files are kept (a rerun completes a partial corpus).

    python benchmarks/scale_corpus.py /work/data/bach /work/scratch/scale/c20k 20000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_SOURCES: dict = {}


def make_corpus(source: Path, out: Path, n: int, start: int = 0) -> int:
    """Write files ``start``..``n - 1`` under ``out`` (see the module docstring); returns how many were written now."""
    import symusic

    if source not in _SOURCES:  # parsed once per process
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
        if not files:
            raise SystemExit(f"source: no MIDI file under {str(source)!r}")
        _SOURCES[source] = files, [symusic.Score(str(p)) for p in files]
    files, scores = _SOURCES[source]
    written = 0
    for i in range(start, n):
        j, c = i % len(files), i // len(files)
        target = out / f"{i // 1000:03d}" / f"{files[j].stem}-c{c:04d}.mid"
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        score = scores[j].shift_pitch(c % 12 - 5).shift_velocity(c // 12 - 20)
        tmp = target.with_suffix(".tmp")
        score.dump_midi(str(tmp))
        tmp.replace(target)
        written += 1
    return written


def make_corpus_parallel(source: Path, out: Path, n: int, processes: int = 0) -> int:
    """``make_corpus`` with the work cut by folder of 1000 files over ``processes`` (0: one per core)."""
    import multiprocessing as mp
    import os

    ranges = [(source, out, min(n, a + 1000), a) for a in range(0, n, 1000)]
    with mp.get_context("fork").Pool(processes or os.cpu_count()) as pool:
        return sum(pool.starmap(make_corpus, ranges, chunksize=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("n", type=int)
    args = ap.parse_args()
    t = time.perf_counter()
    written = make_corpus_parallel(args.source, args.out, args.n)
    print(f"{args.out}: {written} files written ({args.n} wanted) in {time.perf_counter() - t:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
