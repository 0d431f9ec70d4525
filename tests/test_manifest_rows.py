from musicgen.manifest_rows import FIELDS, kept_of, pack_rows, unpack_rows
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
