"""Exact RTRL against BPTT: cost per step against hidden units, and validation NLL on Bach chorales.

    python benchmarks/rtrl.py scaling [--units 8 16 32 64] [--cells simple_rnn gru lstm] [--steps 64]
    python benchmarks/rtrl.py compare [--pieces 30] [--cell gru] [--units 32] [--epochs 8]

``scaling``: for each cell and n, the gradient of one sequence of ``--steps`` events by RTRL
(``rtrl.rtrl_gradient``) and by BPTT (``rtrl.bptt_gradient``), both numpy, same dtype, one BLAS thread. Reports
milliseconds per event (best of ``--repeats``) and peak traced memory (tracemalloc: numpy allocations), fits the
log-log exponent of time and memory against n, then memory against sequence length, and prints the time ratio last.

``compare``: the first ``--pieces`` Bach chorales of music21's corpus, tokenized (no velocity, no programs, pitches
36..84, 4 steps per quarter), split 80/20 by content hash; the same one-layer model trained by RTRL
(``rtrl.train_rtrl``) and by Keras truncated BPTT (``train.train_model``); both scored with ``rtrl.sequence_nll``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # BLAS threads only spin on a shared 2-core machine
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from musicgen import rtrl  # noqa: E402
from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig  # noqa: E402
from musicgen.models import GATES  # noqa: E402

VOCAB, EMBED = 117, 16  # the compare corpus's vocabulary size, so both halves measure the same model shapes


def _cfg(cell: str, units: int, vocab: int = VOCAB, embed: int = EMBED) -> ModelConfig:
    return ModelConfig(vocab_size=vocab, cell=cell, embedding_dim=embed, units=units, layers=1, dropout=0.0)


def _measure(fn, weights, cfg, tokens, dtype, repeats: int) -> tuple[float, int]:
    """(seconds per event, best of ``repeats``; peak traced bytes of one run)."""
    events = len(tokens) - 1
    best = min(_timed(fn, weights, cfg, tokens, dtype) for _ in range(repeats))
    tracemalloc.start()
    fn(weights, cfg, tokens, dtype)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best / events, peak


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _slope(xs, ys) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def scaling(args) -> None:
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, VOCAB, args.steps + 1)
    print(f"# RTRL vs BPTT per event: V={VOCAB}, E={EMBED}, {args.steps} events/sequence, {args.dtype}, 1 BLAS thread")
    print("| cell | n | RTRL ms/event | BPTT ms/event | ratio | RTRL peak MiB | BPTT peak MiB | influence MiB | "
          "Uᵀ·M multiply-adds/event |")
    print("|---|---|---|---|---|---|---|---|---|")
    fits, ratios = [], []
    for cell in args.cells:
        rows = []
        for n in args.units:
            cfg = _cfg(cell, n)
            weights = rtrl.init_weights(cfg, 0, args.dtype)
            rt, rm = _measure(rtrl.rtrl_gradient, weights, cfg, tokens, args.dtype, args.repeats)
            bt, bm = _measure(rtrl.bptt_gradient, weights, cfg, tokens, args.dtype, args.repeats)
            macs = GATES[cell] * n * n * rtrl.influence_params(cfg)
            rows.append((n, rt, bt, rm, bm, macs))
            print(f"| {cell} | {n} | {rt * 1e3:.3f} | {bt * 1e3:.3f} | {rt / bt:.1f} | {rm / 2**20:.2f} | "
                  f"{bm / 2**20:.2f} | {rtrl.influence_bytes(cfg, args.dtype) / 2**20:.2f} | {macs / 1e6:.1f} M |",
                  flush=True)
        n, rt, bt, rm, bm, macs = (np.array(c, dtype=float) for c in zip(*rows))
        top = slice(-3, None)  # the largest sizes, where the arithmetic (not Python overhead) dominates
        fits.append(f"{cell}: time ∝ n^{_slope(n[top], rt[top]):.2f} (RTRL) vs n^{_slope(n[top], bt[top]):.2f} "
                    f"(BPTT) over n={int(n[-3])}..{int(n[-1])}; all n: n^{_slope(n, rt):.2f} vs n^{_slope(n, bt):.2f}"
                    f"; peak memory ∝ n^{_slope(n[top], rm[top]):.2f} vs n^{_slope(n[top], bm[top]):.2f}; "
                    f"multiply-adds ∝ n^{_slope(n[top], macs[top]):.2f}")
        ratios.append(f"{cell} n={int(n[-1])}: RTRL/BPTT time per event = {rt[-1] / bt[-1]:.1f}x")
    print("\nlog-log fits:")
    print("\n".join(fits))
    print(f"\n# peak memory against sequence length (gru, n={args.length_units})")
    print("| events | RTRL peak MiB | BPTT peak MiB |\n|---|---|---|")
    cfg = _cfg("gru", args.length_units)
    weights = rtrl.init_weights(cfg, 0, args.dtype)
    for steps in args.lengths:
        seq = rng.integers(0, VOCAB, steps + 1)
        peaks = []
        for fn in (rtrl.rtrl_gradient, rtrl.bptt_gradient):
            tracemalloc.start()
            fn(weights, cfg, seq, args.dtype)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        print(f"| {steps} | {peaks[0] / 2**20:.2f} | {peaks[1] / 2**20:.2f} |", flush=True)
    print("\n" + "\n".join(ratios))


# ------------------------------------------------------------------------------------------------ compare
def chorale_tokens(count: int):
    """Token arrays of the first ``count`` Bach chorales (.mxl) in music21's corpus, and the tokenizer."""
    from music21 import corpus

    from musicgen.tokenizer import Tokenizer

    tokenizer = Tokenizer(TokenizerConfig(steps_per_quarter=4, max_shift_steps=16, velocity_bins=0, programs=False,
                                          min_pitch=36, max_pitch=84))
    paths = sorted(str(p) for p in corpus.getComposer("bach") if str(p).endswith(".mxl"))[:count]
    pieces = [tokenizer.encode(path) for path in paths]
    return pieces, tokenizer


