"""``musicgen evaluate MODEL CORPUS_DIR``: how well a bundle predicts unseen music, against fair baselines, and what
its samples look like. Runs on numpy: TensorFlow and Keras are never imported.

1. **Split**: the bundle's own split of the corpus (``split.split_corpus``); ``split`` picks the part evaluated
   (``test`` by default). A bundle trained before the three-way split has a *legacy* split whose valid and test
   parts are the same held-out pieces; the report says so.
2. **Likelihood** of every event after the first of each evaluated piece, from the bundle's start state, through
   the float64 numpy step kernels (``scoring.score_pieces``): NLL in nats and bits, perplexity, next-event accuracy;
   and per note (the pieces' total NLL over their decoded notes), which compares encodings with different events.
3. **Baselines** (``musicgen.baselines``): add-one unigram and interpolated Kneser-Ney, fit on the training pieces at
   every transposition the model trained on; the Kneser-Ney order and discount are chosen on the valid part
   (``baselines=False`` skips them).
4. **Samples**, drawn once per set in ``sets`` (default both, ``SAMPLING``): ``raw`` is the model's own distribution (temperature 1, no
   top-k/top-p, EOS allowed, no note-consistency masks, no forced NOTE_OFF; only PAD and BOS are never drawn) and
   ``rules`` the default ``musicgen sample`` settings. Each is compared with the evaluated pieces: musical statistics
   (``musicgen.stats``), memorization (``musicgen.memorization``) and a two-sample classifier (``musicgen.twosample``).

Nothing is written unless asked: ``--json PATH`` writes the report, ``--save`` writes MODEL/evaluation.json and
records its checksum in bundle.json (``bundle.write_bundle_file``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from musicgen import stats
from musicgen.baselines import all_transpositions, baseline_scores
from musicgen.errors import UsageError

SampleFn = Callable[..., list]
START_EVENTS, START_BEATS = 32, 4  # the start of a piece: NLL of its first events, pitch range of its first beats
SAMPLING = {  # generate() settings of the two sample sets
    "raw": dict(temperature=1.0, top_k=0, top_p=1.0, max_polyphony=0, pitch_range=None, allow_eos=True,
                max_note_length=0.0, well_formed=False),
    "rules": dict(temperature=1.0, top_k=0, top_p=1.0, max_polyphony=0, pitch_range=None, allow_eos=False,
                  max_note_length=8.0, well_formed=True),  # = musicgen sample's defaults
}
SAMPLING_LABELS = {
    "raw": "temperature 1, no top-k/top-p, EOS allowed, no note masks, no forced NOTE_OFF (the model's own "
           "distribution)",
    "rules": "`musicgen sample` defaults: temperature 1, EOS off, note-consistency masks, NOTE_OFF forced after 8 "
             "quarter notes",
}


# ------------------------------------------------------------------------------------------------------ likelihood
def piece_scores(bundle, pieces: Sequence[np.ndarray]) -> list:
    """``scoring.PieceScore`` (per-event NLL in nats, argmax hits) of each piece under the bundle, in float64 numpy,
    from the bundle's start state (zeros for bundles without one)."""
    from musicgen.generate import one_blas_thread
    from musicgen.sampler import StepModel
    from musicgen.scoring import score_pieces

    step = StepModel(bundle.weights, bundle.model_config, dtype=np.float64,
                     tokenizer=getattr(bundle, "tokenizer", None))
    with one_blas_thread():
        return score_pieces(step, pieces, start_state=getattr(bundle, "start_state", None))


def model_scores(bundle, pieces: Sequence[np.ndarray], scores: Sequence | None = None) -> dict:
    """``scoring.summarize`` of ``piece_scores``: nll_nats, nll_bits, perplexity, accuracy, events. ``scores``: the
    pieces' ``piece_scores`` when the caller has them already."""
    from musicgen.scoring import summarize

    if not any(len(p) >= 2 for p in pieces):
        raise UsageError("pieces: nothing to score (every evaluated piece has fewer than 2 events)")
    return summarize(piece_scores(bundle, pieces) if scores is None else scores)


