"""Recurrent layers that project the whole window's inputs in one matrix product and loop only over the recurrence.

``FusedLSTM``, ``FusedGRU`` and ``FusedSimpleRNN`` are ``keras.layers.LSTM`` / ``GRU`` / ``SimpleRNN`` with one
method replaced: ``inner_loop``. The stock CPU loop multiplies each step's input by the input kernel inside the loop
(T small products of shape (batch, in) @ (in, G*n), and as many again in the backward pass); these layers compute
``inputs @ kernel + bias`` for all T steps at once — (batch*T, in) @ (in, G*n), what PyTorch's CPU kernels do — and
the loop (``tf.while_loop`` on TensorFlow, ``lax.scan`` on JAX, through Keras' ``backend.rnn``) carries only
``h @ recurrent_kernel`` and the gate arithmetic.

On TensorFlow, ``FusedLSTM`` and ``FusedGRU`` go one step further (``musicgen.tf_rnn``, where ``tf_rnn_applies``:
float32, the stock tanh/sigmoid activations, not under XLA): a hand-written backward pass whose weight gradients are
whole-window matrix products (``H_prev.T @ dZ``) instead of T products contracting over the batch alone, and for the
LSTM TensorFlow's C++ whole-window kernel ``BlockLSTMV2`` as the forward (same gate order as Keras; its registered
gradient is wrong for it and is not used). ``TF_LSTM_FORWARD`` / ``TF_GRU`` switch these off (benchmarks/train.py
measures each; benchmarks/RESULTS.md).

Same math, same weights: the cell, its variables (names, shapes, Keras gate orders), ``get_config`` and the
``weights.npz`` export are the stock layer's; outputs and gradients equal the stock layer's up to float32 rounding
(tests/test_fused_rnn.py, 1e-5). The fused loop is used only where it applies; otherwise the stock ``inner_loop``
runs, unchanged:

- the TensorFlow and JAX backends (torch keeps its own path, see ``trainer._torch_stateful_workaround``);
- no GPU visible to the backend (on a GPU the stock layer's cuDNN kernel runs whenever its settings allow;
  ``use_cudnn=False`` on a GPU also keeps the stock loop);
- no mask, ``go_backwards=False``, ``unroll=False``, ``dropout == recurrent_dropout == 0`` (musicgen puts dropout
  in separate ``Dropout`` layers), ``use_bias=True``; GRU with ``reset_after=True``.

Stateful layers work as before: ``RNN.call`` feeds the carried state in and stores the new one.
"""

from __future__ import annotations

import functools

import keras
from keras import ops
from keras.src import backend as keras_backend  # backend.rnn: the loop the stock layers run (while_loop / scan)


@functools.lru_cache(maxsize=None)
def accelerator_present() -> bool:
    """True when the Keras backend sees a GPU (where the stock layers' cuDNN path is the fast one)."""
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if name == "jax":
        import jax

        return any(device.platform != "cpu" for device in jax.devices())
    return False


def fused_applies(layer, mask) -> bool:
    """Whether ``layer`` (one of this module's classes) may run the fused loop for this call (module docstring)."""
    cell = layer.cell
    return (keras.backend.backend() in ("tensorflow", "jax") and mask is None and not layer.go_backwards
            and not layer.unroll and not cell.dropout and not cell.recurrent_dropout and cell.use_bias
            and getattr(cell, "reset_after", True)
            and not (accelerator_present() and getattr(layer, "use_cudnn", False) in ("auto", True)))


def _loop(layer, step, projected, initial_state):
    """Run ``step`` over the time axis of ``projected`` (batch, T, G*n); returns ``(last, outputs, states)``."""
    return keras_backend.rnn(step, projected, list(initial_state), go_backwards=False, mask=None, unroll=False,
                             input_length=projected.shape[1], zero_output_for_mask=layer.zero_output_for_mask,
                             return_all_outputs=layer.return_sequences)


def _project(sequences, kernel, bias):
    """``sequences @ kernel + bias`` for every step at once: (batch, T, in) → (batch, T, G*n)."""
    return ops.add(ops.matmul(sequences, ops.cast(kernel, sequences.dtype)), ops.cast(bias, sequences.dtype))


TF_LSTM_FORWARD = "block"
"""``FusedLSTM`` on TensorFlow (where ``tf_rnn_applies``) runs ``musicgen.tf_rnn.lstm_window`` with this forward
(``"block"``: TensorFlow's ``BlockLSTMV2`` kernel, or ``"loop"``; see there); ``None`` differentiates the
``tf.while_loop`` below instead (benchmarks/train.py options ``lstmloop`` / ``lstmautodiff``)."""

TF_LANES = 1
"""``musicgen.tf_rnn``'s ``lanes``: the batch split into this many independent recurrences (``use_cpu_lanes`` sets
it for a training run)."""

