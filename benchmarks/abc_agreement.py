"""How often symusic's ABC reader (abc2midi) gives the same tokens as music21, on every tune of music21's ABC books.

For every tune of every ``.abc`` file in music21's bundled corpus (ryansMammoth, essenFolksong, oneills1850,
airdsAirs, miscFolk, josquin, nottingham-dataset; split at ``X:`` as ingest does), both readers' pieces are tokenized
with the default ``Tokenizer()`` (beat mode, 12 steps per quarter) and the token sequences compared: equal tokens
mean the same notes, onsets and durations on the grid (velocity and program are fixed to music21's 90 and 0 by the
fast reader). Reported: tune counts per collection, raw agreement of the fast reader on every tune, agreement per
construct that ``musicgen.abc.fast_reader_refusal`` sends to music21, what ingest ends up with (refused tunes read by
music21), the time per tune of each reader, and the disagreeing tunes (written to ``--report``).

music21's results are cached per ABC file under ``--ref`` (JSON, ~1 h of one core for the ~13,000 tunes; rerun
resumes). Run nice'd:

    nice -n 10 python benchmarks/abc_agreement.py --ref /tmp/abc_ref --report /tmp/abc_disagreements.txt
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from itertools import zip_longest
from pathlib import Path

import numpy as np


def abc_files() -> list[Path]:
    from music21 import corpus

    return sorted(Path(p) for p in corpus.getPaths(fileExtensions=("abc",)))


def _collection(path: Path) -> str:
    parts = path.parts
    return parts[parts.index("corpus") + 1] if "corpus" in parts else path.parent.name


def _read(tune_text: str, fast: bool, tokenizer) -> dict:
    """``{"tokens": [...], "qpm": q, "reader": r, "seconds": s}`` or ``{"reason": ..., "seconds": s}``."""
    from musicgen.abc import read_abc_fast
    from musicgen.scores import read_abc_tune

    t0 = time.perf_counter()
    try:
        if fast:
            piece, reader = read_abc_fast(tune_text), "symusic"
        else:
            piece, reader = read_abc_tune(tune_text, fast=False)
        tokens = tokenizer.encode_pieces([piece])[0]
        out = {"tokens": tokens.tolist(), "qpm": piece.qpm, "reader": reader}
    except Exception as exc:
        out = {"reason": f"{type(exc).__name__}: {str(exc)[:120]}"}
    out["seconds"] = time.perf_counter() - t0
    return out


def reference_for(path: Path, ref_dir: Path) -> list[dict]:
    """music21's result for every tune of ``path``, cached as ``ref_dir/<collection>__<name>.json``."""
    from musicgen.abc import split_abc
    from musicgen.safeio import atomic_write_text
    from musicgen.tokenizer import Tokenizer

    where = ref_dir / f"{_collection(path)}__{path.name}.json"
    if where.is_file():
        return json.loads(where.read_text())
    tok = Tokenizer()
    tunes = split_abc(path.read_text(encoding="utf-8", errors="replace"))
    results = [_read(t.text, False, tok) for t in tunes]
    atomic_write_text(where, json.dumps(results))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, help="folder caching music21's results (created)")
    parser.add_argument("--report", default="", help="write the disagreeing tunes here")
    parser.add_argument("--workers", type=int, default=1, help="processes computing music21's results")
    parser.add_argument("--only-reference", action="store_true", help="compute the music21 cache and stop")
    parser.add_argument("--sample", type=int, default=0, help="compare only this many tunes drawn at random "
                                                              "(seeded) from all books (0 = every tune)")
    parser.add_argument("--seed", type=int, default=0, help="--sample's seed")
    parser.add_argument("--counts", action="store_true", help="only check tune counts per file against music21's "
                                                              "own ABC splitter (ABCHandler.splitByReferenceNumber)")
    parser.add_argument("--cached-only", action="store_true", help="compare only the files whose music21 results "
                                                                   "are cached already (a partial run)")
    parser.add_argument("--reverse", action="store_true", help="fill the cache from the other end (a second run "
                                                                   "beside a first shares the work)")
    args = parser.parse_args()
    from musicgen.abc import fast_reader_refusal, split_abc
    from musicgen.tokenizer import Tokenizer

    ref_dir = Path(args.ref)
    ref_dir.mkdir(parents=True, exist_ok=True)
    files = abc_files()
    if args.counts:
        return count_tunes(files)
    if args.sample:
        return sample_main(args, files, ref_dir)
    if args.cached_only:
        files = [p for p in files if (ref_dir / f"{_collection(p)}__{p.name}.json").is_file()]
    by_coll: dict[str, list[Path]] = {}
    for path in files:  # collections interleaved: a partial reference cache samples every collection
        by_coll.setdefault(_collection(path), []).append(path)
    order = [p for group in zip_longest(*by_coll.values()) for p in group if p is not None]
    order = order[::-1] if args.reverse else order
    with ProcessPoolExecutor(args.workers) as ex:
        refs = dict(zip(order, ex.map(reference_for, order, [ref_dir] * len(order))))
    if args.only_reference:
        return
    tok = Tokenizer()
    per_coll, raw, by_refusal, ingest_ok, kinds = Counter(), Counter(), Counter(), Counter(), Counter()
    t_fast = t_m21 = 0.0
    lines = []
    for path in files:
        tunes = split_abc(path.read_text(encoding="utf-8", errors="replace"))
        coll = _collection(path)
        for tune, ref in zip(tunes, refs[path]):
            per_coll[coll] += 1
            fast = _read(tune.text, True, tok)
            t_fast += fast["seconds"]
            t_m21 += ref["seconds"]
            refusal = fast_reader_refusal(tune.text)
            both_fail = "tokens" not in fast and "tokens" not in ref
            same = both_fail or fast.get("tokens") == ref.get("tokens")
            raw["same" if same else "different"] += 1
            by_refusal[(refusal or "-", same)] += 1
            ingest_same = same or refusal is not None or "tokens" not in fast
            ingest_ok["same" if ingest_same else "different"] += 1
            if not same:
                kinds[kind(fast, ref)] += 1
                lines.append(_describe(coll, path.name, tune, fast, ref, refusal))
    n = sum(per_coll.values())
    print(f"ABC files: {len(files)}; tunes: {n} ({', '.join(f'{c} {k}' for c, k in sorted(per_coll.items()))})")
    print(f"fast reader alone, every tune: {raw['same']}/{n} token-identical to music21 "
          f"({100 * raw['same'] / n:.2f} %)")
    for refusal in sorted({r for r, _ in by_refusal}):
        s, d = by_refusal[(refusal, True)], by_refusal[(refusal, False)]
        print(f"  refusal {refusal!r:<20} {s + d:>6} tunes, {s:>6} identical")
    print(f"ingest (refused or failed tunes read by music21): {ingest_ok['same']}/{n} identical "
          f"({100 * ingest_ok['same'] / n:.2f} %)")
    print_totals(n, t_m21, t_fast, kinds, lines, args.report)


