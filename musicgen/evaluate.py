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
4. **Samples**, drawn once per set in ``sets`` (default both, ``SAMPLING``): ``raw`` is the model's own distribution
   (temperature 1, no top-k/top-p, EOS allowed, no note-consistency masks, no forced NOTE_OFF; only PAD and BOS are
   never drawn) and ``rules`` the default ``musicgen sample`` settings. Each is compared with the evaluated pieces:
   musical statistics (``musicgen.stats``), memorization (``musicgen.memorization``) and a two-sample classifier
   (``musicgen.twosample``).

The table, JSON and plots of a result are made in ``musicgen.evaluate_report`` (re-exported here).
Nothing is written unless asked: ``--json PATH`` writes the report, ``--save`` writes MODEL/evaluation.json and
records its checksum in bundle.json (``bundle.write_bundle_file``).
"""

from __future__ import annotations

import functools
import math
import sys
import time
from typing import Callable, Sequence

import numpy as np

from musicgen import stats
from musicgen.baselines import all_transpositions, baseline_scores
from musicgen.errors import UsageError
from musicgen.evaluate_report import (SAMPLING_LABELS, format_table, to_json, write_json,  # noqa: F401 (re-exported)
                                      write_plots)

SampleFn = Callable[..., list]
START_EVENTS, START_BEATS = 32, 4  # the start of a piece: NLL of its first events, pitch range of its first beats
SAMPLING = {  # generate() settings of the two sample sets
    "raw": dict(temperature=1.0, top_k=0, top_p=1.0, max_polyphony=0, pitch_range=None, allow_eos=True,
                max_note_length=0.0, well_formed=False, voices=0),
    "rules": dict(temperature=1.0, top_k=0, top_p=1.0, max_polyphony=0, pitch_range=None, allow_eos=False,
                  max_note_length=8.0, well_formed=True),  # = musicgen sample's defaults
}


# ------------------------------------------------------------------------------------------------------ likelihood
def piece_scores(bundle, pieces: Sequence[np.ndarray], masks: bool = False) -> list:
    """``scoring.PieceScore`` (per-event NLL in nats, argmax hits) of each piece under the bundle, in float64 numpy,
    from the bundle's start state (zeros for bundles without one). ``masks``: score with the sampler's
    well-formedness rules on (``rules.EventRules``: a NOTE_OFF only of a sounding pitch, no NOTE_ON of one, one note
    at a time per voice where the tokenizer says so, the KEY/TIME_SIG order; EOS allowed, no forced NOTE_OFF, no
    voice cap, no pitch range), see ``scoring.score_pieces``."""
    from musicgen.generate import one_blas_thread
    from musicgen.rules import EventRules
    from musicgen.sampler import StepModel
    from musicgen.scoring import score_pieces

    tokenizer = getattr(bundle, "tokenizer", None)
    step = StepModel(bundle.weights, bundle.model_config, dtype=np.float64, tokenizer=tokenizer)
    rules = functools.partial(EventRules, tokenizer, allow_eos=True, context=bool(step.context)) if masks else None
    with one_blas_thread():
        return score_pieces(step, pieces, start_state=getattr(bundle, "start_state", None), rules=rules)


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


def style_indices(bundle, pieces: Sequence[np.ndarray], style: str) -> list[int]:
    """The indices of the ``pieces`` (token arrays) whose STYLE event names ``style`` (``--style``: ``UsageError``
    for a name the bundle does not know, or a bundle without styles)."""
    from musicgen import styles as st

    value = st.parse_style(style, bundle.tokenizer_config.styles, f"the bundle {str(bundle.path)!r}")
    return [i for i, s in enumerate(st.head_styles(pieces, bundle.tokenizer)) if s == value]


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
             sets: Sequence[str] = tuple(SAMPLING), baselines: bool = True, split_of=None,
             voices: int | None = None, style: str | None = None) -> dict:
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
        voices: the voice cap of the ``rules`` samples (``musicgen sample --voices``; 0: none); None: the sampling
            default (each sample's cap drawn from the training pieces' voice counts, ``musicgen.voices``).
        style: a ``--styles`` bundle's style name: only the valid and ``split`` pieces of that style are scored and
            compared, and every sample takes it (``musicgen sample --style``); the training pieces of all styles stay
            the baselines' data and the copy reference. None: every piece, each sample's style drawn.
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
        if splitter.tokenizer_config.for_tokens() != bundle.tokenizer_config.for_tokens():
            raise UsageError(f"split_of: {str(splitter.path)!r} has another tokenizer config than "
                             f"{str(bundle.path)!r}; their splits are of different tokens")
    data, parts = bundle_split(splitter, corpus_or_cache_dir)
    train, valid, evaluated = (parts.pieces(p, data.pieces) for p in ("train", "valid", split))
    if style is not None:
        valid, evaluated = ([pieces[i] for i in style_indices(bundle, pieces, style)] for pieces in (valid, evaluated))
    if not (train and valid and evaluated):
        of = "" if style is None else f" of style {style!r}"
        raise UsageError(f"corpus_dir: the bundle's split of {len(data.pieces)} pieces leaves {len(train)} train, "
                         f"{len(valid)} valid{of}, {len(evaluated) if style else len(parts.test)} "
                         f"{split if style else 'test'}{of}; evaluate needs all three")
    result: dict = {
        "model": {"path": str(bundle.path), "cell": bundle.model_config.cell, "layers": bundle.model_config.layers,
                  "units": bundle.model_config.units, "vocab_size": tok.vocab_size,
                  "trained_val_nll": bundle.metrics.get("val_nll")},
        "corpus": {"path": str(corpus_or_cache_dir), "pieces": len(data.pieces),
                   "time_mode": bundle.tokenizer_config.time_mode},
        "split": {"name": split, "legacy": bool(parts.legacy), "train": len(parts.train), "valid": len(parts.valid),
                  "test": len(parts.test), "seed": splitter.train_config.seed_of_split,
                  "of": str(splitter.path), "style": style, "evaluated": len(evaluated)},
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
        for name in sets:  # voices: the rules set's voice cap (None: musicgen sample's default, drawn per sample)
            settings = {**SAMPLING[name], **({"voices": voices} if name == "rules" and voices is not None else {}),
                        **({"style": style} if style is not None else {})}
            log(f"sampling {num_samples} x {sample_length} events ({name}, seed {seed}) and comparing")
            samples = [np.asarray(s, dtype=np.int64) for s in
                       (sample_fn or _generate)(bundle, num_samples, sample_length, seed, **settings)]
            result["samples"]["sets"][name] = {"settings": settings, **sample_report(
                tok, samples, evaluated, real_features, seen, copy_n, excerpt_length, seed),
                "first_beats": first_beats_out_of_range(tok, samples, *pitch_range, beats=START_BEATS)}
    result["wall_seconds"] = time.perf_counter() - started
    return result


def cli_evaluate(args) -> int:
    """Handler for ``musicgen evaluate`` (flags in ``cli_parsers.add_evaluate``): table to stdout, files only on
    request."""
    from musicgen.bundle import write_bundle_file

    result = evaluate(args.model, args.corpus_dir, split=args.split, num_samples=args.num_samples,
                      sample_length=args.length, seed=args.seed, max_order=args.max_order, copy_n=args.copy_n,
                      excerpt_length=args.excerpt_length, split_of=args.split_of, voices=args.voices, style=args.style,
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
