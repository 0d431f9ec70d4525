"""Measure vanishing and exploding gradients in the next-event models (see notebooks/vanishing_gradients.ipynb).

Quantities:

- **input-gradient profile**: ``‖∂L/∂x_t‖₂`` for the embedded input ``x_t`` (the ``embedding`` layer's output at
  step ``t``) of a window of ``T`` events, where ``L`` is the cross-entropy of the *last* step's prediction only.
  It is reported by **lag** ``T - 1 - t`` (lag 0 is the step whose output is scored), as the geometric mean over the
  batch.
- **decay slope**: least-squares slope of ``log10 ‖∂L/∂x_t‖`` against the lag, in decades per step. More negative
  means the gradient vanishes faster; ``-0.1`` means a factor of 10 lost every 10 steps.
- **gradient-norm trace**: the global L2 norm of ``∂L/∂θ`` over all weights, *before* any clipping, at every
  optimizer step of a short training run.

Works on any model built by ``musicgen.models.build_model`` (stateless). Requires the TensorFlow Keras backend
(``tf.GradientTape``); TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import numpy as np

from musicgen.config import ModelConfig
from musicgen.errors import MusicgenError, UsageError
from musicgen.models import expected_weight_shapes

_TINY = 1e-30  # norms below this are treated as underflow and left out of slope fits


def count_params(cfg: ModelConfig) -> int:
    """Number of trainable weights of ``build_model(cfg)`` (embedding + recurrent layers + logits)."""
    return int(sum(np.prod(shape) for shape in expected_weight_shapes(cfg).values()))


def units_for_params(cfg: ModelConfig, n_params: int, max_units: int = 4096) -> int:
    """The ``units`` that brings ``count_params(cfg.replace(units=…))`` closest to ``n_params``.

    Args:
        cfg: model config whose cell, vocab size, embedding size and layers are kept.
        n_params: target number of weights (e.g. ``count_params`` of another cell's model).
        max_units: search limit.

    Returns:
        The best unit count (ties go to the smaller one).
    """
    if n_params <= 0:
        raise UsageError(f"n_params: expected a positive integer, got {n_params!r}")
    counts = np.array([count_params(cfg.replace(units=n)) for n in range(1, max_units + 1)])
    return int(np.argmin(np.abs(counts - n_params))) + 1


def param_matched_configs(base: ModelConfig, cells=("simple_rnn", "gru", "lstm")) -> dict[str, ModelConfig]:
    """One config per cell with ``units`` chosen so each model has about as many weights as ``base``.

    Returns:
        ``{cell: config}``; the config of ``base.cell`` is ``base`` itself.
    """
    target = count_params(base)
    return {cell: base if cell == base.cell else base.replace(cell=cell, units=units_for_params(
        base.replace(cell=cell), target)) for cell in cells}


def motif_tokens(batch: int, length: int, vocab_size: int, period: int, seed: int = 0) -> np.ndarray:
    """Random motifs of ``period`` tokens repeated to ``length`` (a task that needs a memory of ``period`` steps).

    Returns:
        int32 array, shape (batch, length); row ``b`` is ``motif_b`` tiled, each motif drawn uniformly from
        ``[0, vocab_size)`` with ``numpy.random.default_rng(seed)``.
    """
    for name, value in (("batch", batch), ("length", length), ("vocab_size", vocab_size), ("period", period)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise UsageError(f"{name}: expected a positive integer, got {value!r}")
    motifs = np.random.default_rng(seed).integers(0, vocab_size, size=(batch, period))
    reps = -(-length // period)
    return np.tile(motifs, (1, reps))[:, :length].astype(np.int32)


def _require_tensorflow():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise MusicgenError(f"musicgen.gradients needs the TensorFlow Keras backend, got {keras.backend.backend()!r}")
    import tensorflow as tf

    return tf


def _forward_from_embedding(model, embedded):
    """Run every layer after ``embedding`` on ``embedded`` (batch, T, E) in inference mode → logits (batch, T, V)."""
    import keras

    x = embedded
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer.name == "embedding":
            continue
        x = layer(x, training=False)
    return x


def input_gradient_profile(model, tokens: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``‖∂L/∂x_t‖₂`` by lag, where ``L`` scores only the last step's prediction.

    Args:
        model: a stateless model from ``build_model``.
        tokens: int array, shape (batch, T) — the input window.
        targets: int array, shape (batch,) — the event that should follow ``tokens[:, -1]``.

    Returns:
        float64 array, shape (T,): entry ``k`` is the geometric mean over the batch of the gradient norm with
        respect to the embedded input ``k`` steps before the scored step (``k = 0`` is the last step).
    """
    tf = _require_tensorflow()
    tokens = np.asarray(tokens)
    targets = np.asarray(targets)
    if tokens.ndim != 2 or targets.shape != tokens.shape[:1]:
        raise UsageError(f"tokens/targets: expected shapes (batch, T) and (batch,), got {tokens.shape} and "
                         f"{targets.shape}")
    embedded = model.get_layer("embedding")(tf.constant(tokens, dtype=tf.int32))
    with tf.GradientTape() as tape:
        tape.watch(embedded)
        logits = _forward_from_embedding(model, embedded)[:, -1, :]
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True))
    grad = tape.gradient(loss, embedded).numpy().astype(np.float64)  # (batch, T, E)
    norms = np.linalg.norm(grad, axis=-1)  # (batch, T)
    log_mean = np.log10(np.maximum(norms, 1e-300)).mean(axis=0)
    return (10.0 ** log_mean)[::-1]


