"""Training speed on 1 vs N devices (``musicgen train --devices``), per Keras backend, through the trainer's own path
(``devices.Placement``: build scope, ``train_input``, ``model.fit``).

Model: the ``small`` preset (Embedding 64 → 2 × 128-unit GRU, dropout 0.1 → Dense), vocabulary 128, stateful
truncated BPTT on batch 16 × 64 events of random tokens (``streaming.StreamingBatches``). On a CPU the N devices are
*logical* devices of the same cores (TensorFlow: ``tf.config.set_logical_device_configuration``; JAX:
``XLA_FLAGS=--xla_force_host_platform_device_count=N``), so this measures the overhead of the split, not a speed-up.
Each (backend, devices) runs in its own process. Reports training tokens/s (events that are targets) over the steps
after the warm-up (compilation excluded):

    python benchmarks/devices.py                     # tensorflow and jax, 1 and 2 devices
    python benchmarks/devices.py --steps 20 --warmup 3 --backends jax --devices 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPE = dict(vocab=128, batch=16, bptt=64)


def worker(devices: int, steps: int, warmup: int) -> dict:
    """One measurement in this process (the device split is configured before the backend starts)."""
    backend = os.environ["KERAS_BACKEND"]
    if backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    import keras
    import numpy as np

    from musicgen.config import MODEL_PRESETS, ModelConfig, TrainConfig
    from musicgen.devices import Placement
    from musicgen.models import build_model
    from musicgen.streaming import StreamingBatches
    from musicgen.trainer import compile_model

    rng = np.random.default_rng(0)
    pieces = [rng.integers(1, SHAPE["vocab"], 4000) for _ in range(16)]
    batches = StreamingBatches(pieces, SHAPE["batch"], SHAPE["bptt"], seed=0)
    cfg = ModelConfig(vocab_size=SHAPE["vocab"], cell="gru", **MODEL_PRESETS["small"])
    tcfg = TrainConfig(batch_size=SHAPE["batch"], bptt=SHAPE["bptt"])
    keras.utils.set_random_seed(0)
    place = Placement(devices, SHAPE["batch"])
    with place.build_scope():
        model = build_model(cfg, batch_size=place.replica_batch, stateful=True)
        compile_model(model, tcfg)
    stamps: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # wait for the step
            stamps.append(time.perf_counter())

    with place.fit_scope():
        model.fit(place.train_input(batches, 0), steps_per_epoch=warmup + steps, epochs=1, verbose=0,
                  shuffle=False, callbacks=[Clock()])
    seconds = stamps[-1] - stamps[warmup - 1]
    return {"backend": backend, "devices": place.n, "steps": steps,
            "tokens_per_s": round(steps * SHAPE["batch"] * SHAPE["bptt"] / seconds, 1),
            "ms_per_step": round(1000 * seconds / steps, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--devices", default="1,2", help="device counts to compare")
    parser.add_argument("--steps", type=int, default=20, help="timed steps after the warm-up")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation)")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.steps, args.warmup)))
        return 0
    print(f"small GRU preset, batch {SHAPE['batch']} x {SHAPE['bptt']} events, vocabulary {SHAPE['vocab']}, "
          f"{args.steps} timed steps after {args.warmup}; load average {os.getloadavg()[0]:.1f} at start")
    for backend in args.backends.split(","):
        for n in (int(d) for d in args.devices.split(",")):
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu",
                   "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "PYTHONPATH": str(ROOT)}
            run = subprocess.run([sys.executable, __file__, "--worker", str(n), "--steps", str(args.steps),
                                  "--warmup", str(args.warmup)], env=env, capture_output=True, text=True)
            if run.returncode:
                print(f"{backend} {n}: failed\n{run.stderr[-2000:]}")
                continue
            row = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"{row['backend']:<11} devices {row['devices']}: {row['tokens_per_s']:>9.1f} tokens/s "
                  f"({row['ms_per_step']} ms/step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
