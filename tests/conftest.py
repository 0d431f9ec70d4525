"""Shared fixtures. Tests run on tiny hand-made music and tiny models so the suite stays fast on 2 cores."""

import hashlib
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MUSICGEN_TF_LANES", "1")  # one process, many runs: tests that want lanes ask for them

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
# the folders a command writes to by default, relative to where it runs: a test that runs one from the repository
# without --out would leave a token cache or a bundle among the user's own
USER_FOLDERS = (ROOT / "data" / "tokens", ROOT / "trained")


def _entries() -> set[Path]:
    return {entry for folder in USER_FOLDERS if folder.is_dir() for entry in folder.iterdir()}


@pytest.fixture(autouse=True)
def _leaves_the_repository_alone():
    """Fail a test that adds a token cache under data/tokens/ or a bundle under trained/ of this checkout."""
    before = _entries()
    yield
    added = sorted(str(p.relative_to(ROOT)) for p in _entries() - before)
    assert not added, f"the test wrote into the repository: {added} (give it --out/out_dir or run it in tmp_path)"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test in ``tmp_path``: token caches made without ``out_dir`` go to ``./data/tokens/<corpus>``.
    A module whose tests all run commands that way says ``pytestmark = pytest.mark.usefixtures("in_tmp")``."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def data_dir() -> Path:
    return DATA


def write_three_part_corpus(folder: Path, n: int = 8) -> Path:
    """``n`` MIDI files of 3 monophonic parts (program 0), each piece its own intervals and rhythm (no
    near-duplicates)."""
    import pretty_midi

    folder.mkdir(parents=True)
    for k in range(n):
        pm = pretty_midi.PrettyMIDI(initial_tempo=120)
        for v in range(3):
            inst = pretty_midi.Instrument(0)
            t, dur = 0.0, 0.25 * (1 + (k + v) % 3)
            for i in range(24):
                inst.notes.append(pretty_midi.Note(80, 48 + 7 * v + (i * (k + 1)) % 12, t, t + dur))
                t += dur
            pm.instruments.append(inst)
        pm.write(str(folder / f"p{k}.mid"))
    return folder


def write_scale_corpus(folder: Path, n: int = 6) -> Path:
    """``n`` MIDI files of 40 sixteenth-ish notes climbing a major scale from C4 + k (a learnable toy corpus).

    Piece k holds scale degree ``k % 8`` twice as long, so that the pieces are not transposed copies of each other
    (``musicgen.dedup`` would put those in one near-duplicate cluster, leaving no validation piece)."""
    import pretty_midi

    folder.mkdir(parents=True)
    for k in range(n):
        pm = pretty_midi.PrettyMIDI(initial_tempo=120)
        inst = pretty_midi.Instrument(0)
        t = 0.0
        for i in range(40):
            length = 0.5 if i % 8 == k % 8 else 0.25
            inst.notes.append(pretty_midi.Note(80, 60 + k + [0, 2, 4, 5, 7, 9, 11, 12][i % 8], t, t + length))
            t += length
        pm.instruments.append(inst)
        pm.write(str(folder / f"scale{k}.mid"))
    return folder


def numpy_bundle(cell: str = "gru", seed: int = 0, **tokenizer_options):
    """A ``Bundle`` with seeded random numpy weights (2 layers of 12 units, no Keras, nothing on disk) whose logits
    favour note events and 6/12-step shifts, so samples have music in them. Tokenizer: pitches 48..72, 8 velocity
    bins, no programs (109 ids) unless ``tokenizer_options`` say otherwise."""
    import numpy as np

    from musicgen.bundle import Bundle
    from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
    from musicgen.models import expected_weight_shapes
    from musicgen.tokenizer import Tokenizer

    tc = TokenizerConfig(**{"min_pitch": 48, "max_pitch": 72, "velocity_bins": 8, "programs": False,
                            **tokenizer_options})
    tok = Tokenizer(tc)
    cfg = ModelConfig(vocab_size=tok.vocab_size, cell=cell, embedding_dim=8, units=12, layers=2, dropout=0.0)
    rng = np.random.default_rng(seed)
    weights = {k: (0.5 * rng.standard_normal(shape)).astype(np.float32)
               for k, shape in expected_weight_shapes(cfg).items()}
    bias = np.zeros(tok.vocab_size, np.float32)
    first, size = tok.ranges["NOTE_ON"]
    bias[first:first + 2 * size] = 2.0
    bias[[tok.token("TIME_SHIFT", 6), tok.token("TIME_SHIFT", 12)]] = 3.0
    weights["logits_bias"] = bias
    return Bundle(Path("numpy-bundle"), {}, cfg, TrainConfig(), tc, weights, {})


