"""Scale: ingest into the sharded store, the near-duplicate split's fingerprinting, and `musicgen train`'s first steps.

For each corpus folder (given, or built with ``--source DIR --sizes 20000,200000``: the largest size is written once
by ``benchmarks/scale_corpus.py`` into WORK/files, and each size is a folder of links to its first N/1000 folders,
so the 20k corpus is the first 20k files of the 200k one), each stage runs in its own process and its peak RSS is
that process's ``ru_maxrss`` (``os.wait4``; for ingest the largest of the parent and its workers):

* ingest: ``python -m musicgen ingest CORPUS --out CACHE [--engine beam]`` (cold into an empty cache unless
  ``--keep-cache``; ``--ingest-python`` runs it with another interpreter, e.g. a venv holding Apache Beam); wall
  time, files/s, peak RSS, CPU seconds (with its workers), shards written; ``to_index_s`` / ``dedup_s`` split the
  wall time at index.json's and clusters.json's mtimes (parse + tokenize + shards / near-duplicate clusters);
* worker: the per-core rate of ingest's worker function: ``ingest_worker.tokenize_chunk`` on the first ``WORKER_FILES``
  files of the corpus, chunks of 64, in one child process; files and events per CPU-second (``time.process_time``),
  what each core of a Beam cluster does (``musicgen ingest --engine beam`` runs the same function);
* dedup: ``dedup_store.record_clusters`` alone on the store (its two files removed first), ``--dedup-workers`` processes
  (``dedup_store``: batched fingerprints, hash partitions, sparse pair counts); wall time, CPU seconds of the driver
  (serial) and of the pool, peak RSS of each;
* batches: in a child process, ``split_corpus`` (from the clusters ingest recorded), one epoch's plan and ``--steps``
  ``StreamingBatches`` batches of 16 x 128 with ``--transpose 3``; seconds, ms per batch, peak RSS (no TensorFlow);
* train: ``python -m musicgen train CACHE --epochs 1 ...`` under a pseudo-terminal (so Keras prints its step
  counter); when the counter reaches ``--steps`` the process's ``VmHWM`` (peak RSS so far) and ``VmRSS`` are read
  from /proc and it is stopped. Events/s are the steps between the 20th and the last, times batch_size * bptt.

    python benchmarks/scale.py /work/scratch/scale/c20k /work/scratch/scale/c200k --work /work/scratch/scale/bench
    python benchmarks/scale.py --source /work/data/bach_bars --sizes 2000,20000 --work /work/scratch/me/scale

A table of the headline numbers (files/s and peak RSS of ingest, peak RSS and events/s of training) ends the run.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "TF_CPP_MIN_LOG_LEVEL": "3"}


CPU_S: dict[str, float] = {}  # CPU seconds (user + system) of the last measured child and its reaped workers


def run_measured(argv: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MiB, stdout+stderr tail) of one child process; its CPU seconds (with the worker
    processes it reaped: ``wait4``'s usage) go to ``CPU_S["last"]``."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{out[-2000:]}")
    CPU_S["last"] = round(usage.ru_utime + usage.ru_stime, 1)
    return time.perf_counter() - t, usage.ru_maxrss // 1024, out[-400:]


def build_corpora(source: Path, sizes: list[int], work: Path) -> list[Path]:
    """WORK/files holding max(sizes) files (``scale_corpus.make_corpus_parallel``; a rerun completes it) and per size
    N a folder WORK/cN of links to the first folders of it (the last one partial: links to its files)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from scale_corpus import make_corpus_parallel

    files = work / "files"
    t = time.perf_counter()
    written = make_corpus_parallel(source, files, max(sizes))
    print(f"# {written} files written into {files} in {time.perf_counter() - t:.1f} s", flush=True)
    out = []
    for n in sizes:
        corpus = work / f"c{n}"
        shutil.rmtree(corpus, ignore_errors=True)
        corpus.mkdir(parents=True)
        for a in range(0, n, 1000):
            folder = files / f"{a // 1000:03d}"
            if a + 1000 <= n:
                (corpus / folder.name).symlink_to(folder, target_is_directory=True)
                continue
            (corpus / folder.name).mkdir()
            for f in sorted(folder.iterdir())[:n - a]:
                (corpus / folder.name / f.name).symlink_to(f)
        out.append(corpus)
    return out


