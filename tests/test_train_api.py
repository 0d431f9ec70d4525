"""musicgen.train (musicgen.train_api): the command's options from Python, the bundle back, fine-tuning included."""

import importlib

import pytest

import musicgen
from musicgen.errors import UsageError
from conftest import write_scale_corpus

FAST = dict(epochs=1, batch_size=2, bptt=16, tensorboard=False)


@pytest.mark.usefixtures("in_tmp")  # the token cache defaults to ./data/tokens/scales
def test_train_then_fine_tune_from_python(tmp_path):
    corpus = write_scale_corpus(tmp_path / "scales", n=6)
    bundle = musicgen.train(corpus, out=tmp_path / "m", preset="tiny", time_mode="seconds", **FAST)
    assert bundle.path == tmp_path / "m"
    assert (bundle.model_config.units, bundle.model_config.layers, bundle.model_config.cell) == (32, 1, "gru")
    assert bundle.tokenizer_config.time_mode == "seconds" and bundle.train_config.epochs == 1
    assert bundle.train_config.learning_rate == 2e-3

    # the trainer module is musicgen.trainer, so importing it never shadows the function musicgen.train
    importlib.import_module("musicgen.trainer")
    assert musicgen.train.__name__ == "train" and musicgen.train.__module__ == "musicgen.train_api"
    tuned = musicgen.train(corpus, out=tmp_path / "ft", init_from=bundle.path, **FAST)
    assert tuned.metrics["init_from"]["path"] == str(bundle.path)
    assert tuned.model_config == bundle.model_config and tuned.tokenizer_config == bundle.tokenizer_config
    assert (tuned.train_config.learning_rate, tuned.train_config.patience) == (5e-4, 3)


def test_unknown_option_and_bad_value_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match=r"options: unknown \['epoch'\]; known: \[.*'epochs'"):
        musicgen.train(tmp_path, epoch=3)
    corpus = write_scale_corpus(tmp_path / "scales", n=2)
    with pytest.raises(UsageError, match="epochs: expected a positive integer, got 0"):
        musicgen.train(corpus, out=tmp_path / "m", epochs=0)
