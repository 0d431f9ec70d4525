"""Training speed: musicgen's Keras model vs a native PyTorch model of the same shape, per cell and Keras backend.

Model: Embedding(V, 128) → 2 × 256-unit {LSTM | GRU | SimpleRNN} → Dense(V), V = 390; batch 64 × 128 events;
Adam with clipnorm 1.0 on both sides; random tokens. Reports training tokens/s (events that are targets, per second)
and the ratio to native PyTorch. Also the *effective* throughput of a sliding-window trainer (window 100, stride 1,
one target per window, the classic Keras-tutorial layout): unique corpus events learned per second, to compare with
truncated BPTT, where every event of a window is a target.

Each backend runs in its own process (Keras fixes its backend at import):

    python benchmarks/train.py                       # every installed backend, all cells
    python benchmarks/train.py --cells lstm --steps 3 --backends tensorflow,jax
    python benchmarks/train.py --jit                 # jit_compile=True for the Keras models

Numbers from a shared CPU are noisy: keep runs short and compare ratios measured in the same invocation.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

SHAPE = dict(vocab=390, embedding=128, units=256, layers=2, batch=64, seq=128)


def _timed(step, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def keras_worker(cell: str, steps: int, warmup: int, jit: bool, sliding: bool) -> dict:
    import keras
    import numpy as np

    from musicgen.config import ModelConfig, TrainConfig
    from musicgen.models import build_model
    from musicgen.trainer import _torch_stateful_workaround, compile_model

    s = SHAPE
    rng = np.random.default_rng(0)
    cfg = ModelConfig(vocab_size=s["vocab"], cell=cell, embedding_dim=s["embedding"], units=s["units"],
                      layers=s["layers"], dropout=0.0)
    model = build_model(cfg, batch_size=s["batch"], stateful=True)
    compile_model(model, TrainConfig())
    _torch_stateful_workaround(model)  # what train_model does on the torch backend (Keras 3.15 bug)
    model.jit_compile = jit or "auto"
    x = rng.integers(0, s["vocab"], (s["batch"], s["seq"])).astype("int32")
    y = rng.integers(0, s["vocab"], (s["batch"], s["seq"])).astype("int32")
    seconds = _timed(lambda: model.train_on_batch(x, y), steps, warmup)
    out = {"tokens_per_s": s["batch"] * s["seq"] / seconds, "jit_compile": str(model.jit_compile)}
    if sliding:  # many-to-one: 100 events in, the next one out; one new target per window
        layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}[cell]
        inputs = keras.Input((100,), dtype="int32")
        h = keras.layers.Embedding(s["vocab"], s["embedding"])(inputs)
        for i in range(s["layers"]):
            h = layer(s["units"], return_sequences=i < s["layers"] - 1)(h)
        window_model = keras.Model(inputs, keras.layers.Dense(s["vocab"])(h))
        window_model.compile(optimizer=keras.optimizers.Adam(clipnorm=1.0),
                             loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        xw = rng.integers(0, s["vocab"], (s["batch"], 100)).astype("int32")
        yw = rng.integers(0, s["vocab"], (s["batch"],)).astype("int32")
        out["sliding_events_per_s"] = s["batch"] / _timed(lambda: window_model.train_on_batch(xw, yw), steps, warmup)
    return out


def torch_worker(cell: str, steps: int, warmup: int) -> dict:
    import torch

    s = SHAPE
    torch.manual_seed(0)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[cell]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(s["vocab"], s["embedding"])
            self.rnn = rnn(s["embedding"], s["units"], num_layers=s["layers"], batch_first=True)
            self.logits = torch.nn.Linear(s["units"], s["vocab"])

        def forward(self, x):
            return self.logits(self.rnn(self.embedding(x))[0])

    net = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    x = torch.randint(0, s["vocab"], (s["batch"], s["seq"]))
    y = torch.randint(0, s["vocab"], (s["batch"], s["seq"]))

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x).reshape(-1, s["vocab"]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()

    return {"tokens_per_s": s["batch"] * s["seq"] / _timed(step, steps, warmup), "threads": torch.get_num_threads()}


def _run_worker(kind: str, backend: str, cells: list[str], args) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, __file__, "--worker", kind, "--cells", ",".join(cells), "--steps", str(args.steps),
           "--warmup", str(args.warmup)] + (["--jit"] if args.jit else []) + (["--sliding"] if args.sliding else [])
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"{kind}/{backend} failed:\n{run.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default="lstm,gru,simple_rnn")
    p.add_argument("--backends", default=None, help="Keras backends to time (default: every installed one)")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation)")
    p.add_argument("--jit", action="store_true", help="jit_compile=True for the Keras models")
    p.add_argument("--sliding", action=argparse.BooleanOptionalAction, default=True,
                   help="also time a sliding-window (window 100, stride 1) trainer")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cells = args.cells.split(",")
    if args.worker:
        fn = (lambda c: keras_worker(c, args.steps, args.warmup, args.jit, args.sliding)) \
            if args.worker == "keras" else (lambda c: torch_worker(c, args.steps, args.warmup))
        print(json.dumps({c: fn(c) for c in cells}))
        return 0
    installed = [b for b in ("tensorflow", "jax", "torch") if importlib.util.find_spec(b)]
    backends = args.backends.split(",") if args.backends else installed
    results = {f"keras/{b}": _run_worker("keras", b, cells, args) for b in backends}
    if importlib.util.find_spec("torch"):
        results["native torch"] = _run_worker("torch", "torch", cells, args)
    native = results.get("native torch", {})
    print(f"train tokens/s, batch {SHAPE['batch']}x{SHAPE['seq']}, Embedding {SHAPE['embedding']}, "
          f"{SHAPE['layers']}x{SHAPE['units']}, vocab {SHAPE['vocab']}, {args.steps} timed steps"
          f"{', jit_compile=True' if args.jit else ''}")
    print(f"{'':18}" + "".join(f"{c:>22}" for c in cells))
    for name, res in results.items():
        row = ""
        for c in cells:
            r = res.get(c, {})
            tps = r.get("tokens_per_s")
            ratio = f" ({tps / native[c]['tokens_per_s']:.2f}x)" if tps and c in native else ""
            row += f"{(f'{tps / 1000:.1f}k' if tps else '-') + ratio:>22}"
        print(f"{name:18}{row}")
    if args.sliding:
        print("sliding window (100, stride 1): unique events learned/s vs truncated BPTT tokens/s, same backend")
        for name, res in results.items():
            if name.startswith("keras/"):
                parts = [f"{c} {res[c]['sliding_events_per_s']:.0f}/s vs {res[c]['tokens_per_s']:.0f}/s "
                         f"({res[c]['tokens_per_s'] / res[c]['sliding_events_per_s']:.0f}x)"
                         for c in cells if c in res and "sliding_events_per_s" in res[c]]
                print(f"  {name}: " + "; ".join(parts))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
