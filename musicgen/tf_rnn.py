"""Whole-window LSTM and GRU for TensorFlow with hand-written backward passes: the CPU training path of
``FusedLSTM`` and ``FusedGRU``.

Keras' LSTM math (gates i, f, c, o in the kernel's column order; ``c' = f*c + i*g``, ``h' = o*tanh(c')``; sigmoid
gates, tanh cell; one bias), no mask, float32. What makes it faster than differentiating the ``tf.while_loop``:

- forward: the input projection ``x @ kernel + bias`` of all T steps is one matrix product; the loop carries
  ``h @ recurrent_kernel`` and the gate arithmetic only. ``forward="block"`` runs TensorFlow's C++ whole-window
  kernel ``BlockLSTMV2`` instead (same gate order; it multiplies ``[x_t, h] @ [kernel; recurrent_kernel]`` per
  step). Either way the pre-activations / gates and cell states are kept for the backward pass.
- backward: the gate coefficients of every step are computed at once before the loop; each step then does one
  matrix product (``dz @ recurrent_kernel.T``) and a few elementwise products. The weight gradients are whole-window
  matrix products after the loop (``H_prev.T @ dZ``, contraction over batch*T), not T products contracting over the
  batch alone (TensorFlow's autodiff of the loop, ``BlockLSTMGradV2`` and PyTorch's CPU LSTM all do the latter).

``gru_window`` does the same for Keras' GRU with ``reset_after=True`` (gates z, r, h; ``h' = z*h + (1-z)*hh``,
``hh = tanh(x_h + r * (h @ R_h + b_rec_h))``; sigmoid gates, tanh candidate; bias rows input and recurrent), with a
loop forward (TensorFlow has no whole-window GRU kernel).

``lanes`` splits the batch into independent recurrences (``lane_sizes``): TensorFlow's executor runs them at once on
its inter-op threads. With one intra-op thread per op that keeps both cores of a small machine busy through the
sequential part, which one recurrence with two-thread matrix products does not (``fused_rnn.use_cpu_lanes``).

TensorFlow registers the V1 gradient (gate order i, c, f, o) for ``BlockLSTMV2`` (gate order i, f, c, o), which
gives wrong gradients; this module never uses that registration.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.python.ops import gen_rnn_ops

FORWARDS = ("loop", "block")


def lane_sizes(batch, lanes: int) -> list[int] | None:
    """Batch rows per lane: ``lanes`` near-equal parts of a static ``batch``, or None (one lane) where the batch is
    unknown or smaller than ``2 * lanes``."""
    if lanes <= 1 or batch is None or batch < 2 * lanes:
        return None
    return [batch // lanes + (1 if k < batch % lanes else 0) for k in range(lanes)]


def _in_lanes(window, lanes: int, batched: list, shared: list) -> list:
    """Run ``window(*batched_part, *shared)`` on each lane's rows and join the results along the batch axis (axis 0
    of every result). The lanes' recurrences are independent ops, so TensorFlow's inter-op threads run them at the
    same time; each lane's weight gradients are summed by the tape."""
    sizes = lane_sizes(batched[0].shape[0], lanes)
    if sizes is None:
        return list(window(*batched, *shared))
    parts = [tf.split(v, sizes, axis=0) for v in batched]
    results = [window(*(p[k] for p in parts), *shared) for k in range(len(sizes))]
    return [tf.concat(list(r), axis=0) for r in zip(*results)]


def lstm_window(x, h0, c0, kernel, recurrent_kernel, bias, forward: str = "loop", lanes: int = 1):
    """Run an LSTM over a window and return ``(outputs, h_T, c_T)``.

    Args:
        x: float32 (batch, T, in), T >= 1.
        h0, c0: float32 (batch, n), the state the window starts from (read as values: a stateful layer's variables
            may be assigned afterwards without changing the gradient).
        kernel: (in, 4n); recurrent_kernel: (n, 4n); bias: (4n,); Keras' gate order i, f, c, o.
        forward: ``"loop"`` (``tf.while_loop`` over the recurrence) or ``"block"`` (``BlockLSTMV2``).
        lanes: split the batch into this many independent recurrences (``lane_sizes``); same results.

    Returns:
        outputs (batch, T, n), h_T (batch, n), c_T (batch, n); differentiable w.r.t. every argument.
    """
    if forward not in FORWARDS:
        raise ValueError(f"forward: expected one of {FORWARDS}, got {forward!r}")
    args = [tf.convert_to_tensor(v) for v in (x, h0, c0, kernel, recurrent_kernel, bias)]
    run = _block_forward if forward == "block" else _loop_forward

    def window(x, h0, c0, *weights):
        hs, c_last = run(tf.transpose(x, [1, 0, 2]), h0, c0, *weights)  # time-major (T, batch, in)
        return tf.transpose(hs, [1, 0, 2]), hs[-1], c_last

    return tuple(_in_lanes(window, lanes, args[:3], args[3:]))