def compare(args) -> None:
    from musicgen.dataset import split_pieces

    pieces, tokenizer = chorale_tokens(args.pieces)
    keys = [hashlib.sha256(p.tobytes()).hexdigest() for p in pieces]
    train_idx, val_idx = split_pieces(keys, args.val_fraction, args.seed)
    train, val = [pieces[i] for i in train_idx], [pieces[i] for i in val_idx]
    cfg = _cfg(args.cell, args.units, tokenizer.vocab_size, args.embed)
    print(f"# {len(pieces)} chorales: {sum(map(len, train))} train / {sum(map(len, val))} validation tokens "
          f"({len(train)}/{len(val)} pieces), vocab {tokenizer.vocab_size}; {args.cell} E={args.embed} n={args.units}")
    uniform = float(np.log(tokenizer.vocab_size))
    counts = np.bincount(np.concatenate([p[1:] for p in train]), minlength=tokenizer.vocab_size) + 1.0
    unigram = -np.mean([np.log(counts[t] / counts.sum()) for p in val for t in p[1:]])
    print(f"baselines: uniform {uniform:.3f}, add-one unigram {unigram:.3f} nats/event")
    print("| algorithm | epochs | weight updates | best validation NLL (nats/event) | wall s |\n|---|---|---|---|---|")

    if args.only in ("both", "rtrl"):
        _compare_rtrl(args, cfg, train, val)
    if args.only in ("both", "bptt"):
        _compare_bptt(args, cfg, pieces, keys, val, tokenizer)


def _compare_rtrl(args, cfg, train, val) -> None:
    start = time.perf_counter()
    result = rtrl.train_rtrl(train, cfg, val_pieces=val, epochs=args.epochs, learning_rate=args.lr,
                             update_every=args.update_every, clipnorm=1.0, seed=args.seed, report_every=0)
    rtrl_seconds = time.perf_counter() - start
    rtrl_val = rtrl.sequence_nll(result.weights, cfg, val)[0]
    best_epoch = min(result.history, key=lambda r: r["val_nll"])["epoch"]
    updates = sum(len(p) - 1 for p in train) * args.epochs // args.update_every
    print(f"| RTRL (K={args.update_every}, 1 stream) | {args.epochs} (best {best_epoch}) | ~{updates} | "
          f"{rtrl_val:.3f} | {rtrl_seconds:.0f} |")
    print("RTRL per-epoch validation NLL: " + ", ".join(f"{r['val_nll']:.3f}" for r in result.history))


def _compare_bptt(args, cfg, pieces, keys, val, tokenizer) -> None:
    from musicgen.models import export_weights
    from musicgen.trainer import train_model

    train_cfg = TrainConfig(epochs=args.bptt_epochs, batch_size=args.batch_size, bptt=args.bptt,
                            learning_rate=args.lr, clipnorm=1.0, val_fraction=args.val_fraction,
                            patience=args.bptt_epochs, seed=args.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        trained = train_model(pieces, keys, cfg, train_cfg, out, tokenizer=tokenizer, tensorboard=False, verbose=0)
    bptt_seconds = time.perf_counter() - start
    bptt_val = rtrl.sequence_nll(export_weights(trained.model, cfg), cfg, val)[0]

    metrics = trained.metrics
    batches = metrics.get("train_events_per_epoch", 0) * args.bptt_epochs // (args.batch_size * args.bptt)
    keras_val = metrics.get("val_nll") or float("nan")
    print(f"| Keras BPTT (batch {args.batch_size} x {args.bptt}) | {args.bptt_epochs} "
          f"(best {metrics.get('best_epoch')}) | ~{batches} | {bptt_val:.3f} (Keras: {keras_val:.3f}) | "
          f"{bptt_seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("scaling")
    s.add_argument("--units", type=int, nargs="+", default=[8, 16, 32, 64])
    s.add_argument("--cells", nargs="+", default=["simple_rnn", "gru", "lstm"])
    s.add_argument("--steps", type=int, default=64)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--dtype", default="float64")
    s.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024])
    s.add_argument("--length-units", type=int, default=32)
    c = sub.add_parser("compare")
    c.add_argument("--pieces", type=int, default=30)
    c.add_argument("--cell", default="gru")
    c.add_argument("--units", type=int, default=32)
    c.add_argument("--embed", type=int, default=EMBED)
    c.add_argument("--epochs", type=int, default=20, help="RTRL passes over the training pieces")
    c.add_argument("--update-every", type=int, default=16)
    c.add_argument("--lr", type=float, default=2e-3)
    c.add_argument("--bptt-epochs", type=int, default=300)
    c.add_argument("--batch-size", type=int, default=8)
    c.add_argument("--bptt", type=int, default=64)
    c.add_argument("--val-fraction", type=float, default=0.2)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--only", choices=["both", "rtrl", "bptt"], default="both")
    args = parser.parse_args()
    scaling(args) if args.what == "scaling" else compare(args)


if __name__ == "__main__":
    main()
