"""Meters and keys as the tokenizer sees them: table meters, bar lists, key numbers, the normalize shift.

Bars: a piece's meter is a list of *bar starts with their meter*, ``(time, numerator, denominator)``, sorted by time
(time in quarter notes, or the piece's unit). ``meter_changes`` keeps only the entries that say something: the first,
and each one whose meter differs from the one before or that starts off the previous meter's bar grid (a bar of
``numerator * 4 / denominator`` quarter notes from the previous kept entry). This is what a MIDI file's time
signature events hold, and what the tokenizer writes as TIME_SIG events.

A short bar is a bar of its own length: a one-quarter pickup before 4/4 is a bar of 1/4 (``short_bar_meter``), so
beat positions inside it count from its start.

Meters the tokenizer's table cannot hold (numerators 1..16 over ``TS_DENOMINATORS`` = 2, 4, 8, 16; e.g. 18/8,
3/1, 5/32) are written as a table meter of the same bar length, at the table denominator closest to the original
(in octaves, the finer one on a tie): 18/8 → 9/4, 3/1 → 6/2, 12/32 → 6/16. When no table meter has that length
(17/4, 5/32) the closest length the nearest denominator can hold is used (17/4 → 16/4, 5/32 → 3/16), so the bars
after it drift off the file's bars; such files are rare.

Keys: a key is pretty_midi's *key number*, ``tonic pitch class + 12 * minor`` (0 = C major, 21 = A minor).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np

from musicgen.errors import UsageError

TS_DENOMINATORS = (2, 4, 8, 16)  # the tokenizer's TIME_SIG table (see musicgen.tokenizer)
MAX_NUMERATOR = 16
DEFAULT_METER = (4, 4)  # a file with no time signature (the MIDI default)
TONICS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")  # pretty_midi's names
_KEY_FORM = re.compile(r"\s*([a-gA-G])([#b]?)(?:\s+(major|minor))?\s*", re.IGNORECASE)
KEY_FORM = '"TONIC [major|minor]" with TONIC a letter A-G and an optional # or b, e.g. "D minor", "Bb major", "F#"'


def time_signature_value(numerator: int, denominator: int) -> int | None:
    """The TIME_SIG value of ``numerator/denominator``, or None when the table has no such meter."""
    if 1 <= numerator <= 16 and denominator in TS_DENOMINATORS:
        return (numerator - 1) * len(TS_DENOMINATORS) + TS_DENOMINATORS.index(denominator)
    return None


def time_signature_of(value: int) -> tuple[int, int]:
    """``(numerator, denominator)`` of a TIME_SIG value (inverse of ``time_signature_value``)."""
    return value // len(TS_DENOMINATORS) + 1, TS_DENOMINATORS[value % len(TS_DENOMINATORS)]


def _closest_dens(den: int) -> list[int]:
    """Table denominators ordered by distance from ``den`` in octaves, the finer first on a tie."""
    octave = math.log2(den) if den > 0 else 2.0
    return sorted(TS_DENOMINATORS, key=lambda d: (abs(math.log2(d) - octave), -d))


def length_meter(quarters, denominator: int = 4) -> tuple[int, int]:
    """The table meter ``(numerator, denominator)`` of a bar ``quarters`` quarter notes long (> 0), notated over
    ``denominator``: the same length at the table denominator closest to it (see the module doc), else the closest
    length the nearest denominator holds (numerator clipped to 1..16)."""
    length = Fraction(quarters).limit_denominator(1 << 16)
    dens = _closest_dens(int(denominator))
    for d in dens:
        num = length * d / 4
        if num.denominator == 1 and 1 <= num <= MAX_NUMERATOR:
            return int(num), d
    d = dens[0]
    return min(max(math.floor(length * d / 4 + Fraction(1, 2)), 1), MAX_NUMERATOR), d


def table_meter(numerator: int, denominator: int) -> tuple[int, int]:
    """``numerator/denominator`` if the TIME_SIG table holds it, else the table meter of the same bar length
    (``length_meter``); e.g. ``table_meter(18, 8) == (9, 4)``."""
    if 1 <= numerator <= MAX_NUMERATOR and denominator in TS_DENOMINATORS:
        return int(numerator), int(denominator)
    if numerator <= 0 or denominator <= 0:
        return DEFAULT_METER
    return length_meter(Fraction(4 * int(numerator), int(denominator)), denominator)


def short_bar_meter(quarters, numerator: int, denominator: int) -> tuple[int, int]:
    """The meter of a bar ``quarters`` long in a piece notated ``numerator/denominator``: that (table) meter when
    the bar is full, else a bar of its own length (a one-quarter pickup in 4/4 is 1/4, 1.5 quarters in 6/8 is 3/8)."""
    num, den = table_meter(numerator, denominator)
    if abs(float(quarters) - num * 4 / den) < 1e-6:
        return num, den
    return length_meter(quarters, den)


def bar_quarters(numerator: int, denominator: int) -> float:
    """Length of one bar in quarter notes."""
    return numerator * 4 / denominator


def meter_changes(bars, tolerance: float = 1e-6) -> list[tuple[float, int, int]]:
    """The entries of ``bars`` (``(time, numerator, denominator)``, sorted by time; times in quarter notes or grid
    steps, with ``bar_quarters`` in the same unit — pass steps per quarter through ``grid_changes`` instead) that
    say something: the first, then each whose meter differs from the last kept one or whose time is off its bar
    grid. Of several entries at one time the last wins."""
    out: list[tuple[float, int, int]] = []
    for time, num, den in bars:
        if out and abs(time - out[-1][0]) <= tolerance:
            out.pop()
        if out:
            t0, n0, d0 = out[-1]
            bar = bar_quarters(n0, d0)
            r = (time - t0) % bar
            if (n0, d0) == (num, den) and (r <= tolerance or bar - r <= tolerance):
                continue
        out.append((time, int(num), int(den)))
    return out


def grid_changes(steps, nums, dens, steps_per_quarter: int) -> list[tuple[int, int, int]]:
    """``meter_changes`` on the integer grid: ``steps`` sorted bar starts (grid steps), meters already in the table.
    A step is on a bar grid when ``(step - origin) * den`` is a multiple of ``num * 4 * steps_per_quarter``."""
    out: list[tuple[int, int, int]] = []
    for step, num, den in zip(steps, nums, dens):
        if out and step == out[-1][0]:
            out.pop()
        if out:
            s0, n0, d0 = out[-1]
            if (n0, d0) == (num, den) and ((step - s0) * d0) % (n0 * 4 * steps_per_quarter) == 0:
                continue
        out.append((int(step), int(num), int(den)))
    return out


def meter_events(meters, to_steps, steps_per_quarter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The TIME_SIG events of several pieces: int64 arrays ``(piece, step, value)``, shape (m,), by piece and step.

    ``meters``: per piece, ``Piece.meters`` (time in quarter notes, numerator, denominator); ``to_steps`` maps
    quarter notes to grid steps. Each meter becomes its ``table_meter``; a piece with no meter, or whose first is
    after time 0, is 4/4 from step 0; then ``grid_changes`` keeps the entries that say something. The caller drops
    those at or after the piece's last step.
    """
    rows = []
    for i, piece_meters in enumerate(meters):
        steps = to_steps([t for t, _, _ in piece_meters]).tolist() if piece_meters else []
        table = [table_meter(n, d) for _, n, d in piece_meters]
        if not steps or steps[0] > 0:
            steps, table = [0] + steps, [DEFAULT_METER] + table
        order = sorted(range(len(steps)), key=lambda k: steps[k])  # stable: of one step the last given wins
        kept = grid_changes([max(steps[k], 0) for k in order], [table[k][0] for k in order],
                            [table[k][1] for k in order], steps_per_quarter)
        rows += [(i, step, time_signature_value(n, d)) for step, n, d in kept]
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return tuple(np.array(col, np.int64) for col in zip(*rows))