LANES_ENV = "MUSICGEN_TF_LANES"
"""Environment variable: lanes for ``musicgen train`` on a TensorFlow CPU (``1``: off, TensorFlow's own threading;
unset: ``auto_lanes``)."""

MAX_AUTO_CORES = 4
"""``auto_lanes`` turns lanes on only up to this many cores: measured on 2 (benchmarks/RESULTS.md); on a larger
machine one intra-op thread would leave the output layer and the optimizer on one core each, not measured."""

MIN_LANE_ROWS = 4


def lanes_setting(setting: str | None) -> int | None:
    """The ``MUSICGEN_TF_LANES`` value as an int (None: unset or empty); anything but a positive integer is a
    ``UsageError``."""
    if setting in (None, ""):
        return None
    try:
        value = int(setting)
    except ValueError:
        value = 0
    if value < 1:
        from musicgen.errors import UsageError

        raise UsageError(f"{LANES_ENV}: expected a positive integer (1 = off), got {setting!r}")
    return value


def auto_lanes(batch_size: int, cores: int, setting: str | None = None) -> int:
    """Lanes for a CPU training run: ``setting`` (the ``MUSICGEN_TF_LANES`` value, ``lanes_setting``) when given,
    else one lane per core on machines of 2..``MAX_AUTO_CORES`` cores; never more than
    ``batch_size // MIN_LANE_ROWS``, at least 1."""
    wanted = lanes_setting(setting)
    if wanted is None:
        wanted = cores if 2 <= cores <= MAX_AUTO_CORES else 1
    return max(1, min(wanted, batch_size // MIN_LANE_ROWS))


def use_cpu_lanes(batch_size: int, cell: str, cores: int | None = None) -> dict:
    """Before a TensorFlow CPU training run's first op: split the recurrent layers' batch into lanes
    (``auto_lanes``) that run at once on TensorFlow's inter-op threads, one intra-op thread each (measured:
    benchmarks/train.py, options ``lanes2:intra1``). Same math: only the summation order of the lanes' weight
    gradients changes. ``cores``: the CPU cores to use (default: those this process may run on). Returns what is in
    force, ``{"lanes": n, "intra_op": i, "inter_op": j}``; lanes stay 1 where
    they do not apply (another backend, a GPU, a SimpleRNN, one core, TensorFlow already running)."""
    import os

    from musicgen.safeio import available_cores

    global TF_LANES
    TF_LANES = 1
    if keras.backend.backend() != "tensorflow" or cell not in ("lstm", "gru"):
        return {"lanes": 1}
    import tensorflow as tf

    cores = available_cores() if cores is None else cores
    lanes = auto_lanes(batch_size, cores, os.environ.get(LANES_ENV))
    threads = tf.config.threading
    if lanes > 1 and not tf.config.list_physical_devices("GPU"):
        try:
            threads.set_intra_op_parallelism_threads(1)
            threads.set_inter_op_parallelism_threads(max(lanes, cores))
            TF_LANES = lanes
        except RuntimeError:  # TensorFlow already running in this process: its threads are fixed
            if threads.get_intra_op_parallelism_threads() == 1 and threads.get_inter_op_parallelism_threads() >= lanes:
                TF_LANES = lanes  # an earlier run of this process set them
    return {"lanes": TF_LANES, "intra_op": threads.get_intra_op_parallelism_threads(),
            "inter_op": threads.get_inter_op_parallelism_threads()}

TF_GRU = True
"""``FusedGRU`` on TensorFlow (where ``tf_rnn_applies``) runs ``musicgen.tf_rnn.gru_window``; ``False``
differentiates the ``tf.while_loop`` below instead (benchmarks/train.py option ``gruautodiff``)."""


def tf_rnn_applies(layer, sequences) -> bool:
    """Whether a ``FusedLSTM``/``FusedGRU`` call that ``fused_applies`` may run ``musicgen.tf_rnn``: switched on
    (``TF_LSTM_FORWARD`` / ``TF_GRU``), TensorFlow backend, float32, the stock activations (tanh, sigmoid: the
    hand-written backward passes and ``BlockLSTMV2`` assume them), not inside an XLA-compiled function
    (``BlockLSTMV2`` has no XLA kernel; XLA differentiates the loop itself)."""
    switched_on = TF_GRU if isinstance(layer, keras.layers.GRU) else TF_LSTM_FORWARD is not None
    if (not switched_on or keras.backend.backend() != "tensorflow"
            or keras.backend.standardize_dtype(sequences.dtype) != "float32"):
        return False
    from keras.src.backend.tensorflow.rnn import _do_lstm_arguments_support_cudnn  # the tanh/sigmoid check
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.ops import control_flow_util

    cell = layer.cell
    return (_do_lstm_arguments_support_cudnn(cell.activation, cell.recurrent_activation, False, True)
            and not control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))


def _tf_lstm(layer, sequences, initial_state):
    """``musicgen.tf_rnn.lstm_window`` → ``(last, outputs, [h, c])`` as ``_loop`` returns them."""
    from musicgen.tf_rnn import lstm_window

    cell = layer.cell
    h0, c0 = _states(initial_state)
    outputs, h_last, c_last = lstm_window(sequences, h0, c0, cell.kernel, cell.recurrent_kernel, cell.bias,
                                          forward=TF_LSTM_FORWARD, lanes=TF_LANES)
    return h_last, outputs if layer.return_sequences else h_last[:, None], [h_last, c_last]


def _tf_gru(layer, sequences, initial_state):
    """``musicgen.tf_rnn.gru_window`` → ``(last, outputs, [h])`` as ``_loop`` returns them."""
    from musicgen.tf_rnn import gru_window

    cell = layer.cell
    outputs, h_last = gru_window(sequences, _states(initial_state)[0], cell.kernel, cell.recurrent_kernel, cell.bias,
                                 lanes=TF_LANES)
    return h_last, outputs if layer.return_sequences else h_last[:, None], [h_last]


def _states(initial_state) -> list:
    return list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]


