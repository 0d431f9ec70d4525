"""musicgen.shards: the sharded token store (plan, names, dtype, lazy reads, resume after a kill, clusters)."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from musicgen import shards, shards_read
from musicgen.errors import MusicgenError
from musicgen.shards import Column, PieceSequence, ShardStore, take, write_clusters, write_store


class Tok:
    """A toy vocabulary: ``vocab_size`` ids, bounds (-lowest id, +1) of each piece."""

    def __init__(self, vocab_size=40):
        self.vocab_size = vocab_size

    def transpose_bounds(self, tokens):
        return -int(np.min(tokens)), 1


PIECES = [[1, 5, 2], [1, 6, 6, 2], [1, 2], [1, 7, 8, 9, 2], [1, 3, 2]]  # 3 + 4 + 2 + 5 + 3 = 17 events


def _write(folder, pieces=PIECES, shard_bytes=16, tok=None, **kw):
    n = len(pieces)
    return write_store(folder, [f"k{i}" for i in range(n)], [f"p{i}.mid" for i in range(n)], list(range(n)),
                       lambda i: (np.array(pieces[i], np.int32), 100.0 + i), tok or Tok(), "cfg",
                       shard_bytes=shard_bytes, **kw)


def test_plan_is_greedy_and_never_splits_a_piece():
    # uint16: 6, 8, 4, 10, 6 bytes; limit 16 -> [6 8] [4 10] [6]; a piece over the limit gets a shard alone
    assert shards._plan([3, 4, 2, 5, 3], 16, 2) == [(0, 2), (2, 4), (4, 5)]
    assert shards._plan([20, 1], 16, 2) == [(0, 1), (1, 2)]
    assert shards._plan([], 16, 2) == []
    assert shards.shard_dtype(2**16) == np.uint16 and shards.shard_dtype(2**16 + 1) == np.int32


def test_write_and_read_back_lazily(tmp_path):
    index = _write(tmp_path)
    assert (index["dtype"], index["pieces"], index["events"]) == ("uint16", 5, 17)
    assert [(s["pieces"], s["events"]) for s in index["shards"]] == [(2, 7), (2, 7), (1, 3)]
    assert index["shards"][0]["name"].startswith("00000-") and len(index["shards"][0]["name"]) == 18
    store = ShardStore(tmp_path)
    assert len(store) == 5 and store.events == 17 and store.offsets.tolist() == [0, 3, 7, 9, 14, 17]
    assert store.qpm.tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert store.bounds.tolist() == [[-1, 1]] * 5
    seq = PieceSequence(store)
    assert [p.tolist() for p in seq] == PIECES and seq[3].dtype == np.int32 and seq[-1].tolist() == [1, 3, 2]
    sub = take(seq, [3, 0])
    assert [p.tolist() for p in sub] == [PIECES[3], PIECES[0]] and sub.lengths.tolist() == [5, 3] and not sub.whole
    assert [p.tolist() for p in seq[1:3]] == PIECES[1:3]
    assert Column(store, "keys") == ["k0", "k1", "k2", "k3", "k4"] and Column(store, "paths")[4] == "p4.mid"
    assert list(Column(store, "indices")) == [0, 1, 2, 3, 4]
    with pytest.raises(IndexError):
        seq[5]
    tokens = np.load(tmp_path / "shards" / f"{index['shards'][1]['name']}.tokens.npy", mmap_mode="r")
    assert tokens.dtype == np.uint16 and tokens.tolist() == [1, 2, 1, 7, 8, 9, 2]
    wide = _write(tmp_path / "wide", tok=Tok(70000))
    assert wide["dtype"] == "int32" and [p.tolist() for p in PieceSequence(ShardStore(tmp_path / "wide"))] == PIECES


def test_a_killed_write_resumes_from_its_finished_shards(tmp_path):
    def stop_after_first(number):
        if number == 1:
            raise KeyboardInterrupt  # as a kill between shards: shards 0 and 1 written, no index.json
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path / "a", on_shard=stop_after_first)
    folder = tmp_path / "a" / "shards"
    assert not (folder / "index.json").exists() and len(list(folder.glob("*.tokens.npy"))) == 2
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    written = []
    _write(tmp_path / "a", on_shard=written.append)
    after = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert all(after[name] == t for name, t in before.items())  # the finished shards were not written again
    _write(tmp_path / "b")
    fresh = tmp_path / "b" / "shards"
    assert sorted(after) == sorted(p.name for p in fresh.iterdir())
    assert all((folder / name).read_bytes() == (fresh / name).read_bytes() for name in after)


def test_a_new_store_removes_the_old_shards_and_clusters(tmp_path):
    _write(tmp_path)
    write_clusters(tmp_path, np.array([0, 1, 0, 2, 1]), ["k0", "k1", "k2", "k3", "k4"], 0.5, 8)
    cluster, rep = ShardStore(tmp_path).clusters(0.5, 8)
    assert cluster.tolist() == [0, 1, 0, 2, 1] and rep.tolist() == [0, 1, 3]
    assert ShardStore(tmp_path).clusters(0.6, 8) is None
    _write(tmp_path, pieces=PIECES[:2], shard_bytes=2**20)
    names = sorted(p.name for p in (tmp_path / "shards").iterdir())
    assert len(names) == 3 and names[-1] == "index.json"  # one shard (tokens + index), no clusters
    assert ShardStore(tmp_path).clusters(0.5, 8) is None


def test_damage_is_refused_in_one_line(tmp_path):
    index = _write(tmp_path)
    with pytest.raises(MusicgenError, match="missing index.json"):
        ShardStore(tmp_path / "nope")
    npz = tmp_path / "shards" / f"{index['shards'][0]['name']}.index.npz"
    data = npz.read_bytes()
    npz.write_bytes(data[:60] + bytes(b ^ 0xFF for b in data[60:200]) + data[200:])
    with pytest.raises(MusicgenError, match="is damaged or inconsistent.*rerun `musicgen ingest`"):
        ShardStore(tmp_path)
    npz.write_bytes(data)
    npy = tmp_path / "shards" / f"{index['shards'][2]['name']}.tokens.npy"
    tokens = np.load(npy)
    np.save(npy, np.where(tokens == 3, 77, tokens).astype(np.uint16))  # an id outside the 40-id vocabulary
    seq = PieceSequence(ShardStore(tmp_path))
    assert seq[0].tolist() == PIECES[0]
    with pytest.raises(MusicgenError, match=r"token ids outside \[0, 40\)"):
        seq[4]
    np.save(npy, tokens.astype(np.int32))
    with pytest.raises(MusicgenError, match="expected uint16 \\(3,\\), got int32"):
        PieceSequence(ShardStore(tmp_path))[4]


def test_maps_are_dropped_after_the_budget(tmp_path, monkeypatch):
    _write(tmp_path)
    monkeypatch.setattr(shards_read, "MAP_BUDGET", 2 * shards_read.PAGE_SPAN + 10)  # bytes
    store = ShardStore(tmp_path)
    store.piece(0)
    assert list(store._maps) == [0] and store._mapped_bytes == 6 + shards_read.PAGE_SPAN
    store.piece(1)  # 6 + 8 bytes read, each read may map PAGE_SPAN: over the budget, the maps are released
    assert store._maps == {} and store._mapped_bytes == 0
    store.piece(2)
    assert list(store._maps) == [1]


KILLED_INGEST = """
import os, signal, sys
import musicgen.shards as shards
real, count = shards.save_npz, [0]
def save_then_die(path, **arrays):
    real(path, **arrays)
    count[0] += 1
    if count[0] == 2:  # two shards finished: killed before the third
        os.kill(os.getpid(), signal.SIGKILL)
