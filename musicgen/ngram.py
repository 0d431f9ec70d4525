"""Count-based baselines over event tokens: an add-alpha unigram and interpolated Kneser-Ney n-grams.

Both models see a corpus as a list of pieces (int token arrays, shape (T,), values in ``[0, vocab_size)``) and
score it the way the RNN is scored: each piece from its start, predicting every token after the first
(``T - 1`` events per piece). ``nll(pieces)`` is the mean negative log-likelihood in **nats per event** over all
predicted events of all pieces (an event-weighted mean, not a mean of per-piece means).

Kneser-Ney here is the *standard interpolated* form (Chen & Goodman 1998, eq. 7) with one absolute discount
``D`` (default 0.75) at every order; no modified (three-discount) variant:

    highest order n, context h (n-1 tokens), raw counts c:
        P(w | h) = max(c(h w) - D, 0) / c(h •)  +  D · N1+(h •) / c(h •) · P_{n-1}(w | h')
    lower orders k < n, continuation counts N1+(• g) = distinct left neighbours of the k-gram g:
        P_k(w | h) = max(N1+(• h w) - D, 0) / N1+(• h •)  +  D · N1+(h' •) / N1+(• h •) · P_{k-1}(w | h')
    below order 1: the uniform distribution 1 / vocab_size.

where ``h'`` drops the oldest token of ``h`` and ``N1+(h •)`` counts the distinct words seen after ``h``. A context
never seen at an order passes the lower-order probability through unchanged. With ``0 < D <= 1`` every conditional
distribution sums to exactly 1 over the vocabulary. Contexts before a piece's first token are padded with a
"before the start" symbol that is never predicted (so the BOS token every piece starts with is a real context).

Implementation: contexts get exact dense ids, built from the right one token at a time: the id of the context
``(t_1, …, t_{k-1})`` is the rank of the pair ``(t_1, id of (t_2, …, t_{k-1}))`` among the pairs seen in training
(``np.unique``), and a k-gram is the int64 key ``context id · (V + 1) + w``. Keys never exceed
``(V + 1) · (training events + 1)``, so any order works for any vocabulary (no ``(V + 1) ** order`` packing), and
equal keys mean equal token sequences (no hashing, no collisions). A context never seen in training gets the id
"unseen" at its length and at every longer one. Counts are ``np.unique`` results, look-ups ``np.searchsorted``; one
fit at order n holds the counts of every order up to n, so ``variant(order, discount)`` scores lower orders and
other discounts without refitting (about 2 million events at order 8 fit in a few seconds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicgen.errors import UsageError


def _check_pieces(pieces, vocab_size: int | None) -> tuple[list[np.ndarray], int]:
    """Validate pieces (non-negative ints) and return them as int64 arrays plus the vocabulary size."""
    arrays = [np.asarray(p, dtype=np.int64).reshape(-1) for p in pieces]
    top = max((int(a.max()) for a in arrays if a.size), default=-1)
    low = min((int(a.min()) for a in arrays if a.size), default=0)
    if low < 0:
        raise UsageError(f"pieces: tokens must be >= 0, got {low}")
    if vocab_size is None:
        vocab_size = top + 1
    if top >= vocab_size:
        raise UsageError(f"pieces: token {top} is outside the vocabulary of size {vocab_size}")
    if vocab_size < 1:
        raise UsageError(f"vocab_size: expected a positive integer, got {vocab_size}")
    return arrays, vocab_size


def _windows(pieces: list[np.ndarray], order: int) -> np.ndarray:
    """All prediction windows, shape (events, order): tokens shifted by +1, left-padded with 0.

    Row j of a piece of length T holds the ``order - 1`` tokens before token j followed by token j, for j = 1..T-1.
    """
    rows = []
    for p in pieces:
        if p.size < 2:
            continue
        padded = np.concatenate([np.zeros(order - 1, dtype=np.int64), p + 1])
        rows.append(np.lib.stride_tricks.sliding_window_view(padded, order)[1:])
    if not rows:
        return np.zeros((0, order), dtype=np.int64)
    return np.concatenate(rows)


def _lookup(sorted_keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``values[i]`` where ``sorted_keys[i] == query``, else 0 (vectorized)."""
    if sorted_keys.size == 0:
        return np.zeros(queries.shape, dtype=values.dtype)
    idx = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    return np.where(sorted_keys[idx] == queries, values[idx], 0)




