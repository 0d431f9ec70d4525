"""evaluate: numpy likelihood vs Keras and by hand, files written only on request, no TensorFlow import, and small
end-to-end runs (the report's table, JSON and plots: tests/test_evaluate_report.py)."""

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import make_bundle
from musicgen import evaluate as ev
from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
from musicgen.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def _tiny_model(cell="simple_rnn", vocab=3, seed=0, scale=1.0):
    import keras

    from musicgen.models import build_model

    keras.utils.set_random_seed(seed)
    cfg = ModelConfig(vocab_size=vocab, cell=cell, embedding_dim=4, units=5, layers=2, dropout=0.0)
    model = build_model(cfg)
    model.set_weights([w * scale for w in model.get_weights()])
    return model, cfg


# ------------------------------------------------------------------------------------------------------ likelihood
def test_nll_of_a_model_with_known_logits():
    from musicgen.models import expected_weight_shapes

    cfg = ModelConfig(vocab_size=3, cell="gru", embedding_dim=4, units=5, layers=1, dropout=0.0)
    weights = {k: np.zeros(s, np.float32) for k, s in expected_weight_shapes(cfg).items()}
    probs = np.array([0.2, 0.5, 0.3])
    weights["logits_bias"] = np.log(probs).astype(np.float32)
    bundle = types.SimpleNamespace(weights=weights, model_config=cfg)
    pieces = [np.array([0, 1, 2, 1]), np.array([2, 1]), np.array([1])]  # targets 1, 2, 1, 1; the last has none
    row = ev.model_scores(bundle, pieces)
    nats = -(3 * math.log(0.5) + math.log(0.3)) / 4
    assert row["nll_nats"] == pytest.approx(nats, rel=1e-7)  # float32 bias
    assert row["nll_bits"] == pytest.approx(nats / math.log(2), rel=1e-7)
    assert row["perplexity"] == pytest.approx(math.exp(nats), rel=1e-7)
    assert row["accuracy"] == pytest.approx(3 / 4) and row["events"] == 4  # argmax is always 1
    with pytest.raises(UsageError, match="nothing to score"):
        ev.model_scores(bundle, [np.array([1])])
    scores = ev.piece_scores(bundle, pieces)
    two_notes_per_piece = types.SimpleNamespace(decode_notes=lambda p: ["note"] * 2 if len(p) > 1 else [])
    row = ev.per_note(two_notes_per_piece, pieces, scores)  # 4 events of nats/event each, over 2 + 2 + 0 notes
    assert row["notes"] == 4 and row["events_per_note"] == 1.0
    assert row["nll_nats_per_note"] == pytest.approx(nats, rel=1e-7)
    assert row["nll_bits_per_note"] == pytest.approx(nats / math.log(2), rel=1e-7)
    one_note = types.SimpleNamespace(decode_notes=lambda p: ["note"])
    assert ev.per_note(one_note, pieces, scores)["nll_nats_per_note"] == pytest.approx(4 * nats / 3, rel=1e-7)
    assert math.isnan(ev.per_note(types.SimpleNamespace(decode_notes=lambda p: []), pieces, scores)
                      ["nll_nats_per_note"])


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_numpy_scores_equal_keras_per_event_on_a_saved_bundle(cell, tmp_path):
    from musicgen.bundle import load_bundle, save_bundle

    model, cfg = _tiny_model(cell, vocab=7, seed=1, scale=2.0)  # large weights: far from uniform
    save_bundle(tmp_path / "b", model=model, model_config=cfg, train_config=TrainConfig(),
                tokenizer_config=TokenizerConfig(min_pitch=60, max_pitch=60, velocity_bins=0, programs=False,
                                                 max_shift_steps=2), metrics={})  # 7 ids
    bundle = load_bundle(tmp_path / "b")
    rng = np.random.default_rng(0)
    pieces = [rng.integers(0, 7, size=n) for n in (2, 9, 5, 40)]
    scores = ev.piece_scores(bundle, pieces)
    keras_model, spread = bundle.keras_model(), []
    for p, score in zip(pieces, scores):
        logits = np.asarray(keras_model(p[None, :-1]), dtype=np.float64)[0]
        logz = np.log(np.exp(logits).sum(axis=-1))
        nll = logz - logits[np.arange(len(p) - 1), p[1:]]
        assert np.abs(score.nll - nll).max() < 1e-5
        np.testing.assert_array_equal(score.correct, logits.argmax(axis=-1) == p[1:])
        spread += nll.tolist()
    assert np.std(spread) > 0.1  # not a near-uniform model, where any kernel would pass


