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
    """``n`` MIDI files of 40 sixteenth-ish notes climbing a major scale from C4 + k (a learnable toy corpus)."""
    import pretty_midi

    folder.mkdir(parents=True)
    for k in range(n):
        pm = pretty_midi.PrettyMIDI(initial_tempo=120)
        inst = pretty_midi.Instrument(0)
        for i in range(40):
            t = 0.25 * i
            inst.notes.append(pretty_midi.Note(80, 60 + k + [0, 2, 4, 5, 7, 9, 11, 12][i % 8], t, t + 0.25))
        pm.instruments.append(inst)
        pm.write(str(folder / f"scale{k}.mid"))
    return folder
