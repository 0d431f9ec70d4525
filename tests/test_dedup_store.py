import numpy as np
import pytest

from musicgen import dedup_store
from musicgen.cache import config_hash
from musicgen.config import TokenizerConfig
from musicgen.dedup import describe_groups, find_duplicates
from musicgen.dedup_store import SPILL_DIR, store_duplicates
from musicgen.shards import ShardStore, write_store
from musicgen.tokenizer import Tokenizer
from tests.test_dedup import chorale, encode

BEAT = TokenizerConfig()


def planted_pieces():
    """12 distinct chorales, then copies: transposed (3), re-velocitied (5), a transposed excerpt (8), a few wrong
    notes (9), a second copy of 3 a tritone down, and 5 again an octave up."""
    originals = [chorale(seed) for seed in range(12)]
    pieces = [encode(n) for n in originals]
    rng = np.random.default_rng(7)
    pieces.append(encode(originals[3], shift=3))
    pieces.append(encode(originals[5], velocity=rng.integers(20, 120, size=originals[5][0].size)))
    pieces.append(encode(tuple(x[:96] for x in originals[8]), shift=-2))
    edited = (originals[9][0].copy(), *originals[9][1:])
    edited[0][::25] += 1
    pieces.append(encode(edited))
    pieces.append(encode(originals[3], shift=-6))
    pieces.append(encode(originals[5], shift=12))
    return pieces


def make_store(tmp_path, pieces, shard_bytes=2**26):
    keys = [f"{i:04x}" for i in range(len(pieces))]
    tok = Tokenizer(BEAT)
    write_store(tmp_path, keys, [f"p{i}.mid" for i in range(len(pieces))], [0] * len(pieces),
                lambda i: (pieces[i], 120.0), tok, config_hash(BEAT), shard_bytes=shard_bytes)
    return ShardStore(tmp_path), keys


@pytest.mark.parametrize("rows,batch,workers", [(2**20, 2**19, 1), (40, 500, 1), (40, 3000, 2)],
                         ids=["in-memory", "partitioned-small-batches", "partitioned-two-processes"])
def test_store_clusters_equal_find_duplicates(tmp_path, monkeypatch, rows, batch, workers):
    monkeypatch.setattr(dedup_store, "PARTITION_ROWS", rows)
    monkeypatch.setattr(dedup_store, "BATCH_EVENTS", batch)
    pieces = planted_pieces()
    store, keys = make_store(tmp_path, pieces, shard_bytes=4000)  # several shards
    assert len(store.shards) > 1
    expected = find_duplicates(pieces, keys, BEAT)
    got = store_duplicates(store, Tokenizer(BEAT), keys=keys, workers=workers)
    assert got.clusters.tolist() == expected.clusters.tolist()
    assert [g.tolist() for g in expected.groups()] == [[3, 12, 16], [5, 13, 17], [8, 14], [9, 15]]
    for name in ("a", "b", "similarity", "common"):
        assert np.array_equal(getattr(got.pairs, name), getattr(expected.pairs, name)), name
    assert got.music == [fp.music for fp in expected.fingerprints]
    described = describe_groups(expected, [str(i) for i in range(len(pieces))])
    assert [([str(i) for i in m.tolist()], [round(s, 3) for s in sim], semi) for m, sim, semi in got.groups] == \
        [(d["members"], d["similarity"], d["semitones"]) for d in described]
    assert got.groups[0][2] == [0, 3, -6] and got.groups[1][2] == [0, 0, 12]  # hand-checked transpositions
    assert not (tmp_path / SPILL_DIR).exists()  # the partition files are gone


def test_partitions_split_rows_by_hash_and_keep_owners_ascending(tmp_path):
    h = np.array([5, 2**63 + 1, 2**62 + 7, 5, 2**63 + 1, 2**64 - 1], np.uint64)
    for tag, rows in (("000002", slice(3, None)), ("000000", slice(0, 3))):  # a later range written first
        writer = dedup_store._Writer(tmp_path, 4, tag)
        writer.add(h[rows], np.array([0, 0, 0, 1, 1, 2])[rows], np.array([60, 61, 62, 50, 51, 52], np.int16)[rows])
        writer.close()
    got = [dedup_store._read_partition(tmp_path, p) for p in range(4)]
    assert [g[0].tolist() for g in got] == [[5, 5], [2**62 + 7], [2**63 + 1, 2**63 + 1], [2**64 - 1]]
    assert [g[1].tolist() for g in got] == [[0, 1], [0], [0, 1], [2]]
    assert got[0][2].tolist() == [60, 50]


def test_medians_round_half_to_even_like_numpy():
    # piece 0: diffs 1, 2 -> 1.5 -> 2; piece 1: 3, 3, 5 -> 3; piece 2: none -> 0; piece 3: -1, 0 -> -0.5 -> -0
    code = np.array([0 * 1024 + 513, 0 * 1024 + 514, 1 * 1024 + 515, 1 * 1024 + 517, 3 * 1024 + 511, 3 * 1024 + 512])
    count = np.array([1, 1, 2, 1, 1, 1])
    assert dedup_store._medians(code, count, 4) == [2, 3, 0, 0]
    assert [int(np.round(np.median(d))) for d in ([1, 2], [3, 3, 5], [-1, 0])] == [2, 3, 0]
