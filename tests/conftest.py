"""Shared fixtures. Tests run on tiny hand-made music and tiny models so the suite stays fast on 2 cores."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


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