@dataclass
class _OrderTable:
    """Counts for one order: k-gram keys with their (raw or continuation) counts, and per-context sums."""

    gram_keys: np.ndarray     # sorted k-gram keys, context id * base + w
    gram_counts: np.ndarray   # c(h w) (raw) or N1+(• h w) (continuation)
    ctx_keys: np.ndarray      # sorted context ids h
    ctx_totals: np.ndarray    # sum over w of gram_counts
    ctx_types: np.ndarray     # N1+(h •): distinct w with a nonzero count

    @classmethod
    def from_counts(cls, keys: np.ndarray, counts: np.ndarray, base: int) -> "_OrderTable":
        ctx = keys // base  # keys are sorted, so contexts are sorted and grouped
        ctx_keys, starts, types = np.unique(ctx, return_index=True, return_counts=True)
        totals = np.add.reduceat(counts, starts) if counts.size else counts
        return cls(keys, counts, ctx_keys, totals, types)


@dataclass
class _Counts:
    """Everything one fit at order n learns, shared by the ``variant`` models of lower order.

    ``codes[k - 2]`` (k = 2..n): sorted keys ``token · mult + id of the shorter context`` and that ``mult``, which
    turn a context of k - 1 tokens into its id (its rank among the keys). ``raw[k - 1]`` and ``cont[k - 1]`` hold
    order k's raw counts and continuation counts (the latter for k < n only).
    """

    base: int
    codes: list[tuple[np.ndarray, int]]
    raw: list[_OrderTable]
    cont: list[_OrderTable]

    @property
    def order(self) -> int:
        return len(self.raw)

    def context_ids(self, windows: np.ndarray, k: int, ids: np.ndarray) -> np.ndarray:
        """Ids of the (k - 1)-token contexts of ``windows`` (N, order) from the ids of their (k - 2)-token tails."""
        if k == 1:
            return np.zeros(windows.shape[0], dtype=np.int64)
        keys, mult = self.codes[k - 2]
        query = windows[:, windows.shape[1] - k] * mult + ids
        pos = np.minimum(np.searchsorted(keys, query), max(keys.size - 1, 0))
        found = keys[pos] == query if keys.size else np.zeros(query.shape, bool)
        return np.where(found, pos, keys.size)  # keys.size: "never seen in training"

    @classmethod
    def fit(cls, windows: np.ndarray, vocab_size: int) -> "_Counts":
        base, n = vocab_size + 1, windows.shape[1]
        if base * (windows.shape[0] + 2) >= 2 ** 62:
            raise UsageError(f"pieces: {windows.shape[0]} events with a vocabulary of {vocab_size} overflow the "
                             f"64-bit n-gram keys")
        words = windows[:, -1]
        ids = np.zeros(windows.shape[0], dtype=np.int64)   # empty context: id 0
        mult = 2                                           # 1 id + "unseen"
        counts = cls(base, [], [], [])
        lower_grams = None
        for k in range(1, n + 1):
            if k > 1:
                keys, ids = np.unique(windows[:, n - k] * mult + ids, return_inverse=True)
                ids = ids.reshape(-1)
                counts.codes.append((keys, mult))
                mult = keys.size + 1
            grams = ids * base + words
            keys, first, raw = np.unique(grams, return_index=True, return_counts=True)
            counts.raw.append(_OrderTable.from_counts(keys, raw, base))
            if k > 1:  # continuation counts of order k - 1: distinct k-grams ending in each (k - 1)-gram
                suffix_keys, cont = np.unique(lower_grams[first], return_counts=True)
                counts.cont.append(_OrderTable.from_counts(suffix_keys, cont, base))
            lower_grams = grams
        return counts


