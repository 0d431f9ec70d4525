"""Context bundles in ``musicgen live``: the meter, key and voice a played phrase is framed with, and the context a
conversation carries from one exchange to the next. ``musicgen.live`` uses it; numpy only (never TensorFlow).

A bundle trained with ``--meter``, ``--key-mode`` and/or ``--voices`` reads, beside the notes, the events the
tokenizer writes around them (``musicgen.tokenizer``) and, with ``ModelConfig.context``, the metric position and key
after every event (``musicgen.context``). A played phrase has neither bars nor a key, so live supplies them:

- **Meter** (``--meter``, default 4/4): the phrase's first onset is a downbeat at ``--bpm``. A fresh primer is
  ``BOS, (KEY,) TIME_SIG(meter), notes…``, what the tokenizer writes for a piece of that meter that starts on its
  first onset; the answer goes on in that meter (the model may change it at a bar start, as in training).
- **Key** (``--key-mode token|normalize`` bundles): the phrase's key is ``musicgen.keys``'s analysis of its notes
  (the duration-weighted pitch-class profile, as at ingest), or ``--key``. The KEY event follows BOS; in
  ``normalize`` the phrase is stored moved to C by ``meter.normalize_shift`` (as ingest moves a piece) and the answer
  is decoded moved back by the same KEY, so it sounds in the player's key.
- **Voices** (``--voices`` bundles): the whole phrase is voice 0 (the first part of the corpus, e.g. the soprano of
  a chorale export), so a melody is heard as the top part; the answer may use every voice. A player's channel says
  nothing reliable about parts (most keyboards send on one), hence no channel → voice mapping.

Carrying a conversation (``--carry``): the next phrase continues the same token history without a new BOS, so its
context must be the one the whole history reached. ``Conversation`` keeps a one-stream ``ContextTracker`` fed with
every committed token (phrase and answer), not the token history itself: the tracker's state is four integers, it
costs one update per token, and ``ContextTracker`` equals ``context_features`` row by row, so the features the model
sees on exchange k are by construction those of the concatenated history (``tests/test_live_context.py`` checks
it). The new phrase re-opens its bar: after the rest since the answer, a TIME_SIG(meter) stands at its first onset
unless a bar of that meter starts there anyway (the tokenizer writes one only where a bar starts off the running
meter's grid). The key stays the conversation's first (one KEY per piece, as the tokenizer writes it; re-analysing
each phrase would need a second KEY, which the model never saw), unless ``--no-carry`` starts every answer afresh.
"""

from __future__ import annotations

import numpy as np

from musicgen.context import ContextTracker, context_names
from musicgen.errors import UsageError
from musicgen.meter import TS_DENOMINATORS, time_signature_value

DEFAULT_METER = "4/4"


def parse_meter(text: str) -> tuple[int, int]:
    """``"3/4"`` → ``(3, 4)``: a meter the tokenizer's TIME_SIG table holds (numerator 1..16 over 2, 4, 8 or 16);
    else ``UsageError`` naming ``--meter``."""
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        num, den = int(parts[0]), int(parts[1])
        if time_signature_value(num, den) is not None:
            return num, den
    raise UsageError(f"--meter: expected NUM/DEN with NUM in 1..16 and DEN in {', '.join(map(str, TS_DENOMINATORS))}"
                     f" (e.g. 3/4, 6/8), got {text!r}")


def parse_channels(text: str) -> tuple[int, ...]:
    """``"1,2,3,4"`` (MIDI channels 1-16, one per voice) → 0-based ``(0, 1, 2, 3)``; ``""`` → ``()``; else
    ``UsageError`` naming ``--voice-channels``."""
    if text is None or text == "":
        return ()
    parts = text.split(",") if isinstance(text, str) else [None]
    if all(p is not None and p.strip().isdigit() and 1 <= int(p) <= 16 for p in parts):
        return tuple(int(p) - 1 for p in parts)
    raise UsageError(f"--voice-channels: expected MIDI channels in [1, 16] separated by commas (e.g. 1,2,3,4), "
                     f"got {text!r}")


