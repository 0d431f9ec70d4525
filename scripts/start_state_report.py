"""Measure the start of samples: first-event NLL from zeros / a carried state / the start state, and the share of
notes in the first beats outside the corpus's pitch range. Writes a JSON report (docs/start_state.md quotes it).

    python scripts/start_state_report.py MODEL CORPUS OUT.json [--samples 64 --length 768 --seed 5]

MODEL is a bundle. The "start" state is the bundle's start_state.npz; a bundle without one (trained before the
fix) gets it computed here from its training pieces, in memory (the bundle is not changed), exactly as training now
does. "zero" is the old start; "carried" is the state after the previous held-out piece and its EOS, as stateful
training shows BOS. Numpy only (no TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from musicgen.bundle import load_bundle
from musicgen.split import bundle_split
from musicgen.generate import generate, one_blas_thread
from musicgen.sampler import StepModel
from musicgen.scoring import score_pieces, summarize
from musicgen.start_state import (compute_start_state, corpus_pitch_range, first_beats_out_of_range,
                                  states_after)

FIRST = 32
BANDS = [(0, 4), (4, 8), (8, 16), (16, 32)]


def per_position(scores, first=FIRST) -> list[float]:
    """Mean NLL (nats) at target position t = 0 .. first-1 over the pieces long enough."""
    return [float(np.mean([s.nll[t] for s in scores if len(s.nll) > t])) for t in range(first)]


def first_note_bound(tok, train, heldout, scores) -> dict:
    """The first NOTE_ON of a piece has no context in any start state: the model's NLL there (from the given scores)
    vs the cross-entropy of the training pieces' first-pitch frequencies (add-0.5 smoothing) on the held-out pieces,
    and the first-32 NLL without that one event."""
    on0, size = tok.ranges["NOTE_ON"]

    def first_on(p):
        hits = np.flatnonzero((p >= on0) & (p < on0 + size))
        return int(hits[0]) if hits.size else None

    counts = np.zeros(size)
    for p in train:
        j = first_on(p)
        if j is not None:
            counts[p[j] - on0] += 1
    freq = (counts + 0.5) / (counts.sum() + 0.5 * size)
    model, marginal, rest = [], [], []
    for p, sc in zip(heldout, scores):
        j = first_on(p)
        if j is None or j - 1 >= FIRST or j - 1 >= len(sc.nll):
            continue
        model.append(sc.nll[j - 1])
        marginal.append(-np.log(freq[p[j] - on0]))
        rest.append(np.delete(sc.nll[:FIRST], j - 1))
    return {"pieces": len(model), "model_nll": float(np.mean(model)), "marginal_nll": float(np.mean(marginal)),
            "first_without_it": float(np.concatenate(rest).mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model"), ap.add_argument("corpus"), ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--length", type=int, default=768)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    started = time.perf_counter()
    bundle = load_bundle(args.model)
    tok = bundle.tokenizer
    data, parts = bundle_split(bundle, args.corpus)  # valid only, never test
    train_idx, val_idx = parts.train, parts.valid
    train = [data.pieces[i] for i in train_idx]
    heldout = [data.pieces[i] for i in val_idx]
    shipped = bundle.start_state is not None
    with one_blas_thread():
        step = StepModel(bundle.weights, bundle.model_config, dtype=np.float64, tokenizer=bundle.tokenizer)
        fresh = StepModel(bundle.weights, bundle.model_config, tokenizer=bundle.tokenizer)
        start = bundle.start_state if shipped else compute_start_state(fresh, train, eos_id=tok.eos_id)
        # carried: piece i is read after piece i-1 (a fixed random order of the held-out pieces) and its EOS
        order = np.random.default_rng(0).permutation(len(heldout))
        prev = [heldout[order[(k - 1) % len(order)]] for k in range(len(order))]
        after = states_after(step, prev)
        pieces = [heldout[i] for i in order]
        scores = {"start": score_pieces(step, pieces, start_state=start)}
        scores["zero"] = score_pieces(step, pieces)
        carried = []
        for row, piece in enumerate(pieces):  # one piece at a time: each has its own carried state
            state = [tuple(a[row] for a in layer) for layer in after]
            carried += score_pieces(step, [piece], start_state=state, max_events=FIRST)
        scores["carried"] = carried
    report = {"model": str(args.model), "corpus": str(args.corpus), "heldout_pieces": len(heldout),
              "train_pieces": len(train), "start_state_in_bundle": shipped,
              "val_nll": bundle.metrics.get("val_nll"), "first": FIRST, "nll": {}}
    for name, sc in scores.items():
        row = {"first": summarize(sc, first=FIRST)["nll_nats"],
               "bands": {f"{a + 1}-{b}": summarize(sc, first=b, skip=a)["nll_nats"] for a, b in BANDS},
               "per_position": per_position(sc)}
        if name != "carried":
            row["later"] = summarize(sc, skip=FIRST)["nll_nats"]
            row["all"] = summarize(sc)["nll_nats"]
        report["nll"][name] = row
    report["first_note"] = {k: first_note_bound(tok, train, pieces, scores[k]) for k in ("start", "zero")}
    lo, hi = corpus_pitch_range(tok, train)
    report["pitch_range"] = [lo, hi]
    report["sampling"] = {"samples": args.samples, "length": args.length, "seed": args.seed}
    for name, state in (("zero", None), ("start", start)):
        bundle.start_state = state
        result = generate(bundle, length=args.length, seed=args.seed, num_samples=args.samples)
        report["sampling"][name] = first_beats_out_of_range(tok, result.tokens, lo, hi, beats=4)
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    short = {k: {"first": v["first"], "later": v.get("later")} for k, v in report["nll"].items()}
    print(json.dumps({"nll": short, "pitch_range": report["pitch_range"],
                      "zero": report["sampling"]["zero"], "start": report["sampling"]["start"]}, indent=1))


if __name__ == "__main__":
    main()
