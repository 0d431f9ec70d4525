"""Pure numpy sampling: one-step kernels for LSTM / GRU / SimpleRNN, logit filters, the sampling loop (validity
masks: ``musicgen.rules.EventRules``, re-exported here). No I/O.

The kernels read the ``models.export_weights`` layout (Keras gate orders: LSTM i, f, c, o; GRU z, r, h with
``reset_after=True``, bias rows (input, recurrent); SimpleRNN tanh) and reproduce ``model(tokens)`` logits one event
at a time while carrying the recurrent state, so sampling never imports TensorFlow and never re-reads a window.

Speed (see benchmarks/sample.py): layer 0's input projection ``embedding @ kernel + bias`` is precomputed as a
(V, G*n) table so it becomes a row lookup; the sigmoid gates' columns are pre-scaled by 0.5 so one ``tanh`` call
covers every gate (``sigmoid(x) = 0.5 * tanh(x / 2) + 0.5``); a batch of B streams steps together.

Context (``cfg.context``, see ``musicgen.context``): the embedding of each context feature goes through layer 0's
input kernel like the token's, so each feature gets its own precomputed (size_k, G*n) table and ``step`` adds one row of
each to the token's row; ``step`` then needs the context after the fed token, int (B, F).

Example::

    model = StepModel(weights, cfg)
    state = model.init_state(batch=4)
    logits, state = model.step(state, np.full(4, bos_id))      # logits: float32 (4, V)
"""

from __future__ import annotations

import numpy as np

from musicgen.models import GATES
from musicgen.rules import NEG_INF, EventRules  # the validity masks (re-exported here)


