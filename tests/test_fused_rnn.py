"""musicgen.fused_rnn: the fused layers give the stock Keras layers' outputs and gradients (1e-5), keep their weights,
take the fused loop only where it applies, and round-trip through .keras files. TensorFlow in process; JAX in a
subprocess (Keras fixes its backend at import)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras

from musicgen import fused_rnn
from musicgen.config import ModelConfig
from musicgen.fused_rnn import FUSED, fused_applies
from musicgen.models import build_model, export_weights

ROOT = Path(__file__).resolve().parents[1]
STOCK = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}
CELLS = ("lstm", "gru", "simple_rnn")
TOL = 1e-5


def _pair(cell: str, stateful: bool):
    """A fused and a stock one-layer model (batch 3, 4 features → 5 units) with the same random weights."""
    inputs = keras.Input(batch_shape=(3, None, 4))
    kwargs = dict(units=5, return_sequences=True, stateful=stateful)
    fused = keras.Model(inputs, FUSED[cell](**kwargs)(inputs))
    stock = keras.Model(inputs, STOCK[cell](**kwargs)(inputs))
    rng = np.random.default_rng(1)
    weights = [rng.normal(0.0, 0.7, w.shape).astype("float32") for w in stock.get_weights()]
    fused.set_weights(weights)
    stock.set_weights(weights)
    return fused, stock


def _loss_and_grads(model, x, w):
    """``sum(model(x) * w)`` and its gradients w.r.t. the input and the trainable weights, as numpy arrays."""
    if keras.backend.backend() == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        def loss(tv, xs):
            y, new_frozen = model.stateless_call(tv, frozen, xs)
            return jnp.sum(y * w), (y, new_frozen)

        (_, (y, new_frozen)), (gw, gx) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(trainable, x)
        for variable, value in zip(model.non_trainable_variables, new_frozen):
            variable.assign(value)  # the carried state, as a stateful call leaves it
        return np.asarray(y), [np.asarray(gx)] + [np.asarray(g) for g in gw]
    import tensorflow as tf

    xs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xs)
        y = model(xs)
        loss = tf.reduce_sum(y * w)
    grads = tape.gradient(loss, [xs] + list(model.trainable_variables))
    return np.asarray(y), [np.asarray(g) for g in grads]


def max_differences(cell: str, stateful: bool) -> list[float]:
    """Largest |fused - stock| of outputs and of every gradient, per call (two calls: the second starts from the
    state the first left when ``stateful``), each divided by max(1, largest |stock|): gradients summed over the
    window reach ~10, where float32 rounding alone is ~1e-6 absolute (JAX's SimpleRNN kernel gradient: 1.1e-5)."""
    fused, stock = _pair(cell, stateful)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(2):
        x = rng.normal(size=(3, 7, 4)).astype("float32")
        w = rng.normal(size=(3, 7, 5)).astype("float32")
        (y_f, g_f), (y_s, g_s) = _loss_and_grads(fused, x, w), _loss_and_grads(stock, x, w)
        out += [float(np.abs(a - b).max() / max(1.0, np.abs(b).max())) for a, b in zip([y_f] + g_f, [y_s] + g_s)]
    return out


@pytest.mark.parametrize("stateful", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_outputs_and_gradients_equal_the_stock_layer(cell, stateful):
    differences = max_differences(cell, stateful)
    assert len(differences) == 2 * (1 + 1 + 3)  # output, d/dx, d/d(kernel, recurrent kernel, bias), two calls
    assert max(differences) < TOL, differences


def test_stateful_state_carries_like_the_stock_layer():
    fused, stock = _pair("lstm", stateful=True)
    x = np.random.default_rng(2).normal(size=(3, 4, 4)).astype("float32")
    fused(x), stock(x)
    for a, b in zip(fused.layers[1].states, stock.layers[1].states):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=TOL)
    assert np.abs(np.asarray(fused.layers[1].states[0])).max() > 0.01  # a state was carried, not zeros


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax_backend_equals_the_stock_layer():
    code = ("import json, sys; sys.path.insert(0, 'tests'); from test_fused_rnn import max_differences; "
            "print(json.dumps({f'{c} {s}': max(max_differences(c, s)) for c in ('lstm', 'gru', 'simple_rnn') "
            "for s in (False, True)}))")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    differences = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(differences) == 6 and max(differences.values()) < TOL, differences


@pytest.mark.parametrize("cell", CELLS)
def test_the_fused_loop_runs_on_cpu(cell, monkeypatch):
    calls = []
    for name in ("_loop", "_tf_lstm", "_tf_gru"):
        real = getattr(fused_rnn, name)
        monkeypatch.setattr(fused_rnn, name, lambda *a, real=real, name=name: calls.append(name) or real(*a))
    layer = FUSED[cell](units=5, return_sequences=True)
    layer(np.zeros((2, 3, 4), "float32"))
    tf_path = {"lstm": "_tf_lstm", "gru": "_tf_gru"}.get(cell, "_loop")
    assert calls == [tf_path if keras.backend.backend() == "tensorflow" else "_loop"]


@pytest.mark.parametrize("forward", ["loop", None])
@pytest.mark.parametrize("stateful", [False, True])
def test_other_tensorflow_paths_equal_the_stock_layer(forward, stateful, monkeypatch):
    """The defaults (``tf_rnn``; LSTM with the ``BlockLSTMV2`` forward) are covered above; here the LSTM's loop
    forward and Keras' autodiff of the fused loops (``TF_LSTM_FORWARD=None``, ``TF_GRU=False``)."""
    monkeypatch.setattr(fused_rnn, "TF_LSTM_FORWARD", forward)
    assert max(max_differences("lstm", stateful)) < TOL
    if forward is None:
        monkeypatch.setattr(fused_rnn, "TF_GRU", False)
        assert max(max_differences("gru", stateful)) < TOL


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_tf_rnn_path_is_skipped_where_it_does_not_apply(cell, monkeypatch):
    layer = FUSED[cell](units=5)
    x = np.zeros((2, 3, 4), "float32")
    assert fused_rnn.tf_rnn_applies(layer, x) == (keras.backend.backend() == "tensorflow")
    assert not fused_rnn.tf_rnn_applies(FUSED[cell](units=5, activation="relu"), x)
    assert not fused_rnn.tf_rnn_applies(FUSED[cell](units=5, recurrent_activation="hard_sigmoid"), x)
    assert not fused_rnn.tf_rnn_applies(layer, x.astype("float16"))
    monkeypatch.setattr(fused_rnn, {"lstm": "TF_LSTM_FORWARD", "gru": "TF_GRU"}[cell], None)
    assert not fused_rnn.tf_rnn_applies(layer, x)


@pytest.mark.parametrize("kwargs", [dict(go_backwards=True), dict(dropout=0.2), dict(recurrent_dropout=0.2),
                                    dict(use_bias=False), dict(unroll=True)])
def test_settings_the_fused_loop_does_not_cover_run_the_stock_loop(kwargs):
    layer = FUSED["lstm"](units=5, **kwargs)
    assert not fused_applies(layer, None)
    assert fused_applies(FUSED["lstm"](units=5), None)
    assert not fused_applies(FUSED["lstm"](units=5), np.ones((2, 3), bool))
    assert not fused_applies(FUSED["gru"](units=5, reset_after=False), None)


def test_masked_input_falls_back_and_still_equals_stock():
    fused, stock = _pair("gru", stateful=False)
    x = np.random.default_rng(3).normal(size=(3, 6, 4)).astype("float32")
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], bool)
    y_f = fused.layers[1](x, mask=mask)
    y_s = stock.layers[1](x, mask=mask)
    np.testing.assert_allclose(np.asarray(y_f), np.asarray(y_s), atol=TOL)


@pytest.mark.parametrize("cell", CELLS)
def test_build_model_keeps_the_stock_weights(cell):
    cfg = ModelConfig(vocab_size=11, cell=cell, embedding_dim=4, units=6, layers=2)
    fused, stock = build_model(cfg), build_model(cfg, fused=False)
    assert type(fused.get_layer("rnn_0")) is FUSED[cell] and type(stock.get_layer("rnn_0")) is STOCK[cell]
    assert [(v.path, v.shape) for v in fused.weights] == [(v.path, v.shape) for v in stock.weights]
    stock.set_weights(fused.get_weights())
    a, b = export_weights(fused, cfg), export_weights(stock, cfg)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_keras_file_round_trip_in_safe_mode(tmp_path):
    cfg = ModelConfig(vocab_size=11, cell="gru", embedding_dim=4, units=6, layers=1)
    model = build_model(cfg)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.get_layer("rnn_0")) is FUSED["gru"]
    x = np.array([[1, 2, 3, 4]], "int32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
