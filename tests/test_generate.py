"""musicgen.sample and `musicgen sample`: controls, determinism, primers, sidecars, output names, errors."""

import json
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest

from conftest import make_bundle
from musicgen.cli import main
from musicgen.config import TokenizerConfig
from musicgen.errors import UsageError
from musicgen.generate import generate, output_paths, sample


def _bundle(path, tokenizer_config, cell):
    """Favour notes over the 129 PROGRAM ids so samples have music in them."""
    return make_bundle(path, tokenizer_config, cell, embedding_dim=8, units=16, layers=2, seed=3, note_bias=2.5)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    full = _bundle(root / "full", TokenizerConfig(min_pitch=36, max_pitch=84, velocity_bins=8), "lstm")
    plain = _bundle(root / "plain", TokenizerConfig(min_pitch=48, max_pitch=72, velocity_bins=0, programs=False),
                    "simple_rnn")
    return {"full": full, "plain": plain}


@pytest.fixture(scope="module")
def primer_file(tmp_path_factory):
    """Four quarter notes C4 E4 G4 C5 at 100 qpm, program 40 (violin)."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=100.0)
    inst = pretty_midi.Instrument(program=40)
    for i, pitch in enumerate([60, 64, 67, 72]):
        inst.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=i * 0.6, end=(i + 1) * 0.6))
    pm.instruments.append(inst)
    path = tmp_path_factory.mktemp("primer") / "primer.mid"
    pm.write(str(path))
    return path


def notes_of(midi):
    return sorted((round(n.start, 4), n.pitch, inst.program) for inst in midi.instruments for n in inst.notes)


def run_cli(argv, capsys):
    code = main(["sample"] + [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------- library API
def test_sample_returns_pretty_midi_per_sample_and_is_seed_deterministic(bundles):
    midis = sample(bundles["full"], length=120, seed=4, num_samples=3)
    assert len(midis) == 3 and all(isinstance(m, pretty_midi.PrettyMIDI) for m in midis)
    assert all(sum(len(i.notes) for i in m.instruments) > 5 for m in midis)
    again = sample(bundles["full"], length=120, seed=4, num_samples=3)
    assert [notes_of(m) for m in midis] == [notes_of(m) for m in again]
    assert notes_of(midis[0]) != notes_of(midis[1])
    assert notes_of(sample(bundles["full"], length=120, seed=5)[0]) != notes_of(midis[0])


def test_every_sample_decodes_and_its_tokens_are_well_formed(bundles):
    from musicgen.bundle import load_bundle

    bundle = load_bundle(bundles["full"])
    result = generate(bundle, length=300, seed=1, num_samples=4, max_polyphony=3, pitch_range=(60, 67))
    tok = bundle.tokenizer
    for tokens, midi, sidecar in zip(result.tokens, result.midis, result.sidecars):
        assert tokens[0] == tok.bos_id and tokens[-1] == tok.eos_id
        assert notes_of(tok.decode(tokens)) == notes_of(midi)
        notes = [(n.start, n.end, n.pitch) for i in midi.instruments if not i.is_drum for n in i.notes]
        assert all(60 <= p <= 67 for _, _, p in notes)
        every = [n for i in midi.instruments for n in i.notes]
        for n in every:  # polyphony: at no onset do more than 3 notes sound
            assert sum(m.start <= n.start < m.end for m in every) <= 3
        assert sidecar["events"] >= 300 and sidecar["settings"]["max_polyphony"] == 3


def test_seconds_stops_each_sample_at_that_much_music(bundles):
    result = generate(bundles["full"], seconds=3.0, seed=2, num_samples=2, tempo=90.0)
    for midi in result.midis:
        assert midi.get_end_time() <= 3.0 + 1e-6
        assert midi.get_end_time() > 2.5  # TIME_SHIFTs reach the limit long before 8 events per step run out
    assert result.settings["tempo"] == 90.0


def test_primer_is_continued_kept_or_dropped(bundles, primer_file):
    kept = sample(bundles["full"], length=60, seed=3, primer=primer_file)[0]
    head = notes_of(kept)[:4]
    assert head == [(0.0, 60, 40), (0.6, 64, 40), (1.2, 67, 40), (1.8, 72, 40)]  # tempo 100 taken from the primer
    dropped = sample(bundles["full"], length=60, seed=3, primer=primer_file, keep_primer=False)[0]
    continuation = notes_of(dropped)
    assert len(continuation) > 5 and len(notes_of(kept)) == len(continuation) + 4
    # the continuation equals the kept file's notes after the primer, shifted to start at 0 (same seed, same draws)
    offset = 2.4
    after = [(round(s - offset, 4), p, prog) for s, p, prog in notes_of(kept) if s >= offset - 1e-9]
    assert after == continuation


def test_program_where_the_model_does_not_choose_and_as_a_start_for_one_that_does(bundles):
    plain = sample(bundles["plain"], length=80, seed=1, program=73)[0]
    assert {i.program for i in plain.instruments} == {73}
    full = generate(bundles["full"], length=5, seed=1, program=19)
    tok_prog = full.tokens[0][1]
    from musicgen.bundle import load_bundle

    assert load_bundle(bundles["full"]).tokenizer.describe(int(tok_prog)) == ("PROGRAM", 19)


# ------------------------------------------------------------------------------------------------------ CLI
def test_cli_writes_numbered_files_with_sidecars_that_regenerate_the_same_bytes(bundles, tmp_path, capsys):
    out = tmp_path / "set" / "piece.mid"
    out.parent.mkdir()
    code, stdout, _ = run_cli(["--model", bundles["full"], "--length", 64, "--seed", 9, "-n", 3, "--top-k", 20,
                               "--top-p", 0.9, "--temperature", 0.8, "-o", out], capsys)
    assert code == 0
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["piece-01.json", "piece-01.mid", "piece-02.json", "piece-02.mid", "piece-03.json",
                     "piece-03.mid"]
    assert stdout.count(".mid") == 3
    side = json.loads((out.parent / "piece-02.json").read_text())
    assert side["seed"] == 9 and side["sample_index"] == 1 and side["midi"] == "piece-02.mid"
    assert side["settings"]["top_k"] == 20 and side["settings"]["top_p"] == 0.9
    assert side["settings"]["temperature"] == 0.8 and side["model"].endswith("full")
    again = tmp_path / "again"
    argv = shlex.split(side["regenerate"])[2:] + ["-o", str(again)]
    assert run_cli(argv, capsys)[0] == 0
    for i in (1, 2, 3):
        assert (again / f"sample-0{i}.mid").read_bytes() == (out.parent / f"piece-0{i}.mid").read_bytes()


def test_output_paths():
    assert [p.name for p in output_paths("x.mid", 1)] == ["x.mid"]
    assert [str(p) for p in output_paths("out", 2)] == ["out/sample-01.mid", "out/sample-02.mid"]
    assert [p.name for p in output_paths("a.MIDI", 12)][-1] == "a-12.MIDI"
    with pytest.raises(UsageError, match="does not exist"):
        output_paths("no/such/folder/x.mid", 1)


def test_sample_command_imports_neither_tensorflow_nor_music21(bundles, tmp_path):
    code = ("import sys; from musicgen.cli import main\n"
            f"assert main(['sample', '--model', {str(bundles['plain'])!r}, '--length', '32', '--seed', '1', "
            f"'-o', {str(tmp_path / 'a.mid')!r}]) == 0\n"
            "heavy = {'tensorflow', 'keras', 'music21', 'matplotlib', 'symusic'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert (tmp_path / "a.mid").is_file() and (tmp_path / "a.json").is_file()


@pytest.mark.parametrize("argv, words", [
    (["--temperature", "0"], "temperature"), (["--temperature", "-1"], "temperature"),
    (["--top-p", "0"], "top_p"), (["--top-p", "1.5"], "top_p"), (["--top-k", "-1"], "top_k"),
    (["--length", "0"], "length"), (["--seconds", "0"], "seconds"), (["-n", "0"], "num_samples"),
    (["--pitch-range", "70", "60"], "pitch_range"), (["--program", "200"], "program"), (["--tempo", "0"], "tempo"),
])
def test_invalid_values_exit_2_with_one_line_and_write_nothing(bundles, tmp_path, capsys, argv, words):
    code, out, err = run_cli(["--model", bundles["plain"], "-o", tmp_path / "o"] + argv, capsys)
    assert code == 2 and err.count("\n") == 1 and words in err and "Traceback" not in err
    assert err.startswith("musicgen sample: error: ")
    assert list(tmp_path.iterdir()) == []


def test_missing_mismatched_model_and_bad_primer_exit_2(bundles, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = run_cli(["--model", tmp_path / "nope", "-o", out], capsys)
    assert code == 2 and "--model" in err and "nope" in err
    broken = tmp_path / "broken"
    shutil.copytree(bundles["plain"], broken)
    cfg = json.loads((broken / "tokenizer.json").read_text())
    (broken / "tokenizer.json").write_text(json.dumps(dict(cfg, max_pitch=80)))  # vocabulary no longer matches
    code, _, err = run_cli(["--model", broken, "-o", out], capsys)
    assert code == 2 and "--model" in err and err.count("\n") == 1
    garbage = tmp_path / "garbage.mid"
    garbage.write_bytes(b"not a midi file at all")
    code, _, err = run_cli(["--model", bundles["plain"], "--primer", garbage, "-o", out], capsys)
    assert code == 2 and "--primer" in err and "garbage.mid" in err
    code, _, err = run_cli(["--model", bundles["plain"], "--primer", tmp_path / "missing.mid", "-o", out], capsys)
    assert code == 2 and "--primer" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "garbage.mid"]


@pytest.mark.parametrize("tempo, written", [(90.0, 90.0), (1.0, 3.577), (6e7, 6e7)])
def test_the_sidecar_records_the_tempo_the_file_holds(bundles, tempo, written, tmp_path, capsys):
    """MIDI holds 1..0xFFFFFF microseconds per quarter: --tempo 1 is written as 3.577 quarter notes per minute."""
    out = tmp_path / "t.mid"
    assert main(["sample", "--model", str(bundles["plain"]), "-o", str(out), "--length", "30", "--tempo",
                 repr(tempo)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["settings"]["tempo"] == tempo and sidecar["tempo_written"] == written
    file_tempo = pretty_midi.PrettyMIDI(str(out)).get_tempo_changes()[1][0]
    assert file_tempo == pytest.approx(written, rel=1e-3)


def test_a_continuation_without_its_primer_starts_in_the_primer_s_voice():
    from musicgen.generate import _context_tokens
    from musicgen.tokenizer import Tokenizer

    tok = Tokenizer(TokenizerConfig(voices=2))
    primer = np.array([tok.bos_id] + [tok.token(n, v) for n, v in (("VOICE", 1), ("PROGRAM", 5), ("VELOCITY", 3),
                                                                    ("NOTE_ON", 60), ("VOICE", 0))])
    assert _context_tokens(primer, tok) == [tok.bos_id, tok.token("VOICE", 0), tok.token("PROGRAM", 5),
                                            tok.token("VELOCITY", 3)]


# ------------------------------------------------------------------------------------------------------ controls
def test_instruments_40_makes_every_note_program_40_and_regenerates(bundles, tmp_path, capsys):
    out = tmp_path / "v.mid"
    code, _, _ = run_cli(["--model", bundles["full"], "--length", 200, "--seed", 3, "-n", 4, "--instruments", "40",
                          "-o", out], capsys)
    assert code == 0
    files = sorted(tmp_path.glob("v-*.mid"))
    programs = [(i.program, i.is_drum) for f in files for i in pretty_midi.PrettyMIDI(str(f)).instruments if i.notes]
    assert programs and set(programs) == {(40, False)}
    side = json.loads(files[0].with_suffix(".json").read_text())
    assert side["settings"]["instruments"] == [40] and side["settings"]["drums"] is None
    assert "--instruments 40" in side["regenerate"]
    again = tmp_path / "again"
    assert run_cli(shlex.split(side["regenerate"])[2:] + ["-o", again], capsys)[0] == 0
    assert (again / "sample-01.mid").read_bytes() == files[0].read_bytes()


def test_instruments_without_program_events_take_one_program(bundles, tmp_path, capsys):
    plain = sample(bundles["plain"], length=80, seed=1, instruments=(73,))[0]
    assert {i.program for i in plain.instruments} == {73}
    code, _, err = run_cli(["--model", bundles["plain"], "--instruments", "0,40", "-o", tmp_path / "o.mid"], capsys)
    assert code == 2 and "--instruments: the bundle" in err and "no PROGRAM events" in err
    code, _, err = run_cli(["--model", bundles["full"], "--instruments", "0,40", "--program", "5", "-o",
                            tmp_path / "o.mid"], capsys)
    assert code == 2 and "--program: 5 is not among --instruments 0,40" in err


def test_no_drums_and_drums_only(bundles):
    free = generate(bundles["full"], length=400, seed=5, num_samples=4)
    drums = generate(bundles["full"], length=400, seed=5, num_samples=4, instruments=(1,), drums=True)
    none = generate(bundles["full"], length=400, seed=5, num_samples=4, drums=False)
    kinds = lambda r: {(i.is_drum, i.program) for m in r.midis for i in m.instruments if i.notes}  # noqa: E731
    assert any(d for d, _ in kinds(free))  # the untrained model plays drums on its own
    assert kinds(drums) <= {(True, 0), (False, 1)} and (True, 0) in kinds(drums)
    assert not any(d for d, _ in kinds(none))