def decay_slope(profile: np.ndarray, first_lag: int = 1, last_lag: int | None = None) -> float:
    """Least-squares slope of ``log10(profile)`` against lag over ``[first_lag, last_lag]`` (decades per step).

    Lags whose norm underflowed (below 1e-30) are left out; ``-inf`` if fewer than two points remain after a
    non-zero start (the gradient vanished completely).
    """
    profile = np.asarray(profile, dtype=np.float64)
    last_lag = len(profile) - 1 if last_lag is None else last_lag
    if not 0 <= first_lag < last_lag < len(profile):
        raise UsageError(f"first_lag/last_lag: expected 0 <= first < last < {len(profile)}, got {first_lag}, "
                         f"{last_lag}")
    lags = np.arange(first_lag, last_lag + 1)
    values = profile[lags]
    ok = np.isfinite(values) & (values > _TINY)
    if ok.sum() < 2:
        return float("-inf")
    return float(np.polyfit(lags[ok], np.log10(values[ok]), 1)[0])


def scale_recurrent_kernels(model, factor: float) -> None:
    """Multiply every ``rnn_{i}`` recurrent kernel by ``factor`` in place (``factor > 1`` invites exploding)."""
    i = 0
    while any(layer.name == f"rnn_{i}" for layer in model.layers):
        cell = model.get_layer(f"rnn_{i}").cell
        cell.recurrent_kernel.assign(cell.recurrent_kernel * factor)
        i += 1


def train_steps(model, tokens: np.ndarray, steps: int, learning_rate: float = 1e-2,
                clipnorm: float | None = None, optimizer: str = "adam") -> dict[str, np.ndarray]:
    """A short training run on next-event prediction; records each step's loss and unclipped gradient norm.

    Args:
        model: a stateless model from ``build_model``; its weights are updated in place.
        tokens: int array, shape (batch, T + 1) — the same batch at every step — or (n, batch, T + 1) — step
            ``i`` uses ``tokens[i % n]``. Inputs are ``[..., :-1]``, targets ``[..., 1:]``, and every step of the
            window is scored (mean cross-entropy, nats per event).
        steps: optimizer steps.
        learning_rate: step size.
        clipnorm: clip the global gradient norm to this value before the update (None: no clipping).
        optimizer: ``"adam"`` (what ``musicgen train`` uses; it divides by a running gradient scale, which
            already damps a single spike) or ``"sgd"`` (plain steps, where an exploding gradient is an exploding
            update).

    Returns:
        ``{"loss", "grad_norm", "update_norm"}`` → float64 arrays of shape (steps,): the loss before the step,
        the gradient's global norm before clipping, and the global L2 norm of the change the step made to the
        weights. Non-finite values are kept as they are (a run that blew up shows ``nan``/``inf``; clipping an
        infinite norm gives ``nan`` weights, as in Keras).
    """
    tf = _require_tensorflow()
    import keras

    if not isinstance(steps, int) or steps <= 0:
        raise UsageError(f"steps: expected a positive integer, got {steps!r}")
    tokens = np.asarray(tokens)
    batches = tokens[None] if tokens.ndim == 2 else tokens
    if batches.ndim != 3 or batches.shape[-1] < 2:
        raise UsageError(f"tokens: expected shape (batch, T + 1) or (n, batch, T + 1) with T >= 1, got "
                         f"{tokens.shape}")
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    if optimizer not in optimizers:
        raise UsageError(f"optimizer: expected 'adam' or 'sgd', got {optimizer!r}")
    if clipnorm is not None and not clipnorm > 0:
        raise UsageError(f"clipnorm: expected a positive number or None, got {clipnorm!r}")
    opt = optimizers[optimizer](learning_rate)
    weights = model.trainable_variables

    @tf.function
    def step(window):
        inputs, targets = window[:, :-1], window[:, 1:]
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True))
        # Dense: the embedding's IndexedSlices repeat a row per occurrence, which would inflate the norm.
        grads = [tf.convert_to_tensor(grad) for grad in tape.gradient(loss, weights)]
        norm = tf.linalg.global_norm(grads)
        if clipnorm is not None:
            grads, _ = tf.clip_by_global_norm(grads, clipnorm, use_norm=norm)
        before = [tf.identity(w) for w in weights]
        opt.apply_gradients(zip(grads, weights))
        update = tf.linalg.global_norm([w - b for w, b in zip(weights, before)])
        return loss, norm, update

    out = {name: np.empty(steps) for name in ("loss", "grad_norm", "update_norm")}
    for i in range(steps):
        values = step(tf.constant(batches[i % len(batches)], dtype=tf.int32))
        for name, value in zip(("loss", "grad_norm", "update_norm"), values):
            out[name][i] = float(value)
    return out


def random_windows(pieces, n: int, length: int, seed: int = 0) -> np.ndarray:
    """``n`` windows of ``length`` consecutive events cut at random places from the pieces laid end to end.

    Args:
        pieces: sequence of int arrays (e.g. ``TokenSet.pieces``), each ``[BOS, …, EOS]``.
        n: number of windows.
        length: events per window (e.g. ``T + 1`` for ``train_steps``).
        seed: start positions come from ``numpy.random.default_rng(seed)``.

    Returns:
        int32 array, shape (n, length).
    """
    stream = np.concatenate([np.asarray(p, dtype=np.int32) for p in pieces])
    if not isinstance(length, (int, np.integer)) or not 0 < length <= stream.size:
        raise UsageError(f"length: expected an integer in [1, {stream.size}] (events available), got {length!r}")
    starts = np.random.default_rng(seed).integers(0, stream.size - length + 1, size=n)
    return stream[starts[:, None] + np.arange(length)]
