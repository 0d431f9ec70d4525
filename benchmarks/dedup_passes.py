"""CPU seconds of each pass of ``dedup_store.store_duplicates`` on one token store, in one process (workers=1).

    python benchmarks/dedup_passes.py CACHE_DIR ROWS      # ROWS: dedup_store.PARTITION_ROWS (2**20 = 1048576)

Prints the store's pieces, events, partitions and pairs, the total CPU seconds (per event) and those spent in each
pass's functions: fingerprints (``_fingerprint_range``), pair counts (``_count_partition``, ``_totals``), clusters
(``cluster_ids``), group descriptions (``_describe_partition``, ``_groups``).
"""
import sys, time
import numpy as np
from pathlib import Path
from musicgen import dedup_store as ds
from musicgen.config import TokenizerConfig
from musicgen.shards import ShardStore
from musicgen.tokenizer import Tokenizer
cache, rows = Path(sys.argv[1]), int(sys.argv[2])
ds.PARTITION_ROWS = rows
store = ShardStore(cache); tok = Tokenizer(TokenizerConfig.load(cache / "tokenizer.json"))
marks = {}
for name in ("_fingerprint_range", "_count_partition", "_totals", "cluster_ids", "_describe_partition", "_groups"):
    mod = ds
    fn = getattr(mod, name)
    def wrap(*a, _fn=fn, _name=name, **k):
        t = time.process_time(); out = _fn(*a, **k); marks[_name] = marks.get(_name, 0) + time.process_time() - t
        return out
    setattr(mod, name, wrap)
t = time.process_time()
d = ds.store_duplicates(store, tok, keys=None, workers=1)
total = time.process_time() - t
ev = store.events
print(f"{cache.name}: {len(store)} pieces, {ev} events, {ds._partitions_for(ev)} partitions, {len(d.pairs)} pairs; "
      f"total {total:.2f} CPU-s = {total / ev * 1e6:.3f} us/event; " + ", ".join(f"{k} {v:.2f}" for k, v in marks.items()))
