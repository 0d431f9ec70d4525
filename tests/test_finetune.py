"""musicgen.finetune and ``musicgen train --init-from``: the run starts from the base's weights (a learning rate too
small to move them leaves them as they were), takes its tokenizer and model config, records where it started, and
refuses flags that disagree with the base, each in one line."""

import json

import numpy as np
import pytest

from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
from conftest import make_bundle, write_scale_corpus

pytestmark = pytest.mark.usefixtures("in_tmp")  # the default token cache lands in tmp_path, not the repo

TOK = TokenizerConfig(min_pitch=48, max_pitch=84, velocity_bins=4, programs=False)
FAST = ["--epochs", "1", "--batch-size", "2", "--bptt", "16", "--no-tensorboard", "--verbose", "0"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_scale_corpus(tmp_path_factory.mktemp("ft") / "scales", n=8)


def _train(args):
    from musicgen.cli import main

    return main(["train", *map(str, args)])


def test_a_step_too_small_to_move_the_weights_keeps_the_base_and_records_it(corpus, tmp_path):
    from musicgen.bundle import load_bundle
    from musicgen.finetune import FINETUNE_LR, FINETUNE_PATIENCE
    from musicgen.safeio import sha256_file

    base = make_bundle(tmp_path / "base", TOK, units=8, embedding_dim=4, note_bias=1.0)
    assert _train([corpus, "--init-from", base, "--out", tmp_path / "ft", "--lr", "1e-9", *FAST]) == 0
    ft, b = load_bundle(tmp_path / "ft"), load_bundle(base)
    assert ft.model_config == b.model_config and ft.tokenizer_config == TOK
    for key, value in b.weights.items():
        np.testing.assert_allclose(ft.weights[key], value, atol=1e-6)
    facts = ft.metrics["init_from"]
    assert facts == {"path": str(base), "weights_sha256": sha256_file(base / "weights.npz"),
                     "bundle_sha256": sha256_file(base / "bundle.json"), "base_val_nll": 1.0}
    assert ft.metrics["init_val_nll"] == pytest.approx(ft.metrics["val_nll"], abs=1e-5)  # unchanged weights
    assert (ft.train_config.learning_rate, ft.train_config.patience) == (1e-9, FINETUNE_PATIENCE)

    assert _train([corpus, "--init-from", base, "--out", tmp_path / "ft2", *FAST]) == 0
    cfg = TrainConfig.load(tmp_path / "ft2" / "train_config.json")
    assert (cfg.learning_rate, cfg.patience) == (FINETUNE_LR, FINETUNE_PATIENCE) == (5e-4, 3)
    moved = load_bundle(tmp_path / "ft2").weights["logits_bias"] - b.weights["logits_bias"]
    assert 0 < np.abs(moved).max() < 0.05  # a few Adam steps of 5e-4 each


def test_a_context_base_ingests_the_music_with_its_tokenizer(corpus, tmp_path):
    """A meter/key base: the raw folder is tokenized with meter and key events, the context inputs are kept."""
    import keras

    from musicgen.bundle import load_bundle, save_bundle
    from musicgen.context import context_sizes
    from musicgen.models import build_model
    from musicgen.tokenizer import Tokenizer

    tc = TOK.replace(meter=True, key="token")
    cfg = ModelConfig(vocab_size=Tokenizer(tc).vocab_size, embedding_dim=4, units=8, layers=1, dropout=0.0,
                      context=context_sizes(tc))
    keras.utils.set_random_seed(1)
    save_bundle(tmp_path / "base", model=build_model(cfg), model_config=cfg, train_config=TrainConfig(),
                tokenizer_config=tc, metrics={"val_nll": 2.0})
    assert _train([corpus, "--init-from", tmp_path / "base", "--out", tmp_path / "ft", "--lr", "1e-9", *FAST]) == 0
    ft = load_bundle(tmp_path / "ft")
    assert ft.tokenizer_config == tc and ft.model_config.context == cfg.context == context_sizes(tc)
    np.testing.assert_allclose(ft.weights["context_0"], load_bundle(tmp_path / "base").weights["context_0"],
                               atol=1e-6)


def test_a_styled_base_fine_tunes_a_folder_without_style_folders_in_its_default_style(corpus, tmp_path):
    """The shipped model has styles (bach, palestrina); a user's flat folder of MIDI is read in the base's default
    style, which the fine-tuned bundle records, and evaluating it on that folder works the same way."""
    import keras

    from musicgen.bundle import load_bundle, save_bundle
    from musicgen.context import context_sizes
    from musicgen.corpus import tokens_for
    from musicgen.errors import UsageError
    from musicgen.evaluate import evaluate
    from musicgen.models import build_model
    from musicgen.tokenizer import Tokenizer

    tc = TOK.replace(styles=("down", "up"))
    tok = Tokenizer(tc)
    with pytest.raises(UsageError, match="have no style folder"):
        tokens_for(corpus, tc)
    plain = tokens_for(corpus, TOK, out_dir=tmp_path / "plain")
    styled = tokens_for(corpus, tc, style="up", out_dir=tmp_path / "styled")
    assert styled.tokenizer_config == tc and len(styled.pieces) == len(plain.pieces)
    for a, b in zip(plain.pieces, styled.pieces):
        assert b.tolist() == [a[0], tok.token("STYLE", 1), *a[1:].tolist()]
    cfg = ModelConfig(vocab_size=tok.vocab_size, embedding_dim=4, units=8, layers=1, dropout=0.0,
                      context=context_sizes(tc))
    keras.utils.set_random_seed(1)
    save_bundle(tmp_path / "base", model=build_model(cfg), model_config=cfg, train_config=TrainConfig(),
                tokenizer_config=tc, metrics={"val_nll": 2.0, "style_pieces": {"down": 5, "up": 1},
                                              "default_style": "up"})
    assert _train([corpus, "--init-from", tmp_path / "base", "--out", tmp_path / "ft", "--lr", "1e-9", *FAST]) == 0
    ft = load_bundle(tmp_path / "ft")
    assert ft.tokenizer_config == tc and ft.metrics["default_style"] == "up"
    assert ft.metrics["style_pieces"] == {"down": 0, "up": ft.metrics["train_pieces"]}
    report = evaluate(ft, corpus, split="valid", num_samples=0, baselines=False)
    assert report["split"]["evaluated"] == ft.metrics["val_pieces"]


def test_loose_files_beside_a_style_folder_are_all_read_in_the_default_style_with_a_warning(corpus, tmp_path,
                                                                                               capsys):
    """A flat folder gets no warning; one with loose files and a folder named after a style (maybe a file left out of
    its folder) is read in the default style, the folder's files too, and says so on stderr in one line."""
    import shutil

    from musicgen.corpus import tokens_for
    from musicgen.tokenizer import Tokenizer

    tc = TOK.replace(styles=("down", "up"))
    tokens_for(corpus, tc, style="up", out_dir=tmp_path / "flat")
    assert "warning" not in capsys.readouterr().err
    mixed = tmp_path / "mixed"
    shutil.copytree(corpus, mixed)
    files = sorted(p for p in mixed.iterdir() if p.is_file())
    (mixed / "down").mkdir()
    shutil.move(files[0], mixed / "down" / files[0].name)
    styled = tokens_for(mixed, tc, style="up", out_dir=tmp_path / "cache")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "every file is read as style 'up'" in err[0] and "'down'" in err[0]
    up = Tokenizer(tc).token("STYLE", 1)
    assert len(styled.pieces) == len(files) and all(p[1] == up for p in styled.pieces)


@pytest.mark.parametrize("flags, message", [
    (["--units", "16"], "--units: 16 differs from the bundle"),
    (["--cell", "lstm"], "--cell: 'lstm' differs from the bundle"),
    (["--preset", "small"], "--preset: 'small' differs from the bundle"),
    (["--time-mode", "seconds"], "--time-mode: differs from the bundle"),
    (["--meter"], "--meter: differs from the bundle"),
    (["--voice-events", "implied"], "--voice-events: differs from the bundle"),
    (["--algorithm", "rtrl"], "--algorithm: 'rtrl' cannot fine-tune"),
])
def test_flags_that_disagree_with_the_base_exit_2_with_one_line(flags, message, corpus, tmp_path, capsys):
    base = make_bundle(tmp_path / "base", TOK, with_keras=False)
    assert _train([corpus, "--init-from", base, "--out", tmp_path / "ft", *flags, *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("musicgen train: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "ft").exists()


def test_a_cache_made_with_another_tokenizer_names_the_field(corpus, tmp_path, capsys):
    from musicgen.corpus import ingest

    ingest(corpus, tmp_path / "cache", TOK.replace(velocity_bins=8), progress=False)
    base = make_bundle(tmp_path / "base", TOK, with_keras=False)
    assert _train([tmp_path / "cache", "--init-from", base, "--out", tmp_path / "ft", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "velocity_bins=8 (wanted 4)" in err and "--init-from" in err and "\n" not in err
    assert _train([corpus, "--init-from", tmp_path / "missing", *FAST]) == 2  # BundleError: not found
    assert "model not found" in capsys.readouterr().err