def per_note(tokenizer, pieces: Sequence[np.ndarray], scores: Sequence) -> dict:
    """The pieces' total NLL (every scored event, ``scores`` from ``piece_scores``) over their notes
    (``tokenizer.decode_notes``): ``notes``, ``nll_nats_per_note``, ``nll_bits_per_note``, ``events_per_note``
    (scored events per note); ``nan`` without notes. Unlike the per-event mean it does not reward an encoding for
    spending more (easy) events on each note."""
    notes = sum(len(tokenizer.decode_notes(p)) for p in pieces)
    total = float(sum(s.nll.sum() for s in scores))
    events = sum(s.nll.size for s in scores)
    nats = total / notes if notes else math.nan
    return {"notes": int(notes), "nll_nats_per_note": nats, "nll_bits_per_note": nats / math.log(2),
            "events_per_note": events / notes if notes else math.nan}


# --------------------------------------------------------------------------------------------------------- samples
def _generate(bundle, num_samples: int, length: int, seed: int, **settings) -> list[np.ndarray]:
    from musicgen.generate import generate

    return generate(bundle, length=length, num_samples=num_samples, seed=seed, **settings).tokens


def sample_report(tokenizer, samples: Sequence[np.ndarray], real: Sequence[np.ndarray], real_features: list,
                  train: Sequence[np.ndarray], copy_n: int, excerpt_length: int, seed: int) -> dict:
    """Statistics, memorization and two-sample test of ``samples`` against the ``real`` pieces (the two-sample entry
    is ``{"error": …}`` where the test cannot run, e.g. samples too short for one excerpt)."""
    feats = [stats.piece_features(tokenizer.decode_notes(s)) for s in samples]
    out = {"events_mean": float(np.mean([len(s) for s in samples])) if samples else math.nan,
           "stats": stats.compare_feature_sets(feats, real_features)}
    from musicgen.memorization import memorization
    from musicgen.twosample import two_sample

    out["memorization"] = memorization(samples, train, real, copy_n=copy_n)
    try:
        out["two_sample"] = two_sample(tokenizer, list(real), list(samples), excerpt_length, seed=seed)
    except (UsageError, ValueError) as exc:  # e.g. samples too short for one excerpt
        out["two_sample"] = {"error": str(exc)}
    return out


