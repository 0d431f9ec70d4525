"""The next-event model: Embedding → N × {LSTM | GRU | SimpleRNN} → Dense logits.

This is the only module that reads ``ModelConfig.cell``. Layers are named so the numpy export is stable:
``embedding``, ``context_0`` … ``context_{F-1}`` (when ``cfg.context``), ``rnn_0`` … ``rnn_{L-1}``, ``logits``.

Context (``cfg.context`` non-empty, see ``musicgen.context``): the model has a second int input ``context`` of shape
(batch, time, F) beside ``tokens`` (batch, time), and the embedding of feature k (``context_k``) of each step is added
to the token embedding (``add_context``). A second input rather than one packed (batch, time, 1 + F) array: the token
input, and so every caller and bundle without context, stays exactly as before; features and ids never share a
tensor, so nobody can mistake a feature column for an event. With ``cfg.context == ()`` the model, its layer names
and its weights are exactly those of models built before context existed.

Numpy weight export (``export_weights`` / ``weights.npz`` in a bundle), Keras gate orders kept as they are:

    embedding                 (V, E)
    context_{k}               (cfg.context[k], E)    only with context
    rnn_{i}_kernel            (in, G*n)     G = 4 (LSTM: i, f, c, o), 3 (GRU: z, r, h), 1 (SimpleRNN)
    rnn_{i}_recurrent_kernel  (n, G*n)
    rnn_{i}_bias              (G*n,) for LSTM / SimpleRNN; (2, 3n) for GRU (reset_after=True: input, recurrent)
    logits_kernel             (n, V)
    logits_bias               (V,)
"""

from __future__ import annotations

import numpy as np

from musicgen.config import ModelConfig

GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def _recurrent_layer(cfg: ModelConfig, index: int, stateful: bool, fused: bool):
    import keras

    # Defaults kept on purpose: tanh, sigmoid recurrent activation, no recurrent dropout, unroll=False,
    # use_bias=True and GRU reset_after=True make LSTM/GRU eligible for the cuDNN kernel on GPUs (the fused
    # layers keep them and run the stock cuDNN path there).
    kwargs = dict(units=cfg.units, return_sequences=True, stateful=stateful, name=f"rnn_{index}")
    if cfg.cell == "gru":
        kwargs["reset_after"] = True
    if fused:
        from musicgen.fused_rnn import FUSED

        return FUSED[cfg.cell](**kwargs)
    return {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}[cfg.cell](
        **kwargs)


