"""The one corpus split: train / valid / test by near-duplicate cluster (deterministic, order independent).

``split_corpus`` (``TrainConfig.split_version == 3``, every new run):

1. cluster the pieces with ``musicgen.dedup`` (transposed, re-tempoed, re-velocitied copies and excerpts share a
   cluster; identical files too), using the config's ``dedup_threshold`` and ``dedup_ngram``;
2. give each cluster the number ``u`` in [0, 1) hashed from the seed and its smallest *draw key*: a piece's music
   key (``dedup.Fingerprint.music``: a hash of its notes, the same whatever the file's bytes, tempo, velocities or
   encoding), or its content key when it has fewer than two notes or no tokenizer decodes it. The cluster goes to
   *valid* when ``u < val_fraction``, to *test* when ``u < val_fraction + test_fraction``, else to *train*. A
   cluster never straddles two parts; the fractions are of clusters, so roughly of pieces. A corpus exported again
   (other bytes, same notes) or ingested with other encoding options (voices, meter, key) keeps its split;
3. small corpora: with two or more clusters, valid and train are never empty (the cluster with the smallest ``u``
   goes to valid, the one with the largest to train); when ``test_fraction > 0`` and test drew no cluster, it gets
   the training cluster with the smallest ``u`` if train keeps at least one.

Training sees only *train*, chooses epochs, learning-rate halving and the best epoch on *valid*, and never touches
*test*, which is left for the final report (``musicgen evaluate``).

``split_version == 2`` (bundles trained before version 3): the same, with the content keys (a hash of the file's
bytes) as draw keys, so a piece with no near-duplicate draws the same ``u`` as in the legacy split.

Legacy (``split_version == 1``: a train_config.json written before this split existed): the old two-way split by
content hash, ``dataset.split_pieces``, with ``test = valid = the old held-out set`` and ``legacy=True``; clusters
are then groups of identical files only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musicgen.config import TokenizerConfig, TrainConfig
from musicgen.dataset import split_pieces, unit_hash
from musicgen.errors import UsageError

PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class Split:
    """Sorted int64 indices into the pieces of each part; ``clusters``: int64 near-duplicate cluster id per piece,
    shape (n,); ``legacy``: the bundle was trained before the three-way split (valid and test are its old held-out
    set); ``version``: the ``TrainConfig.split_version`` that made it."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    clusters: np.ndarray
    legacy: bool
    version: int = 2

    def part(self, name: str) -> np.ndarray:
        """The indices of part ``name``: ``"train"``, ``"valid"`` or ``"test"``."""
        if name not in PARTS:
            raise UsageError(f"part: expected one of {list(PARTS)}, got {name!r}")
        return getattr(self, name)

    def pieces(self, name: str, pieces: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The pieces of part ``name`` (see ``part``), in index order."""
        return [pieces[i] for i in self.part(name)]

    def sizes(self) -> dict:
        """Pieces per part and number of clusters, JSON-ready (for metrics.json)."""
        return {"train_pieces": int(self.train.size), "valid_pieces": int(self.valid.size),
                "test_pieces": int(self.test.size), "clusters": int(np.unique(self.clusters).size),
                "legacy": self.legacy}


def split_corpus(pieces: Sequence[np.ndarray], keys: Sequence[str], train_config: TrainConfig,
                 tokenizer_config: TokenizerConfig | None) -> Split:
    """Split the pieces (int token arrays) with content ``keys`` as the module docstring says.

    ``tokenizer_config`` decodes the tokens for the fingerprints; ``None`` fingerprints raw ids (toy vocabularies).
    """
    if len(keys) != len(pieces):
        raise UsageError(f"keys: expected {len(pieces)} content keys, got {len(keys)}")
    cfg = train_config
    if cfg.split_version == 1:
        train, valid = split_pieces(keys, cfg.val_fraction, cfg.seed_of_split)
        clusters = np.unique(np.asarray(keys, dtype=np.str_), return_inverse=True)[1].astype(np.int64) \
            if len(keys) else np.zeros(0, np.int64)
        return Split(train, valid, valid.copy(), clusters, legacy=True, version=1)
    recorded = _recorded_clusters(pieces, cfg)
    if recorded is not None and cfg.split_version == 2:  # the clusters ingest found, the piece drawing each's part
        clusters = recorded["cluster"]
        u = np.array([unit_hash(keys[int(r)], cfg.seed_of_split) for r in recorded["rep"].tolist()], np.float64)
        part = parts_of_clusters(u, cfg.val_fraction, cfg.test_fraction)[clusters]
    else:
        if recorded is not None and "music" in recorded:  # and the music keys it recorded beside them
            clusters, music = recorded["cluster"], [str(m) for m in recorded["music"].tolist()]
        else:
            from musicgen.dedup import find_duplicates

            dups = find_duplicates(pieces, keys, tokenizer_config, cfg.dedup_threshold, cfg.dedup_ngram)
            clusters, music = dups.clusters, [fp.music for fp in dups.fingerprints]
        draw = list(keys) if cfg.split_version == 2 else draw_keys(music, keys)
        part = assign_parts(clusters, draw, cfg.val_fraction, cfg.test_fraction, cfg.seed_of_split)
    return Split(*(np.flatnonzero(part == k).astype(np.int64) for k in range(3)), clusters=clusters, legacy=False,
                 version=cfg.split_version)


def bundle_split(bundle, corpus_dir):
    """``(tokens, split)``: the corpus a bundle was trained on, tokenized with the bundle's tokenizer (cached, see
    ``corpus.tokens_for``; a folder without style folders takes a styled bundle's ``styles.default_style``), and the
    bundle's own split of it (``split_corpus`` with its train config)."""
    from musicgen.corpus import tokens_for
    from musicgen.styles import default_style_name

    data = tokens_for(corpus_dir, bundle.tokenizer_config, style=default_style_name(bundle))
    return data, split_corpus(data.pieces, data.keys, bundle.train_config, bundle.tokenizer_config)


def _recorded_clusters(pieces, cfg: TrainConfig) -> dict | None:
    """What ingest recorded in the token store of ``pieces`` (a whole ``shards.PieceSequence``) for the config's
    dedup settings (``ShardStore.recorded_clusters``: cluster, rep, music keys), else None (compute them)."""
    store = getattr(pieces, "store", None)
    if store is None or not getattr(pieces, "whole", False):
        return None
    return store.recorded_clusters(cfg.dedup_threshold, cfg.dedup_ngram)


def draw_keys(music: Sequence[str], keys: Sequence[str]) -> list[str]:
    """The key each piece draws its cluster's part from (``split_version`` 3): its music key, else (``""``: under
    two notes, or no tokenizer) its content key."""
    return [m or k for m, k in zip(music, keys)]


def assign_parts(clusters: np.ndarray, keys: Sequence[str], val_fraction: float, test_fraction: float,
                 seed: int) -> np.ndarray:
    """int8 part per piece (0 train, 1 valid, 2 test), shape (n,), decided per cluster (see the module docstring)."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.int8)
    ids = np.unique(clusters)
    smallest = {}
    for c, k in zip(clusters.tolist(), keys):
        if c not in smallest or k < smallest[c]:
            smallest[c] = k
    u = np.array([unit_hash(smallest[c], seed) for c in ids.tolist()], np.float64)
    return parts_of_clusters(u, val_fraction, test_fraction)[np.searchsorted(ids, clusters)]


def parts_of_clusters(u: np.ndarray, val_fraction: float, test_fraction: float) -> np.ndarray:
    """int8 part per cluster (0 train, 1 valid, 2 test) from its draw ``u`` in [0, 1), shape (C,), with the
    small-corpus rules of the module docstring."""
    part = np.where(u < val_fraction, 1, np.where(u < val_fraction + test_fraction, 2, 0)).astype(np.int8)
    if u.size >= 2:
        if val_fraction > 0 and not (part == 1).any():
            part[np.argmin(u)] = 1
        if not (part == 0).any():
            part[np.argmax(u)] = 0
        if test_fraction > 0 and not (part == 2).any() and (part == 0).sum() >= 2:
            train = np.flatnonzero(part == 0)
            part[train[np.argmin(u[train])]] = 2
    return part
