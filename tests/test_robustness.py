"""Robustness (issue 8): every verb × bad value gives one clear line and exit 2/1; a broken corpus trains; ``kill -9``
loses nothing; decoding and the MIDI reader never crash; untrusted files run no code; nothing writes outside its folder.

Bundles for the CLI table are written with numpy alone (the sampler never opens model.keras), so most of this file
needs no TensorFlow. Other modules' tests cover the rest of the issue: tests/test_corpus.py (broken corpus manifest,
crashing worker, damaged cache), tests/test_train.py (kill -9 then --resume), tests/test_bundle.py (missing or
tampered part, Lambda layer), tests/test_midi_io.py / test_tokenizer.py (hypothesis fuzzing).
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from conftest import make_bundle, rehash
from musicgen import bundle as bundle_mod
from musicgen import safeio
from musicgen.bundle import Bundle, load_bundle, save_bundle
from musicgen.cli import main
from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
from musicgen.corpus import ingest, load_tokens
from musicgen.errors import BundleError, IngestError, MusicgenError
from musicgen.midi_io import MAX_MIDI_BYTES
from musicgen.models import build_model
from musicgen.reader import read_piece
from musicgen.tokenizer import Tokenizer

BROKEN = Path(__file__).parent / "data" / "broken"
GOOD = ["drums_only.mid", "hour_gap.mid", "tempo_1200bpm.mid", "type2.mid"]
SMALL = TokenizerConfig(min_pitch=36, max_pitch=84, velocity_bins=0, programs=False)


@pytest.fixture(autouse=True)
def _fork_workers(monkeypatch):
    monkeypatch.setattr(safeio, "_start_method", lambda: "fork")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Paths the CLI table refers to by name: a bundle, music, a token cache, a regular file, a damaged bundle …"""
    root = tmp_path_factory.mktemp("world")
    music = root / "music"
    music.mkdir()
    for name in GOOD:
        shutil.copy(BROKEN / name, music / name)
    safeio_fork = safeio._start_method
    safeio._start_method = lambda: "fork"
    try:
        ingest(music, root / "cache", progress=False, workers=1)
    finally:
        safeio._start_method = safeio_fork
    bundle = make_bundle(root / "bundle", SMALL, with_keras=False)  # no TensorFlow in this file's CLI table
    tampered = root / "tampered"
    shutil.copytree(bundle, tampered)
    (tampered / "metrics.json").write_text('{"val_nll": 0.001}\n')
    missing = root / "missing_part"
    shutil.copytree(bundle, missing)
    (missing / "weights.npz").unlink()
    (root / "afile").write_text("a regular file, where a folder is expected\n")
    (root / "empty").mkdir()
    (root / "out").mkdir()
    return {"ROOT": root, "BUNDLE": bundle, "MUSIC": music, "CACHE": root / "cache", "AFILE": root / "afile",
            "TAMPERED": tampered, "MISSING_PART": missing, "NOPE": root / "nope", "EMPTY": root / "empty",
            "MID": music / "type2.mid", "OUT": root / "out"}


def _expand(argv, world):
    """``"AFILE/x"`` → the fixture path joined with the rest."""
    out = []
    for arg in argv:
        head, _, rest = arg.partition("/")
        out.append(str(world[head] / rest if rest else world[head]) if head in world else arg)
    return out