def phrase_key(notes) -> int:
    """The analysed key number (tonic + 12 * minor) of played notes (``.pitch``, ``.start``, ``.end``, ``.is_drum``;
    seconds): ``keys.analyze_keys`` of their pitch-class histogram weighted by duration, drums left out (the
    analysis ingest runs on a piece without a key signature). No pitched note: 0 (C major)."""
    from musicgen.keys import analyze_keys, pitch_class_histograms

    pitched = [n for n in notes if not n.is_drum]
    hist = pitch_class_histograms([n.pitch for n in pitched], [max(n.end - n.start, 0.0) for n in pitched],
                                  np.zeros(len(pitched), np.int64), 1)
    return int(analyze_keys(hist)[0])


def open_bar(body: np.ndarray, tokenizer, meter: tuple[int, int], history: ContextTracker | None) -> np.ndarray:
    """``body`` (int64 (T,), a phrase's events without TIME_SIG, opening with the rest before its first onset) with
    TIME_SIG(``meter``) inserted at the first onset, right after the opening TIME_SHIFTs (where the tokenizer puts a
    TIME_SIG: before the step's note events). ``history``: the conversation's tracker; when, after the rest, a bar of
    ``meter`` starts anyway, no TIME_SIG is inserted (the tokenizer would write none). None: always inserted."""
    shifts = tokenizer.kind_mask(body, "TIME_SHIFT")
    lead = int(np.argmin(shifts)) if not shifts.all() else body.size
    if history is not None:
        probe = ContextTracker(tokenizer, 1).start_from(history)
        for token in body[:lead]:
            probe.update(token[None])
        bar = probe.features()[0, context_names(tokenizer.config).index("bar_start")]
        if (int(probe.numerator[0]), int(probe.denominator[0])) == tuple(meter) and bar == 2:
            return body
    tsig = tokenizer.token("TIME_SIG", time_signature_value(*meter))
    return np.concatenate([body[:lead], [tsig], body[lead:]]).astype(np.int64)


class Conversation:
    """What a context bundle's conversation carries between exchanges: the context its token history reached and
    its key.

    Args:
        tokenizer: the bundle's ``Tokenizer``.
        key: the KEY value every phrase is framed with (``--key``); None: analysed (the first phrase's for a carried
            conversation, each phrase's own without carry).

    ``history`` is a one-stream ``ContextTracker`` of every committed token (None for a vocabulary without TIME_SIG
    or KEY); ``key`` the conversation's KEY value once an answer was committed (None before).
    """

    def __init__(self, tokenizer, key: int | None = None):
        self.tokenizer, self.fixed_key, self.key = tokenizer, key, None
        self.history = ContextTracker(tokenizer, 1) if context_names(tokenizer.config) else None

    def key_for(self, notes, continuing: bool) -> int | None:
        """The KEY value to frame ``notes`` with: None without KEY events; else ``--key``, or the conversation's key
        when ``continuing`` it, or the notes' own (``phrase_key``)."""
        if not self.tokenizer.config.key:
            return None
        if self.fixed_key is not None:
            return self.fixed_key
        if continuing and self.key is not None:
            return self.key
        return phrase_key(notes)

    def commit(self, tokens: np.ndarray, key: int | None) -> np.ndarray | None:
        """Add ``tokens`` (int (T,): a primer and its answer) to the history; returns the context after each as the
        tail of the whole history, int32 (T, F) (None without a tracker). ``key``: the KEY value they were framed
        with, kept as the conversation's."""
        self.key = key
        return None if self.history is None else self.history.run(tokens)


def describe(tokenizer_config, meter: str, key: str | None, carry: bool, style: int | None = None) -> str:
    """One line on how ``musicgen live`` frames phrases for a bundle of ``tokenizer_config`` ("" for a plain one),
    e.g. ``"each phrase starts a bar of 4/4; key analysed from the first phrase (moved to C for the model); your
    phrase is voice 0 of 4"``; ``style``: the STYLE index of a ``--styles`` bundle's phrases."""
    parts = [f"style {tokenizer_config.styles[style]}"] if tokenizer_config.styles and style is not None else []
    parts += [f"each phrase starts a bar of {meter}"] if tokenizer_config.meter else []
    if tokenizer_config.key:
        source = key or f"analysed from {'the first' if carry else 'each'} phrase"
        parts.append(f"key {source}" + (" (moved to C for the model)" if tokenizer_config.key == "normalize" else ""))
    if tokenizer_config.voices:
        parts.append(f"your phrase is voice 0 of {tokenizer_config.voices}")
    return "; ".join(parts)
