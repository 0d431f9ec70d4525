"""Ingest (scan, parallel tokenize, manifest, cache reuse, damage recovery), load_tokens, and a music21 export
ingested."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import segfault_reading

from musicgen import safeio
from musicgen.cli import main
from musicgen.config import TokenizerConfig
from musicgen.corpus import CRASH_REASON, find_music_files, ingest, is_token_cache, load_tokens, tokens_for
from musicgen.errors import MusicgenError, UsageError
from musicgen.reader import read_piece
from musicgen.safeio import save_npz
from musicgen.shards import PieceSequence
from musicgen.tokenizer import Tokenizer

BROKEN = Path(__file__).parent / "data" / "broken"
UNREADABLE = ["bad_header_length.mid", "division_zero.mid", "empty.mid", "random_bytes.mid", "text_named.mid",
              "track_longer_than_file.mid", "truncated.mid"]
NO_NOTES = ["header_only.mid", "no_notes.mid"]
KEPT = ["drums_only.mid", "hour_gap.mid", "many_notes.mid", "one_tick_per_beat.mid", "tempo_1200bpm.mid",
        "tempo_1bpm.mid", "tempo_3.58bpm.mid", "type2.mid", "upper/UPPER_CASE.MID"]
GOOD = ["drums_only.mid", "hour_gap.mid", "tempo_1200bpm.mid", "upper/UPPER_CASE.MID"]


@pytest.fixture(autouse=True)
def _fork_workers(monkeypatch):
    # forked workers inherit the test's monkeypatches even when another test module has imported TensorFlow
    monkeypatch.setattr(safeio, "_start_method", lambda: "fork")


def small_corpus(root: Path, names=GOOD) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(BROKEN / name, root / name)
    return root


def manifest(out: Path) -> dict:
    return {f["path"]: f for f in json.loads((out / "manifest.json").read_text())["files"]}


def test_find_music_files_is_recursive_sorted_and_case_blind():
    found = [p.relative_to(BROKEN).as_posix() for p in find_music_files(BROKEN)]
    assert found == sorted(UNREADABLE + NO_NOTES + KEPT)
    assert "notes.txt" not in found


def test_broken_corpus_never_crashes_and_manifest_accounts_for_every_file(tmp_path):
    report = ingest(BROKEN, tmp_path / "cache", workers=2, progress=False)
    files = manifest(tmp_path / "cache")
    on_disk = sorted(p.relative_to(BROKEN).as_posix() for p in BROKEN.rglob("*") if p.is_file())
    assert sorted(files) == on_disk
    assert {p for p, f in files.items() if f["status"] == "kept"} == set(KEPT)
    assert files["notes.txt"] == {"path": "notes.txt", "status": "ignored", "reason": "not a music file"}
    for name in UNREADABLE:
        assert files[name]["status"] == "skipped" and files[name]["reason"].startswith("unreadable MIDI"), name
    for name in NO_NOTES:
        assert files[name]["status"] == "skipped" and files[name]["reason"] == "no notes", name
    # hand-counted: BOS PROGRAM VELOCITY ON SHIFT OFF, 7200 quarters = 86400 steps = 1800 shifts of 48, ON SHIFT OFF EOS
    assert files["hour_gap.mid"]["events"] == 1810
    # BOS PROGRAM(128) VELOCITY, then 4 × (ON SHIFT(3) OFF), EOS
    assert files["drums_only.mid"]["events"] == 16
    assert (report.kept, report.skipped, report.ignored) == (9, 9, 1)
    assert report.summary() == f"ingested 18 files, 18 pieces: 9 kept, 9 skipped (7 unreadable MIDI, 2 no notes), " \
                               f"{report.events} events"
    tokens = load_tokens(tmp_path / "cache")
    assert tokens.paths == KEPT and tokens.n_events == report.events
    tok = Tokenizer()
    for path, piece, key in zip(tokens.paths, tokens.pieces, tokens.keys):
        np.testing.assert_array_equal(piece, tok.encode(BROKEN / path))
        assert key == files[path]["key"] and len(key) == 64


def test_rerun_reuses_cache_and_reingests_only_changed_files(tmp_path):
    src, out = small_corpus(tmp_path / "music"), tmp_path / "cache"
    assert ingest(src, out, progress=False).tokenized == 4
    index_mtime = (out / "shards" / "index.json").stat().st_mtime_ns
    warm = ingest(src, out, progress=False)
    assert (warm.tokenized, warm.reused, warm.kept) == (0, 4, 4)
    assert (out / "shards" / "index.json").stat().st_mtime_ns == index_mtime  # not even rewritten

    shutil.copy(BROKEN / "tempo_1bpm.mid", src / "hour_gap.mid")  # changed content, same name
    shutil.copy(BROKEN / "type2.mid", src / "new.mid")  # added
    (src / "drums_only.mid").unlink()  # removed
    again = ingest(src, out, progress=False)
    assert (again.tokenized, again.kept) == (2, 4)
    tokens = load_tokens(out)
    assert tokens.paths == ["hour_gap.mid", "new.mid", "tempo_1200bpm.mid", "upper/UPPER_CASE.MID"]
    np.testing.assert_array_equal(tokens.pieces[0], Tokenizer().encode(BROKEN / "tempo_1bpm.mid"))
    # another tokenizer config is another cache key: everything is tokenized again
    assert ingest(src, out, TokenizerConfig.seconds(), progress=False).tokenized == 4
    assert load_tokens(out).tokenizer_config == TokenizerConfig.seconds()


def test_duplicate_content_is_kept_once(tmp_path):
    src = small_corpus(tmp_path / "music", ["drums_only.mid", "hour_gap.mid"])
    shutil.copy(src / "drums_only.mid", src / "zz_copy.MIDI")
    report = ingest(src, tmp_path / "cache", progress=False)
    files = manifest(tmp_path / "cache")
    assert (report.kept, report.skipped, report.tokenized) == (2, 1, 2)
    assert files["drums_only.mid"]["status"] == "kept"
    copy = files["zz_copy.MIDI"]
    assert (copy["status"], copy["reason"]) == ("skipped", "duplicate of drums_only.mid")
    (src / "drums_only.mid").unlink()  # the copy is now the only one: kept, from the cache
    report = ingest(src, tmp_path / "cache", progress=False)
    assert (report.kept, report.skipped, report.tokenized) == (2, 0, 0)
    assert manifest(tmp_path / "cache")["zz_copy.MIDI"]["status"] == "kept"


def test_damaged_entries_and_tokens_are_detected_and_redone(tmp_path):
    src, out = small_corpus(tmp_path / "music"), tmp_path / "cache"
    ingest(src, out, progress=False)
    expected = [p.copy() for p in load_tokens(out).pieces]
    entries = sorted((out / "entries").glob("*/*.npz"))
    entries[0].write_bytes(entries[0].read_bytes()[:50])  # as a non-atomic write killed halfway would leave it
    shutil.rmtree(out / "shards")
    (out / ".manifest.json.123.abcd.tmp").write_bytes(b"left by a killed run")
    assert ingest(src, out, progress=False).tokenized == 1
    assert not list(out.glob("*.tmp"))
    for got, want in zip(load_tokens(out).pieces, expected):
        np.testing.assert_array_equal(got, want)

    index = next((out / "shards").glob("*.index.npz"))
    data = index.read_bytes()  # damaged behind the manifest's back (same size, bytes flipped)
    index.write_bytes(data[:100] + bytes(b ^ 0xFF for b in data[100:400]) + data[400:])
    with pytest.raises(MusicgenError, match="damaged|inconsistent"):
        load_tokens(out)
    assert len(tokens_for(src, out_dir=out)) == 4  # rebuilt from the entries
    tokens = next((out / "shards").glob("*.tokens.npy"))
    np.save(tokens, np.full(np.load(tokens).size, 60000, np.uint16))  # ids outside the vocabulary
    with pytest.raises(MusicgenError, match="token ids outside"):  # found when a piece is read
        tokens_for(src, out_dir=out).pieces[0]
    assert ingest(src, out, progress=False, rebuild=True).tokenized == 0  # every shard written again from the packs
    for got, want in zip(load_tokens(out).pieces, expected):
        np.testing.assert_array_equal(got, want)


def test_load_tokens_reads_the_shards_lazily_and_an_old_cache_is_converted(tmp_path):
    src, out = small_corpus(tmp_path / "music"), tmp_path / "cache"
    ingest(src, out, progress=False)
    index = json.loads((out / "shards" / "index.json").read_text())
    assert (index["dtype"], index["pieces"], len(index["shards"])) == ("uint16", 4, 1)  # a small corpus: one shard
    tokens = load_tokens(out)
    assert isinstance(tokens.pieces, PieceSequence) and tokens.pieces[0].dtype == np.int32
    assert tokens.qpms.shape == (4,) and tokens.qpms[3] == pytest.approx(90.0)  # UPPER_CASE.MID is at 90 bpm
    pieces = [p.copy() for p in tokens.pieces]
    # an old-format cache (tokens.npz, no shards): refused in one line, rewritten by ingest without parsing
    offsets = np.concatenate([[0], np.cumsum([p.size for p in pieces])]).astype(np.int64)
    save_npz(out / "tokens.npz", tokens=np.concatenate(pieces), offsets=offsets, qpm=tokens.qpms,
             keys=np.array(list(tokens.keys)), paths=np.array(list(tokens.paths)), indices=np.zeros(4, np.int64))
    shutil.rmtree(out / "shards")
    with pytest.raises(MusicgenError, match="old tokens.npz format; rerun `musicgen ingest`"):
        load_tokens(out)
    assert ingest(src, out, progress=False).tokenized == 0
    assert not (out / "tokens.npz").exists()
    assert all(np.array_equal(a, b) for a, b in zip(load_tokens(out).pieces, pieces))


def test_tokens_for_takes_a_cache_or_a_music_folder(tmp_path):
    src, out = small_corpus(tmp_path / "music"), tmp_path / "cache"
    from_music = tokens_for(src, out_dir=out)
    assert is_token_cache(out) and not is_token_cache(src)
    from_cache = tokens_for(out)
    assert from_cache.keys == from_music.keys and from_cache.n_events == from_music.n_events
    with pytest.raises(UsageError, match="time_mode='beat' \\(wanted 'seconds'\\)"):
        tokens_for(out, TokenizerConfig.seconds())


def test_a_crashing_worker_skips_only_its_file(tmp_path, monkeypatch):
    segfault_reading(monkeypatch, "crash.mid")
    src = small_corpus(tmp_path / "music")
    shutil.copy(BROKEN / "type2.mid", src / "crash.mid")
    report = ingest(src, tmp_path / "cache", workers=2, progress=False)
    files = manifest(tmp_path / "cache")
    assert (report.kept, report.skipped) == (4, 1)
    assert files["crash.mid"]["reason"] == CRASH_REASON


def test_cli_no_usable_file_missing_dir_and_file_exit_2(tmp_path, capsys):
    src = small_corpus(tmp_path / "music", ["empty.mid", "no_notes.mid", "notes.txt"])
    assert main(["ingest", str(src), "--out", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert "musicgen ingest: error: corpus_dir: no usable music file" in err and "1 unreadable MIDI" in err
    assert manifest(tmp_path / "cache")["notes.txt"]["status"] == "ignored"
    assert main(["ingest", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["ingest", str(src / "empty.mid")]) == 2
    assert "got a file" in capsys.readouterr().err
    with pytest.raises(UsageError, match="--workers"):
        ingest(src, tmp_path / "c2", workers=-1)


def test_cli_ingest_prints_summary(tmp_path, capsys):
    src = small_corpus(tmp_path / "music")
    assert main(["ingest", str(src), "--out", str(tmp_path / "cache"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ingested 4 files, 4 pieces: 4 kept, 0 skipped, ") and "4 files tokenized" in out


def test_cli_ingest_meter_and_key_flags_and_manifest_rows(tmp_path, capsys):
    src = small_corpus(tmp_path / "music", ["tempo_1200bpm.mid"])
    assert main(["ingest", str(src), "--out", str(tmp_path / "cache"), "--meter", "--key-mode", "token"]) == 0
    config = TokenizerConfig.load(tmp_path / "cache" / "tokenizer.json")
    assert (config.meter, config.key) == (True, "token")
    row = manifest(tmp_path / "cache")["tempo_1200bpm.mid"]
    assert row["meter"] == "4/4" and row["tonality"].endswith(("major", "minor"))  # no signatures: 4/4, analysed
    assert main(["ingest", str(src), "--out", str(tmp_path / "plain")]) == 0
    assert not {"meter", "tonality"} & set(manifest(tmp_path / "plain")["tempo_1200bpm.mid"])
    # a cache keeps what it was made with: train refuses flags that disagree with it before building anything
    assert main(["train", str(tmp_path / "cache"), "--key-mode", "normalize", "--out", str(tmp_path / "m")]) == 2
    assert "--key-mode: token cache" in capsys.readouterr().err and not (tmp_path / "m").exists()
    assert main(["ingest", str(src), "--out", str(tmp_path / "sec"), "--meter", "--time-mode", "seconds"]) == 2
    assert "meter:" in capsys.readouterr().err


def test_export_bach_chorales_then_ingest(tmp_path, capsys):
    from musicgen.corpus import list_corpora

    assert dict((n, k) for n, _, k in list_corpora())["bach"] == 410  # 433 - 20 .rntxt analyses - 3 .krn copies
    assert main(["corpus", "export", "bach", str(tmp_path / "bach"), "--limit", "3"]) == 0
    assert "exported 3 pieces of 'bach'" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "bach").iterdir()) == ["bwv1.6.mid", "bwv10.7.mid", "bwv101.7.mid"]
    import music21

    from musicgen.scores import music21_piece

    # bwv1.6 opens with a one-beat pickup and ends on a three-beat bar: the MIDI holds the bars music21 reads
    exported = read_piece(tmp_path / "bach" / "bwv1.6.mid")
    assert exported.meters == ((0.0, 1, 4), (1.0, 4, 4), (77.0, 3, 4)) and exported.key == 5  # F major
    assert exported.meters == music21_piece(music21.corpus.parse("bach/bwv1.6"))[0].meters
    report = ingest(tmp_path / "bach", tmp_path / "cache", progress=False)
    assert (report.kept, report.skipped) == (3, 0)
    score = music21.corpus.parse("bach/bwv10.7")
    notes = [(p.midi, float(n.offset)) for part in score.parts for n in part.flatten().stripTies().notes
             for p in n.pitches]
    assert (len(notes), len(set(notes))) == (206, 200)  # voices in unison share one NOTE_ON (same program)
    on_first, on_size = Tokenizer().ranges["NOTE_ON"]
    piece = load_tokens(tmp_path / "cache").pieces[1]
    assert int(((piece >= on_first) & (piece < on_first + on_size)).sum()) == 200


def test_packs_left_by_a_killed_run_are_reused(tmp_path):
    src, out = small_corpus(tmp_path / "music", KEPT), tmp_path / "cache"
    first = ingest(src, out, workers=1, progress=False)
    expected = load_tokens(out)
    packs = sorted((out / "entries").glob("*/*.npz"))
    # 9 files, 1 worker: chunks of ceil(9 / 4) = 3 files, one pack each
    assert first.tokenized == 9 and len(packs) == 3
    assert [len(np.load(p, allow_pickle=False)["keys"]) for p in packs] == [3, 3, 3]
    shutil.rmtree(out / "shards")  # as a run killed after its workers finished, before its final writes
    (out / "manifest.json").unlink()
    again = ingest(src, out, workers=1, progress=False)
    assert (again.tokenized, again.reused, again.kept) == (0, 9, 9)
    got = load_tokens(out)
    assert got.keys == expected.keys and all(np.array_equal(a, b) for a, b in zip(got.pieces, expected.pieces))
    packs[1].write_bytes(packs[1].read_bytes()[:-10])  # a damaged pack: only its 3 files are tokenized again
    (out / "manifest.json").unlink()
    assert ingest(src, out, workers=1, progress=False).tokenized == 3
    assert all(np.array_equal(a, b) for a, b in zip(load_tokens(out).pieces, expected.pieces))


def test_a_slow_music21_parse_is_stopped_by_the_time_limit(tmp_path, monkeypatch):
    import time

    import musicgen.scores as scores

    real = scores._parse_music21

    def slow_kern(source, *args, **kwargs):
        if Path(str(source)).name == "slow.krn":
            time.sleep(30)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(scores, "_parse_music21", slow_kern)
    src = small_corpus(tmp_path / "music")
    shutil.copy(Path(__file__).parent / "data" / "tune.krn", src / "slow.krn")
    t0 = time.perf_counter()
    report = ingest(src, tmp_path / "cache", workers=1, progress=False, time_limit_s=1)
    assert time.perf_counter() - t0 < 10
    assert (report.kept, report.skipped) == (4, 1)
    assert manifest(tmp_path / "cache")["slow.krn"]["reason"] == "timed out after 1 s"
    with pytest.raises(UsageError, match="time_limit_s"):
        ingest(src, tmp_path / "c2", time_limit_s=-1)


def test_a_book_gives_a_row_and_a_cached_piece_per_tune(tmp_path):
    src = small_corpus(tmp_path / "music", ["drums_only.mid"])
    data = Path(__file__).parent / "data"
    for name in ("book.abc", "broken_book.abc", "opus.krn"):
        shutil.copy(data / name, src / name)
    out = tmp_path / "cache"
    report = ingest(src, out, workers=2, progress=False)
    assert (report.found, report.pieces, report.kept, report.skipped) == (4, 9, 8, 1)
    assert report.summary().startswith("ingested 4 files, 9 pieces: 8 kept, 1 skipped (1 no notes), ")
    rows = json.loads((out / "manifest.json").read_text())["files"]
    assert [(r["path"], r.get("index"), r.get("title"), r["status"], r.get("reader"), r.get("reason")) for r in rows] \
        == [("book.abc", 0, "Repeat", "kept", "symusic", None), ("book.abc", 1, "Tuplet", "kept", "symusic", None),
            ("book.abc", 2, "Chord", "kept", "symusic", None), ("broken_book.abc", 0, "First", "kept", "symusic", None),
            ("broken_book.abc", 1, "Empty", "skipped", None, "no notes"),
            ("broken_book.abc", 2, "Third", "kept", "symusic", None),
            ("drums_only.mid", None, None, "kept", None, None),
            ("opus.krn", 0, "First", "kept", "music21", None), ("opus.krn", 1, "Second", "kept", "music21", None)]
    book_key = rows[0]["key"]
    assert [r["key"] for r in rows[:3]] == [book_key, f"{book_key}#1", f"{book_key}#2"]  # (content, index)
    tokens = load_tokens(out)
    assert list(zip(tokens.paths, tokens.indices))[:3] == [("book.abc", 0), ("book.abc", 1), ("book.abc", 2)]
    assert len(tokens) == 8 and tokens.keys[:3] == [r["key"] for r in rows[:3]]
    warm = ingest(src, out, progress=False)
    assert (warm.tokenized, warm.reused, warm.kept, warm.skipped) == (0, 4, 8, 1)
    (out / "manifest.json").unlink()  # rebuilt from the entry packs, every tune included, nothing parsed
    again = ingest(src, out, progress=False)
    assert (again.tokenized, again.kept) == (0, 8)
    assert json.loads((out / "manifest.json").read_text())["files"] == rows