def build_model(cfg: ModelConfig, batch_size: int | None = None, stateful: bool = False, fused: bool = True):
    """Build (not compile) the Keras model.

    Args:
        cfg: the model config.
        batch_size: fixed batch size; required when ``stateful`` (Keras stateful RNNs need it).
        stateful: carry each row's recurrent state from one call to the next (truncated BPTT across windows).
        fused: recurrent layers from ``musicgen.fused_rnn`` (the stock Keras layers with the input projection
            hoisted out of the time loop on CPU: same weights, same results, faster); False: the stock
            ``keras.layers.LSTM/GRU/SimpleRNN`` (what bundles store, so plain Keras loads their model.keras).

    Returns:
        A ``keras.Model`` mapping int tokens of shape (batch, time) to float logits (batch, time, vocab_size); with
        ``cfg.context`` its inputs are ``[tokens, context]``, context int of shape (batch, time, F).
    """
    import keras

    if stateful and not batch_size:
        raise ValueError(f"stateful models need a fixed batch_size, got {batch_size!r}")
    inputs = keras.Input(batch_shape=(batch_size, None), dtype="int32", name="tokens")
    x = keras.layers.Embedding(cfg.vocab_size, cfg.embedding_dim, name="embedding")(inputs)
    if cfg.context:
        context = keras.Input(batch_shape=(batch_size, None, len(cfg.context)), dtype="int32", name="context")
        parts = [keras.layers.Embedding(size, cfg.embedding_dim, name=f"context_{k}")(context[:, :, k])
                 for k, size in enumerate(cfg.context)]
        x = keras.layers.Add(name="add_context")([x] + parts)
        inputs = [inputs, context]
    for i in range(cfg.layers):
        x = _recurrent_layer(cfg, i, stateful, fused)(x)
        if cfg.dropout > 0:
            x = keras.layers.Dropout(cfg.dropout, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(cfg.vocab_size, name="logits")(x)
    return keras.Model(inputs, logits, name=f"musicgen_{cfg.cell}")


def export_weights(model, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Weights of a model built by ``build_model`` as plain float32 arrays (see the module docstring for keys)."""
    out = {"embedding": np.asarray(model.get_layer("embedding").embeddings, dtype=np.float32)}
    for k in range(len(cfg.context)):
        out[f"context_{k}"] = np.asarray(model.get_layer(f"context_{k}").embeddings, dtype=np.float32)
    for i in range(cfg.layers):
        cell = model.get_layer(f"rnn_{i}").cell
        out[f"rnn_{i}_kernel"] = np.asarray(cell.kernel, dtype=np.float32)
        out[f"rnn_{i}_recurrent_kernel"] = np.asarray(cell.recurrent_kernel, dtype=np.float32)
        out[f"rnn_{i}_bias"] = np.asarray(cell.bias, dtype=np.float32)
    dense = model.get_layer("logits")
    out["logits_kernel"] = np.asarray(dense.kernel, dtype=np.float32)
    out["logits_bias"] = np.asarray(dense.bias, dtype=np.float32)
    return out


def import_weights(model, cfg: ModelConfig, weights: dict[str, np.ndarray]) -> None:
    """The inverse of ``export_weights``: load ``weights`` (the ``weights.npz`` layout of ``cfg``) into a model built
    by ``build_model(cfg)`` (stateful or not). A missing array or a shape that is not ``expected_weight_shapes(cfg)``
    is a ValueError naming the array."""
    expected = expected_weight_shapes(cfg)
    for key, shape in expected.items():
        got = tuple(np.shape(weights[key])) if key in weights else None
        if got != shape:
            raise ValueError(f"weights[{key!r}]: expected shape {shape}, got {got}")
    model.get_layer("embedding").embeddings.assign(weights["embedding"])
    for k in range(len(cfg.context)):
        model.get_layer(f"context_{k}").embeddings.assign(weights[f"context_{k}"])
    for i in range(cfg.layers):
        cell = model.get_layer(f"rnn_{i}").cell
        cell.kernel.assign(weights[f"rnn_{i}_kernel"])
        cell.recurrent_kernel.assign(weights[f"rnn_{i}_recurrent_kernel"])
        cell.bias.assign(weights[f"rnn_{i}_bias"])
    dense = model.get_layer("logits")
    dense.kernel.assign(weights["logits_kernel"])
    dense.bias.assign(weights["logits_bias"])


def expected_weight_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every array ``export_weights`` writes for ``cfg``; used to check bundles on load."""
    g, n = GATES[cfg.cell], cfg.units
    shapes: dict[str, tuple[int, ...]] = {"embedding": (cfg.vocab_size, cfg.embedding_dim)}
    for k, size in enumerate(cfg.context):
        shapes[f"context_{k}"] = (size, cfg.embedding_dim)
    for i in range(cfg.layers):
        fan_in = cfg.embedding_dim if i == 0 else n
        shapes[f"rnn_{i}_kernel"] = (fan_in, g * n)
        shapes[f"rnn_{i}_recurrent_kernel"] = (n, g * n)
        shapes[f"rnn_{i}_bias"] = (2, g * n) if cfg.cell == "gru" else (g * n,)
    shapes["logits_kernel"] = (n, cfg.vocab_size)
    shapes["logits_bias"] = (cfg.vocab_size,)
    return shapes


def copy_weights(src, dst) -> None:
    """Copy weights between two models built from the same config (e.g. stateful training → stateless eval)."""
    dst.set_weights(src.get_weights())
