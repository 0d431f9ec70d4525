"""Ingest throughput: ``musicgen.corpus.ingest`` (symusic, parallel, cached) vs a straightforward pretty_midi tokenizer.

Both produce the same vocabulary (``Tokenizer()``: beat mode, 12 steps per quarter, 32 velocity bins, programs).
The baseline is what one writes first: ``pretty_midi.PrettyMIDI(path)`` per file, seconds → ticks → grid steps, a
Python loop over events, one process. musicgen is timed end to end (scan, sha256, worker process start, parse,
tokenize, entry packs, tokens.npz, manifest): cold into an empty cache folder, then warm (rerun, nothing changed).
The baseline runs once (it takes seconds); each musicgen row is the median of ``--repeat`` runs, each cold run into
a fresh folder and in fresh worker processes (the first cold run is printed too: it pays the parent's lazy imports).

    python benchmarks/ingest.py                 # exports the 410 Bach chorales to data/bach first if missing
    python benchmarks/ingest.py --corpus DIR --workers 2 --repeat 5   (see --help)
    python benchmarks/ingest.py --scores --workers 2   # ABC books and kern files: music21 alone vs musicgen
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from musicgen.corpus import export_corpus, find_music_files, ingest, load_tokens
from musicgen.tokenizer import Tokenizer


def baseline_tokens(path: Path, tok: Tokenizer) -> np.ndarray:
    """pretty_midi → the musicgen event vocabulary, one Python loop (no vectorization, no cache)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(path))
    c = tok.config
    bins = c.velocity_bins
    notes = {}  # (instrument, pitch, onset step) -> release step; the same key keeps the longer note
    for inst in pm.instruments:
        code = 128 if inst.is_drum else inst.program
        for n in inst.notes:
            if not c.min_pitch <= n.pitch <= c.max_pitch:
                continue
            on = int(np.floor(pm.time_to_tick(n.start) / pm.resolution * c.steps_per_quarter + 0.5))
            off = int(np.floor(pm.time_to_tick(n.end) / pm.resolution * c.steps_per_quarter + 0.5))
            off = max(off, on + 1)
            key = (code, n.pitch, on)
            if off > notes.get(key, (0, 0))[0]:
                notes[key] = (off, 1 + ((n.velocity - 1) * bins) // 127 if bins else 0)
    # an earlier note of the same pitch and instrument ends at the next onset
    by_voice = {}
    for (code, pitch, on), (off, vbin) in sorted(notes.items()):
        by_voice.setdefault((code, pitch), []).append([on, off, vbin])
    events = []  # (step, 0 = off / 1 = on, instrument, pitch, velocity bin)
    for (code, pitch), voice in by_voice.items():
        for i, (on, off, vbin) in enumerate(voice):
            if i + 1 < len(voice):
                off = min(off, voice[i + 1][0])
            events.append((on, 1, code, pitch, vbin))
            events.append((off, 0, code, pitch, vbin))
    events.sort()
    out, now, program, velocity = [tok.bos_id], 0, None, None
    for step, is_on, code, pitch, vbin in events:
        while step > now:
            shift = min(step - now, c.max_shift_steps)
            out.append(tok.token("TIME_SHIFT", shift))
            now += shift
        if c.programs and code != program:
            out.append(tok.token("PROGRAM", code))
            program = code
        if is_on:
            if bins and vbin != velocity:
                out.append(tok.token("VELOCITY", vbin))
                velocity = vbin
            out.append(tok.token("NOTE_ON", pitch))
        else:
            out.append(tok.token("NOTE_OFF", pitch))
    out.append(tok.eos_id)
    return np.array(out, dtype=np.int32)


def timed(fn, repeat: int) -> tuple[list[float], object]:
    """Wall seconds of ``repeat`` calls ``fn(i)``, and the last result."""
    times, result = [], None
    for i in range(repeat):
        t0 = time.perf_counter()
        result = fn(i)
        times.append(time.perf_counter() - t0)
    return times, result


def _machine() -> str:
    import datetime
    import os
    import platform

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load}, "
            f"{datetime.datetime.now().isoformat(timespec='minutes')}")


def score_files(abc_tunes: int, kern_files: int) -> tuple[list[Path], list[Path]]:
    """The first oneills1850 ABC books (name order) holding >= ``abc_tunes`` tunes, and the first ``kern_files``
    Palestrina kern files, from music21's bundled corpus."""
    import re

    from music21 import corpus

    books, n = [], 0
    for path in sorted(Path(p) for p in corpus.getComposer("oneills1850") if str(p).endswith(".abc")):
        if n >= abc_tunes:
            break
        books.append(path)
        n += len(re.findall(r"^X:", path.read_text(errors="replace"), re.MULTILINE))
    kern = sorted(Path(p) for p in corpus.getComposer("palestrina") if str(p).endswith(".krn"))[:kern_files]
    return books, kern


