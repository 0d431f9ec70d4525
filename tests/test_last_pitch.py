"""`musicgen train --last-pitch` (and `--held-notes`): model inputs (the previous note of the voice in force; how long
voices 0-3 have sounded or rested) that leave the tokens and the token cache as they are; train → bundle → sample
(numpy, no TensorFlow) → evaluate on the same cache, resume, and the flags it refuses."""

import json

import numpy as np
import pytest
from conftest import write_three_part_corpus

from musicgen.cli import main


TRAIN = ["--preset", "tiny", "--batch-size", "4", "--bptt", "16", "--val-fraction", "0.25", "--test-fraction",
         "0.25", "--no-tensorboard", "--verbose", "0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("last_pitch")
    src = write_three_part_corpus(tmp / "music")
    cache = tmp / "cache"
    assert main(["ingest", str(src), "--out", str(cache), "--voices", "auto"]) == 0
    out = tmp / "bundle"
    assert main(["train", str(cache), "--last-pitch", "--held-notes", "--out", str(out), "--epochs", "1", *TRAIN]) == 0
    return out, cache


def test_train_sample_and_evaluate_with_last_pitch(trained, tmp_path):
    from conftest import run_cli_without_tensorflow

    from musicgen import evaluate as ev
    from musicgen.bundle import load_bundle
    from musicgen.context import context_features
    from musicgen.corpus import tokens_for
    from musicgen.sampler import StepModel
    from musicgen.scoring import score_pieces

    out, cache = trained
    bundle = load_bundle(out)
    assert bundle.tokenizer_config.last_pitch and bundle.tokenizer_config.held_notes
    assert bundle.tokenizer_config.voices == 3
    assert bundle.model_config.context == (129, 25, 25, 25, 25) and "context_4" in bundle.weights
    # the cache is untouched: its config has no last_pitch, and the bundle's config reads it
    assert not {"last_pitch", "held_notes"} & set(json.loads((cache / "tokenizer.json").read_text()))
    data = tokens_for(cache, bundle.tokenizer_config)
    assert data.tokenizer_config == bundle.tokenizer_config and len(data) == 8
    piece = np.asarray(data.pieces[0])
    feats = context_features(piece, bundle.tokenizer)
    assert feats.shape == (piece.size, 5) and feats[:, 0].max() > 0  # the notes' pitches, from the first NOTE_ON on
    assert (feats[:, 1:4] > 0).any(0).all() and not feats[:, 4].any()  # voices 0-2 held; there is no voice 3
    # the numpy sampler feeds the feature from its tracker, in a process without TensorFlow
    run = run_cli_without_tensorflow(["sample", "--model", out, "-n", "2", "--length", "80", "--seed", "3", "-o",
                                      tmp_path / "samples"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.mid")) == ["sample-01.mid", "sample-02.mid"]
    # evaluate reads the same cache; the numpy scores with the feature equal Keras' own (training's inputs)
    result = ev.evaluate(out, cache, num_samples=2, sample_length=60, max_order=2, copy_n=10, excerpt_length=16)
    assert np.isfinite(result["scores"]["model"]["nll_nats"])
    step = StepModel(bundle.weights, bundle.model_config, dtype=np.float64, tokenizer=bundle.tokenizer)
    numpy_nll = score_pieces(step, [piece])[0].nll
    model = bundle.keras_model()
    logits = np.asarray(model((piece[None, :-1], feats[None, :-1])), np.float64)[0]
    logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    np.testing.assert_allclose(numpy_nll, logz - logits[np.arange(piece.size - 1), piece[1:]], atol=1e-4)
    blind = np.asarray(model((piece[None, :-1], np.zeros_like(feats[None, :-1]))), np.float64)[0]
    assert np.abs(blind - logits).max() > 1e-3  # the model reads the input


def test_resume_keeps_last_pitch_and_finetune_refuses_to_add_it(trained, tmp_path, capsys):
    from musicgen.bundle import load_bundle

    out, cache = trained
    run = tmp_path / "run"
    assert main(["train", str(cache), "--last-pitch", "--neighbor-pitches", "--held-notes", "--out", str(run),
                 "--epochs", "1", *TRAIN]) == 0
    # --resume alone: the checkpoint's model has the inputs, so the resumed run gives them too
    assert main(["train", str(cache), "--out", str(run), "--resume", "--epochs", "2", "--no-tensorboard",
                 "--verbose", "0"]) == 0
    resumed = load_bundle(run)
    t = resumed.tokenizer_config
    assert t.last_pitch and t.neighbor_pitches and t.held_notes and resumed.metrics["epochs_run"] == 2
    assert resumed.model_config.context == (129, 129, 129, 25, 25, 25, 25)
    plain = tmp_path / "plain"
    assert main(["train", str(cache), "--out", str(plain), "--epochs", "1", *TRAIN]) == 0
    assert not load_bundle(plain).tokenizer_config.last_pitch and load_bundle(plain).model_config.context == ()
    capsys.readouterr()
    assert main(["train", str(cache), "--init-from", str(plain), "--last-pitch", "--out", str(tmp_path / "ft"),
                 "--epochs", "1", "--no-tensorboard", "--verbose", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("musicgen train: error: --last-pitch: differs from the bundle"), err
    assert len(err.splitlines()) == 1, err


def test_last_pitch_with_implied_voices_is_a_usage_error(tmp_path, capsys):
    src = write_three_part_corpus(tmp_path / "music", n=2)
    for flag in ("--last-pitch", "--neighbor-pitches", "--held-notes"):
        assert main(["train", str(src), "--voices", "auto", "--voice-events", "implied", flag, "--out",
                     str(tmp_path / "m"), "--epochs", "1", *TRAIN]) == 2
        err = capsys.readouterr().err.strip()
        assert f"{flag}: needs a VOICE event at every change of voice" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "m").exists()
    cache = tmp_path / "implied"
    assert main(["ingest", str(src), "--out", str(cache), "--voices", "auto", "--voice-events", "implied"]) == 0
    capsys.readouterr()
    assert main(["train", str(cache), "--last-pitch", "--out", str(tmp_path / "m2"), "--epochs", "1", *TRAIN]) == 2
    err = capsys.readouterr().err.strip()
    assert "--last-pitch: needs a VOICE event at every change of voice" in err and len(err.splitlines()) == 1, err
