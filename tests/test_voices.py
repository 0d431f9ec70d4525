"""--voices at ingest: parsing, voice statistics from tokens, the polyphony cap, ingest/train with voices; the training
pieces' voice counts and the voice caps drawn from them for sampling (`musicgen sample --voices`)."""

import json

import numpy as np
import pytest

from musicgen.cli import main
from musicgen.config import TokenizerConfig
from musicgen.errors import UsageError
from musicgen.piece import Note
from musicgen.tokenizer import Tokenizer
from musicgen.voices import (METRIC, describe, draw_voice_caps, ingest_voices, parse_voices, piece_voices,
                             polyphony_cap, tokens_with_voices, voice_counts, voice_stats)

VOICED = Tokenizer(TokenizerConfig(voices=3))


def test_parse_voices():
    assert parse_voices("auto") == "auto" and parse_voices("AUTO") == "auto"
    assert parse_voices("4") == 4 and parse_voices("0") == 0 and parse_voices(64) == 64
    for bad in ("x", "-1", "65", "2.5", None):
        with pytest.raises(UsageError, match="--voices: expected an integer in \\[0, 64\\] or 'auto'"):
            parse_voices(bad)


def test_voice_stats_by_hand():
    mono = [Note(60, 0.0, 1.0, 80, voice=0), Note(62, 1.0, 2.0, 80, voice=0), Note(60, 0.0, 2.0, 80, voice=1)]
    chord = [Note(60, 0.0, 1.0, 80, voice=2), Note(64, 0.0, 1.0, 80, voice=2), Note(67, 0.5, 1.5, 80, voice=2),
             Note(48, 0.0, 4.0, 80, voice=0)]
    used, most = voice_stats(VOICED, [VOICED.encode_notes(mono), VOICED.encode_notes(chord),
                                      np.array([VOICED.bos_id, VOICED.eos_id])])
    assert used == 3 and most.tolist() == [1, 3, 0]  # a note ending where the next starts does not overlap it


def test_polyphony_cap_takes_the_cap_most_pieces_keep():
    assert polyphony_cap(np.array([1] * 98 + [3, 3])) == 1
    assert polyphony_cap(np.array([1] * 97 + [2, 2, 4])) == 2
    assert polyphony_cap(np.array([2, 1, 3])) == 3 and polyphony_cap(np.array([], np.int64)) == 1
    assert polyphony_cap(np.array([0, 0])) == 1


def write_parts_corpus(folder, parts=(2, 3)):
    """One MIDI file per entry of ``parts``: that many piano tracks, all singing C4 together, then a scale each."""
    import pretty_midi

    folder.mkdir(parents=True)
    for k, n in enumerate(parts):
        pm = pretty_midi.PrettyMIDI(initial_tempo=120)
        for v in range(n):
            inst = pretty_midi.Instrument(0)
            inst.notes.append(pretty_midi.Note(80, 60, 0.0, 0.5))
            inst.notes += [pretty_midi.Note(80, 62 + v + i, 0.5 * (i + 1), 0.5 * (i + 2)) for i in range(6)]
            pm.instruments.append(inst)
        pm.write(str(folder / f"parts{k}.mid"))
    return folder