def _gate_gradients(dhs, dc_last, i, f, g, o, cs, co, c0, recurrent_kernel):
    """Backward through the recurrence. All gate tensors time-major (T, batch, n): activations i, f, g (cell
    candidate), o; cell states cs and tanh(cs) co. ``dhs`` (T, batch, n) is the loss gradient w.r.t. every h_t,
    ``dc_last`` w.r.t. c_T (None: zero, as for an unused output). Returns dZ (T, batch, 4n) w.r.t. the
    pre-activations, dh0, dc0."""
    dhs = tf.zeros_like(cs) if dhs is None else dhs
    dc_last = tf.zeros_like(c0) if dc_last is None else dc_last
    steps = tf.shape(dhs)[0]
    c_prev = tf.concat([c0[None], cs[:-1]], axis=0)
    dc_from_dh = o * (1.0 - co * co)  # dc_t += dh_t * this
    coefficients = tf.concat([g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g), co * o * (1.0 - o)],
                             axis=-1)  # dz = [dc, dc, dc, dh] * this
    recurrent_t = tf.transpose(recurrent_kernel)

    def body(t, dh_next, dc_next, dz_ta):
        dh = dhs[t] + dh_next
        dc = dc_next + dh * dc_from_dh[t]
        dz = tf.concat([dc, dc, dc, dh], axis=-1) * coefficients[t]
        return t - 1, tf.matmul(dz, recurrent_t), dc * f[t], dz_ta.write(t, dz)

    _, dh0, dc0, dz_ta = tf.while_loop(lambda t, *_: t >= 0, body,
                                       (steps - 1, tf.zeros_like(c0), dc_last, tf.TensorArray(dhs.dtype, size=steps)))
    return dz_ta.stack(), dh0, dc0


def _input_gradients(dz, x, kernel):
    """dx (T, batch, in), dkernel, dbias from dZ (T, batch, G*n), the pre-activations' input side."""
    flat_dz = tf.reshape(dz, [-1, tf.shape(dz)[-1]])
    dx = tf.reshape(tf.matmul(flat_dz, kernel, transpose_b=True), tf.shape(x))
    return dx, tf.matmul(tf.reshape(x, [-1, tf.shape(x)[-1]]), flat_dz, transpose_a=True), tf.reduce_sum(flat_dz, 0)


def _recurrent_gradient(dz, hs, h0):
    """d(recurrent_kernel) = H_prev.T @ dZ over the whole window: (n, G*n)."""
    h_prev = tf.reshape(tf.concat([h0[None], hs[:-1]], axis=0), [-1, tf.shape(h0)[-1]])
    return tf.matmul(h_prev, tf.reshape(dz, [-1, tf.shape(dz)[-1]]), transpose_a=True)


@tf.custom_gradient
def _loop_forward(x, h0, c0, kernel, recurrent_kernel, bias):
    """x time-major (T, batch, in) → (hs (T, batch, n), c_T)."""
    steps = tf.shape(x)[0]
    projected = tf.matmul(x, kernel) + bias  # (T, batch, 4n): every step's input part at once

    def body(t, h, c, z_ta, c_ta, h_ta):
        z = projected[t] + tf.matmul(h, recurrent_kernel)
        z_i, z_f, z_g, z_o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(z_f) * c + tf.sigmoid(z_i) * tf.tanh(z_g)
        h = tf.sigmoid(z_o) * tf.tanh(c)
        return t + 1, h, c, z_ta.write(t, z), c_ta.write(t, c), h_ta.write(t, h)

    tas = [tf.TensorArray(x.dtype, size=steps) for _ in range(3)]
    _, _, c_last, z_ta, c_ta, h_ta = tf.while_loop(lambda t, *_: t < steps, body, (0, h0, c0, *tas))
    zs, cs, hs = z_ta.stack(), c_ta.stack(), h_ta.stack()

    def grad(dhs, dc_last):
        z_i, z_f, z_g, z_o = tf.split(zs, 4, axis=-1)
        gates = (tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_g), tf.sigmoid(z_o))
        dz, dh0, dc0 = _gate_gradients(dhs, dc_last, *gates, cs, tf.tanh(cs), c0, recurrent_kernel)
        dx, dkernel, dbias = _input_gradients(dz, x, kernel)
        return dx, dh0, dc0, dkernel, _recurrent_gradient(dz, hs, h0), dbias

    return (hs, c_last), grad


@tf.custom_gradient
def _block_forward(x, h0, c0, kernel, recurrent_kernel, bias):
    """``BlockLSTMV2`` forward, this module's backward; x time-major (T, batch, in) → (hs, c_T)."""
    no_peephole = tf.zeros(tf.shape(h0)[-1:], x.dtype)
    i, cs, f, o, g, co, hs = gen_rnn_ops.block_lstmv2(
        seq_len_max=tf.shape(x, out_type=tf.int64)[0], x=x, cs_prev=c0, h_prev=h0,
        w=tf.concat([kernel, recurrent_kernel], axis=0), wci=no_peephole, wcf=no_peephole, wco=no_peephole, b=bias,
        cell_clip=-1.0, use_peephole=False)  # cell_clip < 0: no clipping

    def grad(dhs, dc_last):
        dz, dh0, dc0 = _gate_gradients(dhs, dc_last, i, f, g, o, cs, co, c0, recurrent_kernel)
        dx, dkernel, dbias = _input_gradients(dz, x, kernel)
        return dx, dh0, dc0, dkernel, _recurrent_gradient(dz, hs, h0), dbias

    return (hs, cs[-1]), grad


