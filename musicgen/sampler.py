"""Pure numpy sampling: one-step kernels for LSTM / GRU / SimpleRNN, logit filters, validity masks. No I/O.

The kernels read the ``models.export_weights`` layout (Keras gate orders: LSTM i, f, c, o; GRU z, r, h with
``reset_after=True``, bias rows (input, recurrent); SimpleRNN tanh) and reproduce ``model(tokens)`` logits one event
at a time while carrying the recurrent state, so sampling never imports TensorFlow and never re-reads a window.

Speed (see benchmarks/sample.py): layer 0's input projection ``embedding @ kernel + bias`` is precomputed as a
(V, G*n) table so it becomes a row lookup; the sigmoid gates' columns are pre-scaled by 0.5 so one ``tanh`` call
covers every gate (``sigmoid(x) = 0.5 * tanh(x / 2) + 0.5``); a batch of B streams steps together.

Example::

    model = StepModel(weights, cfg)
    state = model.init_state(batch=4)
    logits, state = model.step(state, np.full(4, bos_id))      # logits: float32 (4, V)
"""

from __future__ import annotations

import numpy as np

GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}
NEG_INF = np.float32(-np.inf)


class StepModel:
    """Prepared weights for stepping one event at a time.

    Args:
        weights: dict of arrays in the ``models.export_weights`` layout.
        cfg: the ``ModelConfig`` (``cell``, ``layers``, ``units`` are read).
        dtype: compute dtype; float32 (default, fast) or float64.

    State is a list with one tuple per layer: ``(h, c)`` for LSTM, ``(h,)`` otherwise; arrays of shape (B, units).
    """

    def __init__(self, weights: dict, cfg, dtype=np.float32):
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

    def init_state(self, batch: int) -> list[tuple[np.ndarray, ...]]:
        """Zero state for ``batch`` streams (what Keras starts every sequence with)."""
        parts = 2 if self.cell == "lstm" else 1
        return [tuple(np.zeros((batch, self.units), self.dtype) for _ in range(parts)) for _ in range(self.layers)]

    def step(self, state: list, tokens: np.ndarray) -> tuple[np.ndarray, list]:
        """Advance every stream by one event.

        Args:
            state: from ``init_state`` or a previous ``step`` (not modified).
            tokens: int array, shape (B,): the event each stream just emitted (or was fed).

        Returns:
            ``(logits, new_state)``: logits of shape (B, V) in ``dtype`` for the next event.
        """
        n, new_state = self.units, []
        x = None
        for i in range(self.layers):
            if i == 0:
                z = self.table.take(tokens, axis=0)
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

    def run(self, tokens: np.ndarray, state: list | None = None) -> tuple[np.ndarray, list]:
        """Feed a (B, T) token array step by step; returns logits (B, T, V) and the final state."""
        tokens = np.atleast_2d(np.asarray(tokens))
        state = self.init_state(tokens.shape[0]) if state is None else state
        out = np.empty(tokens.shape + (self.vocab_size,), self.dtype)
        for t in range(tokens.shape[1]):
            out[:, t], state = self.step(state, tokens[:, t])
        return out, state


def init_state(weights: dict | StepModel, cfg, batch: int) -> list:
    """Zero state for ``batch`` streams; ``weights`` may be a raw weight dict or a prepared ``StepModel``."""
    return _prepared(weights, cfg).init_state(batch)


def step(weights: dict | StepModel, cfg, state: list, tokens: np.ndarray) -> tuple[np.ndarray, list]:
    """One step; see ``StepModel.step``. Pass a ``StepModel`` (not a raw dict) in loops: preparing costs a matmul."""
    return _prepared(weights, cfg).step(state, tokens)


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


# ------------------------------------------------------------------------------------------------- validity masks
_ON, _OFF, _SHIFT, _VEL, _PROG, _EOS, _OTHER = range(7)
DRUMS = 128


