"""Gradient measurements: parameter counts by hand, the input-gradient profile against a numpy backprop, slopes of
hand-made profiles, and clipping bounds on a real optimizer step."""

import numpy as np
import pytest

from musicgen import gradients as g
from musicgen.config import ModelConfig
from musicgen.errors import UsageError

CELLS = ["simple_rnn", "gru", "lstm"]


def _tiny(cell: str, units: int = 3) -> ModelConfig:
    return ModelConfig(vocab_size=10, cell=cell, embedding_dim=4, units=units, layers=1, dropout=0.0)


@pytest.mark.parametrize("cell, expected", [
    # embedding 10*4 + kernel 4*G*3 + recurrent 3*G*3 + bias + logits 3*10 + 10
    ("simple_rnn", 40 + 12 + 9 + 3 + 30 + 10),
    ("gru", 40 + 36 + 27 + 18 + 30 + 10),  # reset_after: two bias vectors of 3*3
    ("lstm", 40 + 48 + 36 + 12 + 30 + 10),
])
def test_count_params_by_hand(cell, expected):
    assert g.count_params(_tiny(cell)) == expected


@pytest.mark.parametrize("cell", CELLS)
def test_count_params_matches_keras(cell):
    from musicgen.models import build_model

    cfg = ModelConfig(vocab_size=17, cell=cell, embedding_dim=5, units=6, layers=2, dropout=0.1)
    model = build_model(cfg)
    assert g.count_params(cfg) == model.count_params() == sum(int(np.prod(w.shape)) for w in model.weights)


def test_units_for_params_matches_a_simple_rnn():
    base = ModelConfig(vocab_size=64, cell="simple_rnn", embedding_dim=32, units=128, layers=1, dropout=0.0)
    target = g.count_params(base)
    assert target == 64 * 32 + 128 * (32 + 128 + 1) + 128 * 64 + 64 == 30912
    assert g.units_for_params(base, target) == 128
    gru, lstm = (g.units_for_params(base.replace(cell=c), target) for c in ("gru", "lstm"))
    assert (gru, lstm) == (74, 64)
    for cell, n in (("gru", gru), ("lstm", lstm)):
        best = abs(g.count_params(base.replace(cell=cell, units=n)) - target)
        for other in (n - 1, n + 1):
            assert abs(g.count_params(base.replace(cell=cell, units=other)) - target) >= best
    matched = g.param_matched_configs(base)
    assert {c: cfg.units for c, cfg in matched.items()} == {"simple_rnn": 128, "gru": 74, "lstm": 64}
    assert {c: g.count_params(cfg) for c, cfg in matched.items()} == {"simple_rnn": 30912, "gru": 30824,
                                                                       "lstm": 31040}
    with pytest.raises(UsageError, match="n_params"):
        g.units_for_params(base, 0)


def test_motif_tokens_repeat_and_are_seeded():
    x = g.motif_tokens(batch=3, length=10, vocab_size=5, period=4, seed=7)
    assert x.shape == (3, 10) and x.dtype == np.int32
    np.testing.assert_array_equal(x[:, 4:8], x[:, :4])
    np.testing.assert_array_equal(x[:, 8:], x[:, :2])
    assert x.min() >= 0 and x.max() < 5
    np.testing.assert_array_equal(x, g.motif_tokens(3, 10, 5, 4, seed=7))
    with pytest.raises(UsageError, match="period"):
        g.motif_tokens(3, 10, 5, 0)


def test_random_windows_are_contiguous_slices_of_the_stream():
    pieces = [np.arange(0, 7), np.arange(7, 12), np.arange(12, 20)]  # laid end to end: 0..19
    w = g.random_windows(pieces, n=50, length=6, seed=3)
    assert w.shape == (50, 6) and w.dtype == np.int32
    np.testing.assert_array_equal(w - w[:, :1], np.tile(np.arange(6), (50, 1)))
    assert w.min() >= 0 and w.max() <= 19
    np.testing.assert_array_equal(w, g.random_windows(pieces, 50, 6, seed=3))
    with pytest.raises(UsageError, match="length"):
        g.random_windows(pieces, 2, 21)


def test_decay_slope_of_hand_made_profiles():
    lags = np.arange(20)
    assert g.decay_slope(10.0 ** (-0.05 * lags)) == pytest.approx(-0.05)
    assert g.decay_slope(3.0 * 10.0 ** (-0.2 * lags), first_lag=2, last_lag=9) == pytest.approx(-0.2)
    underflow = 10.0 ** (-0.1 * lags)
    underflow[12:] = 0.0  # vanished completely: left out of the fit
    assert g.decay_slope(underflow) == pytest.approx(-0.1)
    assert g.decay_slope(np.r_[1.0, np.zeros(9)]) == float("-inf")
    with pytest.raises(UsageError, match="first_lag"):
        g.decay_slope(np.ones(5), first_lag=4, last_lag=4)


def _numpy_simple_rnn_input_grads(weights, tokens, targets):
    """Backprop by hand through h_t = tanh(x_t W + h_{t-1} U + b), logits = h_T V + c, loss = mean CE."""
    emb, w, u, b, v, c = weights
    batch, steps = tokens.shape
    x = emb[tokens]  # (B, T, E)
    hs = [np.zeros((batch, u.shape[0]))]
    for t in range(steps):
        hs.append(np.tanh(x[:, t] @ w + hs[-1] @ u + b))
    logits = hs[-1] @ v + c
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p[np.arange(batch), targets] -= 1.0
    delta = (p / batch) @ v.T * (1 - hs[-1] ** 2)  # dL/d(preactivation at T)
    grads = np.zeros_like(x)
    for t in range(steps - 1, -1, -1):
        grads[:, t] = delta @ w.T
        delta = (delta @ u.T) * (1 - hs[t] ** 2)
    return grads


