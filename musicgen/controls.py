"""Sampling controls that steer rather than forbid: a note-density controller and a key's pitch-class bias.

``Steering`` adds biases (in nats, to the logits after ``rules.EventRules`` masked them and before temperature and
top-k/top-p) for B streams at once; ``sampler.sample_tokens`` calls ``apply`` before each draw and ``observe`` after.
Instrument choice is a mask, not a bias: ``EventRules(programs=...)``. Pure numpy, no I/O.

Density: each stream's note deficit is ``target × (seconds + DENSITY_LEAD) - notes`` (NOTE_ONs and seconds since the
primer, seconds = grid steps × ``step_seconds``; ``target`` the geometric middle of the range). A proportional-integral
controller on it sets a bias ``b``, added as ``+b/2`` to every NOTE_ON and ``-b/2`` to every TIME_SHIFT: too few notes
so far raise it, too many lower it. Holding the deficit near 0 holds the sample's notes per second, counted from its
start, near the target as it goes.

Key: ``key_strength`` nats are taken from the NOTE_ON of every pitch class outside the key's scale (major, or natural
minor with the raised 7th, the leading tone), for pitched programs (drums keep theirs).

Example::

    steer = Steering(tokenizer, batch=4, density=(2.0, 4.0), step_seconds=60 / (120 * 12))
    sample_tokens(model, cfg, tokenizer, [bos], 512, 0, num_samples=4, steering=steer)
"""

from __future__ import annotations

import math

import numpy as np

from musicgen.errors import UsageError
from musicgen.piece import DRUMS

DEFAULT_KEY_STRENGTH = 2.0  # nats against each out-of-scale NOTE_ON, when --key-strength is not given
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10, 11)}  # minor: natural + leading tone
DENSITY_LEAD = 0.25  # seconds of notes allowed ahead of the clock (so the opening chord is not held back)
DENSITY_GAIN_P = 0.5  # nats of bias per note of deficit
DENSITY_GAIN_I = 0.01  # nats added to the integral per event, per note of deficit
DENSITY_MAX_BIAS = 12.0  # nats: the controller's bias is clipped to ±this


def scale_pitch_classes(key: int) -> np.ndarray:
    """KEY value (tonic + 12 * minor, see ``meter.parse_key``) → bool (12,): pitch classes of its scale."""
    tonic, mode = key % 12, "minor" if key >= 12 else "major"
    out = np.zeros(12, bool)
    out[[(tonic + step) % 12 for step in SCALES[mode]]] = True
    return out


def in_scale_share(pitches, key: int) -> float:
    """Share of ``pitches`` (MIDI numbers) whose pitch class is in ``key``'s scale (``nan`` for none)."""
    pitches = np.asarray(list(pitches), np.int64)
    return float(scale_pitch_classes(key)[pitches % 12].mean()) if pitches.size else math.nan


def parse_programs(text: str, flag: str, example: str) -> tuple[int, ...]:
    """``"73,68,71"`` → ``(73, 68, 71)`` (order kept); ``UsageError`` naming ``flag`` (with ``example``) otherwise."""
    try:
        programs = tuple(int(part) for part in text.split(","))
    except (AttributeError, ValueError):
        programs = ()
    if not programs or not all(0 <= p <= 127 for p in programs):
        raise UsageError(f"{flag}: expected General MIDI programs 0-127 separated by commas (e.g. {example}), "
                         f"got {text!r}")
    return programs


def parse_instruments(text: str) -> tuple[int, ...]:
    """``"0,40,73"`` → ``(0, 40, 73)`` (sorted, unique); ``UsageError`` naming ``--instruments`` otherwise."""
    return tuple(sorted(set(parse_programs(text, "--instruments", "0,40,73"))))


def parse_density(text: str) -> tuple[float, float]:
    """``"2..4"`` → ``(2.0, 4.0)`` notes per second; ``UsageError`` naming ``--density`` otherwise."""
    parts = text.split("..") if isinstance(text, str) else []
    try:
        low, high = (float(parts[0]), float(parts[1])) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        raise UsageError(f"--density: expected LOW..HIGH notes per second with 0 < LOW <= HIGH (e.g. 2..4), "
                         f"got {text!r}")
    return low, high


class Steering:
    """Density controller and key bias for B streams.

    Args:
        tokenizer: the bundle's ``Tokenizer`` (NOTE_ON and TIME_SHIFT ranges).
        batch: number of streams B.
        density: ``(low, high)`` notes per second, or None (no density steering).
        step_seconds: seconds per grid step at the written tempo (needed with ``density``).
        key: KEY value 0..23 whose scale is favoured, or None (no key bias).
        key_strength: nats taken from every out-of-scale NOTE_ON.
    """

    def __init__(self, tokenizer, batch: int, *, density: tuple[float, float] | None = None,
                 step_seconds: float | None = None, key: int | None = None,
                 key_strength: float = DEFAULT_KEY_STRENGTH):
        self.on0, n_pitch = tokenizer.ranges["NOTE_ON"]
        self.on1 = self.on0 + n_pitch
        self.shift0, n_shift = tokenizer.ranges["TIME_SHIFT"]
        self.shift1 = self.shift0 + n_shift
        self.key_add = None
        if key is not None:
            pitches = np.arange(n_pitch) + tokenizer.describe(self.on0)[1]
            self.key_add = np.where(scale_pitch_classes(key)[pitches % 12], 0.0, -key_strength).astype(np.float32)
        self.density = density
        if density is not None and not (step_seconds and step_seconds > 0):
            raise ValueError(f"step_seconds: expected seconds per grid step > 0 with a density, got {step_seconds!r}")
        self.step_seconds = step_seconds
        self.target = math.sqrt(density[0] * density[1]) if density is not None else None
        self.notes = np.zeros(batch, np.int64)
        self.integral = np.zeros(batch, np.float64)

    def deficit(self, elapsed_steps: np.ndarray) -> np.ndarray:
        """Notes each stream is short of the target rate, float (B,), given its grid steps since the primer."""
        return self.target * (elapsed_steps * self.step_seconds + DENSITY_LEAD) - self.notes

    def apply(self, logits: np.ndarray, rules) -> np.ndarray:
        """Add the biases to ``logits`` (B, V) in place (``rules``: the ``EventRules`` of the same streams, for the
        elapsed steps and current programs); returns ``logits``."""
        if self.key_add is not None:
            pitched = rules.program != DRUMS
            logits[pitched, self.on0:self.on1] += self.key_add
        if self.density is not None:
            error = self.deficit(rules.elapsed)
            self.integral = np.clip(self.integral + DENSITY_GAIN_I * error, -DENSITY_MAX_BIAS, DENSITY_MAX_BIAS)
            bias = np.clip(self.integral + DENSITY_GAIN_P * error, -DENSITY_MAX_BIAS, DENSITY_MAX_BIAS)
            half = (0.5 * bias).astype(logits.dtype)[:, None]
            logits[:, self.on0:self.on1] += half
            logits[:, self.shift0:self.shift1] -= half
        return logits

    def observe(self, tokens: np.ndarray) -> None:
        """Count the NOTE_ONs among the events just drawn, shape (B,)."""
        self.notes += (tokens >= self.on0) & (tokens < self.on1)