def rehash(path: Path, info: dict | None = None) -> None:
    """Rewrite ``path/bundle.json`` so its sha256 entries match the files as they are now (what a sender who edits a
    bundle by hand does). ``info``: the bundle.json fields to write (default: the file's own)."""
    from musicgen.bundle import OPTIONAL, REQUIRED

    info = info or json.loads((path / "bundle.json").read_text())
    info["files"] = {n: hashlib.sha256((path / n).read_bytes()).hexdigest() for n in REQUIRED + OPTIONAL
                     if (path / n).exists()}
    (path / "bundle.json").write_text(json.dumps(info))


def make_bundle(path: Path, tokenizer_config, cell: str = "gru", *, embedding_dim: int = 4, units: int = 8,
                layers: int = 1, seed: int = 0, note_bias: float = 0.0, with_keras: bool = True, train_config=None,
                metrics: dict | None = None) -> Path:
    """An untrained bundle at ``path`` (the one way tests make one; tests/test_bundle.py tests ``save_bundle`` itself).

    ``with_keras``: a Keras model built after ``keras.utils.set_random_seed(seed)`` and written by ``save_bundle``;
    else no TensorFlow at all: weights drawn from N(0, 0.5) by ``numpy.random.default_rng(seed)`` in the export layout
    and a placeholder model.keras (sampling and evaluation read weights.npz only). ``note_bias``: added to the logit
    bias of every NOTE_ON and NOTE_OFF id (0 elsewhere), so samples hold notes rather than 129 PROGRAM ids.
    """
    import numpy as np

    from musicgen.bundle import FORMAT_VERSION
    from musicgen.config import ModelConfig, TrainConfig
    from musicgen.models import expected_weight_shapes
    from musicgen.tokenizer import Tokenizer

    tok = Tokenizer(tokenizer_config)
    cfg = ModelConfig(vocab_size=tok.vocab_size, cell=cell, embedding_dim=embedding_dim, units=units, layers=layers,
                      dropout=0.0)
    train_config = train_config or TrainConfig()
    metrics = {"val_nll": 1.0} if metrics is None else metrics
    bias = np.zeros(cfg.vocab_size, np.float32)
    for kind in ("NOTE_ON", "NOTE_OFF"):
        first, size = tok.ranges[kind]
        bias[first:first + size] = note_bias
    if with_keras:
        import keras

        from musicgen.bundle import save_bundle
        from musicgen.models import build_model

        keras.utils.set_random_seed(seed)
        model = build_model(cfg)
        if note_bias:
            model.get_layer("logits").bias.assign(bias)
        return save_bundle(path, model=model, model_config=cfg, train_config=train_config,
                           tokenizer_config=tokenizer_config, metrics=metrics)
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    weights = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in expected_weight_shapes(cfg).items()}
    if note_bias:
        weights["logits_bias"] = bias
    np.savez(path / "weights.npz", **weights)
    (path / "model.keras").write_bytes(b"placeholder: sampling reads weights.npz only")
    tokenizer_config.save(path / "tokenizer.json")
    cfg.save(path / "model_config.json")
    train_config.save(path / "train_config.json")
    (path / "metrics.json").write_text(json.dumps(metrics) + "\n")
    rehash(path, {"format_version": FORMAT_VERSION, "cell": cell, "vocab_size": cfg.vocab_size})
    return path


def segfault_reading(monkeypatch, name: str) -> None:
    """Make ``musicgen.reader.read_piece`` kill its (worker) process with SIGSEGV on a file called ``name``; every
    other file reads as usual."""
    import signal

    import musicgen.reader as reader

    real = reader.read_piece

    def read_or_segfault(path, *args, **kwargs):
        if Path(path).name == name:
            import faulthandler

            faulthandler.disable()  # no traceback dump from the dying worker
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(reader, "read_piece", read_or_segfault)


def run_cli_without_tensorflow(args: list[str], timeout: float = 120):
    """``musicgen.cli.main(args)`` in a fresh Python process that fails (non-zero exit, "heavy import") if TensorFlow
    or Keras got imported; returns the ``subprocess.CompletedProcess`` (exit status = main's return value)."""
    import subprocess
    import sys

    code = ("import sys\nfrom musicgen.cli import main\n"
            f"rc = main({list(map(str, args))!r})\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'heavy import'\nsys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})


def note_gap_chord():
    """A PrettyMIDI at 120 qpm: piano C4 0-1 s (velocity 100), silence, a C major triad 2-3 s (velocity 90)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    piano.notes.append(pretty_midi.Note(100, 60, 0.0, 1.0))
    piano.notes += [pretty_midi.Note(90, p, 2.0, 3.0) for p in (60, 64, 67)]
    pm.instruments.append(piano)
    return pm


def png_pixels(path):
    """(image array (h, w, channels), width, height) of a PNG file."""
    import matplotlib.image as mpimg

    image = mpimg.imread(str(path))
    return image, image.shape[1], image.shape[0]