TRAINING_VALIDATION_ON_BACKEND = """
import numpy as np, keras, types
from musicgen import evaluate as ev
from musicgen.config import ModelConfig
from musicgen.models import build_model, export_weights
from musicgen.train_callbacks import sequence_metrics
keras.utils.set_random_seed(1)
cfg = ModelConfig(vocab_size=7, cell="gru", embedding_dim=4, units=5, layers=1, dropout=0.0)
model = build_model(cfg)
twin = build_model(cfg, batch_size=3, stateful=True)
twin.set_weights(model.get_weights())
pieces = [np.random.default_rng(0).integers(0, 7, size=n) for n in (2, 9, 5, 13)]
keras_row = sequence_metrics(twin, pieces, 0, chunk=4)
numpy_row = ev.model_scores(types.SimpleNamespace(weights=export_weights(model, cfg), model_config=cfg), pieces)
assert abs(keras_row["val_loss"] - numpy_row["nll_nats"]) < 1e-5, (keras.backend.backend(), keras_row, numpy_row)
assert keras_row["val_events"] == numpy_row["events"] == 25
print("ok")
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_training_validation_equals_evaluate_on_every_backend(backend):
    """Training's chunked, state-carrying Keras validation = evaluate's numpy scores (regression: under JAX,
    predict_on_batch did not carry stateful layers' state from chunk to chunk)."""
    import importlib.util

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", TRAINING_VALIDATION_ON_BACKEND], env=env, capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-2000:]


# ------------------------------------------------------------------------------------------------------ end to end
def _write_corpus(folder, n_pieces=8):
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
    """(bundle folder, token cache folder, tokenizer) for an untrained GRU on eight small MIDI files."""
    from musicgen.corpus import ingest
    from musicgen.tokenizer import Tokenizer

    tmp = tmp_path_factory.mktemp("evaluate")
    _write_corpus(tmp / "music")
    tcfg = TokenizerConfig(velocity_bins=0, programs=False, max_shift_steps=12)
    cache = ingest(tmp / "music", tmp / "cache", tcfg, workers=1, progress=False).out_dir
    tok = Tokenizer(tcfg)
    bundle = make_bundle(tmp / "bundle", tcfg, "gru", units=5, layers=2,
                         train_config=TrainConfig.from_dict({"val_fraction": 0.3, "seed": 0, "transpose": 2}),
                         metrics={"val_nll": None})  # a train_config of before the 3-way split
    return bundle, cache, tok


def test_three_way_split_bundle_reports_its_untouched_test_part(saved, tmp_path):
    bundle, cache, tok = saved
    from musicgen.bundle import load_bundle, save_bundle

    bundle = load_bundle(bundle)
    three = save_bundle(tmp_path / "three", model=bundle.keras_model(), model_config=bundle.model_config,
                        train_config=TrainConfig(val_fraction=0.25, test_fraction=0.25, seed=0, transpose=2),
                        tokenizer_config=bundle.tokenizer_config, metrics={"val_nll": None})
    test = ev.evaluate(three, cache, num_samples=0, max_order=2)
    valid = ev.evaluate(three, cache, split="valid", num_samples=0, max_order=2)
    sp = test["split"]
    assert not sp["legacy"] and sp["name"] == "test" and sp["train"] + sp["valid"] + sp["test"] == 8
    assert sp["valid"] >= 1 and sp["test"] >= 1
    assert valid["split"]["name"] == "valid" and valid["scores"]["model"] != test["scores"]["model"]
    # the legacy bundle (same weights) scored on the three-way bundle's split: the same pieces, the same numbers
    other = ev.evaluate(bundle, cache, num_samples=0, max_order=2, split_of=three)
    assert {k: other["split"][k] for k in ("train", "valid", "test", "legacy", "of")} == \
        {"train": sp["train"], "valid": sp["valid"], "test": sp["test"], "legacy": False, "of": str(three)}
    assert other["scores"]["model"] == test["scores"]["model"]
    foreign = make_bundle(tmp_path / "foreign", TokenizerConfig(), with_keras=False)
    with pytest.raises(UsageError, match="split_of: .* has another tokenizer config"):
        ev.evaluate(bundle, cache, num_samples=0, split_of=foreign)


def test_end_to_end_with_a_saved_bundle(saved):
    from musicgen.corpus import load_tokens

    bundle, cache, tok = saved
    train_piece = load_tokens(cache).pieces[0]
    calls = []

    def copy_a_training_piece(b, num_samples, length, seed, **settings):  # stands in for the sampler: a copycat
        calls.append(settings)
        return [train_piece[:length]] * num_samples

    result = ev.evaluate(bundle, cache, num_samples=2, sample_length=20, max_order=3, copy_n=10, excerpt_length=4,
                         sample_fn=copy_a_training_piece)
    sp = result["split"]
    assert sp["legacy"] and sp["name"] == "test" and sp["train"] + sp["test"] == 8 and sp["valid"] == sp["test"] >= 1
    assert list(result["scores"]) == ["model", "unigram", "kneser_ney"]
    assert result["baselines"]["train_pieces"] == 5 * sp["train"]  # C major fragments move freely by ±2
    untrained = result["scores"]["model"]["nll_nats"]
    assert abs(untrained - math.log(tok.vocab_size)) < 0.1  # an untrained model is close to uniform
    assert result["scores"]["kneser_ney"]["nll_nats"] < result["scores"]["unigram"]["nll_nats"] < untrained
    assert result["margin"] < 0  # the untrained model loses to the n-gram
    assert calls == [ev.SAMPLING["raw"], ev.SAMPLING["rules"]]
    assert calls[0]["allow_eos"] and not calls[0]["well_formed"] and calls[0]["max_note_length"] == 0
    raw = result["samples"]["sets"]["raw"]
    assert raw["stats"]["pitch_in_scale_rate"]["generated_mean"] == 1.0  # C major fragments
    assert raw["memorization"]["copy_rate"] == 1.0
    start = result["start"]  # the start of a piece stays visible (issue: junk first notes from the zero state)
    assert start["first"] == ev.START_EVENTS and not start["has_start_state"]
    assert start["nll_first_start"] == start["nll_first_zero"] and start["events_first"] > 0
    fb = raw["first_beats"]
    assert fb["first_notes"] > 0 and fb["first_share"] == 0.0  # copies of a training piece stay in its range
    assert "start of a piece: first 32 events" in ev.format_table(result)
    assert "notes outside the training pieces' pitch range" in ev.format_table(result)
    assert "accuracy" in raw["two_sample"] or "error" in raw["two_sample"]
    assert "Kneser-Ney" in ev.format_table(result)
    valid = ev.evaluate(bundle, cache, split="valid", num_samples=0, max_order=2)
    assert valid["scores"]["model"] == result["scores"]["model"]  # legacy: valid = test
    with pytest.raises(UsageError, match="num_samples: expected an integer >= 0, got -1"):
        ev.evaluate(bundle, cache, num_samples=-1)
    with pytest.raises(UsageError, match="split: expected 'valid' or 'test', got 'train'"):
        ev.evaluate(bundle, cache, split="train")


def test_one_sample_set_without_baselines(saved):
    bundle, cache, tok = saved
    calls = []

    def fake_sampler(b, num_samples, length, seed, **settings):
        calls.append(settings)
        return [np.array([tok.bos_id, tok.eos_id])] * num_samples

    result = ev.evaluate(bundle, cache, num_samples=2, sample_length=20, excerpt_length=4, sets=("rules",),
                         baselines=False, sample_fn=fake_sampler)
    assert calls == [ev.SAMPLING["rules"]] and list(result["samples"]["sets"]) == ["rules"]
    ev.evaluate(bundle, cache, num_samples=2, sample_length=20, excerpt_length=4, baselines=False,
                sample_fn=fake_sampler, voices=4)  # the voice cap reaches the rules set only
    assert calls[1:] == [ev.SAMPLING["raw"], {**ev.SAMPLING["rules"], "voices": 4}]
    assert ev.SAMPLING["raw"]["voices"] == 0
    assert list(result["scores"]) == ["model"] and "baselines" not in result and "margin" not in result
    model = result["scores"]["model"]
    from musicgen.split import bundle_split
    from musicgen.bundle import load_bundle

    data, parts = bundle_split(load_bundle(bundle), cache)
    notes = sum(len(tok.decode_notes(p)) for p in parts.pieces("test", data.pieces))
    assert model["notes"] == notes > 0
    assert model["nll_nats_per_note"] == pytest.approx(model["nll_nats"] * model["events"] / notes)
    table = ev.format_table(result)
    assert "baselines not fitted" in table and "model per note:" in table and "on-beat onset share" in table
    with pytest.raises(UsageError, match=r"sets: expected names from \['raw', 'rules'\], got \['greedy'\]"):
        ev.evaluate(bundle, cache, num_samples=1, sets=("greedy",))


def _digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cli_writes_nothing_in_the_bundle_unless_saved(saved, tmp_path, capsys):
    from musicgen.bundle import load_bundle
    from musicgen.cli import main

    bundle, cache, _ = saved
    before = _digests(bundle)
    out = tmp_path / "report.json"
    argv = ["evaluate", str(bundle), str(cache), "--num-samples", "2", "--length", "24", "--seed", "3",
            "--max-order", "2", "--excerpt-length", "8", "--json", str(out), "--plot", str(tmp_path / "plots")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Kneser-Ney 2-gram" in printed and "pitch-class histogram" in printed and str(out) in printed
    assert _digests(bundle) == before  # byte-identical, nothing added
    report = json.loads(out.read_text())
    assert {k: report["samples"][k] for k in ("num_samples", "length", "seed")} == \
        {"num_samples": 2, "length": 24, "seed": 3}
    assert (tmp_path / "plots" / "features.png").is_file()
    assert main(argv[:3] + ["--num-samples", "0"]) == 0
    assert "samples:" not in capsys.readouterr().out and _digests(bundle) == before

    copy = shutil.copytree(bundle, tmp_path / "copy")
    assert main(["evaluate", str(copy), str(cache), "--num-samples", "0", "--max-order", "2", "--save"]) == 0
    assert "evaluation.json (checksum in bundle.json)" in capsys.readouterr().out
    saved_report = json.loads((copy / "evaluation.json").read_text())
    assert saved_report["scores"]["model"] == report["scores"]["model"]  # likelihoods are deterministic
    assert "evaluation.json" in load_bundle(copy).info["files"]  # and the bundle still verifies
    assert main(["evaluate", str(bundle), str(cache), "--max-order", "0"]) == 2  # UsageError → exit 2
    assert "max_order: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_evaluate_does_not_import_tensorflow_or_keras(saved):
    bundle, cache, _ = saved
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "musicgen", "evaluate", str(bundle), str(cache),
                          "--num-samples", "2", "--length", "16", "--max-order", "2", "--excerpt-length", "8"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    modules = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "musicgen.evaluate" in modules and "musicgen.scoring" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in ("tensorflow", "keras", "jax", "torch"))
    assert heavy == [], heavy[:5]


def test_musicgen_evaluate_is_callable_however_it_was_imported(tmp_path):
    """After ``import musicgen.evaluate`` the package attribute is the module: calling it still evaluates."""
    import musicgen
    import musicgen.evaluate as module
    from musicgen import evaluate
    from musicgen.errors import UsageError

    assert evaluate is module and musicgen.evaluate is module and callable(evaluate)
    with pytest.raises(UsageError) as direct:
        module.evaluate(tmp_path / "missing", tmp_path)
    with pytest.raises(UsageError) as through:
        evaluate(tmp_path / "missing", tmp_path)
    assert str(through.value) == str(direct.value)
    assert evaluate.piece_scores is module.piece_scores
