"""Streaming truncated-BPTT batches: ``dataset.StreamBatches``'s batches, built one window at a time.

``StreamBatches`` lays an epoch's training pieces end to end in memory (the whole corpus, as int32, plus its context);
``StreamingBatches`` gives the same batches — equal arrays for the same pieces, seed and settings — but holds only
per-piece numbers (length, transposition bounds, the epoch's order, shifts and cumulative lengths) and the few pieces
its rows are reading, so its memory grows with the number of pieces only through those arrays (with the split and
the store's index: 25 MB more for 200k pieces than for 20k, benchmarks/RESULTS.md), not with their events. Pieces
come from any sequence; a ``shards.PieceSequence`` reads them from the memory-mapped token store and gives lengths
and bounds without reading tokens.

Per epoch ``e`` (the plan, as in ``StreamBatches``): ``rng = default_rng([seed, e])``; the training pieces in
``rng.permutation`` order; per piece in that order a transposition drawn by ``rng.integers(lo, hi + 1)`` (the draw
``dataset.transposer`` makes; none when the clipped bounds are empty); the phase ``rng.integers(0, min(bptt, E))``.
Row ``r`` of the batch stream covers positions ``[r * L, (r + 1) * L)`` of the stream rotated by the phase (``L``
targets per row); batch ``k`` is columns ``[k * bptt, (k + 1) * bptt)``. A window is read from the pieces it
overlaps (``searchsorted`` on the plan's cumulative lengths), each transposed and, with ``features``, given its context
computed on the whole piece: equal to the context of the whole stream because every ingested piece starts with BOS,
which resets the context.

Why a plain generator (``forever``) for ``keras.Model.fit`` rather than ``keras.utils.PyDataset`` or ``tf.data``:
stateful BPTT needs the batches strictly in order (batch k row i continues batch k - 1 row i), which rules out
PyDataset's worker pool and tf.data's parallel interleave; building a 16 x 128 batch costs 5-13 ms of numpy, a
small fraction of a training step (both measured in benchmarks/RESULTS.md), so there is little to overlap; and a
generator works on the TensorFlow, JAX and torch backends alike. ``batch(epoch, k)`` is random access, so a
``PyDataset`` (or a per-replica split for multi-device training) is a thin wrapper when one is wanted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from musicgen.dataset import Features
from musicgen.errors import UsageError


class _Plan:
    """One epoch: ``order`` int64 (n,) piece positions, ``shifts`` int64 (n,) semitones, ``cum`` int64 (n+1)
    cumulative lengths in that order, ``phase``."""

    def __init__(self, order: np.ndarray, shifts: np.ndarray, cum: np.ndarray, phase: int):
        self.order, self.shifts, self.cum, self.phase = order, shifts, cum, phase


class StreamingBatches:
    """Truncated-BPTT batches over ``batch_size`` streams, equal to ``dataset.StreamBatches``'s, read window by window.

    Args:
        pieces: training pieces (int arrays (T_i,)), a list or a lazy ``shards.PieceSequence``.
        batch_size / bptt / seed / pad_id / features: as in ``StreamBatches``.
        tokenizer: needed when ``transpose`` > 0 (bounds and ``transpose_tokens``).
        transpose: the ``dataset.transposer`` augmentation's ``max_semitones`` (0 = none).
        cache_pieces: pieces kept ready (transposed, with context); default ``4 * batch_size``.

    Each batch is ``(inputs, targets, weights)``: int32, int32, float32 arrays of shape ``(batch_size, bptt)``; with
    ``features`` the inputs are ``(tokens, context)``, context int32 ``(batch_size, bptt, F)``.
    """

    def __init__(self, pieces: Sequence[np.ndarray], batch_size: int, bptt: int, seed: int = 0, tokenizer=None,
                 transpose: int = 0, pad_id: int = 0, features: Features | None = None, cache_pieces: int = 0):
        lengths = np.asarray(pieces.lengths if hasattr(pieces, "lengths") else [len(p) for p in pieces], np.int64)
        if transpose > 0 and tokenizer is None:
            raise UsageError("transpose: augmentation needs the tokenizer")
        self.pieces, self.keep = pieces, np.flatnonzero(lengths > 0)
        self.lengths = lengths[self.keep]
        self.batch_size, self.bptt, self.seed = int(batch_size), int(bptt), int(seed)
        self.tokenizer, self.transpose, self.pad_id, self.features = tokenizer, int(transpose), int(pad_id), features
        self.bounds = None
        if self.transpose > 0:
            bounds = np.asarray(pieces.bounds, np.int64) if hasattr(pieces, "bounds") else \
                np.array([tokenizer.transpose_bounds(np.asarray(pieces[i])) for i in range(len(pieces))] or
                         np.zeros((0, 2)), np.int64).reshape(-1, 2)
            lo = np.maximum(bounds[self.keep, 0], -self.transpose)
            hi = np.minimum(bounds[self.keep, 1], self.transpose)
            self.bounds = np.stack([lo, hi], axis=1)
        self.events = int(self.lengths.sum())
        if self.events - 1 < self.batch_size:
            raise UsageError(f"batch_size: {batch_size} streams need at least {batch_size + 1} training events, "
                             f"got {self.events}; lower --batch-size or add music")
        self.row_length = -(-(self.events - 1) // self.batch_size)
        self.steps_per_epoch = -(-self.row_length // self.bptt)
        self._cache_size = int(cache_pieces) or 4 * self.batch_size
        self._epoch, self._plan_of_epoch = None, None
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()

    def fork(self) -> "StreamingBatches":
        """A copy that shares the pieces and settings but has its own plan and piece cache, so two readers (e.g.
        two iterators of ``devices.restartable_dataset``, one on a prefetch thread) never share mutable state."""
        import copy

        twin = copy.copy(self)
        twin._epoch, twin._plan_of_epoch, twin._cache = None, None, OrderedDict()
        return twin

    @property
    def targets_per_epoch(self) -> int:
        """Events used as targets in one epoch (every event of the stream but the first)."""
        return self.events - 1

    def plan(self, epoch: int) -> _Plan:
        """Order, transpositions and phase of ``epoch`` (the draws ``StreamBatches`` makes, in the same order)."""
        if self._epoch != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(self.keep.size)
            shifts = np.zeros(order.size, np.int64)
            if self.bounds is not None:
                for j, (lo, hi) in enumerate(self.bounds[order].tolist()):
                    if lo <= hi:
                        shifts[j] = int(rng.integers(lo, hi + 1))
            cum = np.zeros(order.size + 1, np.int64)
            np.cumsum(self.lengths[order], out=cum[1:])
            phase = int(rng.integers(0, min(self.bptt, self.events)))
            self._epoch, self._plan_of_epoch = epoch, _Plan(order, shifts, cum, phase)
            self._cache.clear()
            release = getattr(getattr(self.pieces, "store", None), "release", None)
            if release is not None:
                release()
        return self._plan_of_epoch

    def _piece(self, plan: _Plan, j: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Piece ``j`` of the epoch's order: its tokens (transposed) and context, cached."""
        got = self._cache.get(j)
        if got is not None:
            self._cache.move_to_end(j)
            return got
        tokens = np.asarray(self.pieces[int(self.keep[plan.order[j]])], np.int32)
        if plan.shifts[j]:
            tokens = np.asarray(self.tokenizer.transpose_tokens(tokens, int(plan.shifts[j])), np.int32)
        context = None if self.features is None else np.asarray(self.features(tokens), np.int32)
        self._cache[j] = (tokens, context)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return tokens, context

    def _read(self, plan: _Plan, a: int, b: int) -> tuple[list, list]:
        """Tokens and context of epoch-stream positions ``[a, b)`` (before the rotation), as lists of parts."""
        tokens, context = [], []
        j = int(np.searchsorted(plan.cum, a, side="right") - 1)
        while a < b:
            piece, ctx = self._piece(plan, j)
            lo, hi = a - int(plan.cum[j]), min(b - int(plan.cum[j]), piece.size)
            tokens.append(piece[lo:hi])
            if ctx is not None:
                context.append(ctx[lo:hi])
            a += hi - lo
            j += 1
        return tokens, context

    def _window(self, plan: _Plan, a: int, b: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Positions ``[a, b)`` of the rotated stream (``a < b <= E``)."""
        e, q = self.events, a + plan.phase
        spans = [(q - e, b + plan.phase - e)] if q >= e else \
            [(q, b + plan.phase)] if b + plan.phase <= e else [(q, e), (0, b + plan.phase - e)]
        tokens, context = [], []
        for lo, hi in spans:
            t, c = self._read(plan, lo, hi)
            tokens += t
            context += c
        return np.concatenate(tokens), (np.concatenate(context) if context else None)

    def batch(self, epoch: int, k: int) -> tuple:
        """Batch ``k`` (0 <= k < steps_per_epoch) of ``epoch``."""
        plan = self.plan(epoch)
        n, s, w = self.events - 1, self.row_length, self.bptt
        inputs = np.full((self.batch_size, w), self.pad_id, np.int32)
        targets = np.full((self.batch_size, w), self.pad_id, np.int32)
        weights = np.zeros((self.batch_size, w), np.float32)
        ctx = None  # row 0 always holds events (k * bptt < row_length), so the context width is known
        for row in range(self.batch_size):
            lo, end = row * s + k * w, min((row + 1) * s, n)
            hi = min(lo + w, end)
            if hi <= lo:
                continue
            tokens, context = self._window(plan, lo, hi + 1)
            inputs[row, : hi - lo] = tokens[:-1]
            targets[row, : hi - lo] = tokens[1:]
            weights[row, : hi - lo] = 1.0
            if context is not None:
                ctx = np.zeros((self.batch_size, w, context.shape[1]), np.int32) if ctx is None else ctx
                ctx[row, : hi - lo] = context[:-1]
        return (inputs if ctx is None else (inputs, ctx)), targets, weights

    def epoch(self, epoch: int) -> Iterator[tuple]:
        """The ``steps_per_epoch`` batches of ``epoch``, in stream order."""
        for k in range(self.steps_per_epoch):
            yield self.batch(epoch, k)

    def forever(self, first_epoch: int = 0) -> Iterator[tuple]:
        """Epoch ``first_epoch``'s batches, then the next epoch's, and so on (for ``keras.Model.fit``)."""
        epoch = first_epoch
        while True:
            yield from self.epoch(epoch)
            epoch += 1
