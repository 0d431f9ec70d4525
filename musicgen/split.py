"""TEMPORARY shim (drop at merge): the agreed ``split_corpus`` API on top of the two-way ``dataset.split_pieces``.

The "dedup" engineer writes the real module (three-way split with near-duplicate clusters). Until it is merged,
every split is the legacy one: ``valid`` and ``test`` are both the old held-out set and each piece is its own
cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicgen.errors import UsageError


@dataclass(frozen=True)
class Split:
    """Sorted int64 indices into the pieces for each part; ``clusters``: one cluster id per piece."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    clusters: np.ndarray
    legacy: bool

    def part(self, name: str) -> np.ndarray:
        """The indices of ``"train"``, ``"valid"`` or ``"test"``."""
        if name not in ("train", "valid", "test"):
            raise UsageError(f"split: expected 'train', 'valid' or 'test', got {name!r}")
        return getattr(self, name)


def split_corpus(pieces, keys, train_config, tokenizer_config) -> Split:
    """The split a bundle was trained with (legacy two-way split: valid = test)."""
    from musicgen.dataset import split_pieces

    train, held = split_pieces(keys, train_config.val_fraction, train_config.seed)
    return Split(train=train.astype(np.int64), valid=held.astype(np.int64), test=held.astype(np.int64),
                 clusters=np.arange(len(keys), dtype=np.int64), legacy=True)
