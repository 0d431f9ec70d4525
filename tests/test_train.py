import csv
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
from musicgen.split import split_corpus
from musicgen.errors import UsageError
from conftest import write_scale_corpus

ROOT = Path(__file__).resolve().parents[1]
CELLS = ["lstm", "gru", "simple_rnn"]


def scale_pieces(n=10, seed=0):
    """A learnable toy language: BOS, a rising 12-step cycle from a random start, EOS (vocabulary 16)."""
    rng = np.random.default_rng(seed)
    pieces = []
    for _ in range(n):
        start, length = int(rng.integers(0, 12)), int(rng.integers(40, 90))
        pieces.append(np.array([1] + [3 + (start + i) % 12 for i in range(length)] + [2], dtype=np.int32))
    return pieces, [f"piece-{i}" for i in range(n)]


# 3 specials + 12 NOTE_ON + 12 NOTE_OFF + 4 TIME_SHIFT = 31 tokens; the toy pieces use ids 1..14
TOKENIZER = TokenizerConfig(min_pitch=60, max_pitch=71, velocity_bins=0, programs=False, max_shift_steps=4)
VOCAB = 31


def tiny(cell="lstm", **model):
    return ModelConfig(vocab_size=VOCAB, cell=cell, **{**dict(embedding_dim=8, units=16, layers=1, dropout=0.0),
                                                    **model})


def fast(**changes):
    """The toy pieces are all one 12-cycle, near-duplicates of each other; shingles longer than any piece
    (``dedup_ngram=128``) make each piece its own cluster, so the split still has train, valid and test."""
    return TrainConfig(**{**dict(epochs=3, batch_size=4, bptt=16, val_fraction=0.2, learning_rate=1e-2,
                                 patience=3, dedup_ngram=128), **changes})


@pytest.mark.parametrize("cell", CELLS)
def test_layer_config_keeps_cudnn_kernel_eligible(cell):
    from musicgen.models import build_model

    model = build_model(tiny(cell, layers=2, dropout=0.2), batch_size=4, stateful=True)
    for i in range(2):
        cfg = model.get_layer(f"rnn_{i}").get_config()
        assert cfg["activation"] == "tanh" and cfg["use_bias"] is True and cfg["unroll"] is False
        assert cfg["recurrent_dropout"] == 0 and cfg["return_sequences"] is True and cfg["stateful"] is True
        if cell != "simple_rnn":
            assert cfg["recurrent_activation"] == "sigmoid"
        if cell == "gru":
            assert cfg["reset_after"] is True


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_trains_and_writes_a_loadable_bundle(cell, tmp_path):
    from musicgen.bundle import load_bundle, save_bundle
    from musicgen.tokenizer import Tokenizer
    from musicgen.trainer import train_model

    assert Tokenizer(TOKENIZER).vocab_size == VOCAB
    pieces, keys = scale_pieces()
    model_cfg, train_cfg = tiny(cell), fast()
    result = train_model(pieces, keys, model_cfg, train_cfg, tmp_path / "run", tensorboard=False, verbose=0)
    rows = json.loads((tmp_path / "run/checkpoints/state.json").read_text())["history"]
    losses = [row["loss"] for row in rows]
    val = [row["val_loss"] for row in rows]
    assert len(rows) == 3 and all(math.isfinite(v) for v in losses + val)
    assert losses[-1] < losses[0] and val[-1] < val[0] < math.log(VOCAB) + 0.5
    m = result.metrics
    assert m["val_nll"] == pytest.approx(min(val)) and m["val_perplexity"] == pytest.approx(math.exp(min(val)))
    split = split_corpus(pieces, keys, train_cfg, None)
    assert m["val_pieces"] == len(split.valid) >= 1 and m["train_pieces"] == len(split.train)
    assert len(split.train) + len(split.valid) + len(split.test) == 10 and len(split.test) >= 1
    assert m["split"] == {"train_pieces": len(split.train), "valid_pieces": len(split.valid),
                          "test_pieces": len(split.test), "clusters": 10, "legacy": False, "version": 3}
    total = sum(len(pieces[i]) for i in split.train)  # every training event is a target once, but the stream's first
    assert m["train_events_per_epoch"] == total - 1
    assert result.model.inputs[0].shape[0] is None  # stateless, any batch size
    parts = 2 if cell == "lstm" else 1  # the sampler's start state: one (units,) array per part and layer
    assert [tuple(a.shape for a in layer) for layer in result.start_state] == [((16,),) * parts]
    out = save_bundle(tmp_path / "bundle", model=result.model, model_config=model_cfg, train_config=train_cfg,
                      tokenizer_config=TOKENIZER, metrics=m, history_csv=result.history_csv)
    bundle = load_bundle(out)
    assert bundle.metrics["val_nll"] == pytest.approx(m["val_nll"])
    assert np.allclose(bundle.weights["logits_bias"], np.asarray(result.model.get_layer("logits").bias))


