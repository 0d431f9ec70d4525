"""Classifier two-sample test: can a linear classifier tell generated excerpts from real ones of the same length?

Both sets of token sequences are cut into excerpts of ``length`` events (``excerpts``), each excerpt becomes a
feature vector (``excerpt_features``: the statistics of ``musicgen.stats`` plus meter and voice-leading features),
and a cross-validated logistic regression tries to say which set each excerpt came from
(``classifier_accuracy``). Its out-of-fold accuracy is the statistic: 0.5 means the features cannot tell the sets
apart, 1.0 that they always can (Lopez-Paz & Oquab 2017, "Revisiting classifier two-sample tests").

Details that matter for reading the number:

* Classes are balanced by subsampling the larger set (fixed seed), so chance is exactly 0.5.
* Folds are grouped by piece (``StratifiedGroupKFold``): excerpts of one piece are never split between training
  and test folds, otherwise a classifier could recognize a piece (its key, its tempo) instead of a set.
* The 95% interval is a bootstrap over pieces, within each class, of the out-of-fold correctness (1,000
  resamples); it covers which pieces were drawn, not the refitting of the classifier.

scikit-learn is imported inside ``classifier_accuracy`` (``import musicgen.twosample`` stays light).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from musicgen import stats
from musicgen.errors import UsageError
from musicgen.piece import Note

ONSET_PHASES = ("onset_on_beat", "onset_on_half_beat", "onset_on_quarter_beat", "onset_off_sixteenths")
LINE_FEATURES = ("top_line_interval", "top_line_stepwise", "bass_line_interval", "mean_pitch", "mean_log2_duration")
FEATURE_NAMES = (stats.SCALAR_FEATURES + tuple(f"pc_{n}" for n in stats.PITCH_CLASS_NAMES)
                 + tuple(f"ioi_{n}" for n in stats.IOI_LABELS) + ONSET_PHASES + LINE_FEATURES)
N_BOOT = 1000


# ---------------------------------------------------------------------------------------------------- excerpts
def _body(tokenizer, tokens) -> np.ndarray:
    """Tokens without PAD and BOS, up to the first EOS: int64 (T,)."""
    t = np.asarray(tokens, dtype=np.int64).reshape(-1)
    eos = np.flatnonzero(t == tokenizer.eos_id)
    if eos.size:
        t = t[:eos[0]]
    return t[(t != tokenizer.pad_id) & (t != tokenizer.bos_id)]


def excerpt_starts(tokenizer, tokens, length: int) -> list[int]:
    """Where the excerpts of one token sequence start, as positions in its body (PAD/BOS dropped, cut at EOS).

    An excerpt starts at a time step: at the first token of the body, or at the first token after a run of
    TIME_SHIFTs. The first starts at 0; each next one at the first such boundary at or after the end of the
    previous, so excerpts never overlap; an excerpt that would run past the end is not taken.
    """
    if not (isinstance(length, (int, np.integer)) and length > 0):
        raise UsageError(f"length: expected a positive integer, got {length!r}")
    t = _body(tokenizer, tokens)
    shift = tokenizer.kind_mask(t, "TIME_SHIFT")
    boundary = np.flatnonzero(np.concatenate([[True], shift[:-1] & ~shift[1:]])) if t.size else np.zeros(0, int)
    starts, a = [], 0
    while t.size and a + length <= t.size:
        starts.append(int(a))
        nxt = boundary[boundary >= a + length]
        if not nxt.size:
            break
        a = int(nxt[0])
    return starts


def excerpts(tokenizer, pieces: Sequence, length: int) -> tuple[list[list[Note]], np.ndarray]:
    """Cut token sequences into non-overlapping excerpts of ``length`` events and decode each.

    Args:
        tokenizer: the ``Tokenizer`` the tokens were made with.
        pieces: int token arrays, shape (T,) each (``[BOS, …, EOS]`` or bare; PAD/BOS are dropped, EOS ends them).
        length: events per excerpt (see ``excerpt_starts`` for where excerpts start).

    Returns:
        ``(notes, piece_index)``: for each excerpt, its notes from ``tokenizer.decode_notes`` with times moved to
        where they are in the piece (quarter notes or seconds from its start, so beat phases mean something), and
        int64 (excerpts,) the index into ``pieces`` it came from. The VOICE, PROGRAM and VELOCITY in force at an
        excerpt's start are put before it when decoding (not counted in ``length``); notes sounding when it starts are
        left out, notes still sounding at its end are closed at its last time step.
    """
    shift_first = tokenizer.ranges["TIME_SHIFT"][0]
    out, index = [], []
    for i, tokens in enumerate(pieces):
        t = _body(tokenizer, tokens)
        shift = tokenizer.kind_mask(t, "TIME_SHIFT")
        steps = np.concatenate([[0], np.cumsum(np.where(shift, t - shift_first + 1, 0))])  # steps before position
        for a in excerpt_starts(tokenizer, t, length):
            prefix = tokenizer.in_force(t[:a], ("VOICE", "PROGRAM", "VELOCITY"))
            offset = float(tokenizer.from_steps(steps[a]))
            notes = tokenizer.decode_notes(np.concatenate([np.array(prefix, np.int64), t[a:a + length]]))
            out.append([Note(n.pitch, n.start + offset, n.end + offset, n.velocity, n.program, n.is_drum, n.voice)
                        for n in notes])
            index.append(i)
    return out, np.array(index, dtype=np.int64)


# ---------------------------------------------------------------------------------------------------- features
def _onset_phases(onsets: np.ndarray) -> np.ndarray:
    """Share of distinct onsets on the beat, on the half beat, on a quarter beat, elsewhere (time unit = beat)."""
    if not onsets.size:
        return np.zeros(4)
    frac = onsets % 1.0

    def on(grid):
        x = frac * grid
        return np.abs(x - np.round(x)) < 1e-6

    beat, half, quarter = on(1), on(2), on(4)
    counts = [beat.sum(), (half & ~beat).sum(), (quarter & ~half).sum(), (~quarter).sum()]
    return np.array(counts, dtype=np.float64) / onsets.size


def _line_motion(pitches_by_onset: list[int]) -> tuple[float, float]:
    """Mean |interval| in semitones between successive pitches of a line, and the share of steps (<= 2)."""
    steps = np.abs(np.diff(pitches_by_onset))
    if not steps.size:
        return math.nan, math.nan
    return float(steps.mean()), float((steps <= 2).mean())


def excerpt_features(notes) -> np.ndarray:
    """Feature vector of one excerpt, float64 shape (len(FEATURE_NAMES),), in the order of ``FEATURE_NAMES``.

    * ``stats.SCALAR_FEATURES`` (pitch range, classes used, pitch-class entropy, polyphony, notes per beat,
      pitch-in-scale rate), then the 12-bin pitch-class and inter-onset-interval histograms of ``musicgen.stats``;
    * meter: the share of distinct onsets on a beat, on a half beat (not a beat), on a quarter beat (neither),
      and elsewhere (triplets, off-grid); times are taken as beats (in seconds mode: as seconds);
    * voice leading: mean |interval| of the top line (the highest pitch starting at each onset) and its share of
      steps of at most 2 semitones, mean |interval| of the bass line (the lowest), mean pitch, mean log2 note
      duration.

    A feature with nothing to measure is ``nan`` (``classifier_accuracy`` fills it in).
    """
    notes = list(notes)
    f = stats.piece_features(notes)
    pitched = [n for n in notes if not n.is_drum]
    onsets = np.unique(np.round([n.start for n in notes], 9))
    by_onset: dict[float, list[int]] = {}
    for n in pitched:
        by_onset.setdefault(round(n.start, 9), []).append(n.pitch)
    times = sorted(by_onset)
    top = _line_motion([max(by_onset[t]) for t in times])
    bass = _line_motion([min(by_onset[t]) for t in times])
    mean_pitch = float(np.mean([n.pitch for n in pitched])) if pitched else math.nan
    mean_dur = float(np.mean(np.log2([n.end - n.start for n in notes]))) if notes else math.nan
    return np.concatenate([[f[name] for name in stats.SCALAR_FEATURES], f["pitch_class_histogram"],
                           f["ioi_histogram"], _onset_phases(onsets),
                           [top[0], top[1], bass[0], mean_pitch, mean_dur]]).astype(np.float64)


# -------------------------------------------------------------------------------------------------- classifier
def _fill_nan(X: np.ndarray) -> np.ndarray:
    """Replace ``nan`` by the column median of the pooled rows (0 where a whole column is nan)."""
    X = X.copy()
    bad = ~np.isfinite(X)
    if bad.any():
        med = np.array([np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else 0.0 for c in X.T])
        X[bad] = np.broadcast_to(med, X.shape)[bad]
    return X


def classifier_accuracy(X_real, X_gen, groups_real=None, groups_gen=None, seed: int = 0, folds: int = 5,
                        n_boot: int = N_BOOT) -> dict:
    """Out-of-fold accuracy of StandardScaler + LogisticRegression telling ``X_real`` rows from ``X_gen`` rows.

    Args:
        X_real, X_gen: feature matrices, shape (n_real, F) and (n_gen, F) (``nan`` → pooled column median).
        groups_real, groups_gen: int arrays (n,), the piece each row came from; rows of one group stay in one fold
            and are resampled together by the bootstrap. Default: every row its own group.
        seed: seeds the subsampling that balances the classes, the fold assignment and the bootstrap.
        folds: cross-validation folds; each class needs at least this many groups after balancing.
        n_boot: bootstrap resamples for the 95% interval.

    Returns:
        ``accuracy`` (0.5 = indistinguishable), ``ci_low``, ``ci_high`` (2.5 and 97.5 bootstrap percentiles),
        ``n_per_class`` (rows of each class used), ``folds``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_real, X_gen = (np.asarray(x, dtype=np.float64) for x in (X_real, X_gen))
    if X_real.ndim != 2 or X_gen.ndim != 2 or X_real.shape[1] != X_gen.shape[1]:
        raise UsageError(f"X_real, X_gen: expected 2-D arrays with equal columns, got {X_real.shape} and "
                         f"{X_gen.shape}")
    if not (isinstance(folds, (int, np.integer)) and folds >= 2):
        raise UsageError(f"folds: expected an integer >= 2, got {folds!r}")
    g_real = np.arange(len(X_real)) if groups_real is None else np.asarray(groups_real, dtype=np.int64)
    g_gen = np.arange(len(X_gen)) if groups_gen is None else np.asarray(groups_gen, dtype=np.int64)
    rng = np.random.default_rng(seed)
    m = min(len(X_real), len(X_gen))
    keep_r = np.sort(rng.choice(len(X_real), m, replace=False))
    keep_g = np.sort(rng.choice(len(X_gen), m, replace=False))
    g_real, g_gen = g_real[keep_r], g_gen[keep_g] + (g_real.max(initial=-1) + 1)  # generated groups stay apart
    n_groups = min(np.unique(g_real).size, np.unique(g_gen).size)
    if n_groups < folds:
        raise UsageError(f"folds: {folds} folds need at least {folds} pieces per class after balancing, got "
                         f"{n_groups} (real {len(X_real)} and generated {len(X_gen)} excerpts)")
    X = _fill_nan(np.concatenate([X_real[keep_r], X_gen[keep_g]]))
    y = np.repeat([0, 1], m)
    groups = np.concatenate([g_real, g_gen])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    correct = cross_val_predict(model, X, y, groups=groups, cv=cv) == y
    low, high = _group_bootstrap(correct, groups, y, rng, n_boot)
    return {"accuracy": float(correct.mean()), "ci_low": low, "ci_high": high, "n_per_class": int(m),
            "folds": int(folds)}


