"""The state a sample starts from, and the checks that its first bars are as good as the rest. Numpy only.

Why: stateful truncated BPTT lays training pieces end to end in each stream and carries the recurrent state across
piece boundaries, so the model learns to read BOS from the state left after the previous piece's EOS, and almost
never from the zero state that sampling used to start from. From zeros the first events of a sample are out of
distribution (e.g. notes far outside the corpus's range in the first beats; docs/start_state.md).

The fix kept here: after training, ``compute_start_state`` averages the state right after EOS over training pieces
(the states the model met BOS in) and the bundle stores it as ``start_state.npz``; ``generate`` and
``score_pieces``-based metrics start from it (primers are fed from it too). Bundles without it start from zeros, as
before. RTRL resets to zeros at every piece while training, so its bundles keep the zero start.

State layout (as ``sampler.StepModel``): a list with one tuple per layer, ``(h, c)`` for LSTM and ``(h,)``
otherwise, each array float of shape (units,). In ``start_state.npz`` the arrays are ``rnn_{i}_h`` (and
``rnn_{i}_c`` for LSTM).

Example::

    state = compute_start_state(StepModel(weights, cfg), train_pieces)
    save_start_state(state, "trained/x/start_state.npz")
    start_metrics(load_bundle("trained/x"), heldout)["nll_first_start"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from musicgen.errors import BundleError
from musicgen.piece import DRUMS

START_STATE = "start_state.npz"
TAIL_EVENTS = 512  # events of each piece fed before its EOS: enough to forget the zero state they start from
MAX_PIECES = 256  # training pieces averaged over (a random subset when there are more)


# ------------------------------------------------------------------------------------------------- the state itself
def state_arrays(state: list) -> dict[str, np.ndarray]:
    """State (one tuple per layer of (units,) or (1, units) arrays) → ``{"rnn_0_h": …, "rnn_0_c": …}``."""
    out = {}
    for i, layer in enumerate(state):
        for name, a in zip(("h", "c"), layer):
            out[f"rnn_{i}_{name}"] = np.asarray(a, np.float32).reshape(-1)
    return out


def arrays_state(arrays: dict, cfg, where: str = "start_state") -> list:
    """Inverse of ``state_arrays``, checked against ``cfg`` (``cell``, ``layers``, ``units``).

    Raises:
        BundleError: missing or extra arrays, a wrong shape, a non-float dtype or a non-finite value.
    """
    parts = ("h", "c") if cfg.cell == "lstm" else ("h",)
    expected = {f"rnn_{i}_{p}" for i in range(cfg.layers) for p in parts}
    if set(arrays) != expected:
        raise BundleError(f"{where}: arrays {sorted(arrays)}, expected {sorted(expected)}")
    for key in sorted(expected):
        a = arrays[key]
        if a.shape != (cfg.units,) or a.dtype.kind != "f" or not np.isfinite(a).all():
            raise BundleError(f"{where}[{key!r}]: expected finite floats of shape ({cfg.units},), "
                              f"got {a.dtype} {a.shape}")
    return [tuple(np.asarray(arrays[f"rnn_{i}_{p}"]) for p in parts) for i in range(cfg.layers)]


def save_start_state(state: list, path: str | Path) -> Path:
    """Write ``state`` as ``np.savez`` arrays (see the module docstring); plain arrays, no pickle."""
    path = Path(path)
    np.savez(path, **state_arrays(state))
    return path


def load_start_state(path: str | Path, cfg) -> list:
    """Read a ``start_state.npz`` (``allow_pickle=False``) and check it against the model config."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as exc:
        raise BundleError(f"{path}: unreadable start state: {exc}".splitlines()[0]) from None
    return arrays_state(arrays, cfg, str(path))