# verb × bad value → exit code and words the one error line must contain
S = ["sample", "--model", "BUNDLE", "-o", "OUT/s.mid", "--length", "8"]
E = ["evaluate", "BUNDLE", "MUSIC", "--num-samples", "0"]
T = ["train", "CACHE", "--out", "OUT/t", "--preset", "tiny", "--no-tensorboard", "--verbose", "0"]
CASES = [
    (["ingest", "NOPE"], 2, "no such folder"),
    (["ingest", "AFILE"], 2, "got a file"),
    (["ingest", "EMPTY", "--out", "OUT/c0"], 2, "no usable music file"),
    (["ingest", "MUSIC", "--workers", "-1"], 2, "--workers"),
    (["ingest", "MUSIC", "--workers", "two"], 2, "invalid int value: 'two'"),
    (["ingest", "MUSIC", "--out", "AFILE"], 2, "--out: "),
    (["ingest", "MUSIC", "--out", "AFILE/cache"], 2, "which is a file"),
    (["ingest", "MUSIC", "--time-mode", "ticks"], 2, "invalid choice: 'ticks'"),
    (["ingest"], 2, "corpus_dir"),
    (["corpus"], 2, "required"),
    (["corpus", "export", "nosuch", "OUT/e"], 2, "unknown corpus 'nosuch'"),
    (["corpus", "export", "bach", "OUT/e", "--limit", "-1"], 2, "--limit"),
    (["corpus", "export", "bach", "OUT/e", "--limit", "1e3"], 2, "invalid int value"),
    (["corpus", "export", "bach", "OUT/e", "--workers", "-3"], 2, "--workers"),
    (["corpus", "export", "bach", "AFILE/e", "--limit", "1"], 2, "which is a file"),
    (S + ["--length", "0"], 2, "length"),
    (S + ["--length", "-5"], 2, "length"),
    (S + ["--length", str(10**13)], 2, "at most 1000000"),
    (S + ["--length", "many"], 2, "invalid int value"),
    (S + ["-n", "0"], 2, "num_samples"),
    (S + ["-n", str(10**8)], 2, "at most 1024"),
    (S + ["--temperature", "0"], 2, "temperature"),
    (S + ["--temperature", "nan"], 2, "temperature"),
    (S + ["--temperature", "inf"], 2, "temperature"),
    (S + ["--top-k", "-1"], 2, "top_k"),
    (S + ["--top-p", "0"], 2, "top_p"),
    (S + ["--top-p", "1.5"], 2, "top_p"),
    (S + ["--seconds", "0"], 2, "seconds"),
    (S + ["--seconds", "1e300"], 2, "seconds"),
    (S + ["--seconds", "nan"], 2, "seconds"),
    (S + ["--tempo", "0"], 2, "tempo"),
    (S + ["--tempo", "1e308"], 2, "tempo"),
    (S + ["--seed", "-1"], 2, "seed"),
    (S + ["--max-polyphony", "-1"], 2, "max_polyphony"),
    (S + ["--pitch-range", "70", "60"], 2, "pitch_range"),
    (S + ["--program", "128"], 2, "program"),
    (S + ["--model", "NOPE"], 2, "--model"),
    (S + ["--model", "AFILE"], 2, "--model"),
    (S + ["--model", "MUSIC"], 2, "bundle.json"),
    (S + ["--model", "TAMPERED"], 2, "metrics.json does not match its checksum"),
    (S + ["--model", "MISSING_PART"], 2, "missing weights.npz"),
    (S + ["-o", "AFILE"], 2, "without a .mid suffix"),
    (S + ["-o", "AFILE/x"], 2, "which is a file"),
    (S + ["-o", "AFILE/x.mid"], 2, "-o/--output"),
    (S + ["-o", "NOPE/x.mid"], 2, "does not exist"),
    (S + ["--primer", "NOPE/p.mid"], 2, "--primer"),
    (S + ["--primer", "MUSIC"], 2, "--primer"),
    (S + ["--primer", "AFILE"], 2, "--primer"),
    (S + ["--png", "AFILE/x.png"], 2, "--png"),
    (S + ["--wav", "AFILE/x.wav"], 2, "--wav"),
    (["evaluate", "NOPE", "MUSIC"], 2, "model not found"),
    (["evaluate", "BUNDLE", "NOPE"], 2, "no such folder"),
    (["evaluate", "BUNDLE", "AFILE"], 2, "got a file"),
    (["evaluate", "BUNDLE", "CACHE"], 2, "was made with"),  # vocabulary of the bundle ≠ the token cache's
    (["evaluate", "TAMPERED", "CACHE"], 2, "checksum"),
    (["evaluate", "MISSING_PART", "CACHE"], 2, "missing weights.npz"),
    (E + ["--num-samples", "-1"], 2, "num_samples"),
    (E + ["--length", "0"], 2, "length"),
    (E + ["--max-order", "0"], 2, "max_order"),
    (E + ["--copy-n", "0"], 2, "copy_n"),
    (["render", "NOPE/x.mid"], 2, "does not exist"),
    (["render", "MUSIC"], 2, "music"),
    (["render", "AFILE"], 2, "afile"),
    (["render", "MID", "--sample-rate", "0", "--wav"], 2, "--sample-rate"),
    (["render", "MID", "--sample-rate", str(10**9), "--wav"], 2, "--sample-rate"),
    (["render", "MID", "--time-unit", "ticks"], 2, "invalid choice"),
    (["render", "MID", "--wav", "AFILE/x.wav"], 1, "afile"),
    (["render", "MID", "--png", "AFILE/x.png"], 1, "afile"),
    (["render", "MID", "--wav", "MUSIC"], 1, "Is a directory"),
    (["train", "NOPE"], 2, "corpus_dir"),
    (["train", "AFILE"], 2, "got a file"),
    (T + ["--epochs", "0"], 2, "epochs"),
    (T + ["--epochs", "-1"], 2, "epochs"),
    (T + ["--units", "0"], 2, "units"),
    (T + ["--layers", "0"], 2, "layers"),
    (T + ["--embedding-dim", "0"], 2, "embedding_dim"),
    (T + ["--batch-size", "0"], 2, "batch_size"),
    (T + ["--bptt", "1"], 2, "bptt"),
    (T + ["--lr", "nan"], 2, "learning_rate"),
    (T + ["--lr", "-1"], 2, "learning_rate"),
    (T + ["--dropout", "1.5"], 2, "dropout"),
    (T + ["--val-fraction", "1"], 2, "val_fraction"),
    (T + ["--transpose", "13"], 2, "transpose"),
    (T + ["--patience", "0"], 2, "patience"),
    (T + ["--clipnorm", "-1"], 2, "clipnorm"),
    (T + ["--seed", "-1"], 2, "seed"),
    (T + ["--seed", str(2**32)], 2, "seed"),
    (T + ["--epochs", "ten"], 2, "invalid int value"),
    (T + ["--cell", "transformer"], 2, "invalid choice"),
    (["sampel"], 2, "invalid choice: 'sampel'"),
    ([], 2, "required"),
]