def test_input_gradient_profile_matches_numpy_backprop():
    import keras

    from musicgen.models import build_model

    keras.utils.set_random_seed(0)
    cfg = ModelConfig(vocab_size=7, cell="simple_rnn", embedding_dim=3, units=4, layers=1, dropout=0.0)
    model = build_model(cfg)
    emb = model.get_layer("embedding").embeddings
    emb.assign(emb * 20.0)  # leave the linear regime so tanh' matters
    tokens = np.array([[1, 2, 3, 4, 5, 6], [0, 6, 6, 1, 2, 2]])
    targets = np.array([3, 0])
    weights = [np.asarray(a, dtype=np.float64) for a in model.get_weights()]
    grads = _numpy_simple_rnn_input_grads(weights, tokens, targets)
    norms = np.linalg.norm(grads, axis=-1)  # (B, T)
    expected = np.exp(np.log(norms).mean(axis=0))[::-1]
    profile = g.input_gradient_profile(model, tokens, targets)
    assert profile.shape == (6,)
    np.testing.assert_allclose(profile, expected, rtol=1e-4)


def test_input_gradient_profile_is_zero_beyond_lag_0_without_recurrence():
    from musicgen.models import build_model

    model = build_model(_tiny("simple_rnn"))
    g.scale_recurrent_kernels(model, 0.0)
    profile = g.input_gradient_profile(model, np.array([[1, 2, 3, 4]]), np.array([5]))
    assert profile[0] > 1e-6
    assert np.all(profile[1:] < 1e-200)
    assert g.decay_slope(profile, first_lag=0) == float("-inf")
    with pytest.raises(UsageError, match="tokens/targets"):
        g.input_gradient_profile(model, np.array([1, 2, 3]), np.array([5]))


@pytest.mark.parametrize("cell", CELLS)
def test_scale_recurrent_kernels(cell):
    from musicgen.models import build_model

    cfg = ModelConfig(vocab_size=9, cell=cell, embedding_dim=4, units=5, layers=2, dropout=0.0)
    model = build_model(cfg)
    before = [model.get_layer(f"rnn_{i}").cell.recurrent_kernel.numpy() for i in range(2)]
    kernel = model.get_layer("rnn_0").cell.kernel.numpy()
    g.scale_recurrent_kernels(model, 2.5)
    for i in range(2):
        np.testing.assert_allclose(model.get_layer(f"rnn_{i}").cell.recurrent_kernel, before[i] * 2.5, rtol=1e-6)
    np.testing.assert_array_equal(model.get_layer("rnn_0").cell.kernel, kernel)


def test_train_steps_learns_a_repeated_batch_and_is_seeded():
    import keras

    from musicgen.models import build_model

    tokens = g.motif_tokens(batch=4, length=13, vocab_size=10, period=3, seed=1)
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        runs.append(g.train_steps(build_model(_tiny("gru", units=8)), tokens, steps=30, learning_rate=0.05))
    np.testing.assert_array_equal(runs[0]["loss"], runs[1]["loss"])
    np.testing.assert_array_equal(runs[0]["grad_norm"], runs[1]["grad_norm"])
    assert runs[0]["loss"][0] == pytest.approx(np.log(10), abs=0.05)  # uniform guess at init
    assert runs[0]["loss"][-1] < 0.5 * runs[0]["loss"][0]
    assert {k: v.shape for k, v in runs[0].items()} == {"loss": (30,), "grad_norm": (30,), "update_norm": (30,)}


def test_clipnorm_bounds_an_sgd_step_and_grad_norm_is_before_clipping():
    import keras

    from musicgen.models import build_model

    tokens = g.motif_tokens(batch=2, length=9, vocab_size=10, period=4, seed=0)
    keras.utils.set_random_seed(0)
    model = build_model(_tiny("lstm"))
    before = [w.numpy() for w in model.trainable_weights]
    out = g.train_steps(model, tokens, steps=1, learning_rate=1.0, clipnorm=1e-3, optimizer="sgd")
    step = np.sqrt(sum(np.sum((w.numpy() - b) ** 2) for w, b in zip(model.trainable_weights, before)))
    assert out["grad_norm"][0] > 1e-2  # the raw gradient, well above the clip
    assert step == pytest.approx(1e-3, rel=1e-3)  # lr 1.0 × clipped norm 1e-3
    assert out["update_norm"][0] == pytest.approx(step, rel=1e-3)

    keras.utils.set_random_seed(0)
    model = build_model(_tiny("lstm"))
    out_raw = g.train_steps(model, tokens, steps=1, learning_rate=1.0, optimizer="sgd")
    step = np.sqrt(sum(np.sum((w.numpy() - b) ** 2) for w, b in zip(model.trainable_weights, before)))
    assert step == pytest.approx(out_raw["grad_norm"][0], rel=1e-3) == pytest.approx(out["grad_norm"][0], rel=1e-5)
    assert out_raw["update_norm"][0] == pytest.approx(step, rel=1e-3)


def test_train_steps_rejects_bad_arguments():
    from musicgen.models import build_model

    model = build_model(_tiny("simple_rnn"))
    tokens = np.zeros((2, 5), dtype=np.int32)
    with pytest.raises(UsageError, match="optimizer"):
        g.train_steps(model, tokens, 1, optimizer="rmsprop")
    with pytest.raises(UsageError, match="clipnorm"):
        g.train_steps(model, tokens, 1, clipnorm=0.0)
    with pytest.raises(UsageError, match="steps"):
        g.train_steps(model, tokens, 0)
    with pytest.raises(UsageError, match="tokens"):
        g.train_steps(model, np.zeros((2, 1), dtype=np.int32), 1)