def scores_main(args) -> None:
    """``--scores``: music21 alone (every tune/score read by music21, one process) vs ``ingest`` (symusic's ABC
    reader where faithful, music21 otherwise, ``--workers`` processes, cold cache), pieces per second."""
    import shutil

    from musicgen.scores import read_score_pieces

    books, kern = score_files(args.abc_tunes, args.kern_files)
    print(f"machine: {_machine()}")
    print(f"{'':<34} {'pieces':>7} {'music21 s':>10} {'musicgen s':>11} {'music21 /s':>11} {'musicgen /s':>12} "
          f"{'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, files in ((f"ABC: {len(books)} O'Neill books", books), (f"kern: {len(kern)} Palestrina", kern)):
            folder = Path(tmp) / name.split(":")[0]
            folder.mkdir()
            for f in files:
                shutil.copy(f, folder / f.name)
            t0 = time.perf_counter()
            m21 = sum(sum(p.piece is not None for p in read_score_pieces(f, fast_abc=False)) for f in files)
            t_m21 = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = ingest(folder, Path(tmp) / f"cache-{folder.name}", workers=args.workers, progress=False)
            t_mg = time.perf_counter() - t0
            print(f"{name:<34} {report.kept:>7} {t_m21:>10.1f} {t_mg:>11.1f} {m21 / t_m21:>11.1f} "
                  f"{report.kept / t_mg:>12.1f} {t_m21 / m21 * report.kept / t_mg:>6.1f}x")
    print(f"after: {_machine()}; musicgen = ingest(workers={args.workers}), cold; music21 = "
          f"read_score_pieces(fast_abc=False), 1 process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/bach", help="folder of MIDI files (exported if missing)")
    parser.add_argument("--workers", type=int, default=1, help="the second cold row's worker count (--scores: "
                                                               "ingest's worker count)")
    parser.add_argument("--repeat", type=int, default=5, help="musicgen runs per row (median reported)")
    parser.add_argument("--scores", action="store_true", help="ABC books and kern files: music21 vs musicgen")
    parser.add_argument("--abc-tunes", type=int, default=200, help="--scores: O'Neill books holding this many tunes")
    parser.add_argument("--kern-files", type=int, default=10, help="--scores: Palestrina kern files")
    args = parser.parse_args()
    if args.scores:
        return scores_main(args)
    corpus = Path(args.corpus)
    if not corpus.exists():
        print(export_corpus("bach", corpus).summary())
    files = find_music_files(corpus)
    tok = Tokenizer()

    t0 = time.perf_counter()
    base = {f.relative_to(corpus).as_posix(): baseline_tokens(f, tok) for f in files}
    t_base = time.perf_counter() - t0
    base_events = sum(t.size for t in base.values())

    with tempfile.TemporaryDirectory() as tmp:
        auto_times, cold = timed(lambda i: ingest(corpus, Path(tmp) / f"auto{i}", progress=False), args.repeat)
        n_times, n_run = timed(lambda i: ingest(corpus, Path(tmp) / f"n{i}", workers=args.workers, progress=False),
                               args.repeat)
        warm_times, warm = timed(lambda i: ingest(corpus, Path(tmp) / "auto0", progress=False), args.repeat)
        tokens = load_tokens(Path(tmp) / "auto0")
        same = sum(np.array_equal(base[p], t) for p, t in zip(tokens.paths, tokens.pieces))
    assert warm.tokenized == 0 and n_run.events == cold.events

    n = len(files)
    t_cold, t_n, t_warm = (statistics.median(t) for t in (auto_times, n_times, warm_times))
    rows = [("pretty_midi baseline, 1 process", t_base, n, base_events),
            ("musicgen cold, workers=0 (auto)", t_cold, cold.found, cold.events),
            ("musicgen cold, first run of the process", auto_times[0], cold.found, cold.events),
            (f"musicgen cold, {args.workers} workers", t_n, n_run.found, n_run.events),
            ("musicgen warm (cached)", t_warm, warm.found, warm.events)]
    print(f"corpus: {corpus} ({n} files; musicgen kept {cold.kept}, skipped {cold.skipped}); "
          f"musicgen rows: median of {args.repeat}")
    print(f"{'':<42} {'seconds':>9} {'files/s':>10} {'events/s':>12} {'vs baseline':>12}")
    for name, secs, nf, ne in rows:
        print(f"{name:<42} {secs:>9.3f} {nf / secs:>10.0f} {ne / secs:>12.0f} {t_base / secs:>11.1f}x")
    print(f"cold runs (auto): {' '.join(f'{t:.3f}' for t in auto_times)}")
    print(f"identical token sequences, baseline vs musicgen: {same}/{len(tokens)}")
    print(f"warm vs cold: {t_cold / t_warm:.1f}x faster  (target >= 100x)")
    print(f"cold speed-up vs pretty_midi (workers=0): {t_base / t_cold:.1f}x  (target >= 50x)")


if __name__ == "__main__":
    main()
