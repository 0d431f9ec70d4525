"""Median cold and warm ``ingest`` of the 410 chorales in one process (progress off), for the musicgen on PYTHONPATH:
run it alternately with two checkouts to compare them in one session.

    PYTHONPATH=CHECKOUT python benchmarks/ingest_small.py RUNS LABEL
"""
import shutil, statistics, sys, tempfile, time
from musicgen.corpus import ingest
tmp = tempfile.mkdtemp()
cold, warm = [], []
for k in range(int(sys.argv[1])):
    shutil.rmtree(tmp, ignore_errors=True)
    t = time.perf_counter(); ingest("/work/data/bach_bars", tmp, progress=False); cold.append(time.perf_counter() - t)
    t = time.perf_counter(); ingest("/work/data/bach_bars", tmp, progress=False); warm.append(time.perf_counter() - t)
shutil.rmtree(tmp, ignore_errors=True)
print(f"{sys.argv[2]}: cold median {statistics.median(cold):.3f} s, warm median {statistics.median(warm) * 1000:.1f} ms "
      f"(n={len(cold)})")