# ------------------------------------------------------------------------------------------------------ the report
def evaluate(bundle_or_path, corpus_or_cache_dir, *, split: str = "test", num_samples: int = 64,
             sample_length: int = 512, seed: int = 0, max_order: int = 8, copy_n: int = 32, excerpt_length: int = 256,
             sample_fn: SampleFn | None = None, log: Callable[[str], None] = lambda _msg: None,
             sets: Sequence[str] = tuple(SAMPLING), baselines: bool = True, split_of=None) -> dict:
    """Score a bundle (see the module docstring) and return a JSON-ready dict (``nan`` written as null by
    ``write_json``).

    Args:
        bundle_or_path: a ``Bundle`` or its folder.
        corpus_or_cache_dir: the corpus the model was trained on (music folder or token cache).
        split: the part evaluated, ``"valid"`` or ``"test"``.
        num_samples: samples per sample set (0 skips the samples).
        sample_length: events per sample.
        seed: sampling seed (also the two-sample test's).
        max_order: highest Kneser-Ney order tried (1 = unigram only).
        copy_n: a sample "copies" when it shares at least this many consecutive events with a training piece.
        excerpt_length: events per excerpt in the two-sample test.
        sample_fn: ``(bundle, num_samples, length, seed, **SAMPLING[name]) -> list of int token arrays``; default
            ``generate.generate``.
        log: called with one line per stage (progress).
        sets: the sample sets drawn, names of ``SAMPLING`` (``("rules",)``: only the ``musicgen sample`` defaults).
        baselines: fit and score the unigram and Kneser-Ney baselines (the slowest part on a large corpus).
        split_of: a ``Bundle`` or folder whose split of the corpus is used instead of the bundle's own (its train
            config decides it; its tokenizer config must be the bundle's): scores a base model and the models
            fine-tuned or trained from it on the same test pieces.
    """
    from musicgen.bundle import Bundle, load_bundle
    from musicgen.split import bundle_split
    from musicgen.start_state import corpus_pitch_range, first_beats_out_of_range, start_metrics

    for name, value, low in (("num_samples", num_samples, 0), ("sample_length", sample_length, 1),
                             ("max_order", max_order, 1), ("copy_n", copy_n, 1), ("excerpt_length", excerpt_length, 2)):
        if not (isinstance(value, int) and value >= low):
            raise UsageError(f"{name}: expected an integer >= {low}, got {value!r}")
    if not sets or any(name not in SAMPLING for name in sets):
        raise UsageError(f"sets: expected names from {list(SAMPLING)}, got {list(sets)!r}")
    if split not in ("valid", "test"):
        raise UsageError(f"split: expected 'valid' or 'test', got {split!r}")
    started = time.perf_counter()
    bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
    tok, tcfg = bundle.tokenizer, bundle.train_config
    splitter = bundle
    if split_of is not None:
        splitter = split_of if isinstance(split_of, Bundle) else load_bundle(split_of)
        if splitter.tokenizer_config != bundle.tokenizer_config:
            raise UsageError(f"split_of: {str(splitter.path)!r} has another tokenizer config than "
                             f"{str(bundle.path)!r}; their splits are of different tokens")
    data, parts = bundle_split(splitter, corpus_or_cache_dir)
    train, valid, evaluated = (parts.pieces(p, data.pieces) for p in ("train", "valid", split))
    if not (train and valid and evaluated):
        raise UsageError(f"corpus_dir: the bundle's split of {len(data.pieces)} pieces leaves {len(train)} train, "
                         f"{len(valid)} valid, {len(parts.test)} test; evaluate needs all three")
    result: dict = {
        "model": {"path": str(bundle.path), "cell": bundle.model_config.cell, "layers": bundle.model_config.layers,
                  "units": bundle.model_config.units, "vocab_size": tok.vocab_size,
                  "trained_val_nll": bundle.metrics.get("val_nll")},
        "corpus": {"path": str(corpus_or_cache_dir), "pieces": len(data.pieces),
                   "time_mode": bundle.tokenizer_config.time_mode},
        "split": {"name": split, "legacy": bool(parts.legacy), "train": len(parts.train), "valid": len(parts.valid),
                  "test": len(parts.test), "seed": splitter.train_config.seed,
                  "of": str(splitter.path)},
    }
    log(f"scoring the model on {len(evaluated)} {split} pieces ({sum(len(p) - 1 for p in evaluated)} events)")
    per_piece = piece_scores(bundle, evaluated)  # scored once: the table's NLL and the start-of-piece figures
    scores = {"model": {**model_scores(bundle, evaluated, per_piece), **per_note(tok, evaluated, per_piece)}}
    result["start"] = start_metrics(bundle, evaluated, first=START_EVENTS, scores=per_piece)
    seen = all_transpositions(tok, train, tcfg.transpose)
    if baselines:
        log(f"fitting baselines on {len(seen)} training pieces (transpositions within ±{tcfg.transpose}), "
            f"Kneser-Ney orders 2..{max_order} chosen on {len(valid)} valid pieces")
        base = baseline_scores(seen, valid, evaluated, tok.vocab_size, max_order)
        scores.update({k: v for k, v in base.items() if k in ("unigram", "kneser_ney")})
        result["baselines"] = {"transpose": tcfg.transpose, "train_pieces": len(seen),
                               "train_events": int(sum(len(p) - 1 for p in seen)),
                               "selection": base.get("kn_selection")}
    result["scores"] = scores
    if "kneser_ney" in scores:
        result["margin"] = 1.0 - scores["model"]["nll_nats"] / scores["kneser_ney"]["nll_nats"]
    if num_samples:
        real_features = [stats.piece_features(tok.decode_notes(p)) for p in evaluated]
        pitch_range = corpus_pitch_range(tok, train)
        result["samples"] = {"num_samples": num_samples, "length": sample_length, "seed": seed, "copy_n": copy_n,
                             "excerpt_length": excerpt_length, "pitch_range": list(pitch_range), "sets": {}}
        for name, settings in ((name, SAMPLING[name]) for name in sets):
            log(f"sampling {num_samples} x {sample_length} events ({name}, seed {seed}) and comparing")
            samples = [np.asarray(s, dtype=np.int64) for s in
                       (sample_fn or _generate)(bundle, num_samples, sample_length, seed, **settings)]
            result["samples"]["sets"][name] = {"settings": settings, **sample_report(
                tok, samples, evaluated, real_features, seen, copy_n, excerpt_length, seed),
                "first_beats": first_beats_out_of_range(tok, samples, *pitch_range, beats=START_BEATS)}
    result["wall_seconds"] = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------------------------------ the table
