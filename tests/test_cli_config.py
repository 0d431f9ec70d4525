"""``musicgen.cli_config``: ``musicgen train``'s flags → ``(ModelConfig, TrainConfig)``, and the default bundle
folder."""

import argparse
from pathlib import Path

import pytest

from musicgen.cli_config import configs_from_args, default_out
from musicgen.config import MODEL_PRESETS
from musicgen.rtrl import check_budget


@pytest.mark.parametrize("preset, units", [("tiny", 32), ("small", 128), ("medium", 256), (None, 32)])
def test_rtrl_takes_a_presets_sizes_with_one_layer_and_no_dropout(preset, units):
    """``--preset small --algorithm rtrl`` used to fail on the preset's 2 layers, then on its dropout."""
    args = argparse.Namespace(preset=preset, algorithm="rtrl", cell="gru")
    model_cfg, train_cfg = configs_from_args(args, vocab_size=40)
    assert (model_cfg.layers, model_cfg.dropout, model_cfg.units) == (1, 0.0, units)
    assert model_cfg.embedding_dim == MODEL_PRESETS[preset or "tiny"]["embedding_dim"]
    if preset != "medium":
        check_budget(model_cfg)  # RTRL accepts it
    bptt, _ = configs_from_args(argparse.Namespace(preset=preset, algorithm="bptt", cell="gru"), vocab_size=40)
    assert bptt.layers == MODEL_PRESETS[preset or "medium"]["layers"]  # BPTT keeps the preset as it is


def test_explicit_flags_override_the_preset_and_clipnorm_0_disables_clipping():
    args = argparse.Namespace(preset="small", algorithm="bptt", cell="lstm", units=64, layers=None, dropout=None,
                              embedding_dim=None, clipnorm=0.0, epochs=3, seed=7)
    model_cfg, train_cfg = configs_from_args(args, vocab_size=40, context=(5,))
    assert (model_cfg.cell, model_cfg.units, model_cfg.layers, model_cfg.context) == ("lstm", 64, 2, (5,))
    assert (train_cfg.clipnorm, train_cfg.epochs, train_cfg.seed) == (None, 3, 7)


def test_default_out_is_trained_slash_corpus_name_dash_cell(tmp_path):
    assert default_out(str(tmp_path / "bach_bars"), "gru") == Path("trained") / "bach_bars-gru"