class StepModel:
    """Prepared weights for stepping one event at a time.

    Args:
        weights: dict of arrays in the ``models.export_weights`` layout.
        cfg: the ``ModelConfig`` (``cell``, ``layers``, ``units``, ``context`` are read).
        dtype: compute dtype; float32 (default, fast) or float64.
        tokenizer: the bundle's ``Tokenizer``; needed by ``features`` (callers that feed whole pieces, e.g.
            ``scoring.score_pieces``) when the model has context inputs.

    State is a list with one tuple per layer: ``(h, c)`` for LSTM, ``(h,)`` otherwise; arrays of shape (B, units).
    """

    def __init__(self, weights: dict, cfg, dtype=np.float32, tokenizer=None):
        if cfg.cell not in GATES:
            raise ValueError(f"cell: expected one of {sorted(GATES)}, got {cfg.cell!r}")
        self.cell, self.layers, self.units, self.dtype = cfg.cell, cfg.layers, cfg.units, np.dtype(dtype)
        n, w = self.units, {k: np.asarray(v, dtype=self.dtype) for k, v in weights.items()}
        self.kernels, self.recurrent, self.biases, self.recurrent_biases = [], [], [], []
        for i in range(self.layers):
            kernel, rec, bias = w[f"rnn_{i}_kernel"], w[f"rnn_{i}_recurrent_kernel"], w[f"rnn_{i}_bias"]
            rec_bias = None
            if self.cell == "gru":
                bias, rec_bias = bias[0], bias[1]
            kernel, rec, bias, rec_bias = (self._arrange(a, n) for a in (kernel, rec, bias, rec_bias))
            self.kernels.append(kernel)
            self.recurrent.append(rec)
            self.biases.append(bias)
            self.recurrent_biases.append(rec_bias)
        # Layer 0: embedding lookup + input matmul + input bias collapse into one (V, G*n) table.
        self.table = w["embedding"] @ self.kernels[0] + self.biases[0]
        self.context = tuple(getattr(cfg, "context", ()))
        self.context_tables = [w[f"context_{k}"] @ self.kernels[0] for k in range(len(self.context))]
        self.tokenizer = tokenizer
        self.kernels[0] = self.biases[0] = None
        self.out_kernel, self.out_bias = w["logits_kernel"], w["logits_bias"]
        self.vocab_size = self.out_bias.shape[0]

    def _arrange(self, a, n):
        """LSTM: reorder gate columns i, f, c, o → i, f, o, c and halve the sigmoid ones; GRU: halve z, r."""
        if a is None or self.cell == "simple_rnn":
            return a
        if self.cell == "lstm":
            i, f, c, o = (a[..., k * n:(k + 1) * n] for k in range(4))
            a = np.concatenate([0.5 * i, 0.5 * f, 0.5 * o, c], axis=-1)
        else:
            a = a.copy()
            a[..., :2 * n] *= 0.5
        return a

    def init_state(self, batch: int, start: list | None = None) -> list[tuple[np.ndarray, ...]]:
        """State for ``batch`` streams: zeros (what Keras starts every sequence with), or ``start`` (one tuple per
        layer of (units,) or (1, units) arrays, e.g. a bundle's start state) repeated for every stream."""
        if start is not None:
            return [tuple(np.broadcast_to(np.asarray(a, self.dtype).reshape(1, -1), (batch, self.units)).copy()
                          for a in layer) for layer in start]
        parts = 2 if self.cell == "lstm" else 1
        return [tuple(np.zeros((batch, self.units), self.dtype) for _ in range(parts)) for _ in range(self.layers)]

    def features(self, tokens) -> np.ndarray | None:
        """``context.context_features(tokens, tokenizer)``, int32 (T, F), for a model with context; None without."""
        if not self.context:
            return None
        if self.tokenizer is None:
            raise ValueError("tokenizer: a model with context inputs needs StepModel(..., tokenizer=...) for features")
        from musicgen.context import context_features

        return context_features(tokens, self.tokenizer)

    def step(self, state: list, tokens: np.ndarray, context: np.ndarray | None = None) -> tuple[np.ndarray, list]:
        """Advance every stream by one event.

        Args:
            state: from ``init_state`` or a previous ``step`` (not modified).
            tokens: int array, shape (B,): the event each stream just emitted (or was fed).
            context: int array (B, F): the context after ``tokens`` (``context.ContextTracker.update``); required
                when the model has context inputs, ignored otherwise.

        Returns:
            ``(logits, new_state)``: logits of shape (B, V) in ``dtype`` for the next event.
        """
        n, new_state = self.units, []
        x = None
        for i in range(self.layers):
            if i == 0:
                z = self.table.take(tokens, axis=0)
                if self.context:
                    if context is None:
                        raise ValueError(f"context: this model has context inputs {self.context}; pass the "
                                         f"context after the tokens, shape (B, {len(self.context)})")
                    for k, table in enumerate(self.context_tables):
                        z += table.take(context[:, k], axis=0)
            else:
                z = x @ self.kernels[i]
                z += self.biases[i]
            h = state[i][0]
            if self.cell == "lstm":
                z += h @ self.recurrent[i]
                np.tanh(z, out=z)
                gates = z[:, :3 * n]
                gates *= 0.5
                gates += 0.5
                c = z[:, n:2 * n] * state[i][1]
                c += z[:, :n] * z[:, 3 * n:]
                x = np.tanh(c)
                x *= z[:, 2 * n:3 * n]
                new_state.append((x, c))
            elif self.cell == "gru":
                r = h @ self.recurrent[i]
                r += self.recurrent_biases[i]
                zr = z[:, :2 * n]
                zr += r[:, :2 * n]
                np.tanh(zr, out=zr)
                zr *= 0.5
                zr += 0.5
                cand = r[:, 2 * n:]
                cand *= z[:, n:2 * n]
                cand += z[:, 2 * n:]
                np.tanh(cand, out=cand)
                x = h - cand                         # h = z * h_prev + (1 - z) * cand = cand + z * (h_prev - cand)
                x *= z[:, :n]
                x += cand
                new_state.append((x,))
            else:
                z += h @ self.recurrent[i]
                x = np.tanh(z, out=z)
                new_state.append((x,))
        logits = x @ self.out_kernel
        logits += self.out_bias
        return logits, new_state

    def run(self, tokens: np.ndarray, state: list | None = None, context: np.ndarray | None = None,
            ) -> tuple[np.ndarray, list]:
        """Feed a (B, T) token array step by step (with its (B, T, F) context when the model has context inputs);
        returns logits (B, T, V) and the final state."""
        tokens = np.atleast_2d(np.asarray(tokens))
        state = self.init_state(tokens.shape[0]) if state is None else state
        out = np.empty(tokens.shape + (self.vocab_size,), self.dtype)
        for t in range(tokens.shape[1]):
            out[:, t], state = self.step(state, tokens[:, t], None if context is None else context[:, t])
        return out, state