def test_chunked_validation_carries_state_and_matches_a_direct_computation():
    import keras

    from musicgen.models import build_model
    from musicgen.train_callbacks import sequence_metrics

    keras.utils.set_random_seed(1)
    cfg = tiny("gru")
    pieces = [np.array([1, 3, 4, 5, 6, 7, 8, 2]), np.array([1, 9, 10, 2]), np.array([1, 5, 5, 5, 5, 5, 2])]
    stateless = build_model(cfg)
    nll, hits, n = 0.0, 0, 0
    for p in pieces:
        logits = np.asarray(stateless(p[None, :-1]), dtype=np.float64)[0]
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll -= logp[np.arange(len(p) - 1), p[1:]].sum()
        hits += int((logits.argmax(-1) == p[1:]).sum())
        n += len(p) - 1
    for group, chunk in [(2, 3), (3, 16), (1, 2)]:
        ev = build_model(cfg, batch_size=group, stateful=True)
        ev.set_weights(stateless.get_weights())
        got = sequence_metrics(ev, pieces, pad_id=0, chunk=chunk)
        assert got["val_events"] == n == 16
        assert got["val_loss"] == pytest.approx(nll / n, rel=1e-5)
        assert got["val_accuracy"] == pytest.approx(hits / n)


def test_resume_in_process_continues_the_epoch_counter(tmp_path):
    from musicgen.trainer import train_model

    pieces, keys = scale_pieces()
    train_model(pieces, keys, tiny(), fast(epochs=2), tmp_path, tensorboard=False, verbose=0)
    first = json.loads((tmp_path / "checkpoints/state.json").read_text())["history"]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path.parent / f".{tmp_path.name}.tmp-{dead.pid}"  # a bundle save killed inside its swap
    left.mkdir()
    os.replace(tmp_path / "checkpoints", left / "checkpoints")
    result = train_model(pieces, keys, tiny(), fast(epochs=3), tmp_path, resume=True, tensorboard=False, verbose=0)
    rows = json.loads((tmp_path / "checkpoints/state.json").read_text())["history"]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[:2] == first
    assert result.metrics["epochs_run"] == 3 and not left.exists()
    with pytest.raises(UsageError, match="bptt"):
        train_model(pieces, keys, tiny(), fast(epochs=4, bptt=8), tmp_path, resume=True, verbose=0)



