"""``musicgen ingest --engine beam``: ingest's parse→tokenize and shard-writing stages as Apache Beam pipelines.

``musicgen.corpus.ingest`` stays the driver (scan, content hashes, what to reuse, the manifest, the near-duplicate
clusters); this module replaces its two fan-outs:

1. *tokenize*: the files to parse, cut into elements of about ``ELEMENT_COST`` MIDI-file units of work
   (``ingest_worker.cost``), each run through ``ingest_worker.tokenize_chunk`` — the very function the local process
   pool runs — in a crash-isolated child process of the Beam worker (``safeio.run_isolated``: a parser that crashes
   or hits the time limit costs its file only; SIGALRM works there, not in a Beam worker thread). Results are the
   entry packs ``tokenize_chunk`` writes into ``CACHE/entries/<config hash>/``; the driver reads them back
   (``KnownPieces.read_new_packs``). A file with no pack afterwards is skipped as crashed (retried next run).
2. *shards*: the store's shards that are not on disk yet (``shards.plan_store``: the same cut and names as local
   ingest), one element each, written by ``shards.write_shard`` from the packs (or the last store) that hold their
   pieces' tokens. The driver then writes index.json (``shards.finish_store``).

So the store (shards, index, clusters) is byte-identical to local ingest of the same files; only the packs are cut
differently (both engines read either's packs). Work lists go to ``CACHE/.beam/*.json`` (the pipeline carries only
element numbers, so a corpus of any size fits a runner's job-graph limit) and are removed afterwards.

Workers must see the corpus and the cache folder at the same paths as the driver (one machine, or a shared file
system such as NFS on a Flink/Spark cluster) and have musicgen installed. Pipeline options are passed through:
``--beam-option runner=FlinkRunner --beam-option flink_master=host:8081``; without a runner it is the DirectRunner
with ``direct_running_mode=multi_threading`` and ``direct_num_workers`` = ``--workers`` (0: the idle cores).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from musicgen.errors import MusicgenError, UsageError

# Beam's runner threads use gRPC; with its fork handlers on, forked tokenize children logged "skipping fork()
# handlers" and one aborted in a test run here; the children never use gRPC, so the handlers are off (read at import).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

ELEMENT_COST = 512  # MIDI-file units of work per Beam element (a child process pool is started per element)
INSTALL_HINT = "pip install -e '.[cluster]' (or pip install 'apache-beam>=2.60')"
JOBS_DIR = ".beam"


def require_beam() -> None:
    """Raise ``UsageError`` (exit 2) saying how to install the extra when Apache Beam is not importable."""
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        raise UsageError(f"--engine: 'beam' needs Apache Beam, which is not installed; {INSTALL_HINT}") from None


def parse_options(options: list[str] | tuple[str, ...]) -> list[str]:
    """``["runner=DataflowRunner", "save_main_session"]`` → ``["--runner=DataflowRunner", "--save_main_session"]``
    (Beam's own flags); a ``UsageError`` naming ``--beam-option`` for an empty key."""
    flags = []
    for option in options:
        key = option.split("=", 1)[0].strip().lstrip("-")
        if not key:
            raise UsageError(f"--beam-option: expected KEY=VALUE (a Beam pipeline option), got {option!r}")
        flags.append(f"--{option.strip().lstrip('-')}")
    return flags


def pipeline_options(options: list[str] | tuple[str, ...], workers: int):
    """Beam ``PipelineOptions`` from the pass-through ``options`` (see ``parse_options``), with DirectRunner defaults
    (multi-threading, ``workers`` threads) unless a runner or those settings are given."""
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = parse_options(options)
    given = {f[2:].split("=", 1)[0] for f in flags}
    if "runner" not in given:
        flags.append("--runner=DirectRunner")
    if "direct_running_mode" not in given:
        flags.append("--direct_running_mode=multi_threading")
    if "direct_num_workers" not in given:
        flags.append(f"--direct_num_workers={max(1, workers)}")
    return PipelineOptions(flags)


def _write_jobs(out: Path, stage: str, jobs: dict) -> Path:
    from musicgen.safeio import atomic_write_text

    text = json.dumps(jobs)
    path = out / JOBS_DIR / f"{stage}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path


def elements(items: list[tuple[str, str]], costs: list[int], budget: int = ELEMENT_COST) -> list[list]:
    """``items`` (in the order given) cut into runs whose ``costs`` add up to about ``budget`` (at least one item)."""
    out, run, filled = [], [], 0
    for item, c in zip(items, costs):
        if run and filled + c > budget:
            out.append(run)
            run, filled = [], 0
        run.append(list(item))
        filled += c
    return out + [run] if run else out


class _TokenizeElement:
    """DoFn body: element n of a tokenize job file → its files' packs, written by ``tokenize_chunk``."""

    def __init__(self, job_path: str):
        self.job_path, self.job = job_path, None

    def __call__(self, n: int):
        from musicgen.ingest_worker import tokenize_chunk
        from musicgen.safeio import run_isolated

        if self.job is None:
            self.job = json.loads(Path(self.job_path).read_text())
        job, items = self.job, [tuple(item) for item in self.job["elements"][n]]
        done = sum(result is not None for _, result in
                   run_isolated(tokenize_chunk, items, 1, job["config"], job["pack_dir"], job["time_limit_s"],
                                chunk=job["chunk"]))
        yield done


def tokenize(out: Path, entries: Path, items: list[tuple[str, str]], costs: list[int], config_json: str,
             time_limit_s: int, chunk: int, workers: int, options) -> None:
    """Stage 1: tokenize ``items`` (``(file path, content key)``, scheduling order) into packs in ``entries``."""
    import apache_beam as beam

    job = _write_jobs(out, "tokenize", {"config": config_json, "pack_dir": str(entries), "chunk": chunk,
                                        "time_limit_s": time_limit_s, "elements": elements(items, costs)})
    n = len(json.loads(job.read_text())["elements"])
    try:
        with beam.Pipeline(options=pipeline_options(options, workers)) as p:
            _ = (p | "elements" >> beam.Create(range(n)) | "spread" >> beam.Reshuffle()
                 | "tokenize" >> beam.FlatMap(_TokenizeElement(str(job))))
    finally:
        job.unlink(missing_ok=True)


class _ShardElement:
    """DoFn body: element n of a shards job file → that shard's two files (``shards.write_shard``)."""

    def __init__(self, job_path: str):
        self.job_path, self.job = job_path, None

    def __call__(self, n: int):
        from musicgen.config import TokenizerConfig
        from musicgen.shards import shard_dtype, write_shard
        from musicgen.tokenizer import Tokenizer

        if self.job is None:
            self.job = json.loads(Path(self.job_path).read_text())
        job = self.job
        shard, tokenizer = job["shards"][n], Tokenizer(TokenizerConfig.from_json(job["config"]))
        got = read_sources(Path(job["cache"]), Path(job["pack_dir"]), shard["keys"], shard["sources"],
                           tokenizer.vocab_size)
        write_shard(job["cache"], shard["name"], shard["keys"], shard["paths"], shard["indices"], got, tokenizer,
                    shard_dtype(tokenizer.vocab_size))
        yield shard["name"]


def read_sources(cache: Path, pack_dir: Path, keys: list[str], sources: list, vocab_size: int) -> list:
    """``(tokens int32 (T,), qpm)`` of each piece ``keys[j]`` from ``sources[j]``: a pack file name in ``pack_dir``
    (each pack read once) or an int i, piece i of the store now in ``cache`` (the last run's)."""
    from musicgen.cache import _PACK_COLUMNS
    from musicgen.safeio import load_pack
    from musicgen.shards import ShardStore

    packs: dict[str, dict] = {}
    store = None
    got = []
    for key, source in zip(keys, sources):
        if isinstance(source, int):
            store = store or ShardStore(cache)
            got.append((store.piece(source), float(store.qpm[source])))
            continue
        if source not in packs:
            pack = load_pack(pack_dir / source, _PACK_COLUMNS, vocab_size)
            if pack is None:
                raise MusicgenError(f"entry pack {source!r} vanished or is damaged while its shard was written; "
                                    f"rerun `musicgen ingest`")
            pkeys, tokens, cols = pack
            packs[source] = {k: (t, float(q)) for k, t, q in zip(pkeys, tokens, cols["qpm"].tolist())}
        got.append(packs[source][key])
    return got


def write_shards(out: Path, entries: Path, todo: list[dict], keys, paths, indices, origin: dict, config_json: str,
                 workers: int, options) -> None:
    """Stage 2: write the ``shards.plan_store`` shards ``todo`` of the store of ``keys`` / ``paths`` / ``indices``;
    ``origin`` (``KnownPieces.origin``) says where each piece's tokens are."""
    import apache_beam as beam

    missing = [keys[i] for s in todo for i in range(s["lo"], s["hi"]) if keys[i] not in origin]
    if missing:
        raise MusicgenError(f"--engine beam: no pack holds the tokens of piece {missing[0]!r}; rerun `musicgen ingest`")
    shards = [{"name": s["name"], "keys": list(keys[s["lo"]:s["hi"]]), "paths": list(paths[s["lo"]:s["hi"]]),
               "indices": [int(i) for i in indices[s["lo"]:s["hi"]]],
               "sources": [origin[k] for k in keys[s["lo"]:s["hi"]]]} for s in todo]
    job = _write_jobs(out, "shards", {"cache": str(out), "pack_dir": str(entries), "config": config_json,
                                      "shards": shards})
    try:
        with beam.Pipeline(options=pipeline_options(options, min(workers, len(todo)))) as p:
            _ = (p | "shards" >> beam.Create(range(len(shards))) | "spread" >> beam.Reshuffle()
                 | "write" >> beam.FlatMap(_ShardElement(str(job))))
    finally:
        job.unlink(missing_ok=True)
        try:
            os.rmdir(out / JOBS_DIR)
        except OSError:
            pass



def tokenize_into(results, run, entries: Path, items: list[tuple[str, str]], costs: list[int], chunk: int,
                  workers: int) -> None:
    """``corpus.ingest``'s tokenize step on Beam: ``tokenize`` the ``items`` of ``run`` (a ``corpus._Run``), then add
    every file's pieces to ``results`` (``cache.KnownPieces``) from the new packs; a file without one (its process
    died on every try, the runner's retries included) is skipped with ``cache.CRASH_REASON``."""
    from musicgen.cache import CRASH_REASON, PieceResult

    tokenize(run.out, entries, items, costs, run.config.to_json(), run.time_limit_s, chunk, workers, run.beam_options)
    results.read_new_packs([key for _, key in items])
    for _, key in items:
        if key not in results.files:
            results.add(key, [PieceResult.skipped(key, CRASH_REASON)])


def shard_writer(run, entries: Path, results, keys, paths, indices, idle_cores):
    """``shards.write_store``'s ``write_shards`` for ``run`` (a ``corpus._Run``): ``write_shards`` with the tokens'
    origins from ``results`` (``cache.KnownPieces``), ``run.workers`` threads (0: ``idle_cores()``)."""
    return lambda todo: write_shards(run.out, entries, todo, keys, paths, indices, results.origin,
                                     run.config.to_json(), run.workers or idle_cores(), run.beam_options)