def init_state(weights: dict | StepModel, cfg, batch: int) -> list:
    """Zero state for ``batch`` streams; ``weights`` may be a raw weight dict or a prepared ``StepModel``."""
    return _prepared(weights, cfg).init_state(batch)


def step(weights: dict | StepModel, cfg, state: list, tokens: np.ndarray, context: np.ndarray | None = None,
         ) -> tuple[np.ndarray, list]:
    """One step; see ``StepModel.step``. Pass a ``StepModel`` (not a raw dict) in loops: preparing costs a matmul."""
    return _prepared(weights, cfg).step(state, tokens, context)


def _prepared(weights, cfg) -> StepModel:
    return weights if isinstance(weights, StepModel) else StepModel(weights, cfg)


# ------------------------------------------------------------------------------------------------ logits → events
def filter_logits(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Temperature, then top-k, then top-p (nucleus) filtering, vectorized over rows.

    Args:
        logits: float array (B, V); ``-inf`` marks events already forbidden. Modified in place and returned.
        temperature: > 0; divides the logits (< 1 more conservative, > 1 more adventurous).
        top_k: keep the k highest logits of each row (0 or >= V keeps all); ties at the k-th value are kept.
        top_p: keep the smallest set of most likely events whose probability reaches p (1.0 keeps all).
    """
    if temperature <= 0:
        raise ValueError(f"temperature: expected a number > 0, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p: expected a number in (0, 1], got {top_p!r}")
    if temperature != 1.0:
        logits *= 1.0 / temperature
    vocab = logits.shape[1]
    if 0 < top_k < vocab:
        kth = -np.partition(-logits, top_k - 1, axis=1)[:, top_k - 1:top_k]
        logits[logits < kth] = -np.inf
    if top_p < 1.0:
        probs = _softmax(logits)
        ordered = -np.sort(-probs, axis=1)
        before = np.cumsum(ordered, axis=1) - ordered          # probability mass strictly above each entry
        keep_count = np.maximum((before < top_p).sum(axis=1), 1)
        threshold = ordered[np.arange(len(ordered)), keep_count - 1][:, None]
        logits[probs < threshold] = -np.inf
    return logits


def _softmax(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p


def draw(logits: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling of one event per row.

    Args:
        logits: float (B, V), ``-inf`` for forbidden events (each row needs one finite entry).
        uniforms: float (B,) in [0, 1), one draw per row.

    Returns:
        int64 (B,) event ids; an id with probability 0 is never returned.
    """
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)                       # float32 is plenty for a few hundred classes, and 4x faster
    total = cdf[:, -1].astype(np.float64)
    target = np.minimum(uniforms * total, np.nextafter(total, 0))
    return (cdf <= target[:, None]).sum(axis=1)


# --------------------------------------------------------------------------------------------------- the loop
class _Uniforms:
    """Uniform draws, shape (B,) per step. An int seed gives stream i its own generator (``SeedSequence(seed)``'s
    i-th child), so stream i's draws do not depend on how many streams run beside it."""

    def __init__(self, rng, batch: int, chunk: int = 512):
        self.batch, self.chunk, self.pos, self.block = batch, chunk, chunk, None
        if isinstance(rng, np.random.Generator):
            self.shared, self.streams = rng, None
        else:
            seq = rng if isinstance(rng, np.random.SeedSequence) else np.random.SeedSequence(rng)
            self.shared, self.streams = None, [np.random.Generator(np.random.PCG64(s)) for s in seq.spawn(batch)]

    def next(self) -> np.ndarray:
        if self.pos == self.chunk:
            if self.streams is None:
                self.block = self.shared.random((self.chunk, self.batch))
            else:
                self.block = np.stack([g.random(self.chunk) for g in self.streams], axis=1)
            self.pos = 0
        self.pos += 1
        return self.block[self.pos - 1]