def test_resume_equals_an_uninterrupted_run_with_dropout(tmp_path):
    """2 epochs in one run == 1 epoch, then --resume to 2 (TensorFlow; batches, dropout masks and Adam all match)."""
    from musicgen.trainer import train_model

    pieces, keys = scale_pieces()
    cfg = tiny("gru", layers=2, dropout=0.3)
    whole = train_model(pieces, keys, cfg, fast(epochs=2), tmp_path / "a", tensorboard=False, verbose=0)
    train_model(pieces, keys, cfg, fast(epochs=1), tmp_path / "b", tensorboard=False, verbose=0)
    resumed = train_model(pieces, keys, cfg, fast(epochs=2), tmp_path / "b", resume=True, tensorboard=False,
                          verbose=0)
    rows = [json.loads((tmp_path / run / "checkpoints/state.json").read_text())["history"] for run in "ab"]
    assert [r["loss"] for r in rows[0]] == pytest.approx([r["loss"] for r in rows[1]], rel=1e-6)
    for w_whole, w_resumed in zip(whole.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(w_resumed, w_whole, rtol=0, atol=1e-6)


class Killed(BaseException):
    """Stands in for kill -9 at one point of a checkpoint write."""


@pytest.mark.parametrize("kill_before", ["rename 1", "rename 2", "rename 3", "rename 4", "pruning"])
def test_a_kill_between_checkpoint_writes_leaves_files_of_one_epoch(kill_before, tmp_path, monkeypatch):
    """Epoch 2 improves, so best weights, last model, state and history all change; killed before each of those
    renames (or while deleting epoch 1's files), the checkpoint read back is epoch 1's or epoch 2's, whole."""
    import keras

    from musicgen.models import build_model
    from musicgen.trainer import compile_model
    from musicgen.train_callbacks import Checkpoint, read_checkpoint

    model = build_model(tiny(), batch_size=2, stateful=False)
    compile_model(model, fast())
    model.optimizer.build(model.trainable_variables)
    start = model.get_weights()
    callback = Checkpoint(tmp_path, {}, patience=5, lr_patience=2)
    callback.set_model(model)
    weights = {}
    for epoch, loss in ((1, 2.0), (2, 1.0)):
        weights[epoch] = [w + epoch for w in start]
        model.set_weights(weights[epoch])
        if epoch == 2:
            calls = []
            real_replace, real_unlink = os.replace, Path.unlink

            def replace(src, dst):
                calls.append(dst)
                if kill_before == f"rename {len(calls)}":
                    raise Killed
                real_replace(src, dst)

            def unlink(path, missing_ok=False):
                if kill_before == "pruning" and not path.name.startswith("."):
                    raise Killed
                real_unlink(path, missing_ok=missing_ok)

            monkeypatch.setattr(os, "replace", replace)
            monkeypatch.setattr(Path, "unlink", unlink)
            with pytest.raises(Killed):
                callback.on_epoch_end(epoch - 1, {"loss": loss})
            monkeypatch.undo()
        else:
            callback.on_epoch_end(epoch - 1, {"loss": loss})

    state, last, best = read_checkpoint(tmp_path)  # what --resume would load
    done = state["epochs_done"]
    assert done == (2 if kill_before in ("rename 4", "pruning") else 1) and state["best_epoch"] == done
    for got, want in zip(keras.saving.load_model(last).get_weights(), weights[done]):
        np.testing.assert_array_equal(got, want)
    fresh = build_model(tiny(), batch_size=2, stateful=False)
    fresh.load_weights(best)
    for got, want in zip(fresh.get_weights(), weights[state["best_epoch"]]):
        np.testing.assert_array_equal(got, want)


def test_a_checkpoint_edited_by_hand_is_refused_on_resume(tmp_path):
    from musicgen.trainer import train_model
    from musicgen.train_callbacks import read_checkpoint

    pieces, keys = scale_pieces()
    train_model(pieces, keys, tiny(), fast(epochs=1), tmp_path, tensorboard=False, verbose=0)
    state, last, best = read_checkpoint(tmp_path / "checkpoints")
    assert (last.name, best.name) == ("last-0001.keras", "best-0001.weights.h5")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best-0001.weights.h5", "history.csv", "last-0001.keras", "state.json"]
    with open(best, "ab") as f:
        f.write(b"x")
    with pytest.raises(UsageError, match=r"inconsistent \(best: best-0001.weights.h5 does not match its sha256"):
        train_model(pieces, keys, tiny(), fast(epochs=2), tmp_path, resume=True, tensorboard=False, verbose=0)

def test_same_seed_same_first_epoch(tmp_path):
    from musicgen.trainer import train_model

    pieces, keys = scale_pieces()
    losses = []
    for run in ("a", "b"):
        train_model(pieces, keys, tiny(), fast(epochs=1, stateful=False), tmp_path / run, tensorboard=False,
                    verbose=0)
        losses.append(json.loads((tmp_path / run / "checkpoints/state.json").read_text())["history"][0]["loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_cli_resume_after_kill(tmp_path):
    from musicgen.bundle import load_bundle

    write_scale_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "musicgen", "train", str(tmp_path / "corpus"), "--out", str(out), "--cell", "gru",
           "--preset", "tiny", "--epochs", "12", "--batch-size", "4", "--bptt", "32", "--val-fraction", "0.3",
           "--patience", "50", "--no-tensorboard", "--verbose", "2"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = out / "checkpoints" / "state.json"
    deadline = time.time() + 90
    while not state_file.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert state_file.exists(), "no checkpoint before the kill"
    done = json.loads(state_file.read_text())["epochs_done"]
    assert 1 <= done < 12 and not (out / "bundle.json").exists()
    again = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming from {out / 'checkpoints' / f'last-{done:04d}.keras'} after epoch {done}" in again.stdout
    assert f"Epoch {done + 1}/12" in again.stdout and "Epoch 1/12" not in again.stdout
    with open(out / "history.csv") as f:
        assert [int(float(r["epoch"])) for r in csv.DictReader(f)] == list(range(1, 13))
    bundle = load_bundle(out)
    assert bundle.metrics["epochs_run"] == 12 and bundle.model_config.cell == "gru"


SMOKE = """
import json, math, sys
import numpy as np
from musicgen.config import ModelConfig, TrainConfig
from musicgen.trainer import train_model
rng = np.random.default_rng(0)
pieces = [np.array([1] + [3 + (int(rng.integers(12)) + i) % 12 for i in range(50)] + [2]) for _ in range(8)]
cells = (("lstm", True), ("gru", False), ("simple_rnn", True)) if sys.argv[2] == "torch" else (("lstm", True),)
for cell, stateful in cells:
    cfg = ModelConfig(vocab_size=16, cell=cell, embedding_dim=8, units=16, layers=1, dropout=0.0)
    tcfg = TrainConfig(epochs=2, batch_size=4, bptt=16, val_fraction=0.25, learning_rate=1e-2, stateful=stateful,
                       dedup_ngram=64)  # longer than the pieces: each its own cluster
    r = train_model(pieces, [str(i) for i in range(8)], cfg, tcfg, sys.argv[1] + "/" + cell, tensorboard=False,
                    verbose=0)
    assert math.isfinite(r.metrics["val_nll"]) and r.metrics["keras_backend"] == sys.argv[2], r.metrics
    assert r.metrics["state_carried"] == (stateful and sys.argv[2] != "jax"), r.metrics
print("ok")
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_keras_backends_train(backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", SMOKE, str(tmp_path), backend], env=env, capture_output=True,
                         text=True, timeout=240, cwd=ROOT)
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-3000:]


@pytest.mark.parametrize("flags, message", [(["--epochs", "0"], "epochs: expected a positive integer, got 0"),
                                            (["--bptt", "1"], "bptt: expected an integer >= 2, got 1"),
                                            (["--dropout", "1.5"], "dropout: expected a number in [0, 1)")])
def test_cli_bad_flags_exit_2_with_one_line(flags, message, tmp_path, capsys):
    from musicgen.cli import main

    assert main(["train", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("musicgen train: error: ") and message in err and "\n" not in err
    assert main(["train", str(tmp_path / "missing")]) == 2
    assert "corpus_dir" in capsys.readouterr().err


def test_cli_test_fraction_reaches_the_config_and_bad_values_exit_2(tmp_path, capsys):
    from musicgen.cli import build_parser, main
    from musicgen.cli_config import configs_from_args

    args = build_parser().parse_args(["train", str(tmp_path), "--test-fraction", "0.2", "--val-fraction", "0.15"])
    _, cfg = configs_from_args(args, vocab_size=VOCAB)
    assert (cfg.test_fraction, cfg.val_fraction, cfg.split_version) == (0.2, 0.15, 3)
    assert main(["train", str(tmp_path), "--test-fraction", "0.95"]) == 2
    assert "test_fraction: expected a number below 1 - val_fraction = 0.9, got 0.95" in capsys.readouterr().err
