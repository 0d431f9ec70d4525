from musicgen.ingest_table import FIELDS, kept_of, pack_rows, unpack_rows
import pytest

MIDI = [{"key": "aa", "events": 12, "tonality": "F major", "meter": "4/4"}]
ABC = [{"key": "bb", "index": 0, "title": "Tune one", "reader": "abc", "events": 30},
       {"key": "bb#1", "index": 1, "title": "Tune two", "reader": "abc", "reason": "no notes"},
       {"key": "bb#2", "index": 2, "reader": "abc", "events": 5, "meter": "6/8"}]


def test_one_row_packs_to_one_tuple_and_back():
    packed = pack_rows(MIDI)
    assert packed == ("aa", None, None, None, None, 12, "F major", "4/4")
    assert unpack_rows(packed) == MIDI
    assert list(unpack_rows(packed)[0]) == ["key", "events", "tonality", "meter"]


def test_many_rows_keep_their_order_and_fields():
    packed = pack_rows(ABC)
    assert isinstance(packed, list) and len(packed) == 3
    assert unpack_rows(packed) == ABC
    assert [list(r) for r in unpack_rows(packed)] == [[k for k in FIELDS if k in r] for r in ABC]


def test_kept_of_names_kept_pieces_with_their_index():
    assert list(kept_of(pack_rows(MIDI))) == [("aa", 0)]
    assert list(kept_of(pack_rows(ABC))) == [("bb", 0), ("bb#2", 2)]
    assert list(kept_of(pack_rows([{"key": "cc", "reason": "unreadable: x"}]))) == []


def test_strings_are_interned():
    a = pack_rows([{"key": "a", "events": 2, "tonality": "".join(["G ", "minor"])}])
    b = pack_rows([{"key": "b", "events": 2, "tonality": "".join(["G ", "mi", "nor"])}])
    assert a[6] is b[6]


def test_unknown_field_is_refused():
    with pytest.raises(ValueError, match="'size'"):
        pack_rows([{"key": "a", "size": 3}])


def test_file_table_columns_and_manifest_rows_by_hand():
    from musicgen.ingest_table import FileTable, TokenizeItems

    table = FileTable(["a.abc", "b.mid", "c.mid", "d.mid"])
    table.keys[:3] = ["ka", "kb", "kb"]
    table.sizes[:3], table.mtimes[:3] = [10, 20, 20], [1, 2, 3]
    table.skipped.update({2: "duplicate of b.mid", 3: "unreadable: Permission denied"})
    table.rows[0], table.rows[1] = pack_rows(ABC[:2]), pack_rows([{"key": "kb", "events": 7}])
    ABC_A = [{"key": "bb", "index": 0, "title": "Tune one", "reader": "abc", "events": 30}]
    assert table.kept_columns() == (["bb", "kb"], ["a.abc", "b.mid"], [0, 0])
    rows = list(table.manifest_rows(["README", "c.txt"]))
    assert rows == [
        {"path": "README", "status": "ignored", "reason": "not a music file"},
        {"path": "a.abc", "index": 0, "title": "Tune one", "key": "bb", "size": 10, "mtime_ns": 1, "status": "kept",
         "reader": "abc", "events": 30},
        {"path": "a.abc", "index": 1, "title": "Tune two", "key": "bb#1", "size": 10, "mtime_ns": 1,
         "status": "skipped", "reader": "abc", "reason": "no notes"},
        {"path": "b.mid", "key": "kb", "size": 20, "mtime_ns": 2, "status": "kept", "events": 7},
        {"path": "c.mid", "key": "kb", "size": 20, "mtime_ns": 3, "status": "skipped", "reason": "duplicate of b.mid"},
        {"path": "c.txt", "status": "ignored", "reason": "not a music file"},
        {"path": "d.mid", "status": "skipped", "reason": "unreadable: Permission denied"}]
    assert type(rows[1]["size"]) is int and type(rows[1]["mtime_ns"]) is int
    assert ABC_A[0].items() <= rows[1].items()
    items = TokenizeItems("/corpus", table.music, {"kb": 1, "ka": 0}, ["kb", "ka"])
    assert len(items) == 2 and items[1] == ("/corpus/a.abc", "ka") and items[0:5] == [("/corpus/b.mid", "kb"),
                                                                                      ("/corpus/a.abc", "ka")]
