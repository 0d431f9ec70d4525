"""Sampling speed, side by side in one run, for one 2 x 256 LSTM (vocabulary 468, embedding 128, random weights).

    (a) window re-prediction: ``model.predict`` on the last 100 events for every new event (the TF tutorial's way)
    (b) musicgen, one stream: ``sampler.sample_tokens`` (numpy step kernels, masks, inverse-CDF draws)
    (c) musicgen, a batch of 64 streams (BLAS on one thread, as ``musicgen sample`` runs; also shown: default threads)
    (e) a stateful Keras model called directly, ``model(x, training=False)``, one event at a time, batch 1: the best
        a Keras user does without musicgen's sampler (no window re-prediction; the model carries the state)
    (d) the whole process ``musicgen sample --length 512`` under ``/usr/bin/time -v``: wall time and peak RSS

Usage: ``python benchmarks/sample.py [--window-events 30] [--events 3000] [--batch-steps 512] [--runs 3]``.
Prints a Markdown table for benchmarks/RESULTS.md. Targets (2-core CPU): (b) >= 300x (a), (b) >= 3,000 events/s,
(c) >= 30,000 events/s, (d) <= 1 s and <= 150 MB, (b) >= 20x (e).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def make_bundle(path: Path):
    import keras

    from musicgen.bundle import save_bundle
    from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
    from musicgen.models import build_model
    from musicgen.tokenizer import Tokenizer

    tc = TokenizerConfig()
    cfg = ModelConfig(vocab_size=Tokenizer(tc).vocab_size, cell="lstm", embedding_dim=128, units=256, layers=2)
    keras.utils.set_random_seed(0)
    model = build_model(cfg)
    save_bundle(path, model=model, model_config=cfg, train_config=TrainConfig(), tokenizer_config=tc, metrics={})
    return model, cfg


def window_repredict(model, vocab: int, events: int, window: int = 100) -> float:
    """Events/s when every new event re-runs ``model.predict`` on the last ``window`` events."""
    rng = np.random.default_rng(0)
    seq = list(rng.integers(3, vocab, window))
    model.predict(np.array([seq[-window:]]), verbose=0)  # warm-up (graph tracing)
    start = time.perf_counter()
    for _ in range(events):
        logits = model.predict(np.array([seq[-window:]], dtype=np.int32), verbose=0)[0, -1]
        p = np.exp(logits - logits.max())
        seq.append(int(rng.choice(vocab, p=p / p.sum())))
    return events / (time.perf_counter() - start)


def stateful_direct_call(cfg, weights: list, events: int) -> float:
    """Events/s of a stateful batch-1 copy of the model called directly (``model(x, training=False)``) on the one
    new event, sampling the next from its logits; the state lives in the model, as in a Keras user's loop."""
    from musicgen.models import build_model

    model = build_model(cfg, batch_size=1, stateful=True, fused=False)  # the stock Keras layers a user has
    model.set_weights(weights)
    rng = np.random.default_rng(0)
    token = np.array([[3]], dtype=np.int32)
    for _ in range(5):  # warm-up (tracing)
        model(token, training=False)
    start = time.perf_counter()
    for _ in range(events):
        logits = np.asarray(model(token, training=False))[0, -1]
        p = np.exp(logits - logits.max())
        token = np.array([[rng.choice(cfg.vocab_size, p=p / p.sum())]], dtype=np.int32)
    return events / (time.perf_counter() - start)


def musicgen_rate(bundle_path: Path, batch: int, steps: int, one_thread: bool = True,
                  **controls) -> tuple[float, float]:
    """``(events per wall second, events per CPU second)`` of ``sample_tokens`` for ``batch`` streams of ``steps``
    events (closing events not counted). CPU seconds (this thread's; NaN with several BLAS threads) show the cost when
    other jobs share the cores.

    ``one_thread``: BLAS limited to one thread, as ``musicgen sample`` runs; False: OpenBLAS's default."""
    import contextlib

    from musicgen.bundle import load_bundle
    from musicgen.generate import one_blas_thread
    from musicgen.sampler import StepModel, sample_tokens

    bundle = load_bundle(bundle_path)
    model = StepModel(bundle.weights, bundle.model_config)
    with one_blas_thread() if one_thread else contextlib.nullcontext():
        sample_tokens(model, bundle.model_config, bundle.tokenizer, [], 20, 0, num_samples=batch)  # warm-up
        start, cpu = time.perf_counter(), time.thread_time()
        sample_tokens(model, bundle.model_config, bundle.tokenizer, [], steps, 1, num_samples=batch, close=False,
                      **controls)
        wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
        return batch * steps / wall, (batch * steps / cpu if one_thread else float("nan"))


