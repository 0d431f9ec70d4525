import json

import numpy as np
import pytest

from musicgen.config import TokenizerConfig, TrainConfig
from musicgen.dataset import split_pieces
from musicgen.errors import ConfigError, UsageError
from musicgen.split import Split, draw_keys, split_corpus
from test_dedup import chorale, encode

BEAT = TokenizerConfig()


def corpus(n_distinct=60, copies=20, seed=0):
    """``n_distinct`` random chorales plus ``copies`` transposed copies of the first ones; keys are fake hashes."""
    notes = [chorale(1000 * seed + s, chords=16) for s in range(n_distinct)]
    pieces = [encode(n) for n in notes] + [encode(notes[i], shift=i % 5 + 1) for i in range(copies)]
    keys = [f"{seed}-{i:04d}" for i in range(len(pieces))]
    return pieces, keys


def parts_of(split: Split) -> np.ndarray:
    part = np.full(split.clusters.size, -1)
    for k, name in enumerate(("train", "valid", "test")):
        assert np.all(part[split.part(name)] == -1)  # disjoint
        part[split.part(name)] = k
    assert (part >= 0).all()  # complete
    return part


def test_clusters_never_straddle_and_fractions_are_roughly_kept():
    pieces, keys = corpus()
    split = split_corpus(pieces, keys, TrainConfig(val_fraction=0.2, test_fraction=0.2), BEAT)
    part = parts_of(split)
    assert not split.legacy and np.unique(split.clusters).size == 60
    for i in range(20):  # each copy sits in its original's cluster and part
        assert split.clusters[60 + i] == split.clusters[i] and part[60 + i] == part[i]
    for c in np.unique(split.clusters):
        assert np.unique(part[split.clusters == c]).size == 1
    assert 4 <= len(split.valid) <= 24 and 4 <= len(split.test) <= 24  # ~16 expected of 80
    for name in ("train", "valid", "test"):
        idx = split.part(name)
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    with pytest.raises(UsageError, match="part: expected one of"):
        split.part("validation")


def test_deterministic_and_independent_of_piece_order():
    pieces, keys = corpus(30, 10, seed=1)
    cfg = TrainConfig(val_fraction=0.3, test_fraction=0.3, seed=5)
    split = split_corpus(pieces, keys, cfg, BEAT)
    again = split_corpus(pieces, keys, cfg, BEAT)
    assert all(np.array_equal(split.part(n), again.part(n)) for n in ("train", "valid", "test"))
    order = np.random.default_rng(0).permutation(len(pieces))
    shuffled = split_corpus([pieces[i] for i in order], [keys[i] for i in order], cfg, BEAT)
    for name in ("train", "valid", "test"):
        assert {keys[order[i]] for i in shuffled.part(name)} == {keys[i] for i in split.part(name)}
    other = split_corpus(pieces, keys, cfg.replace(seed=6), BEAT)
    assert not np.array_equal(other.valid, split.valid)
    # --split-seed: another training seed on the same parts
    replicate = cfg.replace(seed=6, split_seed=5)
    kept = split_corpus(pieces, keys, replicate, BEAT)
    assert all(np.array_equal(split.part(n), kept.part(n)) for n in ("train", "valid", "test"))
    assert replicate.seed_of_split == 5 and cfg.seed_of_split == 5
    assert "split_seed" not in cfg.to_dict() and TrainConfig.from_dict(replicate.to_dict()) == replicate
    with pytest.raises(ConfigError, match="split_seed"):
        TrainConfig(split_seed=-1)


def test_identical_files_share_a_cluster():
    pieces, keys = corpus(10, 0)
    pieces.append(np.array([1, 2], np.int32))  # too short to fingerprint, but the same file as piece 0
    keys.append(keys[0])
    split = split_corpus(pieces, keys, TrainConfig(), BEAT)
    assert split.clusters[10] == split.clusters[0]


@pytest.mark.parametrize("n, val, test, sizes", [
    (2, 0.01, 0.01, (1, 1, 0)),  # valid and train both non-empty
    (2, 0.9, 0.05, (1, 1, 0)),
    (3, 0.01, 0.01, (1, 1, 1)),  # test gets a cluster when train keeps one
    (1, 0.5, 0.3, None),  # one piece: it cannot be on two sides
])
def test_small_corpora(n, val, test, sizes):
    pieces, keys = corpus(n, 0)
    split = split_corpus(pieces, keys, TrainConfig(val_fraction=val, test_fraction=test), BEAT)
    parts_of(split)
    if sizes is not None:
        assert (len(split.train), len(split.valid), len(split.test)) == sizes


def test_zero_fractions_train_on_everything():
    pieces, keys = corpus(8, 0)
    split = split_corpus(pieces, keys, TrainConfig(val_fraction=0.0, test_fraction=0.0), BEAT)
    assert len(split.train) == 8 and len(split.valid) == len(split.test) == 0


