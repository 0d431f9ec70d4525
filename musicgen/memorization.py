"""Memorization: how many consecutive training events a sample copies, against held-out music of the same length.

A token n-gram index (``NgramIndex``) answers "does this run of ``n`` events occur in a training piece?" exactly for
any ``n``; ``longest_shared_ngram`` is the longest such run of one sequence. ``memorization`` compares generated
samples with held-out excerpts **cut to the samples' length**: the longest shared run grows with the length of the
sequence searched, so comparing 512-event samples with whole ~712-event pieces would flatter the samples.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from musicgen.errors import UsageError

_MULT = 0x9E3779B97F4A7C15  # odd, so it has an inverse modulo 2**64
_INV = pow(_MULT, -1, 2 ** 64)


def _powers(base: int, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint64)
    out[0] = 1
    if n > 1:
        out[1:] = base
        out = np.cumprod(out, dtype=np.uint64)  # wraps modulo 2**64 on purpose
    return out


class NgramIndex:
    """Exact "does this token n-gram occur in the training pieces?" index for any n, via polynomial hashing.

    Window hashes ``Σ_m (t[i+m] + 1) · M^m mod 2**64`` come from one prefix sum, so building the sorted hash table
    for a length costs one vectorized pass and a sort (cached per length); every hash hit is confirmed by
    comparing the tokens, so results are exact. Windows never cross a piece boundary.

    Args:
        pieces: training token arrays, shape (T,) each.
    """

    def __init__(self, pieces: Sequence[np.ndarray], cache_lengths: int = 32):
        arrays = [np.asarray(p, dtype=np.int64).reshape(-1) for p in pieces]
        self.tokens = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        self.piece_end = np.repeat(np.cumsum([a.size for a in arrays]), [a.size for a in arrays])
        self.max_len = max((a.size for a in arrays), default=0)
        self._prefix, self._inv_pow = self._prefix_hashes(self.tokens)
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cache_lengths = cache_lengths

    @staticmethod
    def _prefix_hashes(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weighted = (tokens.astype(np.uint64) + np.uint64(1)) * _powers(_MULT, tokens.size + 1)[:-1]
        prefix = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(weighted, dtype=np.uint64)])
        return prefix, _powers(_INV, tokens.size + 1)

    @staticmethod
    def _window_hashes(prefix: np.ndarray, inv_pow: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        return (prefix[starts + length] - prefix[starts]) * inv_pow[starts]

    def _table(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        if length not in self._tables:
            starts = np.arange(max(self.tokens.size - length + 1, 0))
            starts = starts[starts + length <= self.piece_end[starts]]
            hashes = self._window_hashes(self._prefix, self._inv_pow, starts, length)
            order = np.argsort(hashes, kind="stable")
            if len(self._tables) >= self._cache_lengths:
                self._tables.pop(next(iter(self._tables)))
            self._tables[length] = (hashes[order], starts[order])
        return self._tables[length]

    def contains_any(self, sample, length: int) -> bool:
        """True if some ``length`` consecutive tokens of ``sample`` also occur consecutively in a training piece."""
        sample = np.asarray(sample, dtype=np.int64).reshape(-1)
        if length <= 0:
            return True
        if length > sample.size or length > self.max_len:
            return False
        hashes, starts = self._table(length)
        prefix, inv_pow = self._prefix_hashes(sample)
        sample_starts = np.arange(sample.size - length + 1)
        queries = self._window_hashes(prefix, inv_pow, sample_starts, length)
        pos = np.searchsorted(hashes, queries)
        hit = (pos < hashes.size) & (hashes[np.minimum(pos, hashes.size - 1)] == queries)
        for i in np.flatnonzero(hit):  # confirm against the tokens (a hash collision is not a copy)
            j = pos[i]
            while j < hashes.size and hashes[j] == queries[i]:
                s = starts[j]
                if np.array_equal(self.tokens[s:s + length], sample[i:i + length]):
                    return True
                j += 1
        return False

    def longest_shared(self, sample) -> int:
        """Length of the longest run of consecutive ``sample`` tokens found in one training piece (binary search)."""
        sample = np.asarray(sample, dtype=np.int64).reshape(-1)
        lo, hi = 0, min(sample.size, self.max_len)  # invariant: shares lo, does not share hi + 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.contains_any(sample, mid):
                lo = mid
            else:
                hi = mid - 1
        return lo


def longest_shared_ngram(sample, train_index: NgramIndex) -> int:
    """Length in events of the longest token n-gram ``sample`` shares with the training set."""
    return train_index.longest_shared(sample)


def copy_rate(samples: Sequence, train: NgramIndex | Sequence, n: int) -> float:
    """Share of ``samples`` that copy at least ``n`` consecutive training events (0..1); ``train`` is an
    ``NgramIndex`` or a list of training token arrays."""
    if not (isinstance(n, int) and n > 0):
        raise UsageError(f"n: expected a positive integer, got {n!r}")
    if not samples:
        return math.nan
    index = train if isinstance(train, NgramIndex) else NgramIndex(train)
    return float(np.mean([index.contains_any(s, n) for s in samples]))


def heldout_excerpts(pieces: Sequence, length: int) -> list[np.ndarray]:
    """Non-overlapping windows of exactly ``length`` tokens from each piece, from its first token (BOS included)
    on: ``piece[0:length], piece[length:2 * length], …``; the remainder, and any piece shorter than ``length``,
    give none."""
    if not (isinstance(length, (int, np.integer)) and length > 0):
        raise UsageError(f"length: expected a positive integer, got {length!r}")
    out = []
    for piece in pieces:
        piece = np.asarray(piece).reshape(-1)
        out += [piece[i:i + length] for i in range(0, piece.size - length + 1, length)]
    return out


def memorization(samples: Sequence, train: Sequence, heldout: Sequence, copy_n: int = 32,
                 length: int | None = None) -> dict:
    """Longest shared n-grams of samples, and of equally long held-out excerpts, with the training pieces.

    Args:
        samples: generated token arrays, shape (T,) each, as the sampler returns them (``[BOS, …, EOS]``).
        train: the training pieces' token arrays.
        heldout: held-out pieces' token arrays, cut by ``heldout_excerpts`` into windows of ``length`` tokens.
        copy_n: a sequence "copies" when it shares at least this many consecutive events with a training piece.
        length: excerpt length in tokens; default the median sample length (rounded down).

    Returns:
        ``copy_n``, ``length``, ``sample_longest`` (list, one per sample), ``sample_longest_median``, ``copy_rate``
        (share of samples with a run >= ``copy_n``), ``heldout_longest_median``, ``heldout_copy_rate`` (the same
        over the held-out excerpts: what is normal for the style at this length) and ``heldout_excerpts`` (how
        many); ``nan`` where there is nothing to measure.
    """
    if not (isinstance(copy_n, (int, np.integer)) and copy_n > 0):
        raise UsageError(f"copy_n: expected a positive integer, got {copy_n!r}")
    if length is None:
        length = int(np.median([len(s) for s in samples])) if len(samples) else 1
    excerpts = heldout_excerpts(heldout, max(int(length), 1))
    index = NgramIndex(train)
    sample_runs = [index.longest_shared(s) for s in samples]
    heldout_runs = [index.longest_shared(e) for e in excerpts]

    def median(runs):
        return float(np.median(runs)) if runs else math.nan

    def rate(runs):
        return float(np.mean([r >= copy_n for r in runs])) if runs else math.nan

    return {"copy_n": int(copy_n), "length": int(length), "sample_longest": sample_runs,
            "sample_longest_median": median(sample_runs), "copy_rate": rate(sample_runs),
            "heldout_longest_median": median(heldout_runs), "heldout_copy_rate": rate(heldout_runs),
            "heldout_excerpts": len(excerpts)}