shards.save_npz = save_then_die
from musicgen.corpus import ingest
ingest(sys.argv[1], sys.argv[2], workers=1, progress=False, shard_bytes=int(sys.argv[3]))
"""


def test_ingest_killed_between_shards_resumes_to_the_same_store(tmp_path):
    from conftest import write_scale_corpus

    from musicgen.cache import load_tokens
    from musicgen.corpus import ingest

    corpus = write_scale_corpus(tmp_path / "music", n=6)  # 6 pieces of 163 events: 326 bytes each as uint16
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", KILLED_INGEST, str(corpus), str(tmp_path / "cache"), "700"],
                          env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    folder = tmp_path / "cache" / "shards"
    assert not (folder / "index.json").exists() and len(list(folder.glob("*.tokens.npy"))) == 2
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npy")}
    report = ingest(corpus, tmp_path / "cache", progress=False, workers=1, shard_bytes=700)
    assert report.tokenized == 0 and report.kept == 6  # the packs had every file; two shards were reused
    assert all(p.stat().st_mtime_ns == before[p.name] for p in folder.glob("*.npy") if p.name in before)
    ingest(corpus, tmp_path / "fresh", progress=False, workers=1, shard_bytes=700)
    fresh = tmp_path / "fresh" / "shards"
    names = sorted(p.name for p in fresh.iterdir())
    assert names == sorted(p.name for p in folder.iterdir()) and len(list(fresh.glob("*.npy"))) == 3
    assert all((folder / n).read_bytes() == (fresh / n).read_bytes() for n in names if n != "clusters.npz")
    got, want = load_tokens(tmp_path / "cache"), load_tokens(tmp_path / "fresh")
    assert got.keys == want.keys and all(np.array_equal(a, b) for a, b in zip(got.pieces, want.pieces))


def test_another_writer_given_the_plan_writes_the_same_files(tmp_path):
    # what an engine that writes shards elsewhere does: plan_store, write_shard per shard (any order), finish_store
    index = _write(tmp_path / "a")
    keys, paths = [f"k{i}" for i in range(5)], [f"p{i}.mid" for i in range(5)]
    plan = shards.plan_store(keys, [len(p) for p in PIECES], "cfg", 16, np.uint16)
    assert [(s["number"], s["lo"], s["hi"], s["events"]) for s in plan] == [(0, 0, 2, 7), (1, 2, 4, 7), (2, 4, 5, 3)]
    (tmp_path / "b" / "shards").mkdir(parents=True)
    for s in reversed(plan):
        got = [(np.array(PIECES[i], np.int32), 100.0 + i) for i in range(s["lo"], s["hi"])]
        shards.write_shard(tmp_path / "b", s["name"], keys[s["lo"]:s["hi"]], paths[s["lo"]:s["hi"]],
                           list(range(s["lo"], s["hi"])), got, Tok(), np.uint16)
    assert all(shards.shard_is_whole(tmp_path / "b", s, keys[s["lo"]:s["hi"]], np.uint16) for s in plan)
    assert shards.finish_store(tmp_path / "b", plan, Tok()) == index
    files = sorted(p.name for p in (tmp_path / "a" / "shards").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b" / "shards").iterdir())
    assert all((tmp_path / "a" / "shards" / f).read_bytes() == (tmp_path / "b" / "shards" / f).read_bytes()
               for f in files)


def test_a_shard_file_has_the_bytes_np_save_writes(tmp_path):
    import io

    index = _write(tmp_path)
    for shard, pieces, dtype in ((index["shards"][1], PIECES[2:4], np.uint16),):
        want = io.BytesIO()
        np.save(want, np.array([t for p in pieces for t in p], dtype), allow_pickle=False)
        assert (tmp_path / "shards" / f"{shard['name']}.tokens.npy").read_bytes() == want.getvalue()
    wide = _write(tmp_path / "wide", tok=Tok(70000))
    want = io.BytesIO()
    np.save(want, np.array(PIECES[4], np.int32), allow_pickle=False)
    assert (tmp_path / "wide" / "shards" / f"{wide['shards'][-1]['name']}.tokens.npy").read_bytes() == want.getvalue()


def test_a_shard_given_other_events_than_planned_is_refused_and_not_left(tmp_path):
    (tmp_path / "shards").mkdir()
    got = [(np.array([1, 5, 2]), 100.0), (np.array([1, 2]), 100.0)]
    for events in (4, 6):  # too few planned (the second piece overruns), too many
        with pytest.raises(MusicgenError, match="expected 2 pieces of"):
            shards.write_shard(tmp_path, "s", ["a", "b"], ["a.mid", "b.mid"], [0, 0], iter(got), Tok(), np.uint16,
                               events=events)
    assert list((tmp_path / "shards").iterdir()) == []


def test_a_store_rewritten_under_a_reader_keeps_the_readers_tokens(tmp_path, monkeypatch):
    # another `musicgen ingest` of the folder with another config removes the old shard files; a reader that
    # mapped them (a training run) keeps reading its own tokens, also after its maps released their pages
    _write(tmp_path)
    monkeypatch.setattr(shards_read, "MAP_BUDGET", 2 * shards_read.PAGE_SPAN + 10)
    before = [piece.tolist() for piece in PieceSequence(ShardStore(tmp_path))]
    store = ShardStore(tmp_path)
    assert len(store.shards) > 1 and store.piece(0).tolist() == before[0]  # only the first shard read so far
    for path in (tmp_path / shards_read.SHARDS_DIR).glob("*.tokens.npy"):
        path.unlink()
    store.release()
    assert [store.piece(i).tolist() for i in range(len(store))] == before
    with pytest.raises(MusicgenError, match="unreadable"):  # a new reader finds them gone, as before
        ShardStore(tmp_path).piece(0)