def _group_bootstrap(correct, groups, y, rng, n_boot: int) -> tuple[float, float]:
    """2.5 and 97.5 percentiles of the accuracy when each class's groups are resampled with replacement."""
    hits, sizes = np.zeros(n_boot), np.zeros(n_boot)
    for label in (0, 1):
        ids, inverse = np.unique(groups[y == label], return_inverse=True)
        group_hits = np.bincount(inverse, weights=correct[y == label], minlength=ids.size)
        group_sizes = np.bincount(inverse, minlength=ids.size)
        draw = rng.integers(0, ids.size, size=(n_boot, ids.size))
        hits += group_hits[draw].sum(axis=1)
        sizes += group_sizes[draw].sum(axis=1)
    acc = hits / sizes
    return float(np.percentile(acc, 2.5)), float(np.percentile(acc, 97.5))


def feature_matrix(tokenizer, pieces: Sequence, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``excerpts`` then ``excerpt_features``: float64 (excerpts, len(FEATURE_NAMES)) and int64 (excerpts,) the
    piece each row came from."""
    notes, index = excerpts(tokenizer, pieces, length)
    return np.array([excerpt_features(n) for n in notes]).reshape(-1, len(FEATURE_NAMES)), index


def two_sample(tokenizer, real_pieces: Sequence, generated: Sequence, length: int, seed: int = 0,
               folds: int = 5) -> dict:
    """Classifier two-sample test of real vs generated music at excerpts of ``length`` events.

    Args:
        tokenizer: the ``Tokenizer`` of both sets.
        real_pieces: held-out pieces, int token arrays (T,) each.
        generated: generated samples, int token arrays (T,) each.
        length: events per excerpt (``excerpts``); use the same length for every comparison you put side by side.
        seed, folds: see ``classifier_accuracy``.

    Returns:
        ``accuracy``, ``ci_low``, ``ci_high`` (see ``classifier_accuracy``), ``n_real`` and ``n_generated``
        (excerpts cut from each set, before balancing), ``n_per_class`` (used), ``length``, ``folds``.
    """
    X_real, real_idx = feature_matrix(tokenizer, real_pieces, length)
    X_gen, gen_idx = feature_matrix(tokenizer, generated, length)
    for name, X, pieces in (("real_pieces", X_real, real_pieces), ("generated", X_gen, generated)):
        if not len(X):
            longest = max((len(p) for p in pieces), default=0)
            raise UsageError(f"length: {length} events is longer than every piece in {name} (longest {longest} "
                             f"tokens)")
    result = classifier_accuracy(X_real, X_gen, real_idx, gen_idx, seed=seed, folds=folds)
    return {"accuracy": result["accuracy"], "ci_low": result["ci_low"], "ci_high": result["ci_high"],
            "n_real": len(X_real), "n_generated": len(X_gen), "n_per_class": result["n_per_class"],
            "length": int(length), "folds": int(folds)}