def states_after(step_model, pieces: Sequence[np.ndarray], start_state: list | None = None,
                 batch: int = 64, contexts: Sequence[np.ndarray] | None = None) -> list:
    """The state after feeding each whole piece (its last event included), from ``start_state`` (default zeros).

    ``contexts``: for a model with context inputs, each piece's context (T_i, F) (default: ``step_model.features``
    of the piece itself; pass them when the pieces are tails cut from longer ones).
    Returns per layer a tuple of arrays of shape (len(pieces), units).
    """
    if step_model.context and contexts is None:
        contexts = [step_model.features(p) for p in pieces]
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
    parts = 2 if step_model.cell == "lstm" else 1
    out = [tuple(np.zeros((len(pieces), step_model.units), step_model.dtype) for _ in range(parts))
           for _ in range(step_model.layers)]
    for lo in range(0, len(order), batch):
        idx = order[lo:lo + batch]
        arrays = [np.asarray(pieces[i], np.int64) for i in idx]
        lengths = np.array([len(a) for a in arrays])
        width = int(lengths.max())
        tokens = np.zeros((len(idx), width), np.int64)
        context = np.zeros((len(idx), width, len(step_model.context)), np.int64) if step_model.context else None
        for row, a in enumerate(arrays):
            tokens[row, width - len(a):] = a  # right-aligned: every row ends on the last step
            if context is not None:
                context[row, width - len(a):] = contexts[idx[row]]
        state = step_model.init_state(len(idx), start_state)
        for t in range(width):
            _, new = step_model.step(state, tokens[:, t], None if context is None else context[:, t])
            live = (t >= width - lengths)[:, None]  # rows whose piece has begun
            state = [tuple(np.where(live, b, a) for a, b in zip(old, nxt)) for old, nxt in zip(state, new)]
        for layer, arrs in zip(out, state):
            for dst, src in zip(layer, arrs):
                dst[idx] = src
    return out


def compute_start_state(step_model, pieces: Sequence[np.ndarray], eos_id: int | None = None,
                        tail: int = TAIL_EVENTS, max_pieces: int = MAX_PIECES, seed: int = 0) -> list:
    """Mean state right after EOS over training pieces: the state a stateful-trained model reads BOS in.

    Args:
        step_model: ``sampler.StepModel`` of the trained weights.
        pieces: training token arrays ``[BOS, …, EOS]``; ``eos_id`` is appended to pieces that lack it.
        tail: feed only each piece's last ``tail`` events (from zeros; the zero start is forgotten by then).
        max_pieces: average over at most this many pieces (a seeded random subset).

    Returns:
        per layer a tuple of float arrays (units,), in ``step_model.dtype``.
    """
    lengths = pieces.lengths if hasattr(pieces, "lengths") else [len(p) for p in pieces]  # a store: no reads
    nonempty = [i for i, n in enumerate(lengths) if n > 0]
    if not nonempty:
        raise ValueError("pieces: expected at least one non-empty training piece, got none")
    if len(nonempty) > max_pieces:  # choose first, then read only the chosen pieces
        keep = np.random.default_rng(seed).choice(len(nonempty), max_pieces, replace=False)
        nonempty = [nonempty[i] for i in sorted(keep)]
    pieces = [np.asarray(pieces[i], np.int64) for i in nonempty]
    if eos_id is not None:
        pieces = [p if p[-1] == eos_id else np.append(p, eos_id) for p in pieces]
    contexts = [step_model.features(p)[-tail:] for p in pieces] if step_model.context else None
    after = states_after(step_model, [p[-tail:] for p in pieces], contexts=contexts)
    return [tuple(a.mean(axis=0) for a in layer) for layer in after]


def bundle_start_state(bundle) -> list | None:
    """The bundle's start state (``Bundle.start_state``), or None for bundles without one (zero start)."""
    return getattr(bundle, "start_state", None)


