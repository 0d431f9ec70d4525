"""Near-duplicate figures for a corpus (docs/evaluation.md): timing, known pairs, similarity and cluster sizes, split.

    python scripts/duplicates_report.py /work/data/bach [/work/data/bach_bars]   # music folders or token caches

Prints: the fingerprint + pair time; the similarity and transposition of the pairs a reviewer found by hand on the
Bach chorales (when those files are present); how many pairs share >= 5 shingles per similarity band; the cluster
sizes at thresholds 0.3 / 0.5 / 0.7; how many pieces share a *melody* (top-line pitch contour, 6-interval shingles,
containment >= 0.5) with another piece, i.e. harmonize the same hymn tune, and how many of those the default
clustering joins; and the default three-way split next to the legacy held-out set. With a second corpus (the same
music exported again: other bytes, same file names), how many pieces keep their part under split versions 2 (drawn
from the files' bytes) and 3 (drawn from the notes; the default), also with VOICE/TIME_SIG/KEY events (``voices=4``, as ``--voices auto`` finds on the chorales) and notes
moved to C (``--voices auto --meter --key-mode normalize``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from musicgen import dedup
from musicgen.config import TrainConfig
from musicgen.corpus import tokens_for
from musicgen.split import split_corpus
from musicgen.tokenizer import Tokenizer

KNOWN = [("bwv197.7-a", "bwv398"), ("bwv158.4", "bwv279"), ("bwv244.15", "bwv244.17"), ("bwv227.1", "bwv227.11"),
         ("bwv274", "bwv62.6"), ("bwv18.5-lz", "bwv18.5-w"), ("bwv253", "bwv414"), ("bwv176.6", "bwv280")]


def melody_fingerprint(tokens, tok: Tokenizer, ngram: int = 6) -> dedup.Fingerprint:
    """Shingles of the top line's pitch contour: at each onset the highest sounding note, kept when it starts there
    (a held soprano note under moving inner voices counts once), repeated pitches merged, rhythm ignored (the same
    tune is often set in other rhythms); ``ngram`` consecutive intervals per shingle."""
    a = tok.decode_arrays(tokens)
    pitch, start, end = a["pitch"], a["start"], a["end"]
    top = []
    for t in np.unique(start).tolist():
        sounding = (start <= t) & (end > t)
        k = np.flatnonzero(sounding)[np.argmax(pitch[sounding])]
        if start[k] == t and (not top or top[-1] != pitch[k]):
            top.append(int(pitch[k]))
    features = np.clip(np.diff(np.array(top, np.int64)), -48, 48) + 48 if len(top) > 1 else np.zeros(0, np.int64)
    h = dedup.shingles(features, ngram)
    hashes, first = np.unique(h, return_index=True)
    return dedup.Fingerprint(hashes, np.array(top[:-1], np.int16)[first] if len(top) > 1 else np.zeros(0, np.int16))


def parts_by_name(source: str, config, version: int) -> dict[str, str]:
    """File name -> part of the default split (``split_version`` ``version``) of ``source`` tokenized with
    ``config`` (None: the cache's own, or the defaults)."""
    data = tokens_for(source, config, progress=False)
    split = split_corpus(data.pieces, data.keys, TrainConfig(split_version=version), data.tokenizer_config)
    return {Path(data.paths[i]).name: part for part in ("train", "valid", "test") for i in split.part(part)}


def reexport_check(first: str, second: str) -> None:
    """Print how many pieces of ``first`` land in the same part in ``second`` (same file names), per version."""
    from musicgen.config import TokenizerConfig

    encoded = TokenizerConfig(voices=4, voice_polyphony=1, meter=True, key="normalize")  # what --voices auto finds
    print(f"\nre-export {second} (same music, other bytes) against {first}: pieces in the same part")
    for version in (2, 3):
        a, b = parts_by_name(first, None, version), parts_by_name(second, None, version)
        same = sum(a[n] == b.get(n) for n in a)
        print(f"  split_version {version}: {same} of {len(a)}")
    b = parts_by_name(second, encoded, 3)  # against ``a``, the version 3 parts of ``first`` from the loop
    print(f"  split_version 3, {second} with VOICE/TIME_SIG/KEY events and notes on C: "
          f"{sum(a[n] == b.get(n) for n in a)} of {len(a)}")


def main(source: str) -> None:
    data = tokens_for(source, None, progress=False)
    names = [Path(p).stem for p in data.paths]
    print(f"corpus {source}: {len(data)} pieces, {data.n_events} events, {data.tokenizer_config.time_mode} mode")
    started = time.perf_counter()
    dups = dedup.find_duplicates(data.pieces, data.keys, data.tokenizer_config)
    print(f"fingerprints + pairs + clusters: {time.perf_counter() - started:.2f} s "
          f"(threshold {dedup.DEFAULT_THRESHOLD}, {dedup.DEFAULT_NGRAM}-note shingles)")
    fps = dups.fingerprints
    index = {n: i for i, n in enumerate(names)}
    known = [(a, b) for a, b in KNOWN if a in index and b in index]
    if known:
        print("\nknown pairs: similarity (containment), transposition b - a, same cluster")
        for a, b in known:
            fa, fb = fps[index[a]], fps[index[b]]
            same = dups.clusters[index[a]] == dups.clusters[index[b]]
            print(f"  {a:>12} {b:<12} {dedup.containment(fa, fb):.3f} {dedup.transposition(fa, fb):+d} st  "
                  f"{'joined' if same else 'NOT joined'}")
    loose = dedup.similar_pairs(fps, threshold=0.05)
    bands = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01]
    counts = np.histogram(loose.similarity, bins=bands)[0]
    print("\npairs sharing >= 5 shingles, by similarity: "
          + ", ".join(f"[{lo:g}, {min(hi, 1):g}{']' if hi > 1 else ')'}: {n}"
                      for lo, hi, n in zip(bands, bands[1:], counts)))
    for threshold in (0.3, 0.5, 0.7):
        ids = dedup.cluster_ids(len(fps), dedup.similar_pairs(fps, threshold), data.keys)
        sizes = np.bincount(np.bincount(ids))
        print(f"threshold {threshold}: {int(sizes[1:].sum())} clusters; sizes "
              + ", ".join(f"{n} of {s}" for s, n in enumerate(sizes.tolist()) if n and s))
    tok = Tokenizer(data.tokenizer_config)
    melodies = [melody_fingerprint(p, tok) for p in data.pieces]
    tune = dedup.similar_pairs(melodies, threshold=0.5)
    tune_ids = dedup.cluster_ids(len(melodies), tune)
    shared = np.bincount(tune_ids)[tune_ids] > 1
    joined = [dups.clusters[a] == dups.clusters[b] for a, b in zip(tune.a.tolist(), tune.b.tolist())]
    print(f"\nsame tune (top-line contour containment >= 0.5): {len(tune)} pairs, {int(shared.sum())} pieces in "
          f"{int((np.bincount(tune_ids) > 1).sum())} tune groups (largest {int(np.bincount(tune_ids).max())}); "
          f"the default clustering joins {int(np.sum(joined))} of those pairs")
    split = split_corpus(data.pieces, data.keys, TrainConfig(), data.tokenizer_config)
    print(f"\ndefault split (TrainConfig(): val 0.1, test 0.1, seed 0): {split.sizes()}")
    old = split_corpus(data.pieces, data.keys, TrainConfig(split_version=1, test_fraction=0.0),
                       data.tokenizer_config).valid
    print(f"legacy held-out pieces (split_version 1, seed 0): {old.size}, of which in valid "
          f"{np.isin(old, split.valid).sum()}, test {np.isin(old, split.test).sum()}, train "
          f"{np.isin(old, split.train).sum()}")
    tune_parts = [{p for p, idx in (("train", split.train), ("valid", split.valid), ("test", split.test))
                   if np.isin(np.flatnonzero(tune_ids == c), idx).any()} for c in np.unique(tune_ids[shared])]
    print(f"tune groups spread over more than one part: {sum(len(p) > 1 for p in tune_parts)} of {len(tune_parts)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/bach")
    if len(sys.argv) > 2:
        reexport_check(sys.argv[1], sys.argv[2])