def ingest(corpus: Path, cache: Path, keep: bool, engine: str = "local", python: str = sys.executable) -> dict:
    if cache.exists() and not keep:
        shutil.rmtree(cache)
    start = time.time()
    wall, rss, _ = run_measured([python, "-m", "musicgen", "ingest", str(corpus), "--out", str(cache),
                                 "--engine", engine])
    files = json.loads((cache / "manifest.json").read_text())["counts"]["files"]  # links followed, as ingest does
    index = json.loads((cache / "shards" / "index.json").read_text())
    written = [(cache / p).stat().st_mtime for p in ("shards/index.json", "clusters.json")]
    return {"files": files, "seconds": round(wall, 1), "files_per_s": round(files / wall), "peak_rss_mib": rss,
            "cpu_s": CPU_S["last"], "to_index_s": round(written[0] - start, 1),
            "dedup_s": round(written[1] - written[0], 1),
            "pieces": index["pieces"], "events": index["events"], "shards": len(index["shards"]),
            "dtype": index["dtype"]}


WORKER_FILES = 2000
WORKER = """
import hashlib, sys, tempfile, time
from musicgen.config import TokenizerConfig
from musicgen.corpus import find_music_files
from musicgen.ingest_worker import tokenize_chunk
files = [str(p) for p in find_music_files(sys.argv[1])[:int(sys.argv[2])]]
items = [(p, hashlib.sha256(p.encode()).hexdigest()) for p in files]
with tempfile.TemporaryDirectory() as packs:
    tokenize_chunk(items[:8], TokenizerConfig().to_json(), packs, 0)  # imports and first-call set-up, not counted
    cpu, wall, events = time.process_time(), time.perf_counter(), 0
    for a in range(0, len(items), 64):
        out = tokenize_chunk(items[a:a + 64], TokenizerConfig().to_json(), packs, 0)
        events += sum(int(p.tokens.size) for f in out for p in f)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(f"WORKER {len(items)} {events} {cpu:.3f} {wall:.3f}")
"""


def worker(corpus: Path) -> dict:
    """Per-core rate of ``tokenize_chunk`` (see the module docstring)."""
    _, rss, out = run_measured([sys.executable, "-c", WORKER, str(corpus), str(WORKER_FILES)])
    files, events, cpu, wall = re.search(r"WORKER (\d+) (\d+) ([\d.]+) ([\d.]+)", out).groups()
    return {"files": int(files), "events": int(events), "cpu_s": float(cpu), "wall_s": float(wall),
            "files_per_cpu_s": round(int(files) / float(cpu)), "events_per_cpu_s": round(int(events) / float(cpu)),
            "peak_rss_mib": rss}


DEDUP = """
import resource, sys, time
from pathlib import Path
from musicgen.config import TokenizerConfig
from musicgen.dedup_store import CLUSTERS_FILE, record_clusters
cache = Path(sys.argv[1])
(cache / CLUSTERS_FILE).unlink(missing_ok=True)
(cache / "shards" / "clusters.npz").unlink(missing_ok=True)
t, cpu = time.perf_counter(), time.process_time()
groups = record_clusters(cache, TokenizerConfig.load(cache / "tokenizer.json"), workers=int(sys.argv[2]))
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"DEDUP {time.perf_counter() - t:.2f} {len(groups)} {time.process_time() - cpu:.2f} "
      f"{kids.ru_utime + kids.ru_stime:.2f} {kids.ru_maxrss // 1024}")
"""


def dedup(cache: Path, workers: int) -> dict:
    """``record_clusters`` alone with ``workers`` processes: wall and CPU seconds of the driver (the serial part)
    and of its pool, peak RSS of the driver and of the largest pool process."""
    _, rss, out = run_measured([sys.executable, "-c", DEDUP, str(cache), str(workers)])
    seconds, groups, cpu, pool_cpu, pool_rss = re.search(r"DEDUP ([\d.]+) (\d+) ([\d.]+) ([\d.]+) (\d+)",
                                                          out).groups()
    return {"seconds": float(seconds), "groups": int(groups), "peak_rss_mib": rss, "driver_cpu_s": float(cpu),
            "pool_cpu_s": float(pool_cpu), "pool_peak_rss_mib": int(pool_rss), "workers": workers}