_FEATURE_NAMES = {"pitch_range": "pitch range (semitones)", "pitch_classes_used": "pitch classes used",
                  "pitch_class_entropy": "pitch-class entropy (bits)", "polyphony": "polyphony (notes)",
                  "notes_per_beat": "notes per beat", "pitch_in_scale_rate": "pitch-in-scale rate",
                  "pitch_class_histogram": "pitch-class histogram", "ioi_histogram": "inter-onset histogram",
                  "on_beat_onset_share": "on-beat onset share", "long_note_share": "notes >= 4 beats (share)",
                  "chord_onset_share": "notes in 3+ note onsets"}


def _num(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def _score_lines(result: dict) -> list[str]:
    lines = [f"{'':28}{'nats/event':>11}{'bits/event':>11}{'perplexity':>11}{'accuracy':>10}"]
    for key, row in result["scores"].items():
        name = {"model": "model", "unigram": "unigram (add-one)"}.get(key) or \
            f"Kneser-Ney {row['order']}-gram, D {row['discount']:g}"
        lines.append(f"{name:28}{_num(row['nll_nats'], '.4f'):>11}{_num(row['nll_bits'], '.4f'):>11}"
                     f"{_num(row['perplexity'], '.2f'):>11}{_num(row['accuracy'], '.3f'):>10}")
    model = result["scores"]["model"]
    if "nll_nats_per_note" in model:
        lines.append(f"model per note: {_num(model['nll_nats_per_note'], '.4f')} nats, "
                     f"{_num(model['nll_bits_per_note'], '.4f')} bits over {model['notes']} notes "
                     f"({_num(model['events_per_note'], '.2f')} scored events per note)")
    b, sp = result.get("baselines"), result["split"]
    if b is None:
        return lines + ["baselines not fitted"]
    lines.append(f"baselines fit on the {sp['train']} training pieces at every transposition within "
                 f"±{b['transpose']} semitones the pitch range allows ({b['train_pieces']} pieces, "
                 f"{b['train_events']} events)")
    sel = b.get("selection")
    if sel:
        where = "valid split" + (" (legacy split: the same pieces as test)" if sp["legacy"] else "")
        lines.append(f"Kneser-Ney order {sel['orders'][0]}..{sel['orders'][-1]} and discount "
                     f"{{{', '.join(f'{d:g}' for d in sel['discounts'])}}} chosen on the {where}")
        if result["scores"]["kneser_ney"]["order"] == sel["orders"][-1]:
            lines.append("the best order is the highest tried: a higher --max-order may score lower")
        lines.append(f"model vs the best n-gram: {100 * result['margin']:.1f}% lower NLL")
    return lines


def _mean_sd(row: dict, side: str) -> str:
    return f"{_num(row[side + '_mean'], '.2f')} ± {_num(row[side + '_std'], '.2f')}"


def _sample_lines(result: dict) -> list[str]:
    s, sp = result["samples"], result["split"]
    sets = s["sets"]
    lines = ["", f"samples: {s['num_samples']} x {s['length']} events per set, seed {s['seed']}, vs the "
                 f"{sp[sp['name']]} {sp['name']} pieces (mean ± sd; overlap 1 = same distribution)"]
    lines += [f"  {name:6}= {SAMPLING_LABELS.get(name, '')}" for name in sets]
    lines.append(f"{'':28}" + "".join(f"{name:>16}" for name in sets) + f"{sp['name']:>16}"
                 + "".join(f"{'overlap ' + name:>15}" for name in sets))
    first = next(iter(sets.values()))["stats"]
    for key, row in first.items():
        if "generated_mean" in row:
            cells = "".join(f"{_mean_sd(v['stats'][key], 'generated'):>16}" for v in sets.values())
            real = _mean_sd(row, "real")
        else:
            cells, real = " " * 16 * len(sets), ""
        overlaps = "".join(f"{_num(v['stats'][key]['overlap'], '.3f'):>15}" for v in sets.values())
        lines.append(f"{_FEATURE_NAMES.get(key, key):28}{cells}{real:>16}{overlaps}")
    for name, v in sets.items():
        mem, two = v["memorization"], v["two_sample"]
        lines.append(f"{name}: {_num(v['events_mean'], '.0f')} events per sample on average (BOS and EOS included)")
        if mem is not None:
            lines.append(f"{name}: longest run shared with training: median {_num(mem['sample_longest_median'], '.0f')}"
                         f" events ({sp['name']} pieces: {_num(mem['heldout_longest_median'], '.0f')}); copying >= "
                         f"{mem['copy_n']} events: {_num(100 * mem['copy_rate'], '.0f')}% of samples "
                         f"({sp['name']} pieces: {_num(100 * mem['heldout_copy_rate'], '.0f')}%)")
        fb = v.get("first_beats")
        if fb is not None:
            lo, hi = fb["pitch_lo"], fb["pitch_hi"]
            lines.append(f"{name}: notes outside the training pieces' pitch range {lo}-{hi} (0.1-99.9th percentile): "
                         f"{_num(100 * fb['first_share'], '.1f')}% of those starting in the first {fb['beats']} beats "
                         f"({fb['first_notes']} notes), {_num(100 * fb['later_share'], '.2f')}% later")
        if two is None:
            pass
        elif "error" in two:
            lines.append(f"{name}: two-sample test not run: {two['error']}")
        else:
            lines.append(f"{name}: two-sample classifier accuracy {_num(two['accuracy'], '.3f')} "
                         f"[{_num(two['ci_low'], '.3f')}, {_num(two['ci_high'], '.3f')}] on excerpts of "
                         f"{two['length']} events ({two['n_generated']} generated, {two['n_real']} real; "
                         f"0.5 = indistinguishable)")
    return lines


def format_table(result: dict) -> str:
    """The result of ``evaluate`` as plain text for the terminal."""
    m, c, sp = result["model"], result["corpus"], result["split"]
    legacy = " (legacy split: valid = test = the pieces held out in training)" if sp["legacy"] else ""
    lines = [f"{m['path']} ({m['cell']} {m['layers']}x{m['units']}) on {c['path']}: split {sp['name']}{legacy}",
             f"pieces: {sp['train']} train, {sp['valid']} valid, {sp['test']} test; evaluated: {sp[sp['name']]} "
             f"{sp['name']} pieces, {result['scores']['model']['events']} events", ""]
    lines += _score_lines(result)
    st = result.get("start")
    if st is not None:
        origin = "the bundle's start state" if st["has_start_state"] else "zeros (no start state in this bundle)"
        lines.append(f"start of a piece: first {st['first']} events {_num(st['nll_first_start'], '.4f')} nats/event "
                     f"from {origin} ({_num(st['nll_first_zero'], '.4f')} from zeros); later events "
                     f"{_num(st['nll_later'], '.4f')} (ratio {_num(st['first_over_later'], '.2f')})")
    if "samples" in result:
        lines += _sample_lines(result)
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


def to_json(result: dict) -> str:
    """The report as JSON text; non-finite numbers become null."""
    return json.dumps(_json_safe(result), indent=2, allow_nan=False) + "\n"


def write_json(result: dict, path: str | Path) -> Path:
    """Write ``result`` as JSON atomically (temporary file, then rename)."""
    from musicgen.safeio import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, to_json(result))
    return path