def gru_window(x, h0, kernel, recurrent_kernel, bias, lanes: int = 1):
    """Run a GRU (``reset_after=True``) over a window and return ``(outputs, h_T)``.

    Args:
        x: float32 (batch, T, in), T >= 1; h0: float32 (batch, n), the starting state (read as a value).
        kernel: (in, 3n); recurrent_kernel: (n, 3n); bias: (2, 3n), rows input and recurrent; gate order z, r, h.
        lanes: split the batch into this many independent recurrences (``lane_sizes``); same results.

    Returns:
        outputs (batch, T, n), h_T (batch, n); differentiable w.r.t. every argument.
    """
    args = [tf.convert_to_tensor(v) for v in (x, h0, kernel, recurrent_kernel, bias)]

    def window(x, h0, *weights):
        hs = _gru_forward(tf.transpose(x, [1, 0, 2]), h0, *weights)
        return tf.transpose(hs, [1, 0, 2]), hs[-1]

    return tuple(_in_lanes(window, lanes, args[:2], args[2:]))


@tf.custom_gradient
def _gru_forward(x, h0, kernel, recurrent_kernel, bias):
    """x time-major (T, batch, in) → hs (T, batch, n). The recurrent bias of z and r is folded into the input
    projection (it is only added there); the h part's stays inside, where the reset gate multiplies it."""
    steps, units = tf.shape(x)[0], tf.shape(h0)[-1]
    bias_in, bias_rec = bias[0], bias[1]
    zero_h = tf.zeros_like(bias_rec[:units])
    projected = tf.matmul(x, kernel) + (bias_in + tf.concat([bias_rec[:2 * units], zero_h], 0))  # (T, batch, 3n)
    rec_h_bias = tf.concat([tf.zeros_like(bias_rec[:2 * units]), bias_rec[2 * units:]], 0)

    def body(t, h, zr_ta, hh_ta, qh_ta, h_ta):
        p_zr, p_h = tf.split(projected[t], [2 * units, units], axis=-1)
        q_zr, q_h = tf.split(tf.matmul(h, recurrent_kernel) + rec_h_bias, [2 * units, units], axis=-1)
        zr = tf.sigmoid(p_zr + q_zr)
        z, r = tf.split(zr, 2, axis=-1)
        hh = tf.tanh(p_h + r * q_h)
        h = hh + z * (h - hh)
        return t + 1, h, zr_ta.write(t, zr), hh_ta.write(t, hh), qh_ta.write(t, q_h), h_ta.write(t, h)

    tas = [tf.TensorArray(x.dtype, size=steps) for _ in range(4)]
    _, _, zr_ta, hh_ta, qh_ta, h_ta = tf.while_loop(lambda t, *_: t < steps, body, (0, h0, *tas))
    zrs, hhs, qhs, hs = zr_ta.stack(), hh_ta.stack(), qh_ta.stack(), h_ta.stack()

    def grad(dhs):
        z, r = tf.split(zrs, 2, axis=-1)
        h_prev = tf.concat([h0[None], hs[:-1]], axis=0)
        d_z = (h_prev - hhs) * z * (1.0 - z)  # d(loss)/d(z pre-activation) = dh * this
        d_hh = (1.0 - z) * (1.0 - hhs * hhs)  # ... of the candidate's pre-activation
        d_r = d_hh * qhs * r * (1.0 - r)
        rec_coefficients = tf.concat([d_z, d_r, d_hh * r], axis=-1)  # dQ = [dh, dh, dh] * this
        recurrent_t = tf.transpose(recurrent_kernel)

        def body(t, dh_next, dq_ta, dh_ta):
            dh = dhs[t] + dh_next
            dq = tf.concat([dh, dh, dh], axis=-1) * rec_coefficients[t]
            return t - 1, dh * z[t] + tf.matmul(dq, recurrent_t), dq_ta.write(t, dq), dh_ta.write(t, dh)

        tas = [tf.TensorArray(x.dtype, size=steps) for _ in range(2)]
        _, dh0, dq_ta, dh_ta = tf.while_loop(lambda t, *_: t >= 0, body, (steps - 1, tf.zeros_like(h0), *tas))
        dq, dh_all = dq_ta.stack(), dh_ta.stack()
        dp = tf.concat([dq[..., :2 * units], dh_all * d_hh], axis=-1)  # input side: no reset gate on x_h
        dx, dkernel, dbias_in = _input_gradients(dp, x, kernel)
        dbias_rec = tf.reduce_sum(tf.reshape(dq, [-1, 3 * units]), axis=0)
        return dx, dh0, dkernel, _recurrent_gradient(dq, hs, h0), tf.stack([dbias_in, dbias_rec])

    return hs, grad
