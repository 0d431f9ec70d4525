"""Epochs per minute of trained/default's recipe (scripts/train_default.sh), side by side: checkouts and settings.

Each variant is ``NAME=CHECKOUT[:ENV=VALUE…]``: ``musicgen train`` run from that checkout's code (``PYTHONPATH``)
with those environment variables, on the same corpus, with the recipe's flags and ``--epochs E`` (default 3). The
variants run interleaved (A, B, A, B, …) ``--reps`` times, each in a fresh process. An epoch's time is the
``seconds`` column of the run's history.csv (training steps, validation, checkpoint: what a user waits for); the
first epoch, which compiles, is left out. Printed: each variant's median epochs per minute with its spread over the
repetitions (min–max), and last the ratio of each variant to the first, per repetition (median, min–max).

    python benchmarks/retrain.py --variant before=/work/wt/main --variant after=. \\
        --variant after-nolanes=.:MUSICGEN_TF_LANES=1
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = ["--voices", "auto", "--meter", "--key-mode", "normalize", "--cell", "gru", "--preset", "medium",
          "--batch-size", "16", "--bptt", "64", "--transpose", "3", "--patience", "6", "--seed", "0",
          "--verbose", "0", "--no-tensorboard"]


def parse_variant(text: str) -> tuple[str, Path, dict]:
    name, _, rest = text.partition("=")
    checkout, *pairs = rest.split(":")
    if not name or not checkout or any("=" not in p for p in pairs):
        raise SystemExit(f"--variant: expected NAME=CHECKOUT[:ENV=VALUE...], got {text!r}")
    return name, Path(checkout).resolve(), dict(p.split("=", 1) for p in pairs)


def run_once(checkout: Path, env_extra: dict, corpus: str, epochs: int, work: Path) -> list[float]:
    """Epoch seconds of one fresh ``musicgen train`` run (epoch 1 included; the caller drops it)."""
    out = work / "run"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(checkout),
           **env_extra}
    cmd = [sys.executable, "-m", "musicgen", "train", corpus, *RECIPE, "--epochs", str(epochs), "--out", str(out)]
    run = subprocess.run(cmd, env=env, cwd=checkout, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{checkout}: musicgen train failed:\n{run.stderr[-2000:]}")
    with open(out / "history.csv", newline="") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", action="append", required=True, help="NAME=CHECKOUT[:ENV=VALUE...]")
    p.add_argument("--corpus", default="data/bach_bars")
    p.add_argument("--epochs", type=int, default=3, help="per run; the first is left out")
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant]
    corpus = str(Path(args.corpus).resolve())
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average before {os.getloadavg()}")
    rate: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for name, checkout, env in variants:
                seconds = run_once(checkout, env, corpus, args.epochs, Path(tmp))
                rate[name].append(60.0 / statistics.median(seconds[1:]))
                print(f"rep {rep + 1} {name}: epoch seconds {[round(s, 1) for s in seconds]}, "
                      f"{rate[name][-1]:.2f} epochs/min, load {os.getloadavg()[0]:.2f}", flush=True)
    first = variants[0][0]
    print(f"epochs per minute ({args.corpus}, {args.epochs} epochs per run, epoch 1 left out; median (min-max) over "
          f"{args.reps} repetitions):")
    for name, _, _ in variants:
        print(f"  {name:<20} {statistics.median(rate[name]):.2f} ({min(rate[name]):.2f}-{max(rate[name]):.2f})")
    print(f"ratio to {first}, same repetition: median (min-max)")
    for name, _, _ in variants[1:]:
        ratios = [a / b for a, b in zip(rate[name], rate[first])]
        print(f"  {name:<20} {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