def test_legacy_train_config_gives_the_old_two_way_split(tmp_path):
    old = {k: v for k, v in TrainConfig(val_fraction=0.25, seed=3).to_dict().items()
           if k not in ("test_fraction", "dedup_threshold", "dedup_ngram", "split_version")}
    (tmp_path / "train_config.json").write_text(json.dumps(old))
    cfg = TrainConfig.load(tmp_path / "train_config.json")
    assert cfg.split_version == 1 and cfg.test_fraction == 0.0
    assert TrainConfig.from_json(cfg.to_json()) == cfg  # stays legacy once saved again
    pieces, keys = corpus(20, 5)
    split = split_corpus(pieces, keys, cfg, BEAT)
    train, valid = split_pieces(keys, 0.25, 3)
    assert split.legacy and np.array_equal(split.train, train) and np.array_equal(split.valid, valid)
    assert np.array_equal(split.test, valid)
    assert TrainConfig().split_version == 3 and not split_corpus(pieces, keys, TrainConfig(), BEAT).legacy


def test_version_2_keeps_legacy_held_out_singletons_in_valid():
    pieces, keys = corpus(40, 0)
    legacy_valid = split_pieces(keys, 0.1, 0)[1]
    split = split_corpus(pieces, keys, TrainConfig(split_version=2), BEAT)
    assert set(legacy_valid.tolist()) <= set(split.valid.tolist())


def test_version_3_draws_from_the_notes_not_the_files():
    """Other file bytes (content keys), another tempo grid and velocities, voices and key tokens: the same parts;
    version 2 draws from the file keys, so new keys move pieces."""
    notes = [chorale(300 + s, chords=16) for s in range(60)]
    pieces = [encode(n) for n in notes]
    cfg = TrainConfig(val_fraction=0.25, test_fraction=0.25)
    keys, rekeyed = [f"a{i:03d}" for i in range(60)], [f"z{59 - i:03d}" for i in range(60)]
    first = parts_of(split_corpus(pieces, keys, cfg, BEAT))
    assert np.array_equal(parts_of(split_corpus(pieces, rekeyed, cfg, BEAT)), first)
    other = BEAT.replace(velocity_bins=4, voices=2, key="normalize")
    louder = [encode(n, other, velocity=np.full(n[0].size, 30)) for n in notes]
    assert np.array_equal(parts_of(split_corpus(louder, rekeyed, cfg, other)), first)
    v2 = cfg.replace(split_version=2)
    assert not np.array_equal(parts_of(split_corpus(pieces, keys, v2, BEAT)),
                              parts_of(split_corpus(pieces, rekeyed, v2, BEAT)))
    assert set(draw_keys(["m1", "", "m3"], ["k1", "k2", "k3"])) == {"m1", "k2", "m3"}  # under two notes: the file


@pytest.mark.parametrize("changes, message", [
    (dict(test_fraction=1.0), "test_fraction: expected a number in [0, 1)"),
    (dict(val_fraction=0.5, test_fraction=0.5), "test_fraction: expected a number below 1 - val_fraction"),
    (dict(dedup_threshold=0.0), "dedup_threshold"),
    (dict(dedup_ngram=1), "dedup_ngram: expected an integer >= 2, got 1"),
    (dict(split_version=4), "split_version: expected 1, 2 or 3"),
])
def test_config_refuses_bad_split_settings(changes, message):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes)
    assert message in str(info.value)


def _write_chorales(folder, velocity, tempo):
    import pretty_midi

    folder.mkdir()
    for s in range(12):
        pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
        inst = pretty_midi.Instrument(0)
        for p, a, b in zip(*chorale(700 + s, chords=12)):
            inst.notes.append(pretty_midi.Note(velocity, int(p), a * 60 / tempo, b * 60 / tempo))
        pm.instruments.append(inst)
        pm.write(str(folder / f"c{s:02d}.mid"))


def test_ingested_store_splits_as_computed_and_a_rewrite_keeps_its_parts(tmp_path):
    """The music keys ingest records beside the clusters give the split computed from the tokens; the same notes
    written again at another tempo and velocity (other bytes) land in the same parts."""
    from musicgen.cache import load_tokens
    from musicgen.corpus import ingest

    cfg = TrainConfig(val_fraction=0.3, test_fraction=0.3)
    found = {}
    for name, velocity, tempo in (("a", 80, 120), ("b", 50, 90)):
        _write_chorales(tmp_path / name, velocity, tempo)
        ingest(tmp_path / name, tmp_path / f"tok_{name}", TokenizerConfig(), progress=False)
        data = load_tokens(tmp_path / f"tok_{name}")
        assert "music" in data.pieces.store.recorded_clusters(cfg.dedup_threshold, cfg.dedup_ngram)
        stored = split_corpus(data.pieces, data.keys, cfg, data.tokenizer_config)
        computed = split_corpus(list(data.pieces), list(data.keys), cfg, data.tokenizer_config)
        assert np.array_equal(parts_of(stored), parts_of(computed))
        found[name] = dict(zip(data.paths, parts_of(stored).tolist()))
    assert found["a"] == found["b"] and len(set(found["a"].values())) == 3
