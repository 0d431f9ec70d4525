"""musicgen.studio: request checks, primers parsed in a killable worker, jobs into a private folder."""

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from musicgen import studio, studio_request
from musicgen.errors import UsageError
from musicgen.studio import Request, Studio, check_request, find_bundles, parse_primer

DEFAULT = Path(__file__).resolve().parents[1] / "trained" / "default"


def primer_bytes(pitches=(60, 64, 67, 72), qpm=100.0) -> bytes:
    """Quarter notes at ``qpm`` on a piano, as MIDI file bytes."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    inst = pretty_midi.Instrument(program=0)
    beat = 60.0 / qpm
    for i, pitch in enumerate(pitches):
        inst.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=i * beat, end=(i + 1) * beat))
    pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def std(tmp_path_factory):
    s = Studio([DEFAULT, tmp_path_factory.mktemp("empty")])
    yield s
    s.close()


# ---------------------------------------------------------------------------------------------------- checks
def test_check_request_defaults_and_values():
    assert check_request({}, ["a", "b"]) == Request(model="a", length=512)
    req = check_request({"model": "b", "seconds": 10, "temperature": 0.5, "top_p": 0.9, "seed": 7, "program": 40,
                         "audio": False}, ["a", "b"])
    assert (req.model, req.length, req.seconds, req.temperature, req.top_p, req.seed, req.program, req.audio) == \
        ("b", studio.MAX_LENGTH, 10, 0.5, 0.9, 7, 40, False)
    assert check_request({"seconds": 5, "length": 100}, ["a"]).length == 100


@pytest.mark.parametrize("body, words", [
    ({"temperature": 0}, "temperature: expected a number in (0, 10], got 0"),
    ({"temperature": "hot"}, "temperature"), ({"temperature": True}, "temperature"),
    ({"top_p": 1.5}, "top_p"), ({"top_p": 0}, "top_p"),
    ({"length": 0}, "length"), ({"length": 4097}, "length"), ({"length": 2.5}, "length: expected an integer"),
    ({"seconds": -1}, "seconds"), ({"seconds": 601}, "seconds"),
    ({"seed": -1}, "seed"), ({"seed": 2 ** 31}, "seed"), ({"program": 128}, "program"),
    ({"model": "../../etc"}, "model: expected one of ['default']"), ({"model": 3}, "model"),
    ({"keep_primer": "yes"}, "keep_primer"), ({"path": "/etc/passwd"}, "unknown field 'path'"),
    ({"primer": "x.mid"}, "primer: expected"), ({"primer": {"name": "a.txt", "data": ""}}, "ending in one of"),
    ({"primer": {"name": "a.mid", "data": "!!"}}, "not base64"), ({"primer": {"name": "a.mid", "data": ""}}, "0 bytes"),
])
def test_check_request_names_the_field(body, words):
    with pytest.raises(UsageError) as info:
        check_request(body, ["default"])
    assert words in str(info.value) and "\n" not in str(info.value)


def test_check_request_refuses_a_primer_over_the_cap(monkeypatch):
    monkeypatch.setattr(studio_request, "MAX_PRIMER_BYTES", 10)  # the checks read it there (studio re-exports it)
    data = base64.b64encode(bytes(11)).decode()
    with pytest.raises(UsageError, match="11 bytes, expected 1..10"):
        check_request({"primer": {"name": "a.mid", "data": data}}, ["m"])
    req = check_request({"primer": {"name": "C:\\x\\song.MID", "data": base64.b64encode(b"MThd").decode()}}, ["m"])
    assert req.primer == (".mid", b"MThd") and req.primer_name == "C:\\x\\song.MID"


# --------------------------------------------------------------------------------------------------- primers
def test_parse_primer_gives_the_events_of_the_file(std):
    tok = std.bundles["default"].tokenizer
    tokens, qpm = parse_primer(".mid", primer_bytes(), tok)
    from musicgen.meter import time_signature_value

    # the shipped model's framing: its KEY (C major: nothing to move) and meter, then voice 0's program and velocity
    events = [("BOS", 0), ("KEY", 0), ("TIME_SIG", time_signature_value(4, 4)), ("VOICE", 0), ("PROGRAM", 0),
              ("VELOCITY", 23)]  # velocity 90 of 127 in 32 bins
    for pitch in (60, 64, 67, 72):  # a quarter note is 12 grid steps
        events += [("NOTE_ON", pitch), ("TIME_SHIFT", 12), ("NOTE_OFF", pitch)]
    assert [tok.describe(int(t)) for t in tokens] == events + [("EOS", 0)]
    assert tokens.dtype == np.int64 and qpm == pytest.approx(100.0)


MUSICXML = b"""<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>P</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions></attributes>
<note><pitch><step>E</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type></note>
<note><pitch><step>G</step><octave>4</octave></pitch><duration>2</duration><type>half</type></note>
</measure></part></score-partwise>
"""


@pytest.mark.parametrize("suffix, data, pitches", [
    (".musicxml", MUSICXML, [64, 67]),  # E4 quarter, G4 half
    (".abc", (Path(__file__).parent / "data" / "tune.abc").read_bytes(), [60, 62, 64, 67, 65]),  # C D [E G] F
])
def test_parse_primer_reads_scores(std, suffix, data, pitches):
    tok = std.bundles["default"].tokenizer
    tokens, _ = parse_primer(suffix, data, tok)
    assert [v for name, v in map(tok.describe, map(int, tokens)) if name == "NOTE_ON"] == pitches


def test_parse_primer_refuses_garbage_slow_and_long(std, monkeypatch):
    tok = std.bundles["default"].tokenizer
    with pytest.raises(UsageError, match="primer: cannot use it: unreadable MIDI"):
        parse_primer(".mid", b"MThd not really a midi file", tok)
    with pytest.raises(UsageError, match="primer: parsing took longer than 0.001 s"):
        parse_primer(".mid", primer_bytes(), tok, timeout=0.001)  # the worker is killed, not waited for
    monkeypatch.setattr(studio, "MAX_PRIMER_EVENTS", 5)
    with pytest.raises(UsageError, match="primer: cannot use it: 19 events, at most 5"):
        parse_primer(".mid", primer_bytes(), tok)


# ------------------------------------------------------------------------------------------------------ jobs
def test_studio_lists_bundles_and_refuses_a_tampered_one(tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(DEFAULT, bad)
    (bad / "metrics.json").write_text("{}")  # not what bundle.json's sha256 says
    assert find_bundles(tmp_path) == [bad] and find_bundles(tmp_path / "none") == []
    s = Studio([bad])
    try:
        assert s.bundles == {} and "metrics.json does not match its checksum" in s.errors["bad"]
        assert s.models() == [{"name": "bad", "error": s.errors["bad"]}]
    finally:
        s.close()
    assert not s.root.exists()


def test_run_writes_the_files_into_its_own_folder(std):
    job = std.run(std.check_request({"length": 48, "seed": 5, "program": 40, "audio": True, "roll": True}))
    assert job.folder.parent == std.root and sorted(p.name for p in job.folder.iterdir()) == \
        ["sample.json", "sample.mid", "sample.png", "sample.wav"]
    midi = pretty_midi.PrettyMIDI(str(job.folder / "sample.mid"))
    assert {inst.program for inst in midi.instruments} == {40} and midi.instruments[0].notes
    sidecar = json.loads((job.folder / "sample.json").read_text())
    assert sidecar["seed"] == 5 and sidecar["settings"]["length"] == 48 and sidecar["primer_upload"] is None
    assert sidecar["play_as_program"] == 40 and sidecar["settings"]["program"] is None
    assert (job.folder / "sample.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (job.folder / "sample.wav").read_bytes()[:4] == b"RIFF"
    assert job.summary["seed"] == 5 and job.summary["files"]["sample.mid"] == f"/api/result/{job.id}/sample.mid"
    assert std.result_file(job.id, "sample.mid") == job.folder / "sample.mid"
    for bad_id, name in ((job.id, "../sample.mid"), (job.id, "bundle.json"), ("0" * 32, "sample.mid"),
                         ("../" + job.id[3:], "sample.mid"), (job.id.upper(), "sample.mid")):
        assert std.result_file(bad_id, name) is None
    again = std.run(std.check_request({"length": 48, "seed": 5, "program": 40, "audio": False, "roll": False}))
    assert (again.folder / "sample.mid").read_bytes() == (job.folder / "sample.mid").read_bytes()
    assert set(again.summary["files"]) == {"sample.mid", "sample.json"}


def test_run_with_an_uploaded_primer(std):
    data = primer_bytes((62, 65, 69))
    body = {"length": 16, "seed": 2, "audio": False, "roll": False,
            "primer": {"name": "my tune.mid", "data": base64.b64encode(data).decode()}}
    job = std.run(std.check_request(body))
    notes = sorted(pretty_midi.PrettyMIDI(str(job.folder / "sample.mid")).instruments[0].notes, key=lambda n: n.start)
    assert [n.pitch for n in notes[:3]] == [62, 65, 69]  # the primer opens the result
    sidecar = json.loads((job.folder / "sample.json").read_text())
    assert sidecar["primer_upload"]["name"] == "my tune.mid" and sidecar["settings"]["tempo"] == pytest.approx(100.0)
    import hashlib

    assert sidecar["primer_upload"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_old_results_are_deleted(std, monkeypatch):
    monkeypatch.setattr(studio, "MAX_RESULTS", 2)
    jobs = [std.run(std.check_request({"length": 4, "seed": i, "audio": False, "roll": False})) for i in range(3)]
    assert not jobs[0].folder.exists() and std.result_file(jobs[0].id, "sample.mid") is None
    assert all(std.result_file(j.id, "sample.mid") for j in jobs[1:])


def test_generation_imports_no_tensorflow(tmp_path):
    code = ("import sys, base64\n"
            "from musicgen.studio import Studio\n"
            f"s = Studio([{str(DEFAULT)!r}])\n"
            "job = s.run(s.check_request({'length': 16, 'seed': 1, 'audio': False, 'roll': True}))\n"
            "heavy = {'tensorflow', 'keras', 'jax', 'torch'} & set(sys.modules)\n"
            "assert not heavy, heavy\n"
            "s.close()\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


def test_controls_reach_the_sample_config_and_bad_ones_name_the_field(std):
    req = std.check_request({"length": 200, "seed": 3, "key": "D minor", "instruments": "40", "density": "1..3",
                             "audio": False, "roll": False})
    assert (req.key, req.instruments, req.density) == ("D minor", (40,), (1.0, 3.0))
    cfg = req.sample_config(tempo=90.0)
    assert (cfg.key, cfg.instruments, cfg.density, cfg.tempo, cfg.num_samples) == ("D minor", (40,), (1.0, 3.0),
                                                                                  90.0, 1)
    job = std.run(req)
    settings = json.loads((job.folder / "sample.json").read_text())["settings"]
    assert (settings["key"], settings["instruments"], settings["density"]) == ("D minor", [40], [1.0, 3.0])
    midi = pretty_midi.PrettyMIDI(str(job.folder / "sample.mid"))
    assert {inst.program for inst in midi.instruments if inst.notes} == {40}
    assert check_request({"key": "", "instruments": None}, ["default"]).key is None
    for field, value, message in (("key", "H minor", "key: expected"),
                                  ("instruments", "0,999", "instruments: expected"),
                                  ("density", "3", "density: expected LOW..HIGH"),
                                  ("key", 5, "key: expected a string")):
        with pytest.raises(UsageError) as exc:
            check_request({field: value}, ["default"])
        assert str(exc.value).startswith(message), str(exc.value)


def test_voices_and_style_reach_the_sample_config(std):
    """``voices`` caps the voices a sample uses (the shipped model keeps voices; the sidecar records the cap), 0 lifts
    the cap; ``style`` is passed on: the shipped model (styles bach and palestrina) takes a known one and refuses
    another in one line naming the field; without one it writes its default style, bach."""
    from musicgen.config_base import MAX_VOICES

    req = std.check_request({"length": 300, "seed": 4, "voices": 2, "audio": False, "roll": False})
    assert req.voices == 2 and req.sample_config().voices == 2
    job = std.run(req)
    sidecar = json.loads((job.folder / "sample.json").read_text())
    assert sidecar["settings"]["voices"] == 2 and "--voices 2" in sidecar["regenerate"]
    midi = pretty_midi.PrettyMIDI(str(job.folder / "sample.mid"))
    assert 1 <= sum(1 for inst in midi.instruments if inst.notes) <= 2
    assert check_request({"voices": 0}, ["default"]).voices == 0
    assert check_request({"voices": None, "style": ""}, ["default"]) == Request(model="default", length=512)
    for value in (-1, MAX_VOICES + 1, "4", 2.5, True):
        with pytest.raises(UsageError, match=rf"voices: expected an integer in \[0, {MAX_VOICES}\] or null"):
            check_request({"voices": value}, ["default"])
    with pytest.raises(UsageError, match="style: expected a string or null"):
        check_request({"style": 3}, ["default"])
    assert sidecar["style"] == "bach" and sidecar["settings"]["style"] is None  # the recorded default style
    styled = std.check_request({"length": 50, "seed": 1, "style": "palestrina", "audio": False, "roll": False})
    assert styled.style == "palestrina"
    assert json.loads((std.run(styled).folder / "sample.json").read_text())["style"] == "palestrina"
    unknown = std.check_request({"length": 50, "seed": 1, "style": "jazz", "audio": False, "roll": False})
    with pytest.raises(UsageError, match="^style: unknown style 'jazz'; the bundle .* knows bach, palestrina$"):
        std.run(unknown)
