"""Where ingest's memory peaks: run ``musicgen ingest CORPUS --out CACHE`` (the cache removed first unless --keep)
and sample, every ``--every`` seconds, the RSS of the driver and of each of its descendant processes (worker pools),
with the ingest stage read from the cache folder (``scan+parse`` until ``shards/`` exists, ``shards``, ``index``
once ``shards/index.json`` is written, ``dedup`` while ``.dedup/`` exists, ``clusters`` once ``clusters.json`` is
written, ``manifest`` once ``manifest.json`` is). Prints per stage the largest sampled driver RSS and the largest
sampled RSS of one descendant, then ``ru_maxrss`` of the driver and of its children (``os.wait4``; what
``benchmarks/scale.py`` reports as ingest peak RSS is the larger of the two), all in MiB.

    python benchmarks/ingest_rss.py CORPUS CACHE [--every 0.25] [--keep]

The stage is a guess from the files present at the time of the sample; a stage shorter than ``--every`` may be
missed (``ru_maxrss`` is not).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) // 1024
    except (OSError, StopIteration):
        return 0


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out + [g for c in out for g in _children(c)]


def _stage(cache: Path) -> str:
    for name, path in (("manifest", "manifest.json"), ("clusters", "clusters.json"), ("dedup", ".dedup"),
                       ("index", "shards/index.json"), ("shards", "shards")):
        if (cache / path).exists():
            return name
    return "scan+parse"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("cache", type=Path)
    ap.add_argument("--every", type=float, default=0.25)
    ap.add_argument("--keep", action="store_true", help="keep the cache (a warm or resumed run)")
    args = ap.parse_args()
    if not args.keep:
        shutil.rmtree(args.cache, ignore_errors=True)
    t0 = time.perf_counter()
    log = tempfile.TemporaryFile()  # not a pipe: a progress bar would fill it and block the driver
    proc = subprocess.Popen([sys.executable, "-m", "musicgen", "ingest", args.corpus, "--out", str(args.cache)],
                            stdout=log, stderr=subprocess.STDOUT)
    stages: dict[str, list] = {}  # stage -> [first s, last s, driver peak, one-descendant peak]
    status, usage = None, None
    while status is None:
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status, usage = st, ru
            break
        stage, t = _stage(args.cache), time.perf_counter() - t0
        driver, kids = _rss(proc.pid), [_rss(c) for c in _children(proc.pid)]
        row = stages.setdefault(stage, [t, t, 0, 0])
        row[1], row[2], row[3] = t, max(row[2], driver), max([row[3]] + kids)
        time.sleep(args.every)
    wall = time.perf_counter() - t0
    log.seek(0)
    err = [line for line in log.read().decode(errors="replace").replace("\r", "\n").splitlines() if line.strip()]
    print(f"ingest {args.corpus}: {wall:.1f} s, exit {os.waitstatus_to_exitcode(status)}; {err[-1] if err else ''}")
    print("| stage | from s | to s | driver peak RSS MiB (sampled) | one worker peak RSS MiB (sampled) |")
    print("|---|---|---|---|---|")
    for stage, (a, b, d, k) in stages.items():
        print(f"| {stage} | {a:.1f} | {b:.1f} | {d} | {k or ''} |")
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"ru_maxrss: {usage.ru_maxrss // 1024} MiB (the driver and the workers it reaped: what "
          f"benchmarks/scale.py reports); RUSAGE_CHILDREN here {kids.ru_maxrss // 1024} MiB")


if __name__ == "__main__":
    main()
