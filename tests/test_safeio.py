import os

import pytest

from musicgen.safeio import atomic_path, atomic_paths, atomic_write_text, save_npz


def test_atomic_paths_rename_only_after_the_whole_block(tmp_path):
    a, b = tmp_path / "a.mid", tmp_path / "b.json"
    a.write_text("old a")
    with atomic_paths(a, b) as (ta, tb):
        assert ta.parent == tmp_path and ta.name.startswith(".a.mid.") and ta.name.endswith(".tmp.mid")
        assert tb.name.endswith(".tmp.json")
        ta.write_text("new a")
        tb.write_text("new b")
        assert a.read_text() == "old a" and not b.exists()  # nothing is replaced before the block ends
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mid", "b.json"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failure_inside_the_block_touches_no_target_and_leaves_no_temporary(tmp_path, error):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    with pytest.raises(type(error)):
        with atomic_paths(a, b) as (ta, tb):
            ta.write_text("new a")
            tb.mkdir()  # a writer that made a folder (Keras SavedModel style) is cleaned too
            raise error
    assert a.read_text() == "old a" and not b.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_keras_style_suffixes_are_kept_and_bytes_helpers_use_plain_temporaries(tmp_path, monkeypatch):
    with atomic_path(tmp_path / "best-0003.weights.h5") as tmp:
        assert tmp.name.endswith(".weights.h5")  # Keras picks the format from the name
        tmp.write_bytes(b"w")
    names = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (names.append(os.path.basename(src)), real(src, dst)))
    atomic_write_text(tmp_path / "x.json", "{}")
    save_npz(tmp_path / "y.npz", a=[1])
    assert all(n.endswith(".tmp") for n in names) and len(names) == 2  # what CacheLock sweeps (".*.tmp")
    assert (tmp_path / "x.json").read_text() == "{}"


def _double(items):
    return [2 * x for x in items]


def test_run_isolated_sends_many_chunks_a_few_at_a_time_and_returns_every_result():
    from musicgen.safeio import run_isolated

    got = dict(run_isolated(_double, list(range(50)), 1, chunk=1))  # 50 chunks, at most 4 waiting
    assert got == {x: 2 * x for x in range(50)}


class _Lazy:
    """A sequence whose slices are made when asked (what ingest passes)."""

    def __init__(self, n):
        self.n, self.sliced = n, 0

    def __len__(self):
        return self.n

    def __getitem__(self, s):
        self.sliced += 1
        return list(range(self.n))[s]


def test_run_isolated_takes_a_lazy_sequence():
    from musicgen.safeio import run_isolated

    items = _Lazy(10)
    assert sorted(run_isolated(_double, items, 1, chunk=3)) == [(x, 2 * x) for x in range(10)]
    assert items.sliced == 4
