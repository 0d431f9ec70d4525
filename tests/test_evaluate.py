"""evaluate: model NLL against hand-computed values, baselines, report files, and one small end-to-end run."""

import json
import math

import numpy as np
import pytest

from musicgen import evaluate as ev
from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
from musicgen.errors import UsageError
from musicgen.ngram import KneserNeyModel, UnigramModel


def _tiny_model(cell="simple_rnn", vocab=3, seed=0):
    import keras

    from musicgen.models import build_model

    keras.utils.set_random_seed(seed)
    cfg = ModelConfig(vocab_size=vocab, cell=cell, embedding_dim=4, units=5, layers=1, dropout=0.0)
    return build_model(cfg), cfg


def test_nll_of_a_model_with_known_logits():
    model, cfg = _tiny_model()
    dense = model.get_layer("logits")
    probs = np.array([0.2, 0.5, 0.3])
    dense.set_weights([np.zeros_like(dense.get_weights()[0]), np.log(probs).astype(np.float32)])
    pieces = [np.array([0, 1, 2, 1]), np.array([2, 1])]  # targets 1, 2, 1, 1
    row = ev.model_scores(model, cfg, pieces, pad_id=0)
    nats = -(3 * math.log(0.5) + math.log(0.3)) / 4
    assert row["nll_nats"] == pytest.approx(nats, rel=1e-6)
    assert row["nll_bits"] == pytest.approx(nats / math.log(2), rel=1e-6)
    assert row["perplexity"] == pytest.approx(math.exp(nats), rel=1e-6)
    assert row["accuracy"] == pytest.approx(3 / 4)  # argmax is always 1
    assert row["events"] == 4


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_batched_chunked_scores_equal_one_piece_at_a_time(cell):
    model, cfg = _tiny_model(cell, vocab=7, seed=1)
    rng = np.random.default_rng(0)
    pieces = [rng.integers(0, 7, size=n) for n in (2, 9, 5, 13)]
    row = ev.model_scores(model, cfg, pieces, pad_id=0, group=3, chunk=4)  # state carried across chunks
    nll, hits, count = 0.0, 0, 0
    for p in pieces:
        logits = np.asarray(model.predict_on_batch(p[None, :-1]), dtype=np.float64)[0]
        logz = np.log(np.exp(logits).sum(axis=-1))
        nll += float((logz - logits[np.arange(len(p) - 1), p[1:]]).sum())
        hits += int((logits.argmax(axis=-1) == p[1:]).sum())
        count += len(p) - 1
    assert row["events"] == count == 25
    assert row["nll_nats"] == pytest.approx(nll / count, rel=1e-5)
    assert row["accuracy"] == pytest.approx(hits / count)


CHUNKED_ON_BACKEND = """
import numpy as np, keras
from musicgen import evaluate as ev
from musicgen.config import ModelConfig
from musicgen.models import build_model
keras.utils.set_random_seed(1)
cfg = ModelConfig(vocab_size=7, cell="gru", embedding_dim=4, units=5, layers=1, dropout=0.0)
model = build_model(cfg)
pieces = [np.random.default_rng(0).integers(0, 7, size=n) for n in (2, 9, 5, 13)]
row = ev.model_scores(model, cfg, pieces, pad_id=0, group=3, chunk=4)
whole = ev.model_scores(model, cfg, pieces, pad_id=0, group=1, chunk=64)
assert abs(row["nll_nats"] - whole["nll_nats"]) < 1e-5 * whole["nll_nats"], (keras.backend.backend(), row, whole)
print("ok")
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_chunked_scores_carry_the_state_on_other_backends(backend):
    """Regression: under JAX, predict_on_batch did not carry stateful layers' state from chunk to chunk."""
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", CHUNKED_ON_BACKEND], env=env, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-2000:]