def sample_tokens(weights, cfg, tokenizer, primer_tokens, length: int, rng, *, num_samples: int = 1,
                  temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, max_polyphony: int = 0,
                  pitch_range: tuple[int, int] | None = None, allow_eos: bool = False,
                  limit_steps: int | None = None, close: bool = True, max_note_steps: int = 0,
                  well_formed: bool = True, start_state: list | None = None, key=None,
                  programs=None, steering=None, style=None, context=None, max_voices=None) -> np.ndarray:
    """Sample ``num_samples`` event streams together.

    Args:
        weights: weight dict (``models.export_weights`` layout) or a prepared ``StepModel``.
        cfg: the ``ModelConfig``.
        tokenizer: the bundle's ``Tokenizer`` (range table for the masks).
        primer_tokens: int array (T0,) fed once before sampling (``[BOS]`` when empty); every stream continues it.
        length: events to sample per stream (an upper bound when ``limit_steps`` or ``allow_eos`` ends a stream).
        rng: int seed (stream i draws from ``SeedSequence(seed).spawn(B)[i]``) or a ``numpy.random.Generator``.
        temperature, top_k, top_p: see ``filter_logits``.
        max_polyphony, pitch_range, allow_eos, max_note_steps, well_formed, programs, max_voices: see
            ``EventRules``.
        limit_steps: stop a stream once its TIME_SHIFTs reach this many grid steps (``--seconds``).
        close: append NOTE_OFFs for the notes still sounding at the end.
        start_state: per layer a tuple of (units,) arrays the primer is fed from (a bundle's ``start_state``);
            None: the zero state.
        key: key-mode vocabularies: the KEY value every stream takes after BOS, one int or int (B,) one per stream
            (None: the model draws it). The KEY is drawn like any event (from a mask that allows only it), so a
            stream with ``key=k`` equals, event for event, the stream of the same seed in which the model drew KEY(k)
            itself.
        style: styles vocabularies: the STYLE value every stream takes after BOS, one int or int (B,) one per
            stream (None: the model draws it); forced like ``key``, so stream i with style s equals stream i of the
            same seed that drew STYLE(s).
        steering: a ``controls.Steering`` (density controller, key bias) whose biases are added after the masks and
            before temperature/top-k/top-p; None: none.

        context: a ``context.ContextTracker`` whose stream 0 holds the context the tokens before the primer left
            (e.g. ``musicgen live``'s conversation so far, with ``start_state`` the state they left): the primer and
            the samples are tracked as its tail. None: the primer starts a fresh token array.

    A model with context inputs gets the context after each fed event from the rules' ``context.ContextTracker``.

    Returns:
        int32 array (B, T): sampled events (primer not included), then closing events, padded with PAD.
    """
    model = _prepared(weights, cfg)
    primer = np.asarray(primer_tokens, dtype=np.int64).ravel()
    eos = np.flatnonzero(primer == tokenizer.eos_id)
    primer = primer[:eos[0]] if eos.size else primer
    if primer.size == 0:
        primer = np.array([tokenizer.bos_id])
    batch = num_samples
    rules = EventRules(tokenizer, batch, pitch_range, max_polyphony, allow_eos, max_note_steps, well_formed, key=key,
                       programs=programs, context=bool(model.context), style=style, max_voices=max_voices)
    if context is not None and rules.context is not None:
        rules.context.start_from(context)
    tracker = rules.context if model.context else None          # the rules track the events; the model reads them
    state = model.init_state(1, start_state)                    # the primer runs once, for one stream
    for token in primer:
        rules.observe(np.full(batch, token))
        logits, state = model.step(state, np.array([token]), tracker.features()[:1] if tracker is not None else None)
    logits = np.repeat(logits, batch, axis=0)
    state = [tuple(np.repeat(a, batch, axis=0) for a in layer) for layer in state]
    rules.reset_clock()
    uniforms = _Uniforms(rng, batch)
    out = np.full((batch, length), tokenizer.pad_id, np.int32)
    steps = 0
    for t in range(length):
        rules.apply(logits)
        if steering is not None:
            steering.apply(logits, rules)
        filter_logits(logits, temperature, top_k, top_p)
        tokens = rules.observe(draw(logits, uniforms.next()), limit_steps)
        if steering is not None:
            steering.observe(tokens)
        out[:, t] = tokens
        steps = t + 1
        if steps == length or rules.done.all():
            break
        logits, state = model.step(state, tokens, tracker.features() if tracker is not None else None)
    out = out[:, :steps]
    if close:
        pad = tokenizer.pad_id
        rows = [np.concatenate([out[b][out[b] != pad], rules.closing_tokens(b)]) for b in range(batch)]
        out = np.full((batch, max(map(len, rows))), pad, np.int32)
        for b, row in enumerate(rows):
            out[b, :len(row)] = row
    return out
