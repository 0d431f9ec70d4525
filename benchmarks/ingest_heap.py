"""Python heap of ingest's driver per kept piece, by source line, when the store is about to be written (the end of
tokenizing: every file's state is held): ``tracemalloc`` snapshot taken in ``corpus.write_tokens``; the cache folder
is removed first. Run it with two checkouts' PYTHONPATH to compare them.

    PYTHONPATH=CHECKOUT python benchmarks/ingest_heap.py CORPUS CACHE [TOP]
"""
import shutil
import sys
import tracemalloc

import musicgen.corpus as corpus

source, cache = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 12
shutil.rmtree(cache, ignore_errors=True)
tracemalloc.start(1)
write_tokens = corpus.write_tokens


def _snapshot_then_write(*args, **kwargs):
    stats, n = tracemalloc.take_snapshot().statistics("lineno"), len(args[1])
    total = sum(s.size for s in stats)
    print(f"at write_tokens: {total / 2**20:.1f} MiB traced, {total / n:.0f} B per kept piece ({n} pieces)")
    for s in stats[:top]:
        print(f"{s.size / n:7.0f} B/piece {s.count:8d} blocks  {s.traceback}")
    return write_tokens(*args, **kwargs)


corpus.write_tokens = _snapshot_then_write
corpus.ingest(source, cache, progress=False)