def with_meter_events(events: tuple, meter: tuple, note_seg: np.ndarray, note_end: np.ndarray, n_pieces: int):
    """The tokenizer's event columns ``(seg, time, on, inst, pitch, bin, voice, is_note)`` with the TIME_SIG events
    ``meter`` = ``(piece, step, value)`` (``meter_events``) appended: value in ``pitch``, ``is_note`` False, the
    rest 0. Those at or after their piece's last note end (``note_seg``, ``note_end``: int64 (n,)) are dropped."""
    m_seg, m_step, m_value = meter
    piece_end = np.full(n_pieces, -1, np.int64)
    np.maximum.at(piece_end, note_seg, note_end)
    fits = m_step < piece_end[m_seg]
    zeros = np.zeros(int(fits.sum()), np.int64)
    extra = (m_seg[fits], m_step[fits], zeros.astype(bool), zeros, m_value[fits], zeros, zeros, zeros.astype(bool))
    return tuple(np.concatenate([a, b.astype(a.dtype)]) for a, b in zip(events, extra))


def normalized_bounds(stored_min: int, stored_max: int, key: int | None, min_pitch: int,
                      max_pitch: int) -> tuple[int, int]:
    """``Tokenizer.transpose_bounds`` in ``key="normalize"``: notes stored on C (lowest/highest ``stored_min``/
    ``stored_max``) decode moved to the key, so a shift of the KEY by x is safe when they then stay in
    [min_pitch, max_pitch]; the widest run of safe shifts around 0, ``±(max_pitch - min_pitch)`` when all are
    (or ``key`` is None: nothing moves)."""
    full = max_pitch - min_pitch
    if key is None:
        return -full, full
    back = -normalize_shift((key + np.arange(12)) % 12)  # decoded pitch = stored + back[x % 12]
    safe = (stored_min + back >= min_pitch) & (stored_max + back <= max_pitch)
    if safe.all():
        return -full, full
    if not safe[0]:
        return 0, 0
    hi = next(x for x in range(1, 13) if not safe[x % 12]) - 1
    return -(next(x for x in range(1, 13) if not safe[-x % 12]) - 1), hi