def count_tunes(files: list[Path]) -> None:
    """Tunes per file: ``split_abc`` vs music21's ABC splitter (which keys tunes by X: number)."""
    import music21

    from musicgen.abc import split_abc

    ours = theirs = 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        handler = music21.abcFormat.ABCHandler()
        handler.process(text)
        n21 = len(handler.splitByReferenceNumber()) if handler.definesReferenceNumbers() else 1
        n = len(split_abc(text))
        ours, theirs = ours + n, theirs + n21
        if n != n21:
            numbers = Counter(t.number for t in split_abc(text))
            dup = sorted(k for k, c in numbers.items() if c > 1)
            print(f"{_collection(path)}/{path.name}: musicgen {n} tunes, music21 {n21} (X: numbers used twice: {dup})")
    print(f"{len(files)} ABC files: musicgen {ours} tunes, music21 {theirs}")


def sample_main(args, files: list[Path], ref_dir: Path) -> None:
    """Compare ``--sample`` random tunes; music21's result cached per tune under ``ref_dir/sample``."""
    import random

    from musicgen.abc import fast_reader_refusal, split_abc
    from musicgen.safeio import atomic_write_text
    from musicgen.tokenizer import Tokenizer

    tok = Tokenizer()
    tunes = [(path, t) for path in files for t in split_abc(path.read_text(encoding="utf-8", errors="replace"))]
    picked = sorted(random.Random(args.seed).sample(range(len(tunes)), min(args.sample, len(tunes))))
    (ref_dir / "sample").mkdir(exist_ok=True)
    same, kinds = Counter(), Counter()
    lines, t_fast, t_m21 = [], 0.0, 0.0
    for i in picked:
        path, tune = tunes[i]
        where = ref_dir / "sample" / f"{_collection(path)}__{path.name}__{tune.index}.json"
        if where.is_file():
            ref = json.loads(where.read_text())
        else:
            ref = _read(tune.text, False, tok)
            atomic_write_text(where, json.dumps(ref))
        fast = _read(tune.text, True, tok)
        t_fast, t_m21 = t_fast + fast["seconds"], t_m21 + ref["seconds"]
        refusal = fast_reader_refusal(tune.text)
        ok = fast.get("tokens") == ref.get("tokens")
        in_ingest = ok or refusal is not None or "tokens" not in fast
        same[(_collection(path), ok, in_ingest)] += 1
        if not ok:
            kinds[kind(fast, ref)] += 1
            lines.append(_describe(_collection(path), path.name, tune, fast, ref, refusal))
    n = len(picked)
    for coll in sorted({c for c, _, _ in same}):
        k = sum(v for (c, _, _), v in same.items() if c == coll)
        raw = sum(v for (c, ok, _), v in same.items() if c == coll and ok)
        ing = sum(v for (c, _, i), v in same.items() if c == coll and i)
        print(f"{coll:<20} {k:>5} tunes: fast reader identical {raw:>5}, ingest identical {ing:>5}")
    raw = sum(v for (_, ok, _), v in same.items() if ok)
    ing = sum(v for (_, _, i), v in same.items() if i)
    print(f"sample of {n} tunes (seed {args.seed}) of {len(tunes)}: fast reader token-identical to music21 {raw}/{n} "
          f"({100 * raw / n:.1f} %); ingest (refused/failed tunes to music21) {ing}/{n} ({100 * ing / n:.1f} %)")
    print_totals(n, t_m21, t_fast, kinds, lines, args.report)


