"""Context features: the metric position, key and style in force after each token, as small integers the model embeds.

With ``TokenizerConfig.meter``, ``.key``, ``.last_pitch``, ``.neighbor_pitches``, ``.held_notes`` and/or ``.styles``
the model gets, beside each token, the context *after* that token (where the next event happens);
``ModelConfig.context`` holds the feature sizes (``context_sizes``), and ``models.build_model`` adds one embedding per
feature to the token embedding. Value 0 of every feature is "unknown".

Features, in this order (``context_names`` / ``context_sizes``)::

    step_in_beat  meter on   size 1 + 2 * steps_per_quarter   1 + grid steps since the current beat began
    beat_in_bar   meter on   size 17                          1 + index of the current beat in the bar (0..15)
    bar_start     meter on   size 3                           1 off a bar start, 2 on a bar start
    key           key on     size 25                          1 + the KEY value (tonic pitch class + 12 * minor)
    last_pitch    last_pitch size 129                         1 + the pitch of the latest NOTE_ON in the voice in force
    above_pitch   neighbor_pitches  size 129                  the same for the voice just above (in force - 1)
    below_pitch   neighbor_pitches  size 129                  the same for the voice just below (in force + 1)
    held_0..3     held_notes size 1 + 2 * len(held_edges) + 2 voice u (0..3) sounding or resting, and for how long
    style         styles on  size 1 + len(styles)             1 + the STYLE value (index in ``config.styles``)

Metric position (the shared spec): the *origin* is the grid step of the latest TIME_SIG of the current piece and
its value gives the meter ``num/den``; the position is ``p = step - origin`` (steps counted from the piece's BOS by its
TIME_SHIFTs). A beat lasts ``Q / den`` steps with ``Q = 4 * steps_per_quarter`` (12 for /4, 6 for /8, 24 for /2, 3 for
/16 at 12 steps per quarter). Then ``beats = (p * den) // Q``, beat-in-bar ``= beats % num``, step-in-beat ``= p -
ceil(beats * Q / den)`` and bar start ``= (p * den) % (Q * num) == 0``; when ``Q / den`` is a whole number these are
``(p // spb) % num``, ``p % spb`` and ``p % (num * spb) == 0`` (spb = steps per beat), and the integer form also
covers a beat shorter than a step or not a whole number of steps (e.g. /16 at 2 steps per quarter: every step is a
beat start). Before the first TIME_SIG of a piece, and before the first BOS of a token array that starts mid-piece
without a TIME_SIG, the three meter features are 0. The key feature is 1 + the latest KEY value of the current piece,
or 0; the style feature likewise from the latest STYLE. The voice in force is the latest VOICE's value since the
piece's BOS (0 before any, and always 0 without VOICE events); last_pitch is 1 + the pitch of the latest NOTE_ON of
the current piece made while that voice was in force, or 0 (so after VOICE v it names v's previous note, the one a
melody line continues from); above_pitch and below_pitch name voices v - 1 and v + 1 the same way (0 when there is no
such voice). held_u (``held_notes``) reads voice u's latest NOTE_ON or NOTE_OFF of the current piece (made while u was
in force): 0 before any; else 1 + b after a NOTE_ON and 1 + B + b after a NOTE_OFF, where b is the bucket of the
steps since that event (``np.searchsorted(held_edges(config), age, side="right")``, 0 = at this very step) and B =
``len(held_edges(config)) + 1``: whether u sounds or rests, for how long, and whether u has already moved at this
step; voices 4 and up are not read. BOS resets everything (the features after BOS are all 0);
EOS changes nothing (the next BOS resets). Choices the spec left open: EOS does not reset; a token array is its own
clock (time 0 at its first token).

Key names (``--key``) live in ``musicgen.meter``: ``parse_key("D minor") == 14``, ``key_name(14) == "D minor"``.

Example::

    feats = context_features(tokens, tok)         # int32 (T, F), row t = the context after tokens[t]
    tracker = ContextTracker(tok, batch=4)
    row = tracker.update(np.full(4, tok.bos_id))  # int32 (4, F), equal to the vectorized rows
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from musicgen.config import TokenizerConfig
from musicgen.errors import UsageError

BEATS_SIZE = 17  # unknown + beat 0..15 (numerators 1..16)
BAR_START_SIZE = 3  # unknown, off, on
KEY_SIZE = 25  # unknown + the 24 KEY values
PITCH_SIZE = 129  # unknown + MIDI pitches 0..127
_AROUND = np.array([0, -1, 1])  # the voices the last, above and below pitch features read: in force, v - 1, v + 1
HELD_VOICES = 4  # held_notes reads voices 0..3
_HELD_QUARTERS = (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8)  # held_notes' bucket edges after "within a step"


# ---------------------------------------------------------------------------------------------------- the layout
def context_names(config: TokenizerConfig) -> tuple[str, ...]:
    """Names of the context features of ``config``, in column order (``()`` without meter, key and styles)."""
    return ((("step_in_beat", "beat_in_bar", "bar_start") if config.meter else ()) + (("key",) if config.key else ())
            + (("last_pitch",) if config.last_pitch else ())
            + (("above_pitch", "below_pitch") if config.neighbor_pitches else ())
            + (tuple(f"held_{u}" for u in range(HELD_VOICES)) if config.held_notes else ())
            + (("style",) if config.styles else ()))


def context_sizes(config: TokenizerConfig) -> tuple[int, ...]:
    """``ModelConfig.context`` for ``config``: the number of values of each feature, 0 (unknown) included."""
    sizes = {"step_in_beat": 1 + 2 * config.steps_per_quarter, "beat_in_bar": BEATS_SIZE,
             "bar_start": BAR_START_SIZE, "key": KEY_SIZE, "last_pitch": PITCH_SIZE, "above_pitch": PITCH_SIZE,
             "below_pitch": PITCH_SIZE, "style": 1 + len(config.styles),
             **{f"held_{u}": 1 + 2 * (len(held_edges(config)) + 1) for u in range(HELD_VOICES)}}
    return tuple(sizes[name] for name in context_names(config))


def held_edges(config: TokenizerConfig) -> tuple[int, ...]:
    """The held-note age buckets' lower edges in grid steps (bucket 0: 0 steps, the event is at this step): 1 step,
    then a quarter of a quarter note up to eight quarter notes (``_HELD_QUARTERS``); in seconds mode a quarter note is
    taken as 0.5 s."""
    quarter = config.steps_per_quarter if config.time_mode == "beat" else max(1, round(0.5 / config.step_seconds))
    return tuple(sorted({1, *(max(1, math.ceil(f * quarter)) for f in _HELD_QUARTERS)}))


@dataclass(frozen=True)
class _Lookup:
    """Per-id tables of one vocabulary: shift steps (0 if not a TIME_SHIFT), TIME_SIG numerator/denominator (0: not
    one), KEY, STYLE, VOICE values and NOTE_ON pitches (-1: not one), NOTE_OFF and BOS flags; all of shape (V,);
    ``edges``: ``held_edges`` of the config."""

    shift: np.ndarray
    num: np.ndarray
    den: np.ndarray
    key: np.ndarray
    style: np.ndarray
    voice: np.ndarray
    on_pitch: np.ndarray
    off: np.ndarray
    bos: np.ndarray
    whole: int  # grid steps per whole note (4 * steps_per_quarter)
    meter: bool
    has_key: bool
    has_style: bool
    last_pitch: bool
    neighbors: bool
    held: bool
    edges: np.ndarray
    voices: int  # VOICE values 0..voices-1 (1 without VOICE events)


@lru_cache(maxsize=32)
def _lookup(config: TokenizerConfig) -> _Lookup:
    from musicgen.tokenizer import Tokenizer, time_signature_of

    tok = Tokenizer(config)
    v = tok.vocab_size
    shift, num, den = np.zeros(v, np.int64), np.zeros(v, np.int64), np.zeros(v, np.int64)
    key, style, bos = np.full(v, -1, np.int64), np.full(v, -1, np.int64), np.zeros(v, bool)
    voice, on_pitch, off = np.full(v, -1, np.int64), np.full(v, -1, np.int64), np.zeros(v, bool)
    first, size = tok.ranges["TIME_SHIFT"]
    shift[first:first + size] = np.arange(1, size + 1)
    if "TIME_SIG" in tok.ranges:
        first, size = tok.ranges["TIME_SIG"]
        meters = np.array([time_signature_of(value) for value in range(size)], np.int64)
        num[first:first + size], den[first:first + size] = meters[:, 0], meters[:, 1]
    if "KEY" in tok.ranges:
        first, size = tok.ranges["KEY"]
        key[first:first + size] = np.arange(size)
    if "STYLE" in tok.ranges:
        first, size = tok.ranges["STYLE"]
        style[first:first + size] = np.arange(size)
    if "VOICE" in tok.ranges:
        first, size = tok.ranges["VOICE"]
        voice[first:first + size] = np.arange(size)
    first, size = tok.ranges["NOTE_ON"]
    on_pitch[first:first + size] = np.arange(config.min_pitch, config.min_pitch + size)
    first, size = tok.ranges["NOTE_OFF"]
    off[first:first + size] = True
    bos[tok.bos_id] = True
    edges = np.array(held_edges(config), np.int64)
    for a in (shift, num, den, key, style, voice, on_pitch, off, bos, edges):
        a.setflags(write=False)
    return _Lookup(shift, num, den, key, style, voice, on_pitch, off, bos, 4 * config.steps_per_quarter, config.meter,
                   bool(config.key), bool(config.styles), config.last_pitch, config.neighbor_pitches,
                   config.held_notes, edges, max(config.voices, 1))


def _ids(tokens, vocab_size: int) -> np.ndarray:
    t = np.asarray(tokens)
    if t.size and not np.issubdtype(t.dtype, np.integer):
        raise UsageError(f"tokens: expected integer ids, got dtype {t.dtype}")
    t = t.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= vocab_size):
        raise UsageError(f"tokens: id {int(t[(t < 0) | (t >= vocab_size)].ravel()[0])} is outside [0, {vocab_size})")
    return t


def _held(lk: _Lookup, kind, age) -> np.ndarray:
    """The held_u features from each voice's latest note event: ``kind`` 0 none, 1 NOTE_ON, 2 NOTE_OFF, and ``age``
    the steps since it (any shape; the same shape back)."""
    b = np.searchsorted(lk.edges, age, side="right")
    return np.where(kind == 0, 0, 1 + b + np.where(kind == 2, lk.edges.size + 1, 0))


def _columns(lk: _Lookup, p, num, den, known, key, pitches, style, held) -> np.ndarray:
    """Feature columns from the position ``p`` (steps since the origin), the meter ``num/den`` (valid where
    ``known``), the key and style features, ``pitches`` (*S, 3): the last, above and below pitch features, and
    ``held`` (*S, HELD_VOICES): the held-note features; every other argument has the same shape S; returns int32
    (*S, F)."""
    cols = []
    if lk.meter:
        d = np.where(known, den, 4)
        n = np.where(known, num, 1)
        beats = (p * d) // lk.whole
        step_in_beat = p - (-(-beats * lk.whole // d))
        bar_start = (p * d) % (lk.whole * n) == 0
        cols += [np.where(known, 1 + step_in_beat, 0), np.where(known, 1 + beats % n, 0),
                 np.where(known, 1 + bar_start, 0)]
    if lk.has_key:
        cols.append(key)
    if lk.last_pitch:
        cols.append(pitches[..., 0])
    if lk.neighbors:
        cols += [pitches[..., 1], pitches[..., 2]]
    if lk.held:
        cols += [held[..., u] for u in range(HELD_VOICES)]
    if lk.has_style:
        cols.append(style)
    return np.stack(cols, axis=-1).astype(np.int32) if cols else np.zeros(np.shape(p) + (0,), np.int32)


# ------------------------------------------------------------------------------------------------------- vectorized
def context_features(tokens, tokenizer) -> np.ndarray:
    """The context after each token, vectorized.

    Args:
        tokens: int ids, shape (T,): one or more pieces laid end to end (each from its BOS), or a part of one.
        tokenizer: the ``Tokenizer`` the ids belong to.

    Returns:
        int32 (T, F), F = ``len(context_sizes(tokenizer.config))``; row t is the context after ``tokens[t]``, i.e.
        where the event ``tokens[t + 1]`` happens (see the module docstring). F = 0 gives shape (T, 0).
    """
    lk = _lookup(tokenizer.config)
    t = _ids(tokens, tokenizer.vocab_size).ravel()
    if t.size == 0:
        return np.zeros((0, len(context_sizes(tokenizer.config))), np.int32)
    idx = np.arange(t.size)
    last_bos = np.maximum.accumulate(np.where(lk.bos[t], idx, -1))
    p = num = den = known = key = style = np.zeros(t.size, np.int64)
    pitches, held = np.zeros((t.size, 3), np.int64), np.zeros((t.size, HELD_VOICES), np.int64)
    cum = np.cumsum(lk.shift[t])
    if lk.meter:
        last_ts = np.maximum.accumulate(np.where(lk.num[t] > 0, idx, -1))
        origin = np.maximum(last_ts, 0)
        known, p, num, den = last_ts > last_bos, cum - cum[origin], lk.num[t[origin]], lk.den[t[origin]]
    if lk.has_key:
        last_key = np.maximum.accumulate(np.where(lk.key[t] >= 0, idx, -1))
        key = np.where(last_key > last_bos, 1 + lk.key[t[np.maximum(last_key, 0)]], 0)
    if lk.has_style:
        last_style = np.maximum.accumulate(np.where(lk.style[t] >= 0, idx, -1))
        style = np.where(last_style > last_bos, 1 + lk.style[t[np.maximum(last_style, 0)]], 0)
    if lk.last_pitch or lk.neighbors or lk.held:
        voice = _voice_in_force(lk, t, idx, last_bos)
        if lk.last_pitch or lk.neighbors:
            pitches = _voice_pitches(lk, t, idx, last_bos, voice)
        if lk.held:
            held = _held_notes(lk, t, idx, last_bos, voice, cum)
    return _columns(lk, p, num, den, known, key, pitches, style, held)


def _voice_in_force(lk: _Lookup, t: np.ndarray, idx: np.ndarray, last_bos: np.ndarray) -> np.ndarray:
    """int64 (T,): the latest VOICE value since BOS after each of ``t`` (0 before any)."""
    last_voice = np.maximum.accumulate(np.where(lk.voice[t] >= 0, idx, -1))
    return np.where(last_voice > last_bos, lk.voice[t[np.maximum(last_voice, 0)]], 0)


def _held_notes(lk: _Lookup, t, idx, last_bos, voice, cum) -> np.ndarray:
    """int64 (T, HELD_VOICES): the held_u features of ``t`` (ids, (T,)), from the voice in force and the clock
    ``cum`` (steps after each token)."""
    on, off = lk.on_pitch[t] >= 0, lk.off[t]
    held = np.zeros((t.size, HELD_VOICES), np.int64)
    for u in range(HELD_VOICES):
        last = np.maximum.accumulate(np.where((on | off) & (voice == u), idx, -1))
        at = np.maximum(last, 0)
        kind = np.where(last > last_bos, np.where(off[at], 2, 1), 0)
        held[:, u] = _held(lk, kind, cum - cum[at])
    return held


def _voice_pitches(lk: _Lookup, t: np.ndarray, idx: np.ndarray, last_bos: np.ndarray, voice) -> np.ndarray:
    """int64 (T, 3): the last, above and below pitch features of ``t`` (ids, (T,)): per voice, 1 + the latest NOTE_ON
    since BOS made in that voice (0 none), read for the voice in force (``voice``) and its two neighbours."""
    on = lk.on_pitch[t] >= 0
    table = np.zeros((t.size, lk.voices + 2), np.int64)  # column 1 + u: voice u; columns 0 and -1 stay 0
    for v in np.unique(voice[on]).tolist():
        last_on = np.maximum.accumulate(np.where(on & (voice == v), idx, -1))
        table[:, 1 + v] = np.where(last_on > last_bos, 1 + lk.on_pitch[t[np.maximum(last_on, 0)]], 0)
    return table[idx[:, None], 1 + voice[:, None] + _AROUND]


# ------------------------------------------------------------------------------------------------------ incremental
class ContextTracker:
    """The context of ``batch`` streams, one event at a time (for the sampler); equals ``context_features`` row by row.

    Args:
        tokenizer: the ``Tokenizer`` of the streams.
        batch: number of streams B.

    Each stream starts as a fresh token array (everything unknown, clock at 0). State per stream: ``position``
    (steps since the latest TIME_SIG), ``numerator``/``denominator`` (0 while the meter is unknown), ``key`` and
    ``style`` (the key and style features, 0 unknown), ``voice`` (the voice in force), ``pitches`` (B, voices + 2):
    column 1 + u holds 1 + voice u's latest NOTE_ON pitch (0 none; the two edge columns stay 0), ``clock`` (steps
    since the stream's start or latest BOS), and per voice 0..3 ``held_kind`` (B, 4; 0 none, 1 NOTE_ON, 2 NOTE_OFF:
    the latest note event) and ``held_time`` (B, 4; the clock at it).
    """

    def __init__(self, tokenizer, batch: int):
        self._lk, self.config = _lookup(tokenizer.config), tokenizer.config
        self.vocab_size, self.batch = tokenizer.vocab_size, int(batch)
        self.width = len(context_sizes(tokenizer.config))
        self.position = np.zeros(self.batch, np.int64)
        self.numerator = np.zeros(self.batch, np.int64)
        self.denominator = np.zeros(self.batch, np.int64)
        self.key = np.zeros(self.batch, np.int64)
        self.style = np.zeros(self.batch, np.int64)
        self.voice = np.zeros(self.batch, np.int64)
        self.pitches = np.zeros((self.batch, self._lk.voices + 2), np.int64)  # column 1 + u: voice u
        self.clock = np.zeros(self.batch, np.int64)
        self.held_kind = np.zeros((self.batch, HELD_VOICES), np.int64)
        self.held_time = np.zeros((self.batch, HELD_VOICES), np.int64)
        self._features = self._compute()

    def update(self, tokens) -> np.ndarray:
        """Advance every stream by its event ``tokens`` (int, shape (B,)); returns the context after it, int32 (B, F).
        PAD changes nothing."""
        t = _ids(tokens, self.vocab_size).reshape(self.batch)
        lk = self._lk
        bos = lk.bos[t]
        for a in self._state():
            a[bos] = 0
        self.position += lk.shift[t]
        self.clock += lk.shift[t]
        sig = lk.num[t] > 0
        self.numerator[sig], self.denominator[sig], self.position[sig] = lk.num[t[sig]], lk.den[t[sig]], 0
        keyed = lk.key[t] >= 0
        self.key[keyed] = 1 + lk.key[t[keyed]]
        styled = lk.style[t] >= 0
        self.style[styled] = 1 + lk.style[t[styled]]
        voiced = lk.voice[t] >= 0
        self.voice[voiced] = lk.voice[t[voiced]]
        on = np.flatnonzero(lk.on_pitch[t] >= 0)
        self.pitches[on, 1 + self.voice[on]] = 1 + lk.on_pitch[t[on]]
        moved = np.flatnonzero(((lk.on_pitch[t] >= 0) | lk.off[t]) & (self.voice < HELD_VOICES))
        self.held_kind[moved, self.voice[moved]] = np.where(lk.off[t[moved]], 2, 1)
        self.held_time[moved, self.voice[moved]] = self.clock[moved]
        self._features = self._compute()
        return self._features.copy()

    def _state(self) -> tuple[np.ndarray, ...]:
        return (self.position, self.numerator, self.denominator, self.key, self.style, self.voice, self.pitches,
                self.clock, self.held_kind, self.held_time)

    def features(self) -> np.ndarray:
        """The current context, int32 (B, F), without advancing (read only: the array is shared)."""
        return self._features

    def start_from(self, other: ContextTracker) -> ContextTracker:
        """Put every stream where stream 0 of ``other`` (a tracker of the same vocabulary) is, e.g. the context a
        token history has reached, so that tokens continuing it are tracked as its tail; returns ``self``."""
        if other.config != self.config:
            raise UsageError("other: expected a ContextTracker of the same tokenizer config")
        for mine, theirs in zip(self._state(), other._state()):
            mine[:] = theirs[0]
        self._features = self._compute()
        return self

    def run(self, tokens) -> np.ndarray:
        """Advance stream 0 of a one-stream tracker by each of ``tokens`` (int, shape (T,)) in turn; returns the
        context after each, int32 (T, F): ``context_features`` of the tokens as the tail of what came before."""
        if self.batch != 1:
            raise UsageError(f"run: expected a tracker of one stream, got batch={self.batch}")
        t = _ids(tokens, self.vocab_size).ravel()
        out = np.zeros((t.size, self.width), np.int32)
        for i, token in enumerate(t):
            out[i] = self.update(token[None])[0]
        return out

    def _compute(self) -> np.ndarray:
        out = _columns(self._lk, self.position, self.numerator, self.denominator, self.numerator > 0, self.key,
                       self.pitches[np.arange(self.batch)[:, None], 1 + self.voice[:, None] + _AROUND],
                       self.style, _held(self._lk, self.held_kind, self.clock[:, None] - self.held_time))
        out.setflags(write=False)
        return out