class EventRules:
    """Per-stream validity masks built from a tokenizer's range table, so sampled sequences stay well formed.

    Tracks, for each of B streams, the current program (0 at start, as the decoder assumes; 128 = drums), the
    sounding pitches of every program, the last velocity bin and the elapsed grid steps. ``apply`` then forbids:
    PAD and BOS always; EOS unless ``allow_eos``; a NOTE_OFF of a pitch not sounding in the current program; a
    NOTE_ON of a pitch already sounding (the tokenizer never encodes one); a NOTE_ON outside ``pitch_range`` (pitched
    programs only, drums keep their full key range); any NOTE_ON while ``max_polyphony`` notes sound. A note of the
    current program sounding for ``max_note_steps`` grid steps or more must end next: only such NOTE_OFFs stay
    allowed, or the PROGRAM switch to reach an overdue note of another program (an RNN that misses one NOTE_OFF
    would otherwise hold that note to the end of the sample).

    Args:
        tokenizer: a ``Tokenizer`` (``ranges``, ``describe``).
        batch: number of streams B.
        pitch_range: inclusive ``(lo, hi)`` MIDI pitches allowed for NOTE_ON, or None for the tokenizer's range.
        max_polyphony: at most this many notes sounding at once in a stream (0: no cap).
        allow_eos: let the model end a stream early with EOS.
        max_note_steps: longest note in grid steps before its NOTE_OFF is forced (0: no limit).
    """

    def __init__(self, tokenizer, batch: int, pitch_range: tuple[int, int] | None = None, max_polyphony: int = 0,
                 allow_eos: bool = False, max_note_steps: int = 0):
        r = tokenizer.ranges
        self.vocab_size, self.batch, self.max_polyphony = tokenizer.vocab_size, batch, max_polyphony
        self.max_note_steps = max_note_steps
        self.on0, self.n_pitch = r["NOTE_ON"]
        self.off0 = r["NOTE_OFF"][0]
        if self.off0 != self.on0 + self.n_pitch:
            raise ValueError("tokenizer: NOTE_OFF ids must follow the NOTE_ON ids")
        self.min_pitch = tokenizer.describe(self.on0)[1]
        self.shift0 = r["TIME_SHIFT"][0]
        self.prog0 = r["PROGRAM"][0] if "PROGRAM" in r else None
        self.vel0 = r["VELOCITY"][0] if "VELOCITY" in r else None
        self.kind = np.full(self.vocab_size, _OTHER, np.int64)
        self.value = np.zeros(self.vocab_size, np.int64)
        names = {"NOTE_ON": _ON, "NOTE_OFF": _OFF, "TIME_SHIFT": _SHIFT, "VELOCITY": _VEL, "PROGRAM": _PROG,
                 "EOS": _EOS}
        for name, (first, size) in r.items():
            if name in names:
                self.kind[first:first + size] = names[name]
                self.value[first:first + size] = [tokenizer.describe(i)[1] for i in range(first, first + size)]
        self.static = np.zeros(self.vocab_size, np.float32)        # additive: 0 allowed, -inf forbidden
        self.pad_id = tokenizer.pad_id
        self.static[[tokenizer.pad_id, tokenizer.bos_id]] = NEG_INF
        if not allow_eos:
            self.static[tokenizer.eos_id] = NEG_INF
        pitches = np.arange(self.n_pitch) + self.min_pitch
        lo, hi = pitch_range if pitch_range is not None else (pitches[0], pitches[-1])
        self.range_add = np.where((pitches >= lo) & (pitches <= hi), 0, NEG_INF).astype(np.float32)
        programs = 129 if self.prog0 is not None else 1
        # note_add[b, program] is the additive mask over [NOTE_ON block | NOTE_OFF block] for that program
        self.note_add = np.zeros((batch, programs, 2 * self.n_pitch), np.float32)
        self.note_add[:, :, self.n_pitch:] = NEG_INF
        self.note_add[:, :DRUMS, :self.n_pitch] = self.range_add
        self.rows = np.arange(batch)
        self.program = np.zeros(batch, np.int64)
        self.velocity_bin = np.zeros(batch, np.int64)              # 0: none seen yet
        self.sounding = np.zeros(batch, np.int64)
        self.elapsed = np.zeros(batch, np.int64)                   # grid steps since reset_clock
        self.onset = np.zeros((batch, programs, self.n_pitch), np.int64)  # elapsed at each note's NOTE_ON
        self.due = np.full(batch, np.iinfo(np.int64).max)           # no note can be overdue before this elapsed
        self.done = np.zeros(batch, bool)

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Set forbidden events of each row of ``logits`` (B, V) to -inf, in place; returns ``logits``."""
        logits += self.static
        logits[:, self.on0:self.off0 + self.n_pitch] += self.note_add[self.rows, self.program]
        if self.max_polyphony:
            full = self.sounding >= self.max_polyphony
            if full.any():
                logits[full, self.on0:self.off0] = NEG_INF
        if self.max_note_steps:
            self._force_overdue_offs(logits)
        return logits

    def _force_overdue_offs(self, logits: np.ndarray) -> None:
        """Rows with an overdue note may only end it: its NOTE_OFF, or first the PROGRAM switch that reaches it."""
        rows = np.flatnonzero(self.elapsed >= self.due)                        # cheap test first: the hot path
        if not rows.size:
            return
        sounding = self.note_add[rows, :, self.n_pitch:] == 0                   # (R, programs, pitches)
        overdue = sounding & (self.elapsed[rows, None, None] - self.onset[rows] >= self.max_note_steps)
        hit = overdue.any(axis=(1, 2))
        quiet = rows[~hit]                                                      # due passed, notes since ended
        if quiet.size:
            onsets = np.where(sounding[~hit], self.onset[quiet], np.iinfo(np.int64).max)
            self.due[quiet] = np.minimum(onsets.min(axis=(1, 2)), np.iinfo(np.int64).max - self.max_note_steps) \
                + self.max_note_steps
        rows, overdue = rows[hit], overdue[hit]
        if not rows.size:
            return
        here = overdue[np.arange(rows.size), self.program[rows]]               # (R, pitches)
        forced = np.full((rows.size, self.vocab_size), NEG_INF, np.float32)
        forced[:, self.off0:self.off0 + self.n_pitch] = np.where(here, 0, NEG_INF)
        elsewhere = np.flatnonzero(~here.any(axis=1))
        if elsewhere.size:
            programs = np.arange(self.prog0, self.prog0 + overdue.shape[1])
            forced[np.ix_(elsewhere, programs)] = np.where(overdue[elsewhere].any(axis=2), 0, NEG_INF)
        logits[rows] += forced

    def observe(self, tokens: np.ndarray, limit_steps: int | None = None) -> np.ndarray:
        """Update the state with the events just emitted, shape (B,); returns the tokens actually kept.

        Streams already done get PAD; a NOTE_OFF of a silent pitch or a NOTE_ON of a sounding one (possible in a
        primer) leaves the note count right. With ``limit_steps``, a TIME_SHIFT that reaches the limit is shortened to end
        exactly on it and finishes its stream; an EOS finishes its stream too (and is written as PAD: the notes still
        sounding are closed by ``closing_tokens``).
        """
        tokens = np.where(self.done, self.pad_id, tokens)
        kind, value = self.kind[tokens], self.value[tokens]
        present = np.bincount(kind, minlength=7)
        if present[_ON] or present[_OFF]:
            idx = np.flatnonzero((kind == _ON) | (kind == _OFF))
            prog, p = self.program[idx], value[idx] - self.min_pitch
            on = kind[idx] == _ON
            was_sounding = self.note_add[idx, prog, self.n_pitch + p] == 0
            self.sounding[idx] += on.astype(np.int64) - was_sounding
            self.note_add[idx, prog, self.n_pitch + p] = np.where(on, 0, NEG_INF)
            self.note_add[idx, prog, p] = np.where(on, NEG_INF, np.where(prog == DRUMS, 0, self.range_add[p]))
            self.onset[idx[on], prog[on], p[on]] = self.elapsed[idx[on]]
            np.minimum.at(self.due, idx[on], self.elapsed[idx[on]] + self.max_note_steps)
        if present[_PROG]:
            idx = np.flatnonzero(kind == _PROG)
            self.program[idx] = value[idx]
        if present[_VEL]:
            idx = np.flatnonzero(kind == _VEL)
            self.velocity_bin[idx] = value[idx]
        if present[_SHIFT]:
            idx = np.flatnonzero(kind == _SHIFT)
            self.elapsed[idx] += value[idx]
            if limit_steps is not None:
                over = idx[self.elapsed[idx] >= limit_steps]
                if over.size:
                    tokens[over] -= self.elapsed[over] - limit_steps
                    self.elapsed[over] = limit_steps
                    self.done[over] = True
        if present[_EOS]:
            idx = np.flatnonzero(kind == _EOS)
            tokens[idx] = self.pad_id
            self.done[idx] = True
        return tokens

    def sounding_notes(self, stream: int) -> list[tuple[int, int]]:
        """``(program, pitch)`` of every note sounding in ``stream``, sorted."""
        prog, p = np.nonzero(self.note_add[stream, :, self.n_pitch:] == 0)
        return [(int(a), int(b) + self.min_pitch) for a, b in zip(prog, p)]

    def closing_tokens(self, stream: int) -> list[int]:
        """NOTE_OFFs (with PROGRAM switches where needed) that end every note still sounding in ``stream``."""
        out, current = [], int(self.program[stream])
        for prog, pitch in sorted(self.sounding_notes(stream), key=lambda pp: (pp[0] != current, pp)):
            if prog != current:
                out.append(self.prog0 + prog)
                current = prog
            out.append(self.off0 + pitch - self.min_pitch)
        return out

    def reset_clock(self) -> None:
        """Start counting elapsed steps (and stopping by time) from now, e.g. after the primer."""
        self.onset -= self.elapsed[:, None, None]
        self.due = np.where(self.due == np.iinfo(np.int64).max, self.due, self.due - self.elapsed)
        self.elapsed[:] = 0


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
                  start_state: list | None = None) -> np.ndarray:
    """Sample ``num_samples`` event streams together.

    Args:
        weights: weight dict (``models.export_weights`` layout) or a prepared ``StepModel``.
        cfg: the ``ModelConfig``.
        tokenizer: the bundle's ``Tokenizer`` (range table for the masks).
        primer_tokens: int array (T0,) fed once before sampling (``[BOS]`` when empty); every stream continues it.
        length: events to sample per stream (an upper bound when ``limit_steps`` or ``allow_eos`` ends a stream).
        rng: int seed (stream i draws from ``SeedSequence(seed).spawn(B)[i]``) or a ``numpy.random.Generator``.
        temperature, top_k, top_p: see ``filter_logits``.
        max_polyphony, pitch_range, allow_eos, max_note_steps: see ``EventRules``.
        limit_steps: stop a stream once its TIME_SHIFTs reach this many grid steps (``--seconds``).
        close: append NOTE_OFFs for the notes still sounding at the end.
        start_state: per layer a tuple of (units,) arrays the primer is fed from (a bundle's ``start_state``);
            None: the zero state.

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
    rules = EventRules(tokenizer, batch, pitch_range, max_polyphony, allow_eos, max_note_steps)
    state = model.init_state(1)                                 # the primer runs once, for one stream
    if start_state is not None:
        state = [tuple(np.asarray(a, model.dtype).reshape(1, -1).copy() for a in layer) for layer in start_state]
    for token in primer:
        logits, state = model.step(state, np.array([token]))
    logits = np.repeat(logits, batch, axis=0)
    state = [tuple(np.repeat(a, batch, axis=0) for a in layer) for layer in state]
    for token in primer:
        rules.observe(np.full(batch, token))
    rules.reset_clock()
    uniforms = _Uniforms(rng, batch)
    out = np.full((batch, length), tokenizer.pad_id, np.int32)
    steps = 0
    for t in range(length):
        rules.apply(logits)
        filter_logits(logits, temperature, top_k, top_p)
        tokens = rules.observe(draw(logits, uniforms.next()), limit_steps)
        out[:, t] = tokens
        steps = t + 1
        if steps == length or rules.done.all():
            break
        logits, state = model.step(state, tokens)
    out = out[:, :steps]
    if close:
        pad = tokenizer.pad_id
        rows = [np.concatenate([out[b][out[b] != pad], rules.closing_tokens(b)]) for b in range(batch)]
        out = np.full((batch, max(map(len, rows))), pad, np.int32)
        for b, row in enumerate(rows):
            out[b, :len(row)] = row
    return out