@keras.saving.register_keras_serializable(package="musicgen")
class FusedLSTM(keras.layers.LSTM):
    """``keras.layers.LSTM`` (same arguments, weights and results) with the input projection hoisted out of the
    time loop on CPU; see the module docstring for when it applies."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not fused_applies(self, mask):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if tf_rnn_applies(self, sequences):
            return _tf_lstm(self, sequences, initial_state)
        cell = self.cell
        recurrent_kernel = ops.cast(cell.recurrent_kernel, sequences.dtype)  # read once, not once per step
        act, rec_act = cell.activation, cell.recurrent_activation

        def step(x_t, states):  # x_t: (batch, 4n) = x @ kernel + bias; gates i, f, c, o
            h, c = states
            z_i, z_f, z_c, z_o = ops.split(ops.add(x_t, ops.matmul(h, recurrent_kernel)), 4, axis=-1)
            c = rec_act(z_f) * c + rec_act(z_i) * act(z_c)
            h = rec_act(z_o) * act(c)
            return h, [h, c]

        return _loop(self, step, _project(sequences, cell.kernel, cell.bias), _states(initial_state))


@keras.saving.register_keras_serializable(package="musicgen")
class FusedGRU(keras.layers.GRU):
    """``keras.layers.GRU`` (same arguments, weights and results; the fused loop needs ``reset_after=True``) with
    the input projection hoisted out of the time loop on CPU; see the module docstring."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not fused_applies(self, mask):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if tf_rnn_applies(self, sequences):
            return _tf_gru(self, sequences, initial_state)
        cell = self.cell
        recurrent_kernel = ops.cast(cell.recurrent_kernel, sequences.dtype)
        recurrent_bias = ops.cast(cell.bias[1], sequences.dtype)  # bias (2, 3n): input row, recurrent row
        act, rec_act = cell.activation, cell.recurrent_activation

        def step(x_t, states):  # x_t: (batch, 3n) = x @ kernel + input bias; gates z, r, h
            h = states[0]
            x_z, x_r, x_h = ops.split(x_t, 3, axis=-1)
            r_z, r_r, r_h = ops.split(ops.add(ops.matmul(h, recurrent_kernel), recurrent_bias), 3, axis=-1)
            z = rec_act(x_z + r_z)
            r = rec_act(x_r + r_r)
            candidate = act(x_h + r * r_h)
            h = z * h + (1 - z) * candidate
            return h, [h]

        return _loop(self, step, _project(sequences, cell.kernel, cell.bias[0]), _states(initial_state))


@keras.saving.register_keras_serializable(package="musicgen")
class FusedSimpleRNN(keras.layers.SimpleRNN):
    """``keras.layers.SimpleRNN`` (same arguments, weights and results) with the input projection hoisted out of
    the time loop on CPU and GPU (Keras has no cuDNN kernel for it); see the module docstring."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not fused_applies(self, mask):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        cell = self.cell
        recurrent_kernel = ops.cast(cell.recurrent_kernel, sequences.dtype)
        act = cell.activation if cell.activation is not None else (lambda v: v)

        def step(x_t, states):  # x_t: (batch, n) = x @ kernel + bias
            h = act(ops.add(x_t, ops.matmul(states[0], recurrent_kernel)))
            return h, [h]

        return _loop(self, step, _project(sequences, cell.kernel, cell.bias), _states(initial_state))


FUSED = {"lstm": FusedLSTM, "gru": FusedGRU, "simple_rnn": FusedSimpleRNN}