def test_baseline_rows_match_the_ngram_models():
    train = [np.array([0, 1, 2, 1]), np.array([0, 1, 1])]
    heldout = [np.array([0, 1, 2])]
    rows = ev.baseline_scores(train, heldout, vocab_size=3, max_order=3)
    assert list(rows) == ["unigram", "kn_2", "kn_3"]
    assert rows["unigram"]["nll_nats"] == pytest.approx(UnigramModel(vocab_size=3).fit(train).nll(heldout))
    assert rows["unigram"]["accuracy"] == pytest.approx(0.5)  # always guesses 1: right on 1, wrong on 2
    kn2 = -(math.log(0.8828125) + math.log(0.265625)) / 2  # hand-checked in test_ngram.py
    assert rows["kn_2"]["nll_nats"] == pytest.approx(kn2)
    assert rows["kn_3"]["nll_nats"] == pytest.approx(KneserNeyModel(order=3, vocab_size=3).fit(train).nll(heldout))
    assert rows["kn_2"]["nll_bits"] == pytest.approx(kn2 / math.log(2)) and rows["kn_2"]["events"] == 2


def test_memorization_summary():
    train = [np.array([1, 2, 3, 4, 5, 6]), np.array([7, 8, 9, 1, 2])]
    samples = [np.array([9, 1, 2, 3, 4, 0]), np.array([5, 6, 7, 8]), np.array([0, 0, 0])]
    heldout = [np.array([3, 4, 5, 6, 0])]
    mem = ev.memorization(samples, train, heldout, copy_n=3)
    assert mem["sample_longest"] == [4, 2, 0] and mem["sample_longest_median"] == 2
    assert mem["copy_rate"] == pytest.approx(1 / 3)
    assert mem["heldout_longest_median"] == 4 and mem["heldout_copy_rate"] == 1.0


def _fake_result():
    from musicgen import stats

    row = ev.score_metrics(1.5, 0.4, 100)
    feats = [stats.piece_features([])]  # all nan: must print "-" and write null
    return {"model": {"path": "m", "cell": "lstm", "layers": 1, "units": 8, "vocab_size": 3, "trained_val_nll": 1.5},
            "corpus": {"path": "c", "pieces": 5, "train_pieces": 4, "heldout_pieces": 1, "val_fraction": 0.2,
                       "split_seed": 0, "time_mode": "beat"},
            "scores": {"model": row, "unigram": ev.score_metrics(2.0, 0.1, 100),
                       "kn_2": ev.score_metrics(1.75, None, 100)},
            "samples": {"num_samples": 1, "length": 10, "seed": 0},
            "stats": stats.compare_feature_sets(feats, feats),
            "memorization": ev.memorization([np.array([1, 2])], [np.array([1, 2, 3])], [np.array([2, 3])], 2)}


