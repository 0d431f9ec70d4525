"""``musicgen evaluate MODEL CORPUS_DIR``: how well a bundle predicts held-out music, and what its samples look like.

1. **Likelihood** on the held-out pieces of the *same* split training used (``dataset.split_pieces`` with the
   bundle's ``train_config.val_fraction`` and ``seed``): NLL per event in nats and bits, perplexity and next-event
   accuracy. Each piece runs from a fresh state and every event after its first is a target — the computation of
   training's validation (``train_callbacks.sequence_metrics``), so the numbers match ``metrics.json``.
2. **Baselines** on the same events: an add-one unigram and interpolated Kneser-Ney n-grams (orders 2..max_order)
   fit on the training split (``musicgen.ngram``).
3. **Musical statistics** (``musicgen.stats``) of ``num_samples`` generated samples vs the held-out pieces, both
   decoded by the bundle's tokenizer, with the overlapped area of each feature's distributions.
4. **Memorization**: the longest token n-gram each sample shares with the training pieces, and the share of samples
   that copy ``copy_n`` or more consecutive training events (held-out pieces vs training given for scale).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from musicgen import stats
from musicgen.errors import UsageError
from musicgen.ngram import KneserNeyModel, UnigramModel

EVAL_GROUP, EVAL_CHUNK = 16, 256  # as in train.py: pieces per batch, events per chunk (state carried)
SampleFn = Callable[..., list]


# ------------------------------------------------------------------------------------------------------ likelihood
def score_metrics(nll_nats: float, accuracy: float | None, events: int) -> dict:
    """One row of the score table: NLL in nats and bits per event, perplexity ``exp(nats)``, accuracy, events."""
    return {"nll_nats": nll_nats, "nll_bits": nll_nats / math.log(2), "perplexity": math.exp(min(nll_nats, 700.0)),
            "accuracy": accuracy, "events": events}


def model_scores(model, model_config, pieces: Sequence[np.ndarray], pad_id: int = 0, group: int = EVAL_GROUP,
                 chunk: int = EVAL_CHUNK) -> dict:
    """Score a Keras model built by ``models.build_model`` on whole pieces (see ``score_metrics`` for the keys).

    The weights are copied into a stateful twin of batch ``min(group, pieces)`` so long pieces run in chunks of
    ``chunk`` events with the state carried, exactly like training's validation.
    """
    from musicgen.models import build_model
    from musicgen.train_callbacks import sequence_metrics

    scored = [p for p in pieces if len(p) >= 2]
    if not scored:
        raise UsageError("pieces: nothing to score (every held-out piece has fewer than 2 events)")
    twin = build_model(model_config, batch_size=min(group, len(scored)), stateful=True)
    twin.set_weights(model.get_weights())
    m = sequence_metrics(twin, scored, pad_id, chunk)
    return score_metrics(m["val_loss"], m["val_accuracy"], m["val_events"])


def baseline_scores(train: Sequence[np.ndarray], heldout: Sequence[np.ndarray], vocab_size: int,
                    max_order: int = 5) -> dict:
    """``{"unigram": …, "kn_2": …, "kn_{max_order}": …}`` rows, fit on ``train`` and scored on ``heldout``."""
    uni = UnigramModel(vocab_size=vocab_size).fit(train)
    events = sum(len(p) - 1 for p in heldout if len(p) >= 2)
    targets = np.concatenate([np.asarray(p[1:]) for p in heldout if len(p) >= 2])
    guess = int(uni.probs.argmax())
    out = {"unigram": score_metrics(uni.nll(heldout), float(np.mean(targets == guess)), events)}
    for order in range(2, max_order + 1):
        kn = KneserNeyModel(order=order, vocab_size=vocab_size).fit(train)
        out[f"kn_{order}"] = score_metrics(kn.nll(heldout), None, events)
    return out


# ------------------------------------------------------------------------------------------------------ the report
def _default_sampler(bundle, num_samples: int, length: int, seed: int) -> list[np.ndarray]:
    """Plain sampling (temperature 1, no filtering): full token sequences ``[BOS, …, EOS]``, one per sample."""
    from musicgen.generate import generate

    return generate(bundle, length=length, num_samples=num_samples, seed=seed).tokens


def memorization(samples: Sequence[np.ndarray], train: Sequence[np.ndarray], heldout: Sequence[np.ndarray],
                 copy_n: int) -> dict:
    """Longest shared n-grams of samples (and, for scale, held-out pieces) with the training pieces."""
    index = stats.NgramIndex(train)
    sample_runs = [index.longest_shared(s) for s in samples]
    heldout_runs = [index.longest_shared(p) for p in heldout]
    return {"copy_n": copy_n, "sample_longest": sample_runs,
            "sample_longest_median": float(np.median(sample_runs)) if sample_runs else math.nan,
            "copy_rate": float(np.mean([r >= copy_n for r in sample_runs])) if sample_runs else math.nan,
            "heldout_longest_median": float(np.median(heldout_runs)) if heldout_runs else math.nan,
            "heldout_copy_rate": float(np.mean([r >= copy_n for r in heldout_runs])) if heldout_runs else math.nan}


def evaluate(bundle_or_path, corpus_or_cache_dir, *, num_samples: int = 8, sample_length: int = 512, seed: int = 0,
             max_order: int = 5, copy_n: int = 32, sample_fn: SampleFn | None = None,
             log: Callable[[str], None] = lambda _msg: None) -> dict:
    """Score a bundle (see the module docstring) and return a JSON-ready dict (``nan`` written as null by
    ``write_json``).

    Args:
        bundle_or_path: a ``Bundle`` or its folder.
        corpus_or_cache_dir: the corpus the model was trained on (music folder or token cache); the held-out part
            is recovered from the bundle's split settings.
        num_samples: samples generated for the statistics (0 skips statistics and memorization).
        sample_length: events per sample.
        seed: sampling seed.
        max_order: highest Kneser-Ney order (1 = unigram only).
        copy_n: a sample "copies" when it shares at least this many consecutive events with a training piece.
        sample_fn: ``(bundle, num_samples, length, seed) -> list of int token arrays``; default
            ``generate.generate`` at temperature 1 without top-k/top-p (the model's own distribution).
        log: called with one line per stage (progress).
    """
    from musicgen.bundle import Bundle, load_bundle
    from musicgen.corpus import tokens_for
    from musicgen.dataset import split_pieces

    for name, value, low in (("num_samples", num_samples, 0), ("sample_length", sample_length, 1),
                             ("max_order", max_order, 1), ("copy_n", copy_n, 1)):
        if not (isinstance(value, int) and value >= low):
            raise UsageError(f"{name}: expected an integer >= {low}, got {value!r}")
    started = time.perf_counter()
    bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
    tok, tcfg = bundle.tokenizer, bundle.train_config
    data = tokens_for(corpus_or_cache_dir, bundle.tokenizer_config)
    train_idx, val_idx = split_pieces(data.keys, tcfg.val_fraction, tcfg.seed)
    train = [data.pieces[i] for i in train_idx]
    heldout = [data.pieces[i] for i in val_idx]
    if not heldout or not train:
        raise UsageError(f"corpus_dir: the split (val_fraction={tcfg.val_fraction}, seed={tcfg.seed}) of "
                         f"{len(data.pieces)} pieces leaves {len(heldout)} held out and {len(train)} for training; "
                         f"evaluate needs both")
    result: dict = {
        "model": {"path": str(bundle.path), "cell": bundle.model_config.cell, "layers": bundle.model_config.layers,
                  "units": bundle.model_config.units, "vocab_size": tok.vocab_size,
                  "trained_val_nll": bundle.metrics.get("val_nll")},
        "corpus": {"path": str(corpus_or_cache_dir), "pieces": len(data.pieces), "train_pieces": len(train),
                   "heldout_pieces": len(heldout), "val_fraction": tcfg.val_fraction, "split_seed": tcfg.seed,
                   "time_mode": bundle.tokenizer_config.time_mode},
    }
    log(f"scoring the model on {len(heldout)} held-out pieces ({sum(len(p) - 1 for p in heldout)} events)")
    scores = {"model": model_scores(bundle.keras_model(), bundle.model_config, heldout, tok.pad_id)}
    log(f"fitting n-gram baselines (orders 1..{max_order}) on {len(train)} training pieces")
    scores.update(baseline_scores(train, heldout, tok.vocab_size, max_order))
    result["scores"] = scores
    if num_samples:
        log(f"generating {num_samples} samples of {sample_length} events (seed {seed})")
        samples = [np.asarray(s, dtype=np.int64) for s in
                   (sample_fn or _default_sampler)(bundle, num_samples, sample_length, seed)]
        gen_feats = [stats.piece_features(tok.decode_notes(s)) for s in samples]
        real_feats = [stats.piece_features(tok.decode_notes(p)) for p in heldout]
        result["samples"] = {"num_samples": len(samples), "length": sample_length, "seed": seed}
        result["stats"] = stats.compare_feature_sets(gen_feats, real_feats)
        log("measuring memorization")
        result["memorization"] = memorization(samples, train, heldout, copy_n)
    result["wall_seconds"] = time.perf_counter() - started
    return result


_ROW_NAMES = {"model": "model", "unigram": "unigram (add-one)"}
_FEATURE_NAMES = {"pitch_range": "pitch range (semitones)", "pitch_classes_used": "pitch classes used",
                  "pitch_class_entropy": "pitch-class entropy (bits)", "polyphony": "polyphony (notes)",
                  "notes_per_beat": "notes per beat", "pitch_in_scale_rate": "pitch-in-scale rate",
                  "pitch_class_histogram": "pitch-class histogram", "ioi_histogram": "inter-onset histogram"}


def _num(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def format_table(result: dict) -> str:
    """The result of ``evaluate`` as plain-text tables for the terminal."""
    m, c = result["model"], result["corpus"]
    events = result["scores"]["model"]["events"]
    lines = [f"{m['path']} ({m['cell']} {m['layers']}x{m['units']}) on {c['path']}: {c['heldout_pieces']} held-out "
             f"pieces, {events} events (val_fraction {c['val_fraction']}, seed {c['split_seed']})", "",
             f"{'':24}{'nats/event':>11}{'bits/event':>11}{'perplexity':>11}{'accuracy':>10}"]
    for key, row in result["scores"].items():
        name = _ROW_NAMES.get(key, f"Kneser-Ney {key[3:]}-gram" if key.startswith("kn_") else key)
        lines.append(f"{name:24}{_num(row['nll_nats'], '.4f'):>11}{_num(row['nll_bits'], '.4f'):>11}"
                     f"{_num(row['perplexity'], '.2f'):>11}{_num(row['accuracy'], '.3f'):>10}")
    if "stats" in result:
        s = result["samples"]
        lines += ["", f"musical statistics: {s['num_samples']} samples x {s['length']} events vs "
                      f"{c['heldout_pieces']} held-out pieces (mean ± sd; overlap 1 = same distribution)",
                  f"{'':30}{'samples':>16}{'held-out':>16}{'overlap':>9}"]
        for key, row in result["stats"].items():
            name = _FEATURE_NAMES.get(key, key)
            if "generated_mean" in row:
                gen = f"{_num(row['generated_mean'], '.2f')} ± {_num(row['generated_std'], '.2f')}"
                real = f"{_num(row['real_mean'], '.2f')} ± {_num(row['real_std'], '.2f')}"
            else:
                gen = real = ""
            lines.append(f"{name:30}{gen:>16}{real:>16}{_num(row['overlap'], '.3f'):>9}")
        mem = result["memorization"]
        runs = mem["sample_longest"]
        lines += ["", f"memorization: longest n-gram shared with training, samples: median "
                      f"{_num(mem['sample_longest_median'], '.0f')}, max {max(runs) if runs else '-'} events; "
                      f"held-out pieces: median {_num(mem['heldout_longest_median'], '.0f')}",
                  f"samples copying >= {mem['copy_n']} consecutive training events: "
                  f"{sum(r >= mem['copy_n'] for r in runs)}/{len(runs)} ({_num(100 * mem['copy_rate'], '.0f')}%); "
                  f"held-out pieces: {_num(100 * mem['heldout_copy_rate'], '.0f')}%"]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ files
def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_json(result: dict, path: str | Path) -> Path:
    """Write ``result`` as JSON atomically (temporary file, then rename); non-finite numbers become null."""
    from musicgen.safeio import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(_json_safe(result), indent=2, allow_nan=False) + "\n")
    return path


def write_plots(result: dict, out_dir: str | Path) -> list[Path]:
    """PNGs in ``out_dir``: ``pitch_class_histogram.png`` and ``ioi_histogram.png`` (pooled shares, samples vs
    held-out) and ``features.png`` (per-piece distribution of each scalar feature). Returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "stats" not in result:
        raise UsageError("plot: no statistics to plot (num_samples is 0)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, labels in (("pitch_class_histogram", stats.PITCH_CLASS_NAMES), ("ioi_histogram", stats.IOI_LABELS)):
        row = result["stats"][key]
        fig, ax = plt.subplots(figsize=(8, 3.5))
        x = np.arange(len(labels))
        ax.bar(x - 0.2, row["generated"], 0.4, label="samples")
        ax.bar(x + 0.2, row["real"], 0.4, label="held-out")
        ax.set_xticks(x, labels)
        ax.set_ylabel("share")
        unit = " (beats)" if key == "ioi_histogram" and result["corpus"]["time_mode"] == "beat" else ""
        ax.set_title(f"{_FEATURE_NAMES[key]}{unit} — overlap {_num(row['overlap'], '.3f')}")
        ax.legend()
        written.append(_save_figure(fig, out / f"{key}.png"))
        plt.close(fig)
    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    for ax, key in zip(axes.ravel(), stats.SCALAR_FEATURES):
        row = result["stats"][key]
        values = [[v for v in row[k] if v is not None and math.isfinite(v)]
                  for k in ("generated_values", "real_values")]
        ax.hist(values, bins=12, weights=[np.full(len(v), 1 / max(len(v), 1)) for v in values],
                label=["samples", "held-out"])
        ax.set_title(f"{_FEATURE_NAMES[key]}\noverlap {_num(row['overlap'], '.3f')}", fontsize=9)
        ax.set_ylabel("share of pieces", fontsize=8)
    axes[0, 0].legend(fontsize=8)
    written.append(_save_figure(fig, out / "features.png"))
    plt.close(fig)
    return written


def _save_figure(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.tight_layout()
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def cli_evaluate(args) -> int:
    """Handler for ``musicgen evaluate`` (flags in ``cli._add_evaluate``)."""
    result = evaluate(args.model, args.corpus_dir, num_samples=args.num_samples, sample_length=args.length,
                      seed=args.seed, max_order=args.max_order, copy_n=args.copy_n,
                      log=lambda msg: print(f"evaluate: {msg}", file=sys.stderr, flush=True))
    print(format_table(result))
    json_path = write_json(result, args.json or Path(args.model) / "evaluation.json")
    print(f"\nwrote {json_path}")
    if args.plot:
        for path in write_plots(result, args.plot):
            print(f"wrote {path}")
    return 0