def print_totals(n: int, t_m21: float, t_fast: float, kinds, lines: list[str], report: str | None) -> None:
    """The closing lines of both modes: seconds per tune, disagreements by kind, the report file."""
    print(f"seconds per tune: music21 {t_m21 / n:.4f}, symusic {t_fast / n:.4f} ({t_m21 / t_fast:.1f}x)")
    print(f"disagreements by kind: {dict(kinds.most_common())}")
    if report:
        Path(report).write_text("\n".join(lines) + "\n")
        print(f"{len(lines)} disagreements listed in {report}")


def kind(fast: dict, ref: dict) -> str:
    """How two readers' results differ: a reader failed, note count, pitch only, rhythm only, pitch and rhythm."""
    from musicgen.tokenizer import Tokenizer

    if "tokens" not in fast or "tokens" not in ref:
        return "fast reader failed" if "tokens" in ref else "music21 failed"
    tok = Tokenizer()
    a, b = (sorted((n.start, n.pitch, n.end) for n in tok.decode_notes(r["tokens"])) for r in (fast, ref))
    if len(a) != len(b):
        return "note count"
    if [(s, e) for s, _, e in a] == [(s, e) for s, _, e in b]:
        return "pitch only"
    return "rhythm only" if [p for _, p, _ in a] == [p for _, p, _ in b] else "pitch and rhythm"


def _describe(coll: str, name: str, tune, fast: dict, ref: dict, refusal: str | None) -> str:
    head = f"{coll}/{name} #{tune.index} X:{tune.number} {tune.title!r} refusal={refusal} [{kind(fast, ref)}]"
    if "tokens" not in fast or "tokens" not in ref:
        return f"{head}: fast={fast.get('reason', 'ok')} music21={ref.get('reason', 'ok')}"
    a, b = np.array(fast["tokens"]), np.array(ref["tokens"])
    k = int(np.argmax(a[:min(a.size, b.size)] != b[:min(a.size, b.size)])) if a.size and b.size else 0
    return f"{head}: {a.size} vs {b.size} tokens, first difference at {k}: fast {a[k:k + 4].tolist()} " \
           f"music21 {b[k:k + 4].tolist()}"


if __name__ == "__main__":
    main()