class UnigramModel:
    """Context-free baseline: P(w) = (c(w) + alpha) / (N + alpha · V) over the predicted tokens of the pieces.

    Args:
        alpha: additive smoothing (1.0 = Laplace), so unseen tokens keep a nonzero probability.
        vocab_size: number of token classes; default: largest training token + 1.
    """

    def __init__(self, alpha: float = 1.0, vocab_size: int | None = None):
        if not alpha > 0:
            raise UsageError(f"alpha: expected a number > 0, got {alpha!r}")
        self.alpha = float(alpha)
        self.vocab_size = vocab_size
        self.probs: np.ndarray | None = None

    def fit(self, pieces) -> "UnigramModel":
        arrays, self.vocab_size = _check_pieces(pieces, self.vocab_size)
        targets = [a[1:] for a in arrays if a.size > 1]
        counts = np.bincount(np.concatenate(targets) if targets else np.zeros(0, np.int64), minlength=self.vocab_size)
        self.probs = (counts + self.alpha) / (counts.sum() + self.alpha * self.vocab_size)
        return self

    def log_probs(self, pieces) -> np.ndarray:
        """Natural-log probability of every predicted event, concatenated over pieces (shape (events,))."""
        arrays, _ = _check_pieces(pieces, self.vocab_size)
        targets = [a[1:] for a in arrays if a.size > 1]
        if not targets:
            return np.zeros(0)
        return np.log(self.probs[np.concatenate(targets)])

    def nll(self, pieces) -> float:
        """Mean negative log-likelihood, nats per event."""
        return _mean_nll(self.log_probs(pieces))


MAX_ORDER = 32


