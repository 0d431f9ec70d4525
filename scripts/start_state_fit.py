"""How low can the first-32-event NLL go by the choice of start state alone? Fit the start state by Adam on the
first 32 targets of the training pieces (weights frozen; TensorFlow), then score held-out pieces in numpy.

    python scripts/start_state_fit.py MODEL CORPUS OUT.json [--steps 300]

MODEL must carry start_state.npz (the fit starts there). Not part of training: docs/start_state.md quotes it to show
that the gap left between the first 32 events and the later ones is not the start state's.
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from musicgen.bundle import load_bundle  # noqa: E402
from musicgen.split import bundle_split  # noqa: E402
from musicgen.sampler import StepModel  # noqa: E402
from musicgen.scoring import score_pieces, summarize  # noqa: E402

FIRST = 32


def main():
    import keras
    import tensorflow as tf

    ap = argparse.ArgumentParser()
    ap.add_argument("model"), ap.add_argument("corpus"), ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    bundle = load_bundle(args.model)
    cfg = bundle.model_config
    data, parts = bundle_split(bundle, args.corpus)  # valid only, never test
    train_idx, val_idx = parts.train, parts.valid
    train = [data.pieces[i] for i in train_idx if len(data.pieces[i]) > FIRST]
    heldout = [data.pieces[i] for i in val_idx]
    x = np.stack([p[:FIRST] for p in train]).astype("int32")
    y = np.stack([p[1:FIRST + 1] for p in train]).astype("int32")
    model = bundle.keras_model()
    layers = [model.get_layer(f"rnn_{i}") for i in range(cfg.layers)]
    state = [[tf.Variable(np.asarray(a, np.float32)[None]) for a in layer] for layer in bundle.start_state]
    flat = [v for layer in state for v in layer]
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            h = model.get_layer("embedding")(xb)
            for layer, init in zip(layers, state):
                tiled = [tf.tile(v, [tf.shape(xb)[0], 1]) for v in init]
                h = layer(h, initial_state=tiled if len(tiled) > 1 else tiled[0])
            logits = model.get_layer("logits")(h)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, flat), flat))
        return loss

    rng = np.random.default_rng(0)
    for _ in range(args.steps):
        idx = rng.choice(len(x), min(128, len(x)), replace=False)
        step(x[idx], y[idx])
    fitted = [tuple(v.numpy()[0] for v in layer) for layer in state]
    numpy_model = StepModel(bundle.weights, cfg, dtype=np.float64, tokenizer=bundle.tokenizer)
    report = {"model": args.model, "steps": args.steps, "first": FIRST, "heldout_pieces": len(heldout)}
    for name, start in (("mean_after_eos", bundle.start_state), ("fitted", fitted)):
        scores = score_pieces(numpy_model, heldout, start_state=start)
        report[name] = {"first": summarize(scores, first=FIRST)["nll_nats"],
                        "later": summarize(scores, skip=FIRST)["nll_nats"]}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
