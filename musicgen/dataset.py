"""Token pieces → the legacy train/validation split and batches for truncated BPTT. Pure numpy.

This is the only module where targets are the inputs shifted by one event.

Batch layout (``StreamBatches``), one epoch:

1. shuffle the training pieces (and transpose each one when augmentation is on), lay them end to end;
2. rotate that stream by a random phase in ``[0, bptt)`` so window boundaries fall elsewhere every epoch;
3. cut ``inputs = stream[:-1]``, ``targets = stream[1:]`` into ``batch_size`` contiguous rows of equal length
   (the last row padded), pad every row to a multiple of ``bptt`` and cut the rows into windows.

Batch ``k`` row ``i`` continues batch ``k - 1`` row ``i``, so a stateful model can carry its recurrent state from one
window to the next. Every event of the epoch stream (except the very first, which has no context) is a target
exactly once per epoch: there is no sliding window. Padding positions hold ``pad_id`` and have sample weight 0.

Context (``features``, e.g. ``functools.partial(context.context_features, tokenizer=tok)``): computed on the
augmented epoch stream before its rotation (so a transposed KEY moves with its piece and a piece cut by the phase
keeps the position its beginning gave it) and cut exactly like the inputs; the inputs of a batch are then the pair
``(tokens, context)`` with context int32 (batch_size, bptt, F), 0 (unknown) in padding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from musicgen.errors import UsageError

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]
Features = Callable[[np.ndarray], np.ndarray]  # tokens (T,) -> int32 context (T, F)


def unit_hash(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by ``key`` and ``seed``."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_pieces(keys: Sequence[str], val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The legacy two-way split (``TrainConfig.split_version == 1``); new code calls ``musicgen.split.split_corpus``.

    Splits pieces into train/validation by a hash of their content key (deterministic, order independent).

    Args:
        keys: one content key per piece (sha256 of the file bytes); equal keys always land on the same side.
        val_fraction: expected share of pieces in validation, in [0, 1).
        seed: changes the split.

    Returns:
        ``(train_idx, val_idx)``: sorted int64 index arrays into ``keys``. When ``val_fraction > 0`` and there are at
        least 2 distinct keys, both sides hold at least one piece.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    h = np.array([unit_hash(k, seed) for k in keys], dtype=np.float64)
    is_val = h < val_fraction
    if val_fraction > 0 and len(set(keys)) >= 2:
        if not is_val.any():
            is_val = h == h.min()
        if is_val.all():
            is_val = h != h.max()
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def transposer(tokenizer, max_semitones: int) -> Augment | None:
    """Augmentation: transpose each piece by a random whole number of semitones in ``[-max, max]``.

    The draw is limited to the piece's ``tokenizer.transpose_bounds`` so no pitch leaves the range; drums are left
    alone by ``tokenizer.transpose_tokens``. Returns ``None`` when ``max_semitones == 0``.
    """
    if max_semitones <= 0:
        return None

    def augment(tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lo, hi = tokenizer.transpose_bounds(tokens)
        lo, hi = max(int(lo), -max_semitones), min(int(hi), max_semitones)
        if lo > hi:
            return tokens
        shift = int(rng.integers(lo, hi + 1))
        return tokens if shift == 0 else tokenizer.transpose_tokens(tokens, shift)

    return augment


class StreamBatches:
    """Truncated-BPTT batches over ``batch_size`` parallel streams (see the module docstring).

    Args:
        pieces: token arrays (int, shape (T_i,)), one per training piece.
        batch_size: parallel streams (rows) per batch.
        bptt: window length in events (time steps per batch).
        seed: the order, phase and augmentation of epoch ``e`` depend only on ``(seed, e)``, so a resumed run sees
            exactly the batches an uninterrupted run would have seen.
        augment: optional ``f(tokens, rng) -> tokens`` of the same length (e.g. ``transposer``).
        pad_id: token written into padding positions (weight 0).
        features: optional ``f(tokens (T,)) -> int32 (T, F)``, the context after each token (see the module doc).

    Each batch is ``(inputs, targets, weights)``: int32, int32, float32 arrays of shape ``(batch_size, bptt)``; with
    ``features`` the inputs are ``(tokens, context)``, context int32 ``(batch_size, bptt, F)``.
    """

    def __init__(self, pieces: Sequence[np.ndarray], batch_size: int, bptt: int, seed: int = 0,
                 augment: Augment | None = None, pad_id: int = 0, features: Features | None = None):
        self.pieces = [np.asarray(p, dtype=np.int32) for p in pieces if len(p) > 0]
        self.batch_size, self.bptt, self.seed = int(batch_size), int(bptt), int(seed)
        self.augment, self.pad_id, self.features = augment, int(pad_id), features
        self.events = int(sum(len(p) for p in self.pieces))
        if self.events - 1 < self.batch_size:
            raise UsageError(f"batch_size: {batch_size} streams need at least {batch_size + 1} training events, "
                             f"got {self.events}; lower --batch-size or add music")
        self.row_length = -(-(self.events - 1) // self.batch_size)  # ceil: targets per row
        self.steps_per_epoch = -(-self.row_length // self.bptt)

    @property
    def targets_per_epoch(self) -> int:
        """Events used as targets in one epoch (every event of the stream but the first)."""
        return self.events - 1

    def epoch_stream(self, epoch: int) -> np.ndarray:
        """The shuffled, augmented, phase-rotated concatenation of the training pieces for ``epoch``."""
        return self._stream(epoch)[0]

    def _stream(self, epoch: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``epoch_stream`` and its context (T, F) (None without ``features``), rotated together."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.pieces))
        parts = [self.pieces[i] for i in order]
        if self.augment is not None:
            parts = [self.augment(p, rng) for p in parts]
        stream = np.concatenate(parts)
        context = None if self.features is None else np.asarray(self.features(stream), np.int32)
        phase = int(rng.integers(0, min(self.bptt, len(stream))))
        return np.roll(stream, -phase), None if context is None else np.roll(context, -phase, axis=0)

    def epoch_arrays(self, epoch: int) -> tuple:
        """``(inputs, targets, weights)`` of shape ``(batch_size, steps_per_epoch * bptt)`` for ``epoch``; with
        ``features`` the inputs are ``(tokens, context)``, context of shape
        ``(batch_size, steps_per_epoch * bptt, F)``."""
        stream, context = self._stream(epoch)
        width = self.steps_per_epoch * self.bptt
        inputs = np.full((self.batch_size, width), self.pad_id, dtype=np.int32)
        targets = np.full((self.batch_size, width), self.pad_id, dtype=np.int32)
        weights = np.zeros((self.batch_size, width), dtype=np.float32)
        ctx = None if context is None else np.zeros((self.batch_size, width, context.shape[1]), np.int32)
        n, s = len(stream) - 1, self.row_length
        for row in range(self.batch_size):
            lo, hi = row * s, min((row + 1) * s, n)
            if hi <= lo:
                break
            inputs[row, : hi - lo] = stream[lo:hi]
            targets[row, : hi - lo] = stream[lo + 1: hi + 1]
            weights[row, : hi - lo] = 1.0
            if ctx is not None:
                ctx[row, : hi - lo] = context[lo:hi]
        return (inputs if ctx is None else (inputs, ctx)), targets, weights

    def epoch(self, epoch: int) -> Iterator[tuple]:
        """The ``steps_per_epoch`` batches of ``epoch``, in stream order."""
        inputs, targets, weights = self.epoch_arrays(epoch)
        for k in range(self.steps_per_epoch):
            cut = slice(k * self.bptt, (k + 1) * self.bptt)
            yield cut_inputs(inputs, cut), targets[:, cut], weights[:, cut]

    def forever(self, first_epoch: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Epoch ``first_epoch``'s batches, then the next epoch's, and so on (for ``keras.Model.fit``)."""
        epoch = first_epoch
        while True:
            yield from self.epoch(epoch)
            epoch += 1


