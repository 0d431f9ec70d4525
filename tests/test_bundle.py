import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import rehash
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
    rehash(bundle_dir)
    with pytest.raises(BundleError, match="output classes but the tokenizer has"):
        load_bundle(bundle_dir)


def test_pickled_array_is_refused(bundle_dir):
    with np.load(bundle_dir / "weights.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["embedding"] = np.array([object()], dtype=object)
    np.savez(bundle_dir / "weights.npz", **arrays)
    rehash(bundle_dir)
    with pytest.raises(BundleError, match="refused"):
        load_bundle(bundle_dir)


def test_lambda_layer_is_refused(tmp_path, parts):
    import keras

    inputs = keras.Input((None,), dtype="int32")
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = save_bundle(tmp_path / "lam", **parts)
    keras.Model(inputs, outputs).save(path / "model.keras")
    rehash(path)
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


def test_update_metrics_adds_fields_and_keeps_the_bundle_verifying(bundle_dir):
    from musicgen.bundle import update_metrics

    old = load_bundle(bundle_dir).metrics
    assert update_metrics(bundle_dir, voice_pieces={"4": 3}) == {**old, "voice_pieces": {"4": 3}}
    assert load_bundle(bundle_dir).metrics == {**old, "voice_pieces": {"4": 3}}  # verifies the new checksum
    info = json.loads((bundle_dir / "bundle.json").read_text())
    assert info["files"]["metrics.json"] == sha256_file(bundle_dir / "metrics.json")
    assert not [p for p in bundle_dir.iterdir() if p.name.startswith(".")]  # no temporary left


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftover(bundle_dir, parts, kind, pid, metrics=None):
    """What a killed save leaves: ``.b.tmp-PID`` (a whole new bundle) or ``.b.old-PID`` (the old bundle)."""
    import shutil

    path = bundle_dir.parent / f".{bundle_dir.name}.{kind}-{pid}"
    if metrics is None:
        shutil.copytree(bundle_dir, path)
    else:
        save_bundle(path, **{**parts, "metrics": metrics})
    return path


def test_checkpoints_left_in_an_interrupted_save_are_recovered_at_the_next_save(bundle_dir, parts, capsys):
    """Killed inside _swap_in after checkpoints/ moved into the new bundle's folder, before the exchange."""
    tmp = _leftover(bundle_dir, parts, "tmp", _dead_pid(), metrics={"val_nll": 1.2})
    (tmp / "checkpoints").mkdir()
    (tmp / "checkpoints" / "state.json").write_text('{"epochs_done": 3}')
    (tmp / "logs").mkdir()
    save_bundle(bundle_dir, **{**parts, "metrics": {"val_nll": 1.1}})
    assert (bundle_dir / "checkpoints" / "state.json").read_text() == '{"epochs_done": 3}'
    assert (bundle_dir / "logs").is_dir() and load_bundle(bundle_dir).metrics == {"val_nll": 1.1}
    assert [p.name for p in bundle_dir.parent.iterdir()] == ["b"]
    err = capsys.readouterr().err
    assert f"recovered checkpoints/, logs/ from an interrupted save ({tmp.name})" in err


def test_a_save_killed_between_the_fallback_renames_is_finished(bundle_dir, parts, capsys):
    """No renameat2: out_dir → .old, then .tmp → out_dir; killed between, out_dir is missing."""
    from musicgen.bundle import recover_interrupted_save

    pid = _dead_pid()
    old = _leftover(bundle_dir, parts, "old", pid)
    tmp = _leftover(bundle_dir, parts, "tmp", pid, metrics={"val_nll": 0.9})
    (tmp / "checkpoints").mkdir()
    import shutil

    shutil.rmtree(bundle_dir)
    messages = recover_interrupted_save(bundle_dir)
    assert load_bundle(bundle_dir).metrics == {"val_nll": 0.9} and (bundle_dir / "checkpoints").is_dir()
    assert [p.name for p in bundle_dir.parent.iterdir()] == ["b"]
    assert messages[0].endswith(f"finished an interrupted save (renamed {tmp.name} to b)")
    assert f"removed {old.name}" in messages[1]


def test_a_live_save_s_folder_is_left_alone(bundle_dir, parts):
    import os

    from musicgen.bundle import recover_interrupted_save

    live = _leftover(bundle_dir, parts, "tmp", os.getppid())  # a running process: its save may be in progress
    assert recover_interrupted_save(bundle_dir) == [] and live.is_dir()


def test_ctrl_c_during_the_swap_keeps_the_runs_checkpoints(bundle_dir, parts, monkeypatch):
    from musicgen import bundle as bundle_mod

    (bundle_dir / "checkpoints").mkdir()
    (bundle_dir / "checkpoints" / "state.json").write_text("{}")

    def interrupted(a, b):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_mod, "_exchange", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_bundle(bundle_dir, **{**parts, "metrics": {"val_nll": 1.0}})
    assert (bundle_dir / "checkpoints" / "state.json").read_text() == "{}"
    assert load_bundle(bundle_dir).metrics == {"val_nll": 1.5}
    assert [p.name for p in bundle_dir.parent.iterdir()] == ["b"]


def test_a_model_context_that_does_not_match_the_tokenizer_is_refused(tmp_path):
    from musicgen.context import context_sizes
    from musicgen.models import build_model
    from musicgen.tokenizer import Tokenizer

    tok_cfg = TokenizerConfig(velocity_bins=4, programs=False, max_shift_steps=8, meter=True, key="token")
    cfg = ModelConfig(vocab_size=Tokenizer(tok_cfg).vocab_size, cell="gru", embedding_dim=4, units=6, layers=1,
                      dropout=0.0, context=context_sizes(tok_cfg))
    path = save_bundle(tmp_path / "ctx", model=build_model(cfg), model_config=cfg, train_config=TrainConfig(),
                       tokenizer_config=tok_cfg, metrics={})
    bundle = load_bundle(path)
    assert bundle.model_config.context == (25, 17, 3, 25) and bundle.weights["context_3"].shape == (25, 4)
    assert json.loads((path / "model_config.json").read_text())["context"] == [25, 17, 3, 25]
    (path / "tokenizer.json").write_text(tok_cfg.replace(steps_per_quarter=4).to_json())
    rehash(path)
    with pytest.raises(BundleError, match=r"model context \[25, 17, 3, 25\] does not match the tokenizer's "
                                          r"\[9, 17, 3, 25\]"):
        load_bundle(path)
