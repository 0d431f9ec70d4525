"""musicgen.tf_rnn: a one-step, one-unit LSTM and GRU worked by hand; outputs and gradients (both LSTM forwards,
the GRU) equal TensorFlow's autodiff of a plain step loop (1e-5), also when only part of the outputs reaches the
loss."""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from musicgen.tf_rnn import FORWARDS, gru_window, lstm_window  # noqa: E402

TOL = 1e-5


@pytest.mark.parametrize("forward", FORWARDS)
def test_one_step_one_unit_by_hand(forward):
    # zero weights, bias: i, f, o pre-activations 0 (gates 0.5), cell candidate atanh(0.5) (g = 0.5)
    x, h0, c0 = np.ones((1, 1, 1), "float32"), np.zeros((1, 1), "float32"), np.full((1, 1), 0.5, "float32")
    kernel, recurrent = np.zeros((1, 4), "float32"), np.zeros((1, 4), "float32")
    bias = np.array([0.0, 0.0, math.atanh(0.5), 0.0], "float32")
    c0_var = tf.Variable(c0)
    with tf.GradientTape() as tape:
        outputs, h_last, c_last = lstm_window(x, h0, c0_var, kernel, recurrent, bias, forward=forward)
    c = 0.5 * 0.5 + 0.5 * 0.5  # f*c0 + i*g
    h = 0.5 * math.tanh(c)
    np.testing.assert_allclose([outputs[0, 0, 0], h_last[0, 0], c_last[0, 0]], [h, h, c], atol=1e-6)
    dh_dc0 = 0.5 * (1 - math.tanh(c) ** 2) * 0.5  # o * tanh'(c) * f
    np.testing.assert_allclose(tape.gradient(h_last, c0_var).numpy(), [[dh_dc0]], atol=1e-6)


def _reference(x, h0, c0, kernel, recurrent, bias):
    """Keras' LSTM step in plain ops, differentiated by TensorFlow (gate order i, f, c, o)."""
    h, c, outputs = h0, c0, []
    for t in range(x.shape[1]):
        z_i, z_f, z_g, z_o = tf.split(x[:, t] @ kernel + h @ recurrent + bias, 4, axis=-1)
        c = tf.sigmoid(z_f) * c + tf.sigmoid(z_i) * tf.tanh(z_g)
        h = tf.sigmoid(z_o) * tf.tanh(c)
        outputs.append(h)
    return tf.stack(outputs, axis=1), h, c


def _loss_and_grads(fn, args, weights, uses):
    variables = [tf.Variable(a) for a in args]
    with tf.GradientTape() as tape:
        outputs, h_last, c_last = fn(*variables)
        loss = 0.0
        if "outputs" in uses:
            loss += tf.reduce_sum(outputs * weights[0])
        if "h" in uses:
            loss += tf.reduce_sum(h_last * weights[1])
        if "c" in uses:
            loss += tf.reduce_sum(c_last * weights[2])
    grads = tape.gradient(loss, variables, unconnected_gradients="zero")
    return [np.asarray(v) for v in (outputs, h_last, c_last, *grads)]


@pytest.mark.parametrize("uses", [("outputs", "h", "c"), ("outputs",), ("c",)])
@pytest.mark.parametrize("forward", FORWARDS)
def test_equals_autodiff_of_the_step_loop(forward, uses):
    rng = np.random.default_rng(0)
    batch, steps, width, units = 3, 5, 4, 6
    shapes = [(batch, steps, width), (batch, units), (batch, units), (width, 4 * units), (units, 4 * units),
              (4 * units,)]
    args = [rng.normal(0.0, 0.7, s).astype("float32") for s in shapes]
    weights = [rng.normal(size=s).astype("float32") for s in ((batch, steps, units), (batch, units), (batch, units))]
    got = _loss_and_grads(lambda *a: lstm_window(*a, forward=forward), args, weights, uses)
    want = _loss_and_grads(_reference, args, weights, uses)
    for name, a, b in zip(["outputs", "h_T", "c_T", "dx", "dh0", "dc0", "dkernel", "drecurrent", "dbias"], got, want):
        assert a.shape == b.shape and np.abs(a - b).max() <= TOL * max(1.0, np.abs(b).max()), name


def test_unknown_forward_is_refused():
    with pytest.raises(ValueError, match="forward: expected one of .*got 'cudnn'"):
        lstm_window(np.zeros((1, 1, 1), "float32"), *[np.zeros((1, 1), "float32")] * 2, np.zeros((1, 4), "float32"),
                    np.zeros((1, 4), "float32"), np.zeros((4,), "float32"), forward="cudnn")