def replicate(source: Path, cache: Path, times: int) -> dict:
    """A token cache of ``times`` copies of ``source``'s pieces, written by ``shards.write_store`` (no parsing): copy
    ``c`` of a piece is transposed by a shift inside its bounds (``c`` steps through them), its key is the source
    key + ``-c``, and its near-duplicate cluster is its source piece's (the copies are transpositions of it)."""
    import numpy as np

    from musicgen.cache import config_hash, load_tokens
    from musicgen.shards import ShardStore, write_clusters, write_store
    from musicgen.tokenizer import Tokenizer

    src = load_tokens(source)
    tok, n = Tokenizer(src.tokenizer_config), len(src)
    cluster, _ = ShardStore(source).clusters(0.5, 8)
    keys, paths, bounds = list(src.keys), list(src.paths), src.pieces.bounds

    def piece(i):
        c, j = divmod(i, n)
        lo, hi = (int(b) for b in bounds[j])
        shift = lo + (c * 5) % (hi - lo + 1) if hi >= lo else 0
        tokens = src.pieces[j]
        return (tok.transpose_tokens(tokens, shift) if shift else tokens), float(src.qpms[j])

    t = time.perf_counter()
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    shutil.copy(source / "tokenizer.json", cache / "tokenizer.json")
    all_keys = [f"{k}-{c}" for c in range(times) for k in keys]
    index = write_store(cache, all_keys, [f"{c}/{p}" for c in range(times) for p in paths],
                        [0] * (n * times), piece, tok, config_hash(src.tokenizer_config))
    write_clusters(cache, np.tile(cluster, times), all_keys, 0.5, 8)
    return {"pieces": index["pieces"], "events": index["events"], "shards": len(index["shards"]),
            "seconds": round(time.perf_counter() - t, 1)}


BATCHES = """
import resource, sys, time
import numpy as np
from musicgen.cache import load_tokens
from musicgen.config import TrainConfig
from musicgen.split import split_corpus
from musicgen.streaming import StreamingBatches
from musicgen.tokenizer import Tokenizer
tokens = load_tokens(sys.argv[1])
t = time.perf_counter()
split = split_corpus(tokens.pieces, tokens.keys, TrainConfig(), tokens.tokenizer_config)
t_split = time.perf_counter() - t
tok = Tokenizer(tokens.tokenizer_config)
b = StreamingBatches(tokens.pieces.take(split.train), 16, 128, 0, tok, int(sys.argv[3]), tok.pad_id)
t = time.perf_counter()
b.plan(0)
t_plan = time.perf_counter() - t
t = time.perf_counter()
for k in range(int(sys.argv[2])):
    b.batch(0, k)
ms = (time.perf_counter() - t) / int(sys.argv[2]) * 1000
print(f"BATCHES {t_split:.2f} {t_plan:.2f} {ms:.2f} {split.train.size}")
"""


def batches(cache: Path, steps: int, transpose: int) -> dict:
    """Split (recorded clusters), one epoch's plan and ``steps`` streamed batches (16 x 128) in a child process."""
    _, rss, out = run_measured([sys.executable, "-c", BATCHES, str(cache), str(steps), str(transpose)])
    split_s, plan_s, ms, train = re.search(r"BATCHES ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", out).groups()
    return {"split_s": float(split_s), "plan_s": float(plan_s), "ms_per_batch": float(ms), "train_pieces": int(train),
            "transpose": transpose, "peak_rss_mib": rss}


def _status(pid: int) -> dict:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: int(re.search(rf"{k}:\s+(\d+) kB", text).group(1)) // 1024 for k in ("VmHWM", "VmRSS")}


