"""Exact RTRL: gradients against TensorFlow autodiff (float64), sizes, budget refusal, the trainer and its loop."""

import numpy as np
import pytest

from musicgen import rtrl
from musicgen.config import ModelConfig
from musicgen.errors import UsageError

CELLS = ["simple_rnn", "gru", "lstm"]


def _cfg(cell, vocab=7, emb=3, units=4):
    return ModelConfig(vocab_size=vocab, cell=cell, embedding_dim=emb, units=units, layers=1, dropout=0.0)


def _random_weights(cfg, seed):
    """Weights far from the initializer (biases and the embedding included) so every gradient term is exercised."""
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0.0, 0.6, a.shape) for k, a in rtrl.init_weights(cfg, seed, "float64").items()}


def _relative_error(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _keras_loss_and_grads(cfg, weights, tokens):
    """Summed cross-entropy of tokens[1:] and its gradient by tf.GradientTape on build_model(cfg), float64."""
    import keras
    import tensorflow as tf

    from musicgen.models import build_model, export_weights

    old, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # floatx alone does not reach a global policy already in use
    try:
        model = build_model(cfg)
        model.set_weights(rtrl.to_keras_weights(weights, cfg, dtype="float64"))
        inputs = tf.constant(tokens[None, :-1], dtype=tf.int32)
        labels = tf.constant(tokens[None, 1:], dtype=tf.int32)
        with tf.GradientTape() as tape:
            logits = model(inputs)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        keys = {}  # each trainable variable's key in the export layout, by identity
        for key, layer, attr in [("embedding", "embedding", "embeddings"), ("rnn_0_kernel", "rnn_0", "kernel"),
                                 ("rnn_0_recurrent_kernel", "rnn_0", "recurrent_kernel"),
                                 ("rnn_0_bias", "rnn_0", "bias"), ("logits_kernel", "logits", "kernel"),
                                 ("logits_bias", "logits", "bias")]:
            obj = model.get_layer(layer)
            var = getattr(obj.cell if layer == "rnn_0" else obj, attr)
            keys[id(var)] = key
        exported = export_weights(model, cfg)
        assert sorted(exported) == sorted(weights)
        grads = [np.asarray(tf.convert_to_tensor(g)) for g in grads]  # the embedding's arrives as IndexedSlices
        return float(loss), {keys[id(v)]: g for v, g in zip(model.trainable_variables, grads)}
    finally:
        keras.config.set_floatx(old)
        keras.config.set_dtype_policy(old_policy)


@pytest.mark.parametrize("cell", CELLS)
def test_rtrl_gradient_equals_tensorflow_bptt(cell):
    cfg = _cfg(cell)
    weights = _random_weights(cfg, seed=3)
    tokens = np.random.default_rng(4).integers(0, cfg.vocab_size, 13)  # 12 predicted events
    loss, expected = _keras_loss_and_grads(cfg, weights, tokens)
    got = rtrl.rtrl_gradient(weights, cfg, tokens)
    assert set(got) == set(expected)
    for key, grad in expected.items():
        assert got[key].shape == grad.shape, key
        assert np.linalg.norm(grad) > 1e-3, key  # a real, non-vanishing gradient
        assert _relative_error(got[key], grad) <= 1e-8, (key, _relative_error(got[key], grad))
    # the numpy forward and the numpy BPTT agree with the same numbers
    nll, count = rtrl.sequence_nll(weights, cfg, [tokens])
    assert count == 12 and nll * count == pytest.approx(loss, rel=1e-12)
    bptt = rtrl.bptt_gradient(weights, cfg, tokens)
    for key, grad in expected.items():
        assert _relative_error(bptt[key], grad) <= 1e-8, key


def test_to_keras_weights_float32_logits_match_numpy():
    import tensorflow as tf

    from musicgen.models import build_model

    cfg = _cfg("gru", vocab=9, emb=5, units=6)
    weights = rtrl.init_weights(cfg, seed=5)
    model = build_model(cfg)
    model.set_weights(rtrl.to_keras_weights(weights, cfg))
    tokens = np.array([1, 4, 8, 0, 2, 2, 7])
    logits = np.asarray(model(tf.constant(tokens[None, :-1])))[0]
    expected = -np.take_along_axis(tf.nn.log_softmax(logits).numpy(), tokens[1:, None], 1).mean()
    assert rtrl.sequence_nll(weights, cfg, [tokens])[0] == pytest.approx(expected, rel=1e-5)


def test_influence_sizes_by_hand():
    # SimpleRNN: P = E·n + n·n + n + V·E = 88·64 + 64·64 + 64 + 10·88 = 10672; one state block; float32
    assert rtrl.influence_params(_cfg("simple_rnn", vocab=10, emb=88, units=64)) == 10672
    assert rtrl.influence_bytes(_cfg("simple_rnn", vocab=10, emb=88, units=64), "float32") == 64 * 10672 * 4
    # GRU (V=7, E=3, n=4): 3·12 + 4·12 + 2·12 + 7·3 = 129 columns, 4 rows, float64
    assert rtrl.influence_bytes(_cfg("gru")) == 4 * 129 * 8
    # LSTM: 3·16 + 4·16 + 16 + 21 = 149 columns, 2 state blocks (h, c) of 4 rows
    assert rtrl.influence_bytes(_cfg("lstm")) == 2 * 4 * 149 * 8


def test_budget_refusal_quotes_the_size():
    cfg = _cfg("gru", vocab=100, emb=32, units=128)
    size = rtrl.influence_bytes(cfg, "float32")  # 128 · (3·128·(32+128+2) + 3200) · 4 bytes
    assert size == 128 * (3 * 128 * 162 + 3200) * 4 == 33488896
    with pytest.raises(UsageError, match=r"128-unit gru .* needs 31\.9 MiB \(33488896 bytes, float32\), over the "
                                         r"budget of 16\.0 MiB"):
        rtrl.RtrlTrainer(cfg, budget_bytes=16 * 2**20)
    rtrl.check_budget(cfg, 32 * 2**20, "float32")  # fits
    with pytest.raises(UsageError, match="layers: .* got 2"):
        rtrl.check_budget(cfg.replace(layers=2))
    with pytest.raises(UsageError, match="dropout: .* got 0.1"):
        rtrl.check_budget(cfg.replace(dropout=0.1))


def test_trainer_accumulates_the_exact_gradient_and_takes_an_adam_step():
    cfg = _cfg("lstm")
    weights = _random_weights(cfg, seed=8)
    tokens = np.array([0, 3, 6, 1, 1, 5, 2, 4, 0])
    trainer = rtrl.RtrlTrainer(cfg, weights, learning_rate=0.01, update_every=100, clipnorm=None, dtype="float64")
    losses = [trainer.step(a, b) for a, b in zip(tokens[:-1], tokens[1:])]
    assert sum(losses) == pytest.approx(rtrl.sequence_nll(weights, cfg, [tokens])[0] * 8, rel=1e-12)
    assert trainer.pending == 8 and trainer.updates == 0
    expected = rtrl.bptt_gradient(weights, cfg, tokens)
    got = {**rtrl._unflatten(cfg, trainer.g_flat), **trainer.g_out}
    for key in expected:
        assert _relative_error(got[key], expected[key]) <= 1e-10, key
    trainer.flush()  # Adam's first step (Keras form) moves every weight by lr·g/(|g| + ε/√(1−β2)): ≈ 0.01·sign(g)
    assert trainer.updates == 1 and trainer.pending == 0
    step = trainer.params["rnn_0_kernel"] - weights["rnn_0_kernel"]
    mean_grad = expected["rnn_0_kernel"] / 8
    np.testing.assert_allclose(step, -0.01 * mean_grad / (np.abs(mean_grad) + 1e-7 / np.sqrt(1e-3)), rtol=1e-9)


def test_update_every_k_steps():
    cfg = _cfg("simple_rnn")
    trainer = rtrl.RtrlTrainer(cfg, learning_rate=0.01, update_every=3, seed=1)
    before = trainer.weights
    trainer.step(1, 2)
    trainer.step(2, 3)
    assert trainer.updates == 0 and np.array_equal(trainer.weights["logits_bias"], before["logits_bias"])
    trainer.step(3, 4)
    assert trainer.updates == 1 and not np.array_equal(trainer.weights["logits_bias"], before["logits_bias"])
    assert all(a.dtype == np.float32 for a in trainer.weights.values())
    with pytest.raises(UsageError, match="update_every: .* got 0"):
        rtrl.RtrlTrainer(cfg, update_every=0)


def test_training_lowers_the_loss_and_is_deterministic():
    cfg = _cfg("gru", vocab=8, emb=4, units=8)
    pieces = [np.array([0] + [1, 2, 3, 4, 5, 6] * 6 + [7]), np.array([0] + [1, 2, 3, 4, 5, 6] * 4 + [7])]
    start = rtrl.sequence_nll(rtrl.init_weights(cfg, 0), cfg, pieces[1:])[0]
    assert start == pytest.approx(np.log(8), abs=0.05)
    lines = []
    result = rtrl.train_rtrl(pieces[:1], cfg, val_pieces=pieces[1:], epochs=4, learning_rate=0.02, update_every=4,
                             report_every=10, log=lines.append)
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert result.history[-1]["train_nll"] < result.history[0]["train_nll"]
    assert result.val_nll < 0.5 * start
    assert result.events == 4 * 37
    assert sum("running NLL" in line for line in lines) == 148 // 10
    again = rtrl.train_rtrl(pieces[:1], cfg, val_pieces=pieces[1:], epochs=4, learning_rate=0.02, update_every=4,
                            report_every=0, log=None)
    for key in result.weights:
        np.testing.assert_array_equal(again.weights[key], result.weights[key])


def test_online_mode_streams_once_and_reports_running_nll():
    cfg = _cfg("simple_rnn", vocab=6, emb=3, units=5)
    pieces = [np.array([0, 1, 2, 3, 4, 1, 2, 3, 4, 5])] * 3
    lines = []
    result = rtrl.train_rtrl(pieces, cfg, online=True, epochs=5, report_every=9, log=lines.append)
    assert result.events == 27 and len(result.history) == 1
    assert [line.split(":")[1].strip() for line in lines[:3]] == ["epoch 1 events 9", "epoch 1 events 18",
                                                                  "epoch 1 events 27"]
    with pytest.raises(UsageError, match="pieces: "):
        rtrl.train_rtrl([np.array([0])], cfg)
