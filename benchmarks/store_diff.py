"""Are two ingest caches of the same files the same? Shard files (names and md5), and the text of manifest.json,
clusters.json and tokenizer.json except the store's mtime stamp.

    python benchmarks/store_diff.py CACHE_A CACHE_B
"""
import hashlib, re, sys
from pathlib import Path
a, b = Path(sys.argv[1]), Path(sys.argv[2])
md5 = lambda p: hashlib.md5(p.read_bytes()).hexdigest()
fa = sorted(p.name for p in (a / "shards").iterdir()); fb = sorted(p.name for p in (b / "shards").iterdir())
print("shard files same names", fa == fb, "same md5", all(md5(a / "shards" / f) == md5(b / "shards" / f) for f in fa), len(fa))
stamp = lambda t: re.sub(r'"mtime_ns": \d+\}', '"mtime_ns": X}', t.split('\n "shards": ')[0] + "".join(t.split('\n "shards": ')[1].split("\n", 1)[1:]))
for name in ("manifest.json", "clusters.json", "tokenizer.json"):
    tb = (b / name).read_text()
    ta = (a / name).read_text()
    ra = re.sub(r'"shards": \{"size": \d+, "mtime_ns": \d+\}', 'STAMP', ta)
    rb = re.sub(r'"shards": \{"size": \d+, "mtime_ns": \d+\}', 'STAMP', tb)
    print(name, "text identical except the store stamp:", ra == rb, "fully identical:", ta == tb, len(ta))