def train(cache: Path, out: Path, steps: int, args) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, "-m", "musicgen", "train", str(cache), "--out", str(out), "--epochs", "1",
            "--preset", args.preset, "--batch-size", str(args.batch_size), "--bptt", str(args.bptt),
            "--no-tensorboard", "--verbose", "1"]
    master, slave = pty.openpty()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=slave, stderr=slave, env=_env(), cwd=ROOT, close_fds=True)
    os.close(slave)
    buf, seen, marks = b"", 0, {}
    try:
        while proc.poll() is None and seen < steps:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    buf = (buf + os.read(master, 65536))[-4096:]
                except OSError:
                    break
                found = re.findall(rb"(\d+)/(\d+) ", re.sub(rb"\x1b\[[0-9;]*m", b"", buf))  # no ANSI bold
                if found:
                    if int(found[-1][0]) // 50 > seen // 50:
                        print(f"  {cache.name}: step {int(found[-1][0])}", file=sys.stderr, flush=True)
                    seen = int(found[-1][0])
                    for mark in (1, 20):
                        if seen >= mark and mark not in marks:
                            marks[mark] = (seen, time.perf_counter())
        if seen < steps:
            raise SystemExit(f"train stopped at step {seen}:\n{buf.decode(errors='replace')[-2000:]}")
        now = time.perf_counter()
        status = _status(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    first, t_first = marks.get(20, marks[1])
    events_per_s = (seen - first) * args.batch_size * args.bptt / max(now - t_first, 1e-9)
    return {"steps": seen, "seconds_to_first_step": round(marks[1][1] - t0, 1),
            "train_events_per_s": round(events_per_s), "peak_rss_mib": status["VmHWM"], "rss_mib": status["VmRSS"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("corpora", nargs="*", type=Path, help="corpus folders (benchmarks/scale_corpus.py)")
    ap.add_argument("--work", type=Path, required=True, help="folder for the corpora, caches and bundles")
    ap.add_argument("--source", type=Path, help="an exported corpus (MIDI files) to build synthetic corpora from")
    ap.add_argument("--sizes", default="20000,100000,200000", help="with --source: corpus sizes in files")
    ap.add_argument("--engine", choices=["local", "beam"], default="local", help="`musicgen ingest --engine`")
    ap.add_argument("--ingest-python", default=sys.executable,
                    help="interpreter that runs `musicgen ingest` (e.g. a venv with apache-beam for --engine beam)")
    ap.add_argument("--keep-cache", action="store_true", help="ingest into the existing cache (warm) instead of cold")
    ap.add_argument("--skip", default="", help="stages to skip, comma separated: ingest,worker,dedup,batches,train")
    ap.add_argument("--replicate", type=int, default=0, metavar="TIMES",
                    help="instead of ingesting CORPUS, write its cache (from an earlier run) TIMES over into "
                         "WORK/<corpus>-xTIMES-cache (no parsing; see replicate) and measure that")
    ap.add_argument("--dedup-workers", type=int, default=2, help="dedup stage: record_clusters(workers=...)")
    ap.add_argument("--steps", type=int, default=200, help="training steps to measure")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--bptt", type=int, default=128)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.source is not None:
        args.corpora = args.corpora + build_corpora(args.source, sorted(int(n) for n in args.sizes.split(",")),
                                                    args.work)
    if not args.corpora:
        ap.error("give corpus folders or --source")
    rows = []
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"train: --preset {args.preset} --batch-size {args.batch_size} --bptt {args.bptt}, {args.steps} steps")
    for corpus in args.corpora:
        cache = args.work / f"{corpus.name}-cache"
        row = {"corpus": str(corpus), "load": round(os.getloadavg()[0], 1)}
        if args.replicate:
            source, cache = cache, args.work / f"{corpus.name}-x{args.replicate}-cache"
            row["replicated"] = {"from": str(source), "times": args.replicate,
                                 **replicate(source, cache, args.replicate)}
        elif "ingest" not in skip:
            row["ingest"] = ingest(corpus, cache, args.keep_cache, args.engine, args.ingest_python)
        if "worker" not in skip:
            row["worker"] = worker(corpus)
        if "dedup" not in skip:
            row["dedup"] = dedup(cache, args.dedup_workers)
        if "batches" not in skip:
            row["batches"] = batches(cache, args.steps, 3)
        if "train" not in skip:
            row["train"] = train(cache, args.work / f"{cache.name}-bundle", args.steps, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(table(rows, args.engine))


def table(rows: list[dict], engine: str) -> str:
    """A markdown table: per corpus, files/s and peak RSS of ingest, peak RSS and events/s of the training steps."""
    lines = [f"| corpus | files | ingest s ({engine}) | files/s | ingest peak RSS MiB | worker files/CPU-s | "
             "train peak RSS MiB | train events/s | load |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        i, w, t = r.get("ingest", {}), r.get("worker", {}), r.get("train", {})
        lines.append(f"| {Path(r['corpus']).name} | {i.get('files', '')} | {i.get('seconds', '')} | "
                     f"{i.get('files_per_s', '')} | {i.get('peak_rss_mib', '')} | {w.get('files_per_cpu_s', '')} | "
                     f"{t.get('peak_rss_mib', '')} | {t.get('train_events_per_s', '')} | {r['load']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