def _id(case):
    argv, code, _ = case
    return " ".join(argv)[:60]


@pytest.mark.parametrize("argv, code, words", CASES, ids=[_id(c) for c in CASES])
def test_every_verb_and_bad_value_gives_one_line_and_an_exit_code(world, argv, code, words, capsys, monkeypatch):
    monkeypatch.chdir(world["ROOT"])  # a default cache or bundle path would land here, not in the repository
    before = sorted(p.relative_to(world["ROOT"]) for p in world["ROOT"].rglob("*"))
    argv = _expand(argv, world)
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse
        got = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert got == code, err
    assert len(lines) == 1 and "Traceback" not in err, err
    verb = argv[0] if argv and argv[0] in ("ingest", "corpus", "train", "sample", "evaluate", "render") else ""
    assert lines[0].startswith(f"musicgen {verb}" if verb else "musicgen:") and ": error: " in lines[0]
    assert words in lines[0], lines[0]
    if code == 2 and argv[:1] != ["ingest"]:  # a usage error writes nothing (ingest may create its --out folder)
        after = sorted(p.relative_to(world["ROOT"]) for p in world["ROOT"].rglob("*"))
        assert after == before


@pytest.mark.parametrize("argv, exc_type", [
    (S + ["--temperature", "0"], MusicgenError),
    (["evaluate", "TAMPERED", "CACHE"], BundleError),
    (["render", "MID", "--wav", "AFILE/x.wav"], OSError),
])
def test_debug_shows_the_traceback(world, argv, exc_type, monkeypatch):
    monkeypatch.chdir(world["ROOT"])
    with pytest.raises(exc_type):
        main(["--debug"] + _expand(argv, world))


def test_debug_traceback_in_a_real_process(world):
    argv = ["-m", "musicgen", "--debug"] + _expand(S + ["--top-p", "2"], world)
    run = subprocess.run([sys.executable] + argv, capture_output=True, text=True, timeout=120, cwd=world["ROOT"])
    assert run.returncode != 0 and "Traceback (most recent call last)" in run.stderr and "top_p" in run.stderr
    run = subprocess.run([sys.executable] + [a for a in argv if a != "--debug"], capture_output=True, text=True,
                         timeout=120, cwd=world["ROOT"])
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