class KneserNeyModel:
    """Interpolated Kneser-Ney n-gram model (standard form, one discount; see the module docstring).

    Args:
        order: n, the number of tokens in the longest n-gram (context of ``order - 1`` tokens); 1..32.
        vocab_size: number of token classes; default: largest training token + 1.
        discount: the absolute discount D, in (0, 1].

    Example:
        >>> model = KneserNeyModel(order=3, vocab_size=4).fit([np.array([0, 1, 2, 1, 2, 3])])
        >>> round(float(model.distribution([1, 2]).sum()), 12)
        1.0
        >>> round(float(model.variant(order=2, discount=0.5).distribution([2]).sum()), 12)
        1.0
    """

    def __init__(self, order: int = 5, vocab_size: int | None = None, discount: float = 0.75):
        if not (isinstance(order, int) and 1 <= order <= MAX_ORDER):
            raise UsageError(f"order: expected an integer in [1, {MAX_ORDER}], got {order!r}")
        if not (isinstance(discount, (int, float)) and 0 < discount <= 1):
            raise UsageError(f"discount: expected a number in (0, 1], got {discount!r}")
        self.order, self.discount, self.vocab_size = order, float(discount), vocab_size
        self.counts: _Counts | None = None

    def fit(self, pieces) -> "KneserNeyModel":
        """Count every k-gram (k = 1..order) of ``pieces`` (int token arrays, shape (T,)); returns ``self``."""
        arrays, self.vocab_size = _check_pieces(pieces, self.vocab_size)
        self.counts = _Counts.fit(_windows(arrays, self.order), self.vocab_size)
        return self

    def variant(self, order: int | None = None, discount: float | None = None) -> "KneserNeyModel":
        """The model of a lower ``order`` and/or another ``discount`` on the same counts (no refit)."""
        self._check_fitted()
        model = KneserNeyModel(self.order if order is None else order, self.vocab_size,
                               self.discount if discount is None else discount)
        if model.order > self.counts.order:
            raise UsageError(f"order: expected at most the fitted order {self.counts.order}, got {model.order}")
        model.counts = self.counts
        return model

    def _check_fitted(self) -> None:
        if self.counts is None:
            raise UsageError("KneserNeyModel: call fit(pieces) before scoring")

    def _lookups(self, windows: np.ndarray, top: int) -> list[dict]:
        """Per order k = 1..top, the ``(total, types, count)`` arrays of ``windows`` (N, order) in its raw table
        (key ``"raw"``) and, below the fitted order, its continuation table (``"cont"``)."""
        self._check_fitted()
        c = self.counts
        ids, out = np.zeros(windows.shape[0], dtype=np.int64), []
        for k in range(1, top + 1):
            ids = c.context_ids(windows, k, ids)
            grams = ids * c.base + windows[:, -1]
            tables = {"raw": c.raw[k - 1], "cont": c.cont[k - 1] if k <= len(c.cont) else None}
            out.append({name: (_lookup(t.ctx_keys, t.ctx_totals, ids).astype(np.float64),
                               _lookup(t.ctx_keys, t.ctx_types, ids).astype(np.float64),
                               _lookup(t.gram_keys, t.gram_counts, grams).astype(np.float64))
                        for name, t in tables.items() if t is not None})
        return out

    def _mix(self, lookups: list[dict], order: int, discount: float) -> np.ndarray:
        """Interpolate orders 1..order: continuation counts below ``order``, raw counts at it."""
        probs = np.full(lookups[0]["raw"][0].shape[0], 1.0 / self.vocab_size)
        for k in range(1, order + 1):
            total, types, count = lookups[k - 1]["raw" if k == order else "cont"]
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            mixed = np.maximum(count - discount, 0.0) / safe + discount * types / safe * probs
            probs = np.where(seen, mixed, probs)
        return probs

    def _window_probs(self, windows: np.ndarray) -> np.ndarray:
        """P(last token | previous tokens) for windows of shape (N, order) in shifted (+1, 0 = pad) coordinates."""
        return self._mix(self._lookups(windows, self.order), self.order, self.discount)

    def nll_grid(self, pieces, orders, discounts) -> np.ndarray:
        """Mean NLL (nats/event) of ``pieces`` for every ``variant(order, discount)``, shape
        (len(orders), len(discounts)); the count look-ups are shared, so a grid costs little more than one score."""
        orders, discounts = [int(n) for n in orders], [float(d) for d in discounts]
        for n in orders:
            self.variant(order=n)  # checks the order
        for d in discounts:
            self.variant(discount=d)  # checks the discount
        arrays, _ = _check_pieces(pieces, self.vocab_size)
        lookups = self._lookups(_windows(arrays, self.order), max(orders))
        if lookups[0]["raw"][0].size == 0:
            raise UsageError("pieces: nothing to score (every piece has fewer than 2 tokens)")
        return np.array([[-np.log(self._mix(lookups, n, d)).mean() for d in discounts] for n in orders])

    def log_probs(self, pieces) -> np.ndarray:
        """Natural-log probability of every predicted event, concatenated over pieces (shape (events,))."""
        arrays, _ = _check_pieces(pieces, self.vocab_size)
        return np.log(self._window_probs(_windows(arrays, self.order)))

    def nll(self, pieces) -> float:
        """Mean negative log-likelihood, nats per event."""
        return _mean_nll(self.log_probs(pieces))

    def prob(self, context, token: int) -> float:
        """P(token | context); ``context`` lists the preceding tokens (only the last ``order - 1`` matter).

        A context shorter than ``order - 1`` is treated as the start of a piece (padded on the left).
        """
        return float(self.distribution(context)[int(token)])

    def distribution(self, context) -> np.ndarray:
        """P(w | context) for every token w, shape (vocab_size,); sums to 1."""
        self._check_fitted()
        ctx = np.asarray(context, dtype=np.int64).reshape(-1)[-(self.order - 1):] if self.order > 1 else np.zeros(0)
        ctx = np.concatenate([np.zeros(self.order - 1 - ctx.size, dtype=np.int64), ctx.astype(np.int64) + 1])
        words = np.arange(1, self.vocab_size + 1, dtype=np.int64)[:, None]
        windows = np.concatenate([np.broadcast_to(ctx, (self.vocab_size, ctx.size)), words], axis=1)
        return self._window_probs(windows)


def _mean_nll(log_probs: np.ndarray) -> float:
    if log_probs.size == 0:
        raise UsageError("pieces: nothing to score (every piece has fewer than 2 tokens)")
    return float(-log_probs.mean())