def test_ingest_auto_counts_voices_and_records_monophonic_parts(tmp_path):
    src = write_parts_corpus(tmp_path / "music")
    report, config, polyphony = ingest_voices(src, tmp_path / "cache", voices="auto", progress=False)
    assert polyphony.tolist() == [1, 1]
    assert (config.voices, config.voice_polyphony) == (3, 1) and report.kept == 2
    assert report.tokenized == 2 and report.reused == 0  # each file parsed once
    saved = json.loads((tmp_path / "cache" / "tokenizer.json").read_text())
    assert (saved["voices"], saved["voice_polyphony"]) == (3, 1)
    tokens = tokens_with_voices(tmp_path / "cache", None, "auto")
    tok = Tokenizer(tokens.tokenizer_config)
    notes = [(n.pitch, n.start, n.voice) for n in tok.decode_notes(tokens.pieces[1]) if n.start == 0]
    assert notes == [(60, 0.0, 0), (60, 0.0, 1), (60, 0.0, 2)]  # the unison C4 of three parts: three notes
    again, _, _ = ingest_voices(src, tmp_path / "cache", voices="auto", progress=False)
    assert again.tokenized == 0
    # two voices for three parts: parts 1 and 2 share voice 1, which now sings two notes at once
    _, two, poly2 = ingest_voices(src, tmp_path / "cache2", voices=2, progress=False)
    assert (two.voices, two.voice_polyphony) == (2, 2)
    assert describe(two, poly2) == "voices: 2, at most 2 notes at once in one voice in 2 of 2 pieces"
    assert describe(config) == "voices: 3, one note at a time in each voice (monophonic parts)"
    with pytest.raises(UsageError, match="made with voices=3, wanted 2"):
        tokens_with_voices(tmp_path / "cache", None, "2")
    with pytest.raises(UsageError, match="at least 1 voice"):
        ingest_voices(src, tmp_path / "cache3", voices=0, progress=False)


def test_cli_ingest_with_voices(tmp_path, capsys):
    src = write_parts_corpus(tmp_path / "music", parts=(4,))
    assert main(["ingest", str(src), "--out", str(tmp_path / "cache"), "--voices", "auto"]) == 0
    assert "voices: 4, one note at a time in each voice (monophonic parts) in 1 of 1 pieces" in capsys.readouterr().out
    assert main(["ingest", str(src), "--out", str(tmp_path / "cache"), "--voices", "many"]) == 2
    assert "--voices: expected an integer" in capsys.readouterr().err
    assert main(["ingest", str(src), "--out", str(tmp_path / "plain")]) == 0
    assert "voices:" not in capsys.readouterr().out
    assert "voices" not in json.loads((tmp_path / "plain" / "tokenizer.json").read_text())


def test_train_and_sample_with_voices_end_to_end(tmp_path, monkeypatch, capsys):
    import pretty_midi
    from conftest import write_three_part_corpus

    from musicgen.bundle import load_bundle

    src = write_three_part_corpus(tmp_path / "music")
    monkeypatch.chdir(tmp_path)  # the default token cache goes to ./data/tokens/music
    code = main(["train", str(src), "--out", str(tmp_path / "model"), "--voices", "auto", "--preset", "tiny",
                 "--epochs", "1", "--batch-size", "4", "--bptt", "32", "--no-tensorboard", "--verbose", "0"])
    assert code == 0, capsys.readouterr().err
    bundle = load_bundle(tmp_path / "model")
    assert (bundle.tokenizer_config.voices, bundle.tokenizer_config.voice_polyphony) == (3, 1)
    assert bundle.metrics[METRIC] == {"3": bundle.metrics["train_pieces"]}  # every training piece has 3 voices
    assert main(["sample", "--model", str(tmp_path / "model"), "--length", "300", "--seed", "1",
                 "-o", str(tmp_path / "s.mid")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["voices"] == 3  # the cap drawn from those counts
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "s.mid"))
    assert midi.instruments and all("(voice " in inst.name for inst in midi.instruments)
    for inst in midi.instruments:  # monophonic parts: one note at a time in each voice
        notes = sorted(inst.notes, key=lambda n: n.start)
        assert all(a.end <= b.start + 1e-6 for a, b in zip(notes, notes[1:]))


