"""musicgen.models: layer names and shapes, the numpy export layout (shapes worked out by hand per cell), errors.

Training is tested in tests/test_train.py (including the cuDNN-eligible layer settings), the numpy step kernels that
read the export in tests/test_sampler.py.
"""

import numpy as np
import pytest

from musicgen.config import CELLS, ModelConfig
from musicgen.models import GATES, build_model, copy_weights, expected_weight_shapes, export_weights, import_weights


def _cfg(cell, **changes):
    return ModelConfig(**{**dict(vocab_size=11, cell=cell, embedding_dim=3, units=5, layers=2, dropout=0.0),
                          **changes})


def test_gates_cover_every_cell():
    assert GATES == {"lstm": 4, "gru": 3, "simple_rnn": 1} and set(GATES) == set(CELLS)


@pytest.mark.parametrize("cell, kernel, bias", [("lstm", 20, (20,)), ("gru", 15, (2, 15)), ("simple_rnn", 5, (5,))])
def test_export_layout_by_hand(cell, kernel, bias):
    # V=11, E=3, n=5; gates 4 / 3 / 1 → 20 / 15 / 5 columns; GRU keeps input and recurrent biases apart
    assert expected_weight_shapes(_cfg(cell)) == {
        "embedding": (11, 3), "rnn_0_kernel": (3, kernel), "rnn_0_recurrent_kernel": (5, kernel), "rnn_0_bias": bias,
        "rnn_1_kernel": (5, kernel), "rnn_1_recurrent_kernel": (5, kernel), "rnn_1_bias": bias,
        "logits_kernel": (5, 11), "logits_bias": (11,)}


@pytest.mark.parametrize("cell", CELLS)
def test_built_model_exports_what_the_layout_promises(cell):
    cfg = _cfg(cell, dropout=0.25)
    model = build_model(cfg)
    names = [layer.name for layer in model.layers]
    assert names == ["tokens", "embedding", "rnn_0", "dropout_0", "rnn_1", "dropout_1", "logits"]
    assert model.name == f"musicgen_{cell}"
    weights = export_weights(model, cfg)
    assert {k: v.shape for k, v in weights.items()} == expected_weight_shapes(cfg)
    assert all(v.dtype == np.float32 for v in weights.values())
    logits = np.asarray(model(np.array([[1, 4, 9]], np.int32)))
    assert logits.shape == (1, 3, 11)


def test_copy_weights_makes_a_stateful_twin_compute_the_same():
    cfg = _cfg("gru")
    plain, stateful = build_model(cfg), build_model(cfg, batch_size=2, stateful=True)
    copy_weights(plain, stateful)
    tokens = np.array([[1, 4, 9, 2], [3, 3, 5, 2]], np.int32)
    np.testing.assert_allclose(np.asarray(stateful(tokens)), np.asarray(plain(tokens)), rtol=1e-5, atol=1e-6)
    for key, value in export_weights(plain, cfg).items():
        np.testing.assert_array_equal(export_weights(stateful, cfg)[key], value)


def test_stateful_needs_a_batch_size():
    with pytest.raises(ValueError, match="stateful models need a fixed batch_size, got None"):
        build_model(_cfg("lstm"), stateful=True)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("context", [(), (4, 3)])
def test_import_weights_is_the_inverse_of_export(cell, context):
    cfg = _cfg(cell, context=context)
    rng = np.random.default_rng(0)
    weights = {k: rng.standard_normal(shape).astype(np.float32) for k, shape in expected_weight_shapes(cfg).items()}
    model = build_model(cfg, batch_size=2, stateful=True)
    import_weights(model, cfg, weights)
    for key, value in export_weights(model, cfg).items():
        np.testing.assert_array_equal(value, weights[key])


def test_import_weights_names_a_wrong_or_missing_array():
    cfg = _cfg("gru")
    weights = {k: np.zeros(shape, np.float32) for k, shape in expected_weight_shapes(cfg).items()}
    model = build_model(cfg)
    with pytest.raises(ValueError, match=r"weights\['logits_bias'\]: expected shape \(11,\), got \(12,\)"):
        import_weights(model, cfg, {**weights, "logits_bias": np.zeros(12, np.float32)})
    del weights["rnn_1_bias"]
    with pytest.raises(ValueError, match=r"weights\['rnn_1_bias'\]: expected shape \(2, 15\), got None"):
        import_weights(model, cfg, weights)