# ------------------------------------------------------------------------------------------------ broken corpus
def test_train_on_the_broken_corpus_skips_and_reports_bad_files(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "broken"
    shutil.copytree(BROKEN, corpus)
    monkeypatch.chdir(tmp_path)  # the default token cache goes to ./data/tokens/broken
    code = main(["train", str(corpus), "--out", str(tmp_path / "model"), "--preset", "tiny", "--epochs", "1",
                 "--batch-size", "8", "--bptt", "64", "--no-tensorboard", "--verbose", "0"])
    assert code == 0, capsys.readouterr().err
    files = {f["path"]: f for f in json.loads((tmp_path / "data/tokens/broken/manifest.json").read_text())["files"]}
    assert sorted(files) == sorted(p.relative_to(BROKEN).as_posix() for p in BROKEN.rglob("*") if p.is_file())
    assert sum(f["status"] == "kept" for f in files.values()) == 9
    assert all(f["reason"] for f in files.values() if f["status"] == "skipped")
    assert files["random_bytes.mid"]["reason"].startswith("unreadable MIDI")
    bundle = load_bundle(tmp_path / "model")
    assert bundle.metrics["epochs_run"] == 1 and np.isfinite(bundle.metrics["val_nll"])


def _midi_bytes(n_notes: int, tpq: int = 96) -> bytes:
    """A format-0 MIDI file of ``n_notes`` one-tick notes with running status (about 8 bytes a note)."""
    body = bytearray(b"\x00\x90")
    for i in range(n_notes):
        pitch = 36 + i % 48
        body += bytes([pitch, 64, 1, pitch, 0, 0]) if i < n_notes - 1 else bytes([pitch, 64, 1, pitch, 0])
    body += b"\x00\xff\x2f\x00"
    return b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + \
        tpq.to_bytes(2, "big") + b"MTrk" + len(body).to_bytes(4, "big") + bytes(body)


def test_huge_files_are_capped_and_the_manifest_says_so(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "ok.mid").write_bytes(_midi_bytes(100, tpq=1))  # one quarter (12 steps) a note
    (corpus / "many.mid").write_bytes(_midi_bytes(200_001))  # one note past the default max_notes
    with open(corpus / "huge.mid", "wb") as f:  # sparse: 1 GiB on paper, no disk used
        f.truncate(1 << 30)
    report = ingest(corpus, tmp_path / "cache", progress=False, workers=1)
    files = {f["path"]: f for f in json.loads(report.manifest_path.read_text())["files"]}
    assert files["ok.mid"]["status"] == "kept"
    assert files["ok.mid"]["events"] == 4 + 100 * 3  # BOS PROGRAM VELOCITY, 100 × (ON SHIFT(12) OFF), EOS
    assert files["many.mid"] == {**files["many.mid"], "status": "skipped",
                                 "reason": "too many notes: 200001 > max_notes=200000"}
    assert files["huge.mid"]["status"] == "skipped"
    assert files["huge.mid"]["reason"].startswith(f"too large: {1 << 30} bytes > {MAX_MIDI_BYTES}")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for the peak memory")
def test_reading_a_huge_file_keeps_memory_bounded(tmp_path):
    with open(tmp_path / "huge.mid", "wb") as f:
        f.truncate(1 << 30)
    code = textwrap.dedent(f"""
        from musicgen.errors import IngestError
        from musicgen.reader import read_piece
        try:
            read_piece({str(tmp_path / 'huge.mid')!r})
        except IngestError as exc:
            print(exc)
        hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
        print(int(hwm.split()[1]) // 1024)  # peak resident memory of this process, MiB
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    reason, peak_mib = run.stdout.strip().splitlines()
    assert reason.startswith("too large") and int(peak_mib) < 400, run.stdout  # reading it would take > 1024


# ------------------------------------------------------------------------------------------------ interruptions
KILLED_INGEST = """
import sys, time
from musicgen import reader, safeio
from musicgen.corpus import ingest
real = reader.read_piece
def slow(*a, **k):
    time.sleep(0.02)
    return real(*a, **k)
reader.read_piece = slow
safeio._start_method = lambda: "fork"
ingest(sys.argv[1], sys.argv[2], workers=1, progress=False)
"""


def _many_files(folder: Path, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=i % 8)
        inst.notes = [pretty_midi.Note(velocity=1 + i % 127, pitch=40 + (i + k) % 40, start=k * 0.25,
                                       end=k * 0.25 + 0.2) for k in range(4 + i % 5)]  # no two files alike
        pm.instruments.append(inst)
        pm.write(str(folder / f"piece_{i:03d}.mid"))


def test_ingest_killed_with_sigkill_is_resumed_from_what_it_finished(tmp_path):
    corpus, cache, clean = tmp_path / "corpus", tmp_path / "cache", tmp_path / "clean"
    _many_files(corpus, 160)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_INGEST, str(corpus), str(cache)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(cache.glob("entries/*/*.npz")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    packs = list(cache.glob("entries/*/*.npz"))
    assert packs and not (cache / "shards" / "index.json").exists(), "killed too late: nothing left to resume"

    report = ingest(corpus, cache, progress=False, workers=1)  # the lock died with the process
    assert report.kept == 160 and report.reused == 40 * len(packs)  # 4 chunks of 40 files with one worker
    assert report.tokenized == 160 - report.reused
    assert not list(cache.glob(".*.tmp")) and not list(cache.glob("entries/*/.*.tmp"))
    resumed, fresh = load_tokens(cache), load_tokens(ingest(corpus, clean, progress=False, workers=1).out_dir)
    assert resumed.keys == fresh.keys and resumed.paths == fresh.paths
    assert all(np.array_equal(a, b) for a, b in zip(resumed.pieces, fresh.pieces))


def test_a_failure_halfway_through_writing_samples_keeps_the_old_files(world, tmp_path, monkeypatch, capsys):
    out = tmp_path / "take.mid"
    base = ["sample", "--model", str(world["BUNDLE"]), "-o", str(out), "-n", "2", "--length", "16"]
    assert main(base + ["--seed", "1"]) == 0
    good = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(good) == ["take-01.json", "take-01.mid", "take-02.json", "take-02.mid"]

    calls = []
    real_write = pretty_midi.PrettyMIDI.write

    def write_then_fail(self, filename):
        calls.append(filename)
        if len(calls) == 2:  # the second file: half written, then the disk fills up
            Path(filename).write_bytes(b"MThd\x00\x00")
            raise OSError(28, "No space left on device", filename)
        real_write(self, filename)

    monkeypatch.setattr(pretty_midi.PrettyMIDI, "write", write_then_fail)
    assert main(base + ["--seed", "2"]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == good  # old files whole, no temporaries left


KILLED_SAMPLE = """
import os, signal, sys
from pathlib import Path
import pretty_midi
from musicgen.cli import main
real_write = pretty_midi.PrettyMIDI.write
def write_then_die(self, filename):
    Path(filename).write_bytes(b"MThd\\x00\\x00\\x00")  # half a header, then kill -9
    os.kill(os.getpid(), signal.SIGKILL)
pretty_midi.PrettyMIDI.write = write_then_die
main(sys.argv[1:])
"""


def test_sample_killed_while_writing_leaves_the_good_file(world, tmp_path):
    out = tmp_path / "take.mid"
    argv = ["sample", "--model", str(world["BUNDLE"]), "-o", str(out), "--length", "16", "--seed", "1"]
    assert main(argv) == 0
    good = out.read_bytes()
    run = subprocess.run([sys.executable, "-c", KILLED_SAMPLE] + argv[:-1] + ["7"], capture_output=True, timeout=120)
    assert run.returncode == -signal.SIGKILL
    assert out.read_bytes() == good and pretty_midi.PrettyMIDI(str(out)).instruments


def test_bundle_swap_never_leaves_the_folder_missing(tmp_path, monkeypatch):
    """Saving over a bundle: at every rename the folder holds a whole bundle (old or new), so kill -9 anywhere
    leaves a loadable model."""
    cfg = ModelConfig(vocab_size=Tokenizer(SMALL).vocab_size, cell="simple_rnn", embedding_dim=4, units=4, layers=1,
                      dropout=0.0)
    parts = dict(model=build_model(cfg), model_config=cfg, train_config=TrainConfig(), tokenizer_config=SMALL)
    target = save_bundle(tmp_path / "b", metrics={"val_nll": 2.0}, **parts)
    (target / "checkpoints").mkdir()
    seen = []

    def check(fn):
        def wrapped(*args, **kwargs):
            result = fn(*args, **kwargs)
            seen.append(load_bundle(target).metrics["val_nll"])  # loadable after every step
            return result
        return wrapped

    monkeypatch.setattr(bundle_mod.os, "replace", check(os.replace))
    monkeypatch.setattr(bundle_mod, "_exchange", check(bundle_mod._exchange))
    save_bundle(target, metrics={"val_nll": 1.0}, **parts)
    assert seen[-1] == 1.0 and set(seen) <= {1.0, 2.0} and (target / "checkpoints").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_a_bundle_left_by_an_interrupted_swap_is_named_in_the_error(world, tmp_path):
    shutil.copytree(world["BUNDLE"], tmp_path / ".model.old-4242")
    with pytest.raises(BundleError, match=r"a save was interrupted: rename .*\.model\.old-4242 to"):
        load_bundle(tmp_path / "model")


# ------------------------------------------------------------------------------------------------------ fuzzing
FUZZ_TOKENIZERS = [TokenizerConfig(), TokenizerConfig.seconds(), SMALL,
                   TokenizerConfig(max_shift_steps=8, velocity_bins=4, min_pitch=58, max_pitch=65)]
FUZZ_QPM = [1.0, 3.0, 45.5, 120.0, 1200.0, 1e6]


def _fuzz_decode(count: int, seed: int) -> int:
    """Decode ``count`` random id sequences (random tokenizer, length, tempo); each must write a MIDI file that
    pretty_midi reads back with the same notes. Returns the number of notes checked."""
    rng = np.random.default_rng(seed)
    toks = [Tokenizer(c) for c in FUZZ_TOKENIZERS]
    checked = 0
    for _ in range(count):
        tok = toks[rng.integers(len(toks))]
        tokens = rng.integers(0, tok.vocab_size, size=int(rng.integers(0, 400)))
        if rng.random() < 0.5:  # bias towards note events, or most sequences hold no note at all
            first, size = tok.ranges["NOTE_ON"]
            notes = rng.random(tokens.size) < 0.3
            tokens[notes] = first + rng.integers(0, 2 * size, size=int(notes.sum()))
        qpm = FUZZ_QPM[rng.integers(len(FUZZ_QPM))]
        midi = tok.decode(tokens, qpm=qpm)
        buf = io.BytesIO()
        midi.write(buf)
        back = pretty_midi.PrettyMIDI(io.BytesIO(buf.getvalue()))
        want = sorted((n.pitch, i.is_drum) for i in midi.instruments for n in i.notes)
        assert sorted((n.pitch, i.is_drum) for i in back.instruments for n in i.notes) == want, (tokens, qpm)
        checked += len(want)
    return checked


def test_decoding_random_sequences_always_writes_a_readable_midi():
    assert _fuzz_decode(2_000, seed=0) > 10_000


@pytest.mark.slow
def test_decoding_random_sequences_always_writes_a_readable_midi_1e5():
    assert _fuzz_decode(100_000, seed=1) > 500_000


def test_mutated_bytes_of_real_files_never_crash_the_reader(tmp_path):
    """Seeded mutations (byte flips, insertions, deletions) of the readable broken-corpus files: ``IngestError`` or a
    Piece that tokenizes, nothing else (hypothesis does the same on one hand-built file in tests/test_midi_io.py)."""
    rng = np.random.default_rng(0)
    seeds = [(BROKEN / name).read_bytes() for name in ["drums_only.mid", "hour_gap.mid", "one_tick_per_beat.mid",
                                                        "tempo_1bpm.mid", "type2.mid", "upper/UPPER_CASE.MID"]]
    outcomes = {"piece": 0, "refused": 0}
    tokenizers = [Tokenizer(), Tokenizer(TokenizerConfig.seconds())]
    for i in range(1200):
        data = bytearray(seeds[i % len(seeds)])
        for _ in range(int(rng.integers(1, 3))):
            op, pos = rng.integers(3), int(rng.integers(0, max(1, len(data))))
            if op == 0 and data:
                data[pos] = int(rng.integers(256))
            elif op == 1:
                data[pos:pos] = rng.integers(0, 256, size=int(rng.integers(1, 5)), dtype=np.uint8).tobytes()
            elif data:
                del data[pos:pos + int(rng.integers(1, 8))]
        path = tmp_path / f"m{i % 7}.mid"
        path.write_bytes(bytes(data))
        try:
            tokenizer = tokenizers[i % 2]
            tokenizer.encode(read_piece(path, tokenizer.config.time_mode))  # parse, then tokenize
        except IngestError:
            outcomes["refused"] += 1
            continue
        outcomes["piece"] += 1
    assert outcomes["piece"] > 60 and outcomes["refused"] > 600, outcomes  # both paths exercised


# ------------------------------------------------------------------------------------------------ untrusted files
class _Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickled(marker: Path) -> np.ndarray:
    return np.array([_Payload(marker)], dtype=object)


def test_the_payload_would_run_if_pickle_were_allowed(tmp_path):
    np.savez(tmp_path / "p.npz", x=_pickled(tmp_path / "ran"))
    with np.load(tmp_path / "p.npz", allow_pickle=True) as z:
        z["x"]
    assert (tmp_path / "ran").exists()  # so the tests below, where it must not run, can fail


def test_a_pickled_array_in_a_bundle_is_refused_and_runs_nothing(world, tmp_path, capsys):
    bundle = tmp_path / "evil"
    shutil.copytree(world["BUNDLE"], bundle)
    with np.load(bundle / "weights.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(bundle / "weights.npz", **{**arrays, "embedding": _pickled(tmp_path / "ran")})
    rehash(bundle)  # a consistent bundle.json: the sender rehashed it
    assert main(["sample", "--model", str(bundle), "-o", str(tmp_path / "x.mid")]) == 2
    err = capsys.readouterr().err
    assert "weights.npz: refused" in err and "allow_pickle" in err and err.count("\n") == 1
    assert not (tmp_path / "ran").exists() and not (tmp_path / "x.mid").exists()


def test_a_pickled_array_in_a_token_cache_or_pack_runs_nothing(world, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(world["CACHE"], cache)
    index = next((cache / "shards").glob("*.index.npz"))
    with np.load(index) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(index, **{**arrays, "qpm": _pickled(tmp_path / "ran")})
    with pytest.raises(MusicgenError, match="is damaged.*allow_pickle"):
        load_tokens(cache)
    for pack in cache.glob("entries/*/*.npz"):  # packs: a poisoned one is dropped and its files redone
        with np.load(pack) as z:
            arrays = {k: z[k] for k in z.files}
        np.savez(pack, **{**arrays, "reasons": _pickled(tmp_path / "ran")})
    shutil.rmtree(cache / "shards")
    report = ingest(world["MUSIC"], cache, progress=False, workers=1)
    assert report.kept == len(GOOD) and report.tokenized == len(GOOD)
    assert not (tmp_path / "ran").exists()



def test_sample_never_opens_model_keras(world, tmp_path, monkeypatch):
    """Only ``--resume`` deserializes a .keras file; sampling reads weights.npz (the world bundle's model.keras is a
    placeholder that Keras could not load)."""
    monkeypatch.setattr(Bundle, "keras_model", lambda self: pytest.fail("sample opened model.keras"))
    assert main(["sample", "--model", str(world["BUNDLE"]), "-o", str(tmp_path / "s.mid"), "--length", "16"]) == 0
    assert (tmp_path / "s.mid").exists()


def test_evaluate_never_opens_model_keras(world, tmp_path, monkeypatch):
    monkeypatch.setattr(Bundle, "keras_model", lambda self: pytest.fail("evaluate opened model.keras"))
    monkeypatch.chdir(tmp_path)  # evaluate's token cache defaults to ./data/tokens/music
    argv = ["evaluate", str(world["BUNDLE"]), str(world["MUSIC"]), "--num-samples", "0",
            "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0 and (tmp_path / "r.json").exists()

def test_bundle_json_cannot_name_files_outside_the_bundle(world, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(world["BUNDLE"], bundle)
    info = json.loads((bundle / "bundle.json").read_text())
    info["files"]["../../outside.txt"] = "0" * 64
    (bundle / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(BundleError, match=r"unexpected file '\.\./\.\./outside\.txt'"):
        load_bundle(bundle)


def test_symlinks_in_a_corpus_neither_loop_nor_write_outside(tmp_path):
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    (corpus / "sub").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(BROKEN / "type2.mid", corpus / "type2.mid")
    shutil.copy(BROKEN / "hour_gap.mid", outside / "elsewhere.mid")
    (corpus / "sub" / "up").symlink_to("..")  # a loop back to the corpus root
    (corpus / "sub" / "again").symlink_to("../sub")  # a second way into the same folder
    (corpus / "linked.mid").symlink_to(outside / "elsewhere.mid")  # read, never written
    (corpus / "dangling.mid").symlink_to(tmp_path / "gone.mid")
    before = {p: p.stat().st_mtime_ns for p in outside.iterdir()}
    report = ingest(corpus, tmp_path / "cache", progress=False, workers=1)
    files = {f["path"]: f for f in json.loads(report.manifest_path.read_text())["files"]}
    assert sorted(files) == ["dangling.mid", "linked.mid", "type2.mid"]
    assert files["dangling.mid"]["status"] == "skipped" and "unreadable" in files["dangling.mid"]["reason"]
    assert files["linked.mid"]["status"] == files["type2.mid"]["status"] == "kept"
    assert {p: p.stat().st_mtime_ns for p in outside.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "corpus", "outside"]
