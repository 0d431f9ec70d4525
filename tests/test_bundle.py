import json
import subprocess
import sys

import numpy as np
import pytest

from musicgen.bundle import load_bundle, save_bundle
from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
from musicgen.errors import BundleError
from musicgen.safeio import sha256_file


@pytest.fixture(scope="module")
def parts():
    from musicgen.models import build_model
    from musicgen.tokenizer import Tokenizer

    tok_cfg = TokenizerConfig(velocity_bins=4, programs=False, max_shift_steps=8)
    cfg = ModelConfig(vocab_size=Tokenizer(tok_cfg).vocab_size, cell="gru", embedding_dim=4, units=6, layers=2,
                      dropout=0.0)
    return dict(model=build_model(cfg), model_config=cfg, train_config=TrainConfig(epochs=1),
                tokenizer_config=tok_cfg, metrics={"val_nll": 1.5})


@pytest.fixture
def bundle_dir(tmp_path, parts):
    return save_bundle(tmp_path / "b", **parts)


def _rehash(path):
    info = json.loads((path / "bundle.json").read_text())
    info["files"] = {name: sha256_file(path / name) for name in info["files"]}
    (path / "bundle.json").write_text(json.dumps(info))


def test_round_trip(bundle_dir, parts):
    from musicgen.models import export_weights

    b = load_bundle(bundle_dir)
    assert b.model_config == parts["model_config"]
    assert b.train_config == parts["train_config"]
    assert b.tokenizer_config == parts["tokenizer_config"]
    assert b.metrics == {"val_nll": 1.5}
    assert b.info["format_version"] == 1 and b.info["cell"] == "gru"
    for key, value in export_weights(parts["model"], parts["model_config"]).items():
        np.testing.assert_array_equal(b.weights[key], value)
    tokens = np.array([[1, 5, 7, 2]], dtype=np.int32)
    np.testing.assert_allclose(np.asarray(b.keras_model()(tokens)), np.asarray(parts["model"](tokens)), rtol=1e-6)


def test_load_does_not_import_tensorflow(bundle_dir):
    code = (f"import sys; from musicgen.bundle import load_bundle; b = load_bundle({str(bundle_dir)!r}); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_path_and_missing_part(tmp_path, bundle_dir):
    with pytest.raises(BundleError, match="model not found"):
        load_bundle(tmp_path / "nope")
    (bundle_dir / "weights.npz").unlink()
    with pytest.raises(BundleError, match="missing weights.npz"):
        load_bundle(bundle_dir)


def test_tampered_file_is_detected(bundle_dir):
    (bundle_dir / "metrics.json").write_text('{"val_nll": 0.01}')
    with pytest.raises(BundleError, match="metrics.json does not match its checksum"):
        load_bundle(bundle_dir)


def test_vocab_mismatch_is_refused(bundle_dir):
    (bundle_dir / "tokenizer.json").write_text(TokenizerConfig(velocity_bins=8, programs=False).to_json())
    _rehash(bundle_dir)
    with pytest.raises(BundleError, match="output classes but the tokenizer has"):
        load_bundle(bundle_dir)


def test_pickled_array_is_refused(bundle_dir):
    with np.load(bundle_dir / "weights.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["embedding"] = np.array([object()], dtype=object)
    np.savez(bundle_dir / "weights.npz", **arrays)
    _rehash(bundle_dir)
    with pytest.raises(BundleError, match="refused"):
        load_bundle(bundle_dir)


def test_lambda_layer_is_refused(tmp_path, parts):
    import keras

    inputs = keras.Input((None,), dtype="int32")
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = save_bundle(tmp_path / "lam", **parts)
    keras.Model(inputs, outputs).save(path / "model.keras")
    _rehash(path)
    with pytest.raises(BundleError, match="cannot be loaded safely"):
        load_bundle(path).keras_model()


def test_failed_save_keeps_the_old_bundle_and_extra_entries(bundle_dir, parts):
    (bundle_dir / "checkpoints").mkdir()
    (bundle_dir / "checkpoints" / "last.json").write_text("{}")
    before = (bundle_dir / "bundle.json").read_text()

    class Broken:
        def save(self, path):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_bundle(bundle_dir, **{**parts, "model": Broken()})
    assert (bundle_dir / "bundle.json").read_text() == before
    load_bundle(bundle_dir)
    assert not [p for p in bundle_dir.parent.iterdir() if p.name.startswith(".")]

    save_bundle(bundle_dir, **{**parts, "metrics": {"val_nll": 1.0}})
    assert load_bundle(bundle_dir).metrics == {"val_nll": 1.0}
    assert (bundle_dir / "checkpoints" / "last.json").exists()


def test_write_bundle_file_records_its_checksum(bundle_dir):
    from musicgen.bundle import write_bundle_file

    before = {p.name: p.read_bytes() for p in bundle_dir.iterdir()}
    path = write_bundle_file(bundle_dir, "evaluation.json", '{"a": 1}\n')
    assert path.read_text() == '{"a": 1}\n'
    info = json.loads((bundle_dir / "bundle.json").read_text())
    assert info["files"]["evaluation.json"] == sha256_file(path)
    assert {n: b for n, b in before.items() if n != "bundle.json"} == \
        {p.name: p.read_bytes() for p in bundle_dir.iterdir() if p.name not in ("bundle.json", "evaluation.json")}
    load_bundle(bundle_dir)  # still verifies
    path.write_text('{"a": 2}\n')
    with pytest.raises(BundleError, match="evaluation.json does not match its checksum"):
        load_bundle(bundle_dir)
    with pytest.raises(BundleError, match="name: expected one of"):
        write_bundle_file(bundle_dir, "model.keras", "x")
    assert not [p for p in bundle_dir.iterdir() if p.name.startswith(".")]  # no temporary left