def test_table_json_and_plots(tmp_path):
    result = _fake_result()
    table = ev.format_table(result)
    assert "Kneser-Ney 2-gram" in table and "unigram (add-one)" in table
    assert "1.5000" in table and "2.1640" in table  # 1.5 nats = 2.1640 bits
    assert "samples copying >= 2 consecutive training events: 1/1 (100%)" in table
    path = ev.write_json(result, tmp_path / "out" / "evaluation.json")
    back = json.loads(path.read_text())
    assert back["scores"]["kn_2"]["accuracy"] is None and back["stats"]["pitch_range"]["overlap"] is None
    assert back["scores"]["model"]["perplexity"] == pytest.approx(math.exp(1.5))
    assert [p.name for p in tmp_path.joinpath("out").iterdir()] == ["evaluation.json"]  # no temp file left
    pngs = ev.write_plots(result, tmp_path / "plots")
    assert sorted(p.name for p in pngs) == ["features.png", "ioi_histogram.png", "pitch_class_histogram.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def _write_corpus(folder, n_pieces=6):
    """Small MIDI files: scale fragments in C major, each with a different start and rhythm."""
    import pretty_midi

    folder.mkdir()
    for k in range(n_pieces):
        pm = pretty_midi.PrettyMIDI(initial_tempo=120)
        inst = pretty_midi.Instrument(program=0)
        t = 0.0
        for j in range(12):
            pitch = [60, 62, 64, 65, 67, 69, 71, 72][(j + k) % 8]
            dur = 0.25 if (j + k) % 3 else 0.5
            inst.notes.append(pretty_midi.Note(velocity=80, pitch=pitch, start=t, end=t + dur))
            t += dur
        pm.instruments.append(inst)
        pm.write(str(folder / f"piece{k}.mid"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(bundle folder, token cache folder, tokenizer) for an untrained GRU on six small MIDI files."""
    from musicgen.bundle import save_bundle
    from musicgen.corpus import ingest
    from musicgen.tokenizer import Tokenizer

    tmp = tmp_path_factory.mktemp("evaluate")
    _write_corpus(tmp / "music")
    tcfg = TokenizerConfig(velocity_bins=0, programs=False, max_shift_steps=12)
    cache = ingest(tmp / "music", tmp / "cache", tcfg, workers=1, progress=False).out_dir
    tok = Tokenizer(tcfg)
    model, mcfg = _tiny_model("gru", vocab=tok.vocab_size)
    bundle = save_bundle(tmp / "bundle", model=model, model_config=mcfg,
                         train_config=TrainConfig(val_fraction=0.3, seed=0), tokenizer_config=tcfg,
                         metrics={"val_nll": None})
    return bundle, cache, tok


def test_end_to_end_with_a_saved_bundle(saved):
    from musicgen.corpus import load_tokens

    bundle, cache, tok = saved
    train_piece = load_tokens(cache).pieces[0]

    def copy_a_training_piece(b, num_samples, length, seed):  # stands in for the sampler: a perfect copycat
        return [train_piece[:length]] * num_samples

    result = ev.evaluate(bundle, cache, num_samples=2, sample_length=20, max_order=3, copy_n=10,
                         sample_fn=copy_a_training_piece)
    c = result["corpus"]
    assert c["pieces"] == 6 and c["train_pieces"] + c["heldout_pieces"] == 6 and c["heldout_pieces"] >= 1
    assert list(result["scores"]) == ["model", "unigram", "kn_2", "kn_3"]
    untrained = result["scores"]["model"]["nll_nats"]
    assert abs(untrained - math.log(tok.vocab_size)) < 0.1  # an untrained model is close to uniform
    assert result["scores"]["kn_3"]["nll_nats"] < result["scores"]["unigram"]["nll_nats"] < untrained
    assert result["memorization"]["sample_longest"] == [20, 20] and result["memorization"]["copy_rate"] == 1.0
    assert result["stats"]["pitch_in_scale_rate"]["generated_mean"] == 1.0  # C major fragments
    assert "Kneser-Ney 3-gram" in ev.format_table(result)
    with pytest.raises(UsageError, match="num_samples: expected an integer >= 0, got -1"):
        ev.evaluate(bundle, cache, num_samples=-1)


def test_cli_evaluate_with_the_real_sampler(saved, tmp_path, capsys):
    from musicgen.cli import main

    bundle, cache, _ = saved
    out = tmp_path / "report.json"
    argv = ["evaluate", str(bundle), str(cache), "--num-samples", "2", "--length", "24", "--seed", "3",
            "--max-order", "2", "--json", str(out), "--plot", str(tmp_path / "plots")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Kneser-Ney 2-gram" in printed and "pitch-class histogram" in printed and str(out) in printed
    report = json.loads(out.read_text())
    assert report["samples"] == {"num_samples": 2, "length": 24, "seed": 3}
    assert len(report["memorization"]["sample_longest"]) == 2
    assert (tmp_path / "plots" / "features.png").is_file()
    assert main(argv[:3] + ["--num-samples", "0", "--json", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert "stats" not in again and list(again["scores"]) == ["model", "unigram", "kn_2", "kn_3", "kn_4", "kn_5"]
    for row in ("model", "unigram", "kn_2"):  # likelihoods are deterministic
        assert again["scores"][row] == report["scores"][row]
    assert main(["evaluate", str(bundle), str(cache), "--max-order", "0"]) == 2  # UsageError → exit 2
    assert "max_order: expected an integer >= 1, got 0" in capsys.readouterr().err