# -------------------------------------------------------------------------------------------------------- checks
def start_metrics(bundle, pieces: Sequence[np.ndarray], first: int = 32, scores: Sequence | None = None) -> dict:
    """NLL (nats/event) of the first ``first`` events of each piece from the sampler's start state and from zeros,
    and of the later events (from the start state), on ``pieces`` (held-out token arrays). ``scores``: the pieces'
    ``scoring.PieceScore`` from the start state when the caller has them already (saves scoring them again).

    Returns ``dict(first, pieces, has_start_state, nll_first_start, nll_first_zero, nll_later, events_first,
    events_later, first_over_later)`` where ``first_over_later = nll_first_start / nll_later``.
    """
    from musicgen.sampler import StepModel
    from musicgen.scoring import score_pieces, summarize

    step = StepModel(bundle.weights, bundle.model_config, dtype=np.float64,
                     tokenizer=getattr(bundle, "tokenizer", None))
    start = bundle_start_state(bundle)
    if scores is None:
        scores = score_pieces(step, pieces, start_state=start)
    zero = scores if start is None else score_pieces(step, pieces, max_events=first)
    head, tail = summarize(scores, first=first), summarize(scores, skip=first)
    return {"first": first, "pieces": len(pieces), "has_start_state": start is not None,
            "nll_first_start": head["nll_nats"], "nll_first_zero": summarize(zero, first=first)["nll_nats"],
            "nll_later": tail["nll_nats"], "events_first": head["events"], "events_later": tail["events"],
            "first_over_later": head["nll_nats"] / tail["nll_nats"] if tail["events"] else float("nan")}


def corpus_pitch_range(tokenizer, pieces: Sequence[np.ndarray], low: float = 0.1, high: float = 99.9
                       ) -> tuple[int, int]:
    """``(lo, hi)`` MIDI pitches: the ``low`` and ``high`` percentiles (linear interpolation, rounded to the nearest
    pitch) of the pitched (non-drum) notes of ``pieces`` (int token arrays), e.g. the training pieces."""
    pitches = [tokenizer.decode_arrays(p) for p in pieces]
    values = np.concatenate([a["pitch"][a["instrument"] != DRUMS] for a in pitches] or [np.zeros(0, np.int64)])
    if values.size == 0:
        raise ValueError("pieces: expected at least one pitched note, got none")
    lo, hi = np.percentile(values, [low, high])
    return int(round(float(lo))), int(round(float(hi)))


def first_beats_out_of_range(tokenizer, samples: Sequence[np.ndarray], pitch_lo: int, pitch_hi: int,
                             beats: float = 4, qpm: float = 120.0) -> dict:
    """Share of pitched notes starting in the first ``beats`` beats (quarter notes) of each sample whose pitch lies
    outside ``[pitch_lo, pitch_hi]``, and the same share for the notes starting later.

    Args:
        samples: int token arrays, each a whole sample from its BOS (a primer counts as part of it).
        qpm: tempo used to turn seconds into beats for ``time_mode="seconds"`` tokenizers.

    Returns ``dict(beats, pitch_lo, pitch_hi, first_notes, first_out, first_share, later_notes, later_out,
    later_share)``; a share is nan when there are no notes.
    """
    counts = np.zeros((2, 2), np.int64)  # [first|later, notes|out]
    per_beat = 1.0 if tokenizer.config.time_mode == "beat" else qpm / 60.0
    for s in samples:
        a = tokenizer.decode_arrays(s)
        pitched = a["instrument"] != DRUMS
        start = tokenizer.from_steps(a["start"][pitched]) * per_beat
        out = (a["pitch"][pitched] < pitch_lo) | (a["pitch"][pitched] > pitch_hi)
        early = start < beats
        counts[0] += (early.sum(), (out & early).sum())
        counts[1] += ((~early).sum(), (out & ~early).sum())

    def share(row):
        return float(counts[row, 1] / counts[row, 0]) if counts[row, 0] else float("nan")

    return {"beats": beats, "pitch_lo": int(pitch_lo), "pitch_hi": int(pitch_hi),
            "first_notes": int(counts[0, 0]), "first_out": int(counts[0, 1]), "first_share": share(0),
            "later_notes": int(counts[1, 0]), "later_out": int(counts[1, 1]), "later_share": share(1)}