def test_gru_one_step_one_unit_by_hand():
    # zero kernels; biases: z pre-activation 0 (z = 0.5), r: 0 + 0 (r = 0.5), candidate input 0, recurrent 2 (the
    # reset gate halves it: hh = tanh(1)); h = z*h0 + (1-z)*hh
    x, h0 = np.ones((1, 1, 1), "float32"), tf.Variable(np.full((1, 1), 0.4, "float32"))
    bias = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]], "float32")
    with tf.GradientTape() as tape:
        outputs, h_last = gru_window(x, h0, np.zeros((1, 3), "float32"), np.zeros((1, 3), "float32"), bias)
    h = 0.5 * 0.4 + 0.5 * math.tanh(1.0)
    np.testing.assert_allclose([outputs[0, 0, 0], h_last[0, 0]], [h, h], atol=1e-6)
    np.testing.assert_allclose(tape.gradient(h_last, h0).numpy(), [[0.5]], atol=1e-6)  # dh/dh0 = z (kernels 0)


def _gru_reference(x, h0, kernel, recurrent, bias):
    """Keras' GRU step (reset_after=True) in plain ops; returns (outputs, h_T, h_T) to share _loss_and_grads."""
    h, outputs = h0, []
    for t in range(x.shape[1]):
        x_z, x_r, x_h = tf.split(x[:, t] @ kernel + bias[0], 3, axis=-1)
        r_z, r_r, r_h = tf.split(h @ recurrent + bias[1], 3, axis=-1)
        z, r = tf.sigmoid(x_z + r_z), tf.sigmoid(x_r + r_r)
        h = z * h + (1 - z) * tf.tanh(x_h + r * r_h)
        outputs.append(h)
    return tf.stack(outputs, axis=1), h, h


@pytest.mark.parametrize("uses", [("outputs", "h"), ("outputs",), ("h",)])
def test_gru_equals_autodiff_of_the_step_loop(uses):
    rng = np.random.default_rng(1)
    batch, steps, width, units = 3, 5, 4, 6
    shapes = [(batch, steps, width), (batch, units), (width, 3 * units), (units, 3 * units), (2, 3 * units)]
    args = [rng.normal(0.0, 0.7, s).astype("float32") for s in shapes]
    weights = [rng.normal(size=s).astype("float32") for s in ((batch, steps, units), (batch, units), (batch, units))]
    got = _loss_and_grads(lambda *a: (*gru_window(*a), None), args, weights, uses)
    want = _loss_and_grads(_gru_reference, args, weights, uses)
    names = ["outputs", "h_T", "-", "dx", "dh0", "dkernel", "drecurrent", "dbias"]
    for name, a, b in zip(names, got[:2] + got[3:], want[:2] + want[3:]):
        assert a.shape == b.shape and np.abs(a - b).max() <= TOL * max(1.0, np.abs(b).max()), name


@pytest.mark.parametrize("cell", ["lstm-loop", "lstm-block", "gru"])
def test_lanes_give_the_outputs_and_gradients_of_one_lane(cell):
    """The batch split into lanes (5 rows: 2 + 2 + 1 and 3 + 2) gives one lane's outputs, states and gradients up to
    the summation order of the weight gradients."""
    rng = np.random.default_rng(2)
    batch, steps, width, units = 5, 4, 3, 4
    gates = 3 if cell == "gru" else 4
    shapes = [(batch, steps, width), (batch, units)] + ([] if cell == "gru" else [(batch, units)])
    shapes += [(width, gates * units), (units, gates * units), (2, 3 * units) if cell == "gru" else (4 * units,)]
    args = [rng.normal(0.0, 0.7, s).astype("float32") for s in shapes]
    weights = [rng.normal(size=s).astype("float32") for s in ((batch, steps, units), (batch, units), (batch, units))]

    def run(lanes):
        if cell == "gru":
            return _loss_and_grads(lambda *a: (*gru_window(*a, lanes=lanes), None), args, weights, ("outputs", "h"))
        forward = cell.split("-")[1]
        return _loss_and_grads(lambda *a: lstm_window(*a, forward=forward, lanes=lanes), args, weights,
                               ("outputs", "h", "c"))

    one = run(1)
    for lanes in (2, 3):
        for a, b in zip(run(lanes), one):
            if a.shape:  # GRU: the unused c_T slot is a 0-d placeholder
                assert a.shape == b.shape and np.abs(a - b).max() <= TOL * max(1.0, np.abs(b).max())


def test_lane_sizes():
    from musicgen.tf_rnn import lane_sizes

    assert lane_sizes(64, 2) == [32, 32] and lane_sizes(5, 2) == [3, 2] and lane_sizes(10, 3) == [4, 3, 3]
    assert lane_sizes(3, 2) is None and lane_sizes(None, 2) is None and lane_sizes(64, 1) is None
