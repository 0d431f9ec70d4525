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


def make_corpus(source: Path, out: Path, n: int) -> int:
    """Write ``n`` files under ``out`` (see the module docstring); returns how many were written now."""
    import symusic

    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        raise SystemExit(f"source: no MIDI file under {str(source)!r}")
    scores = [symusic.Score(str(p)) for p in files]
    written = 0
    for i in range(n):
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("n", type=int)
    args = ap.parse_args()
    t = time.perf_counter()
    written = make_corpus(args.source, args.out, args.n)
    print(f"{args.out}: {written} files written ({args.n} wanted) in {time.perf_counter() - t:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
