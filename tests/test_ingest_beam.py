"""``musicgen ingest --engine beam``: options, work cutting, the missing-extra error, and a store byte-identical to
local ingest (tests/data; a few hundred generated files over several shards; a rerun that reuses the last store;
a crashing parser)."""

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import segfault_reading

from musicgen import safeio
from musicgen.cli import main
from musicgen.corpus import CRASH_REASON, ingest
from musicgen.errors import UsageError
from musicgen.ingest_beam import elements, parse_options, require_beam

DATA = Path(__file__).parent / "data"
BROKEN = DATA / "broken"
KEPT = ["drums_only.mid", "hour_gap.mid", "many_notes.mid", "one_tick_per_beat.mid", "tempo_1200bpm.mid",
        "tempo_1bpm.mid", "tempo_3.58bpm.mid", "type2.mid", "upper/UPPER_CASE.MID"]

try:
    import apache_beam  # noqa: F401

    HAVE_BEAM = True
except ImportError:
    HAVE_BEAM = False
needs_beam = pytest.mark.skipif(not HAVE_BEAM, reason="Apache Beam is not installed: pip install -e '.[cluster]', or "
                                "run this file with a venv that has it, e.g. python -m venv --system-site-packages "
                                "/work/scratch/beamvenv && /work/scratch/beamvenv/bin/pip install apache-beam && "
                                "PYTHONPATH=$PWD /work/scratch/beamvenv/bin/python -m pytest tests/test_ingest_beam.py")


@pytest.fixture(autouse=True)
def _fork_workers(monkeypatch):
    # forked workers inherit the test's monkeypatches even when another test module has imported TensorFlow
    monkeypatch.setattr(safeio, "_start_method", lambda: "fork")


def test_parse_options_pass_keys_and_values_through_as_beam_flags():
    assert parse_options(["runner=FlinkRunner", "flink_master=host:8081", "--save_main_session"]) == \
        ["--runner=FlinkRunner", "--flink_master=host:8081", "--save_main_session"]
    assert parse_options([]) == []
    with pytest.raises(UsageError, match=r"^--beam-option: expected KEY=VALUE .*got '=x'$"):
        parse_options(["=x"])


def test_elements_cut_the_work_into_runs_of_about_the_budget():
    items = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")]
    assert elements(items, [1, 1, 1, 1, 1], budget=2) == [[["a", "1"], ["b", "2"]], [["c", "3"], ["d", "4"]],
                                                          [["e", "5"]]]
    # a costly file (a MusicXML parse) fills an element of its own; order is kept
    assert elements(items, [100, 1, 1, 300, 1], budget=100) == [[["a", "1"]], [["b", "2"], ["c", "3"]], [["d", "4"]],
                                                                [["e", "5"]]]
    assert elements([], [], budget=4) == []