def whole_process(bundle_path: Path, out_dir: Path, runs: int) -> tuple[float, float]:
    """Median wall seconds and max peak RSS (MB) of ``musicgen sample --length 512`` as a fresh process."""
    gnu_time = shutil.which("time", path="/usr/bin") or "/usr/bin/time"
    if not Path(gnu_time).exists():
        sys.exit("GNU time is missing: apt-get install time")
    walls, rss = [], []
    for i in range(runs):
        cmd = [gnu_time, "-v", sys.executable, "-m", "musicgen", "sample", "--model", str(bundle_path),
               "--length", "512", "--seed", str(i), "-o", str(out_dir / f"bench-{i}.mid")]
        err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", err)
        walls.append(int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3)))
        rss.append(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 1024)
    return statistics.median(walls), max(rss)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window-events", type=int, default=30, help="events timed for (a)")
    ap.add_argument("--events", type=int, default=3000, help="events timed for (b)")
    ap.add_argument("--direct-events", type=int, default=300, help="events timed for (e)")
    ap.add_argument("--batch-steps", type=int, default=512, help="steps timed for (c), 64 streams each")
    ap.add_argument("--runs", type=int, default=3, help="process runs for (d)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "lstm"
        model, cfg = make_bundle(bundle)
        rate_b = musicgen_rate(bundle, 1, args.events)
        rate_b_p = musicgen_rate(bundle, 1, args.events, top_p=0.9, top_k=40, temperature=0.9)
        rate_c = musicgen_rate(bundle, 64, args.batch_steps)
        rate_c_p = musicgen_rate(bundle, 64, args.batch_steps, top_p=0.9, top_k=40, temperature=0.9)
        rate_c_threads = musicgen_rate(bundle, 64, args.batch_steps, one_thread=False)
        rate_e = stateful_direct_call(cfg, model.get_weights(), args.direct_events)
        rate_a = window_repredict(model, cfg.vocab_size, args.window_events)  # last: TF's threads stay busy after
        wall, rss = whole_process(bundle, Path(tmp), args.runs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the end; "
          f"numpy {np.__version__}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print("\n| | events/s (wall) | vs (a) | events per CPU-second | target |\n|---|---|---|---|---|")
    print(f"| (a) `model.predict` on a 100-event window per event | {rate_a:,.1f} | 1x | | |")
    rows = [("(b) musicgen, 1 stream", rate_b, ">= 3,000 and >= 300x (a)"),
            ("(b') 1 stream, top-k 40 + top-p 0.9 + T 0.9", rate_b_p, ""),
            ("(c) musicgen, batch of 64", rate_c, ">= 30,000"),
            ("(c') batch of 64, top-k 40 + top-p 0.9 + T 0.9", rate_c_p, ""),
            ("(c'') batch of 64, OpenBLAS default threads", rate_c_threads, "")]
    for name, (per_wall, per_cpu), target in rows:
        cpu_text = f"{per_cpu:,.0f}" if per_cpu == per_cpu else "n/a"
        print(f"| {name} | {per_wall:,.0f} | {per_wall / rate_a:,.0f}x | {cpu_text} | {target} |")
    print(f"| (e) stateful Keras model, `model(x, training=False)` per event, batch 1 | {rate_e:,.1f} | "
          f"{rate_e / rate_a:,.0f}x | | |")
    print(f"\none-stream sampler (b) vs the stateful direct-call Keras baseline (e): {rate_b[0] / rate_e:,.1f}x "
          f"(target >= 20x)")
    print(f"\n`musicgen sample --length 512` (fresh process, median of {args.runs}): {wall:.2f} s wall, "
          f"{rss:.0f} MB peak RSS (targets <= 1 s, <= 150 MB)")


if __name__ == "__main__":
    main()