# ---- keys --------------------------------------------------------------------------------------------------------
def key_number(sharps: int, minor: bool) -> int:
    """pretty_midi's key number of a key signature with ``sharps`` (negative: flats) in major or minor."""
    tonic = (7 * int(sharps)) % 12
    return (tonic + 9) % 12 + 12 if minor else tonic


_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def parse_key(name: str) -> int:
    """A key name → its KEY value (tonic pitch class + 12 * minor), strictly.

    Accepted: a letter A-G (either case), an optional ``#`` or ``b``, an optional ``major``/``minor`` (either case;
    major when left out), e.g. ``"D minor"`` → 14, ``"d minor"`` → 14, ``"D"`` → 2, ``"Bb major"`` → 10,
    ``"Cb"`` → 11. Raises ``UsageError`` naming ``--key`` and the accepted form otherwise.
    """
    match = _KEY_FORM.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise UsageError(f"--key: expected {KEY_FORM}, got {name!r}")
    letter, accidental, mode = match.groups()
    tonic = (_LETTERS[letter.upper()] + {"": 0, "#": 1, "b": -1}[accidental.lower()]) % 12
    return tonic + (12 if mode and mode.lower() == "minor" else 0)


def key_name(value: int) -> str:
    """A KEY value (0..23) → ``"<tonic> major|minor"`` with pretty_midi's tonic names
    (``key_name(14) == "D minor"``)."""
    if not (isinstance(value, (int, np.integer)) and 0 <= value < 24):
        raise UsageError(f"key value: expected an integer in [0, 24), got {value!r}")
    return f"{TONICS[int(value) % 12]} {'minor' if value >= 12 else 'major'}"


def normalize_shift(tonic):
    """Semitones (in [-5, 6]) that move ``tonic`` (a pitch class; an int or an int array) to C by the shorter way:
    ``-(((tonic + 6) % 12) - 6)``."""
    return -(((tonic + 6) % 12) - 6)