def test_without_beam_engine_beam_is_one_line_saying_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import fails as when it is not installed
    with pytest.raises(UsageError, match=r"^--engine: 'beam' needs Apache Beam, which is not installed; "
                                         r"pip install -e '\.\[cluster\]'"):
        require_beam()
    assert main(["ingest", str(BROKEN), "--out", str(tmp_path / "c"), "--engine", "beam"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install -e '.[cluster]'" in err
    assert not (tmp_path / "c" / "shards").exists()


def test_beam_options_need_engine_beam(tmp_path):
    with pytest.raises(UsageError, match="^--beam-option: only with --engine beam, got 'runner=X' with --engine local"):
        ingest(BROKEN, tmp_path / "c", beam_options=("runner=X",), progress=False)
    with pytest.raises(UsageError, match="^--engine: expected one of local, beam, got 'spark'"):
        ingest(BROKEN, tmp_path / "c", engine="spark", progress=False)


# ------------------------------------------------------------------------------------------- the same store
def store_files(cache: Path) -> dict[str, bytes]:
    """Every file of the store (shards/), by name: bytes."""
    return {p.name: p.read_bytes() for p in sorted((cache / "shards").iterdir())}


def without_stamps(cache: Path, name: str) -> dict:
    """manifest.json / clusters.json without the store's size and mtime (``cache.store_stamp``), which differ."""
    data = json.loads((cache / name).read_text())
    data.pop("shards")
    return data


def assert_same_output(a: Path, b: Path) -> None:
    assert store_files(a) == store_files(b)
    assert without_stamps(a, "manifest.json") == without_stamps(b, "manifest.json")
    assert without_stamps(a, "clusters.json") == without_stamps(b, "clusters.json")
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()


@needs_beam
def test_beam_store_is_byte_identical_to_local_on_the_test_data(tmp_path):
    local = ingest(DATA, tmp_path / "local", progress=False)
    beam = ingest(DATA, tmp_path / "beam", engine="beam", workers=2, progress=False)
    assert (beam.kept, beam.skipped, beam.events, beam.tokenized) == (local.kept, local.skipped, local.events,
                                                                       local.tokenized)
    assert beam.kept >= 20 and beam.skipped >= 10  # MIDI, ABC books, kern, an opus, and the broken files
    assert_same_output(tmp_path / "local", tmp_path / "beam")
    assert not (tmp_path / "beam" / ".beam").exists()  # the work lists are gone


def generated_corpus(folder: Path, copies: int) -> Path:
    """``copies`` transposed (``c % 7 - 3`` semitones) and re-velocitied (``c // 7 - 5``) copies of each kept test
    MIDI file, in folders of one copy each, plus two unreadable files."""
    import symusic

    for name in KEPT:
        score = symusic.Score(str(BROKEN / name))
        for c in range(copies):
            target = folder / f"c{c:03d}" / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            score.shift_pitch(c % 7 - 3).shift_velocity(c // 7 - 5).dump_midi(str(target))
    for name in ("truncated.mid", "random_bytes.mid"):
        shutil.copy(BROKEN / name, folder / name)
    return folder


@needs_beam
def test_beam_store_is_byte_identical_on_hundreds_of_files_over_many_shards_and_after_a_change(tmp_path):
    music = generated_corpus(tmp_path / "music", 30)  # 270 MIDI files + 2 unreadable
    kw = {"shard_bytes": 40_000, "progress": False}
    local = ingest(music, tmp_path / "local", **kw)
    beam = ingest(music, tmp_path / "beam", engine="beam", workers=2, **kw)
    assert (beam.files, beam.kept, beam.skipped) == (local.files, local.kept, local.skipped) == (272, 270, 2)
    shards = json.loads((tmp_path / "beam" / "shards" / "index.json").read_text())["shards"]
    assert len(shards) >= 10
    assert_same_output(tmp_path / "local", tmp_path / "beam")

    # warm: nothing parsed, no pipeline, no file rewritten
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "beam" / "shards").iterdir()}
    again = ingest(music, tmp_path / "beam", engine="beam", **kw)
    assert (again.tokenized, again.reused) == (0, 270 + 2)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "beam" / "shards").iterdir()} == before

    # one file gone, one new: the shards after the change are written from the last store and the new pack
    shutil.rmtree(music / "c001")
    (music / "c001").mkdir()
    shutil.copy(BROKEN / "tempo_1bpm.mid", music / "c001" / "new.mid")
    changed = ingest(music, tmp_path / "beam", engine="beam", workers=2, **kw)
    assert changed.tokenized == 1
    fresh = ingest(music, tmp_path / "fresh", **kw)
    assert_same_output(tmp_path / "fresh", tmp_path / "beam")
    assert changed.kept == fresh.kept == 262


@needs_beam
def test_a_shard_lost_after_a_kill_is_rewritten_by_the_pipeline(tmp_path):
    music = generated_corpus(tmp_path / "music", 4)
    kw = {"shard_bytes": 40_000, "progress": False}
    ingest(music, tmp_path / "beam", engine="beam", **kw)
    ingest(music, tmp_path / "local", **kw)
    folder = tmp_path / "beam" / "shards"
    victim = sorted(folder.glob("*.tokens.npy"))[1]
    victim.unlink()
    (folder / "index.json").unlink()  # as if killed before the index was written
    redo = ingest(music, tmp_path / "beam", engine="beam", **kw)
    assert redo.tokenized == 0 and victim.is_file()
    assert_same_output(tmp_path / "local", tmp_path / "beam")

    # the packs deleted and a file added: the pipeline reads the other pieces from the last store
    shutil.rmtree(tmp_path / "beam" / "entries")
    shutil.copy(BROKEN / "tempo_1bpm.mid", music / "c000" / "aaa.mid")
    assert ingest(music, tmp_path / "beam", engine="beam", **kw).tokenized == 1
    ingest(music, tmp_path / "local", **kw)
    assert_same_output(tmp_path / "local", tmp_path / "beam")


@needs_beam
def test_a_parser_crash_in_a_beam_worker_skips_only_its_file(tmp_path, monkeypatch):
    segfault_reading(monkeypatch, "crash.mid")
    music = tmp_path / "music"
    music.mkdir()
    for name in ("drums_only.mid", "hour_gap.mid", "tempo_1200bpm.mid"):
        shutil.copy(BROKEN / name, music / name)
    shutil.copy(BROKEN / "type2.mid", music / "crash.mid")
    report = ingest(music, tmp_path / "cache", engine="beam", progress=False)
    rows = {r["path"]: r for r in json.loads((tmp_path / "cache" / "manifest.json").read_text())["files"]}
    assert (report.kept, report.skipped) == (3, 1)
    assert rows["crash.mid"]["reason"] == CRASH_REASON