def write_plots(result: dict, out_dir: str | Path) -> list[Path]:
    """PNGs in ``out_dir``: ``pitch_class_histogram.png`` and ``ioi_histogram.png`` (pooled shares, each sample set
    vs the evaluated pieces) and ``features.png`` (per-piece distribution of each scalar feature)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "samples" not in result:
        raise UsageError("plot: no statistics to plot (num_samples is 0)")
    sets, real_name = result["samples"]["sets"], result["split"]["name"]
    labels = list(sets) + [real_name]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, ticks in (("pitch_class_histogram", stats.PITCH_CLASS_NAMES), ("ioi_histogram", stats.IOI_LABELS)):
        rows = [v["stats"][key]["generated"] for v in sets.values()] + [next(iter(sets.values()))["stats"][key]["real"]]
        fig, ax = plt.subplots(figsize=(8, 3.5))
        x, width = np.arange(len(ticks)), 0.8 / len(rows)
        for i, (label, row) in enumerate(zip(labels, rows)):
            ax.bar(x + (i - (len(rows) - 1) / 2) * width, row, width, label=label)
        ax.set_xticks(x, ticks)
        ax.set_ylabel("share")
        unit = " (beats)" if key == "ioi_histogram" and result["corpus"]["time_mode"] == "beat" else ""
        overlaps = ", ".join(f"{n} {_num(v['stats'][key]['overlap'], '.3f')}" for n, v in sets.items())
        ax.set_title(f"{_FEATURE_NAMES[key]}{unit} — overlap {overlaps}")
        ax.legend()
        written.append(_save_figure(fig, out / f"{key}.png"))
        plt.close(fig)
    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    for ax, key in zip(axes.ravel(), stats.SCALAR_FEATURES):
        rows = [v["stats"][key]["generated_values"] for v in sets.values()]
        rows.append(next(iter(sets.values()))["stats"][key]["real_values"])
        values = [[v for v in r if v is not None and math.isfinite(v)] for r in rows]
        ax.hist(values, bins=12, weights=[np.full(len(v), 1 / max(len(v), 1)) for v in values], label=labels)
        ax.set_title(_FEATURE_NAMES[key], fontsize=9)
        ax.set_ylabel("share of pieces", fontsize=8)
    axes[0, 0].legend(fontsize=8)
    written.append(_save_figure(fig, out / "features.png"))
    plt.close(fig)
    return written


def _save_figure(fig, path: Path) -> Path:
    from musicgen.safeio import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return path


def cli_evaluate(args) -> int:
    """Handler for ``musicgen evaluate`` (flags in ``cli_parsers.add_evaluate``): table to stdout, files only on request."""
    from musicgen.bundle import write_bundle_file

    result = evaluate(args.model, args.corpus_dir, split=args.split, num_samples=args.num_samples,
                      sample_length=args.length, seed=args.seed, max_order=args.max_order, copy_n=args.copy_n,
                      excerpt_length=args.excerpt_length, split_of=args.split_of,
                      log=lambda msg: print(f"evaluate: {msg}", file=sys.stderr, flush=True))
    print(format_table(result))
    if args.json:
        print(f"wrote {write_json(result, args.json)}")
    if args.save:
        print(f"wrote {write_bundle_file(args.model, 'evaluation.json', to_json(result))} (checksum in bundle.json)")
    if args.plot:
        for path in write_plots(result, args.plot):
            print(f"wrote {path}")
    return 0


class _CallableModule(type(sys)):
    """``musicgen.evaluate`` is both this module and the API function ``musicgen.evaluate(...)``: once the module is
    imported, Python binds the package attribute to the module, so ``from musicgen import evaluate`` may give
    either; calling the module calls ``evaluate``."""

    def __call__(self, *args, **kwargs):
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