def test_auto_voices_with_meter_and_key_rewrite_the_shared_packs(tmp_path):
    # TIME_SIG and KEY follow VOICE in the table: the packs of the 64-voice probe hold other ids than the final
    # 3-voice config's, so they are rewritten; the cache must equal a direct encoding
    from musicgen.config import TokenizerConfig
    from musicgen.reader import read_piece

    src = write_parts_corpus(tmp_path / "music")
    base = TokenizerConfig(meter=True, key="normalize")
    _, config, _ = ingest_voices(src, tmp_path / "cache", config=base, voices="auto", progress=False)
    assert (config.voices, config.meter, config.key) == (3, True, "normalize")
    tokens = tokens_with_voices(tmp_path / "cache", None, "auto")
    tok = Tokenizer(config)
    for path, got in zip(tokens.paths, tokens.pieces):
        assert got.tolist() == tok.encode(read_piece(src / path)).tolist()
    rows = json.loads((tmp_path / "cache" / "manifest.json").read_text())["files"]
    assert all(r["meter"] == "4/4" and r["tonality"].endswith(("major", "minor")) for r in rows)


def test_voice_counts_count_pieces_by_their_highest_voice():
    on, v = VOICED.token("NOTE_ON", 60), (lambda k: VOICED.token("VOICE", k))
    pieces = [[VOICED.bos_id, v(0), on, v(2), on], [VOICED.bos_id, v(0), on], [VOICED.bos_id, v(1), on, v(0), on],
              [VOICED.bos_id, on], [VOICED.bos_id, v(2), on]]
    assert [piece_voices(p, VOICED) for p in pieces] == [3, 1, 2, 0, 3]
    assert voice_counts(pieces, VOICED) == {"1": 1, "2": 1, "3": 2}  # keys in increasing order, no VOICE: left out
    assert voice_counts(pieces, Tokenizer(TokenizerConfig())) == {}
    assert piece_voices(pieces[0], Tokenizer(TokenizerConfig())) == 0


def test_voice_caps_are_drawn_from_the_counts_reproducibly():
    counts = {"4": 3, "8": 1}
    caps = draw_voice_caps(counts, 7, 4000)
    assert caps.dtype == np.int64 and set(caps.tolist()) == {4, 8}
    assert abs((caps == 4).mean() - 0.75) < 0.03
    assert draw_voice_caps(counts, 7, 3).tolist() == caps[:3].tolist()  # draw i: the seed and i alone
    assert draw_voice_caps(counts, 8, 50).tolist() != caps[:50].tolist()
    assert draw_voice_caps(None, 7, 3) is None and draw_voice_caps({}, 7, 3) is None


def test_sample_voices_flag(tmp_path, capsys):
    from conftest import make_bundle

    voiced = make_bundle(tmp_path / "voiced", TokenizerConfig(min_pitch=48, max_pitch=72, programs=False, voices=3),
                         with_keras=False, note_bias=2.0, metrics={METRIC: {"1": 1, "3": 1}})
    out = tmp_path / "s"
    out.mkdir()
    assert main(["sample", "--model", str(voiced), "-n", "8", "--length", "200", "--seed", "2", "-o", str(out)]) == 0
    caps = [json.loads((out / f"sample-{i:02d}.json").read_text())["voices"] for i in range(1, 9)]
    assert set(caps) == {1, 3} and caps == draw_voice_caps({"1": 1, "3": 1}, 2, 8).tolist()
    one = tmp_path / "one.mid"
    assert main(["sample", "--model", str(voiced), "--voices", "1", "--length", "200", "--seed", "2", "-o",
                 str(one)]) == 0
    import pretty_midi

    assert len(pretty_midi.PrettyMIDI(str(one)).instruments) == 1
    sidecar = json.loads(one.with_suffix(".json").read_text())
    assert sidecar["voices"] == 1 and "--voices 1" in sidecar["regenerate"]
    assert main(["sample", "--model", str(voiced), "--voices", "0", "--length", "50", "--seed", "2", "-o",
                 str(one)]) == 0
    assert "voices" not in json.loads(one.with_suffix(".json").read_text())
    plain = make_bundle(tmp_path / "plain", TokenizerConfig(min_pitch=48, max_pitch=72), with_keras=False)
    capsys.readouterr()
    assert main(["sample", "--model", str(plain), "--voices", "2", "-o", str(one)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--voices: the bundle" in err and "has no VOICE events" in err
    assert main(["sample", "--model", str(voiced), "--voices", "-1", "-o", str(one)]) == 2