def cut_inputs(inputs, cut: slice):
    """Columns ``cut`` of the inputs: an array (B, W), or a ``(tokens, context)`` pair."""
    if isinstance(inputs, tuple):
        return tuple(a[:, cut] for a in inputs)
    return inputs[:, cut]


def eval_groups(pieces: Sequence[np.ndarray], group_size: int, pad_id: int = 0, multiple: int = 1,
                features: Features | None = None) -> Iterator[tuple]:
    """Whole pieces for evaluation, ``group_size`` rows at a time, sorted by length to waste little padding.

    Yields ``(inputs, targets, weights)`` of shape ``(group_size, L - 1)`` where ``L`` is the longest piece of the
    group, rounded up to a multiple of ``multiple`` (fixed shapes for chunked evaluation); each row is one piece from
    its first event (fresh state), padded at the end with weight 0; unused rows are all padding. With ``features``
    the inputs are ``(tokens, context)``, context int32 ``(group_size, L - 1, F)`` computed on each whole piece.
    """
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
    order = [i for i in order if len(pieces[i]) >= 2]
    for start in range(0, len(order), group_size):
        chunk = [np.asarray(pieces[i], dtype=np.int32) for i in order[start: start + group_size]]
        width = -(-(max(len(p) for p in chunk) - 1) // multiple) * multiple
        inputs = np.full((group_size, width), pad_id, dtype=np.int32)
        targets = np.full((group_size, width), pad_id, dtype=np.int32)
        weights = np.zeros((group_size, width), dtype=np.float32)
        ctx = None
        for row, p in enumerate(chunk):
            inputs[row, : len(p) - 1] = p[:-1]
            targets[row, : len(p) - 1] = p[1:]
            weights[row, : len(p) - 1] = 1.0
            if features is not None:
                context = np.asarray(features(p), np.int32)
                ctx = np.zeros((group_size, width, context.shape[1]), np.int32) if ctx is None else ctx
                ctx[row, : len(p) - 1] = context[:-1]
        yield (inputs if ctx is None else (inputs, ctx)), targets, weights
