"""musicgen: learn music from a corpus with Keras RNNs and write new music.

The public API is imported lazily so ``import musicgen`` (and ``musicgen sample``) never loads TensorFlow.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Tokenizer": "musicgen.tokenizer",
    "TokenizerConfig": "musicgen.config",
    "ModelConfig": "musicgen.config",
    "TrainConfig": "musicgen.config",
    "SampleConfig": "musicgen.config_sample",
    "Note": "musicgen.piece",
    "read_notes": "musicgen.reader",
    "ingest": "musicgen.corpus",
    "build_model": "musicgen.models",
    "train_model": "musicgen.trainer",
    "train": "musicgen.train_api",
    "load_bundle": "musicgen.bundle",
    "sample": "musicgen.generate",
    "render_wav": "musicgen.render",
    "plot_piano_roll": "musicgen.piano_roll",
    "show": "musicgen.notebook",
    "evaluate": "musicgen.evaluate",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'musicgen' has no attribute {name!r}")
