"""musicgen.cache: piece keys, entry packs, the token store, and what a run knows from them.

Tokens here are hand-made id lists (BOS=1 … EOS=2 in a vocabulary of ``Tokenizer(CONFIG).vocab_size``); no music file
is read. ``tests/test_corpus.py`` covers the same storage through ``ingest``.
"""

import os

import numpy as np
import pytest

from musicgen.cache import (CRASH_REASON, KnownPieces, PieceResult, config_hash, file_key_of, is_token_cache,
                            load_tokens, piece_key, store_stamp, tokens_current, write_pack, write_tokens)
from musicgen.config import TokenizerConfig
from musicgen.errors import MusicgenError, UsageError
from musicgen.tokenizer import Tokenizer

CONFIG = TokenizerConfig(velocity_bins=0, programs=False)
VOCAB = Tokenizer(CONFIG).vocab_size


def _kept(key, index, tokens, qpm=120.0, title="", reader=""):
    return PieceResult(key, index, title, reader, "", np.array(tokens, np.int32), qpm)


def _store(tmp_path, trust_tokens=False):
    entries = tmp_path / "entries" / config_hash(CONFIG)
    entries.mkdir(parents=True, exist_ok=True)
    return KnownPieces(tmp_path, entries, CONFIG, VOCAB, trust_tokens=trust_tokens), entries


def test_piece_keys_name_the_file_and_the_index():
    assert piece_key("f00d", 0) == "f00d" and piece_key("f00d", 3) == "f00d#3"
    assert file_key_of("f00d#3") == "f00d" and file_key_of("f00d") == "f00d"


def test_config_hash_is_sixteen_hex_digits_that_follow_the_config():
    h = config_hash(CONFIG)
    assert len(h) == 16 and int(h, 16) >= 0
    assert config_hash(TokenizerConfig(velocity_bins=0, programs=False)) == h
    assert config_hash(TokenizerConfig(velocity_bins=4, programs=False)) != h


def test_a_skipped_piece_has_no_tokens():
    p = PieceResult.skipped("f00d#2", "no notes", index=2, title="Tune", reader="music21")
    assert p[:5] == ("f00d#2", 2, "Tune", "music21", "no notes") and p.tokens.size == 0 and p.qpm == 0.0
    assert PieceResult.skipped("beef", CRASH_REASON)[:5] == ("beef", 0, "", "", CRASH_REASON)


def test_packs_give_back_every_piece_of_their_files(tmp_path):
    store, entries = _store(tmp_path)
    book = [_kept("aa", 0, [1, 5, 2], 90.0, "One", "symusic"), PieceResult.skipped("aa#1", "no notes", 1, "Two"),
            _kept("aa#2", 2, [1, 6, 7, 2], 100.0, "Three", "symusic")]
    write_pack(entries, book + [_kept("bb", 0, [1, 2])])
    write_pack(entries, [PieceResult.skipped("cc", CRASH_REASON)])  # a crash is looked at again, not trusted
    (entries / "0000000000000000.npz").write_bytes(b"not a zip")  # a damaged pack is left out
    assert store.missing_files(["aa", "bb", "cc", "dd"]) == ["cc", "dd"]
    got = store.files["aa"]
    assert [(p.key, p.index, p.title, p.reader, p.reason, p.tokens.tolist(), p.qpm) for p in got] == [
        ("aa", 0, "One", "symusic", "", [1, 5, 2], 90.0), ("aa#1", 1, "Two", "", "no notes", [], 0.0),
        ("aa#2", 2, "Three", "symusic", "", [1, 6, 7, 2], 100.0)]
    assert store.missing_tokens(["aa", "aa#2", "bb", "aa#1"]) == ["aa#1"]  # a skipped piece has no tokens


def test_token_store_round_trip_and_its_freshness(tmp_path):
    store, _ = _store(tmp_path)
    store.add("aa", [_kept("aa", 0, [1, 5, 2], 90.0), _kept("aa#1", 1, [1, 6, 6, 2], 60.0)])
    store.add("bb", [_kept("bb", 0, [1, 2], 120.0)])
    assert not is_token_cache(tmp_path)
    write_tokens(tmp_path, ["bb", "aa#1"], store, ["b.mid", "a.abc"], [0, 1])
    (tmp_path / "tokenizer.json").write_text(CONFIG.to_json())
    assert is_token_cache(tmp_path)
    ts = load_tokens(tmp_path)
    assert [p.tolist() for p in ts.pieces] == [[1, 2], [1, 6, 6, 2]] and ts.qpms.tolist() == [120.0, 60.0]
    assert (ts.keys, ts.paths, ts.indices, ts.n_events) == (["bb", "aa#1"], ["b.mid", "a.abc"], [0, 1], 6)
    assert ts.tokenizer_config == CONFIG
    manifest = {"config_hash": "h", "kept_keys": ["bb", "aa#1"], "shards": store_stamp(tmp_path)}
    assert tokens_current(tmp_path, manifest, "h", ["bb", "aa#1"])
    assert not tokens_current(tmp_path, manifest, "other", ["bb", "aa#1"])
    assert not tokens_current(tmp_path, manifest, "h", ["bb"])
    index = tmp_path / "shards" / "index.json"
    st = index.stat()
    os.utime(index, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # touched since the manifest
    assert not tokens_current(tmp_path, manifest, "h", ["bb", "aa#1"])
    trusting, _ = _store(tmp_path, trust_tokens=True)  # the next run reads kept tokens from the store, lazily
    assert trusting.missing_tokens(["aa#1", "bb", "zz"]) == ["zz"]
    assert trusting.tokens["aa#1"][0].tolist() == [1, 6, 6, 2] and trusting.tokens["aa#1"][1] == 60.0


def test_a_damaged_inconsistent_or_old_token_cache_is_refused(tmp_path):
    with pytest.raises(UsageError, match="cache_dir: no such folder"):
        load_tokens(tmp_path / "nope")
    (tmp_path / "tokenizer.json").write_text(CONFIG.to_json())
    with pytest.raises(MusicgenError, match="missing index.json; run `musicgen ingest`"):
        load_tokens(tmp_path)
    np.savez(tmp_path / "tokens.npz", tokens=np.array([1, 5, 2], np.int32), offsets=np.array([0, 3], np.int64),
             qpm=np.array([120.0]), keys=np.array(["aa"]), paths=np.array(["a.mid"]))
    assert is_token_cache(tmp_path)  # an old-format cache: recognised, and refused with what to do
    with pytest.raises(MusicgenError, match="old tokens.npz format; rerun `musicgen ingest` on its music folder"):
        load_tokens(tmp_path)
    store, _ = _store(tmp_path)
    store.add("aa", [_kept("aa", 0, [1, 5, 2])])
    write_tokens(tmp_path, ["aa"], store, ["a.mid"], [0])
    assert not (tmp_path / "tokens.npz").exists() and load_tokens(tmp_path).pieces[0].tolist() == [1, 5, 2]
    (tmp_path / "tokenizer.json").write_text(TokenizerConfig().to_json())  # another vocabulary size
    with pytest.raises(MusicgenError, match="inconsistent: 1 pieces of a .*-id vocabulary, tokenizer.json has"):
        load_tokens(tmp_path)
