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
