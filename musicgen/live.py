"""Live call and response over MIDI, the musical side: settings, the phrase a player plays, and the model's answer.

``PhraseRecorder`` turns timed MIDI messages into notes (seconds) and says when the phrase has ended: no key (or
pedal-sustained note) sounding for ``wait`` beats, or a sustain-pedal press (``pedal``), or the ``trigger_key``.
``Responder`` encodes the phrase with the bundle's tokenizer (beats at ``bpm``), samples ``length`` events with
``sampler.sample_tokens`` (the phrase as primer, from the state the previous exchange left: ``carry``) and decodes
them into a schedule of note messages, in seconds after the phrase's last grid step. Bundles trained with
``--meter``/``--key-mode``/``--voices`` get the phrase framed with a meter, a key and a voice, and their context
carried across exchanges (``musicgen.live_context``). ``musicgen.live_session`` runs the loop, ``musicgen.live_ports``
opens the MIDI ports. Imports numpy, mido (a pretty_midi dependency) and the numpy sampler: never TensorFlow.

Example::

    responder = Responder(load_bundle("trained/default"), LiveSettings(bpm=100, length=64))
    answer = responder.respond([PlayedNote(60, 0.0, 0.5, 80), PlayedNote(64, 0.5, 1.0, 80)])
    answer.schedule[0]                      # (0.0, Message('note_on', channel=0, note=..., ...))
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import mido
import numpy as np

from musicgen.errors import UsageError
from musicgen.live_context import DEFAULT_METER, Conversation, open_bar, parse_meter, phrase_key
from musicgen.styles import draw_for_styles
from musicgen.voices import METRIC as VOICES_METRIC, draw_voice_caps

GAP_CAP_BEATS = 4.0  # with carry: the rest fed between an answer and the next phrase is at most this long
MAX_LENGTH = 100_000
DRUM_CHANNEL = 9


@dataclass(frozen=True)
class LiveSettings:
    """What ``musicgen live`` was asked for; validated on construction (``UsageError`` naming the flag).

    Args:
        bpm: quarter notes per minute: played seconds become beats, answer beats become seconds.
        wait: beats of silence (no key or sustained note sounding) that end a phrase; 0: only pedal/key end one.
        pedal: a sustain-pedal press (CC64 >= 64) ends the phrase (the pedal then no longer sustains).
        trigger_key: MIDI pitch whose key ends the phrase (not recorded as a note); None: no trigger key.
        length: events per answer (an upper bound with ``seconds``).
        seconds: stop the answer after this much music (None: ``length`` events).
        temperature, top_k, top_p: see ``sampler.filter_logits``.
        seed: answer k draws from ``SeedSequence([seed, k])``: the same phrases give the same answers.
        carry: start each answer from the state the previous phrase and answer left (False: the bundle's start).
        channel: MIDI channel 0-15 of the answer (drums on 9).
        max_note_length: beats a sampled note may sound before its end is forced (0: no limit).
        meter: ``"NUM/DEN"``: bundles with TIME_SIG events hear each phrase's first onset as a downbeat of it.
        key: a key name (``"D minor"``) that key-mode bundles frame every phrase with (None: analysed).
        style: a style name that bundles trained with ``--styles`` frame every phrase with (None: the style with the
            most training pieces).
        voice_channels: 0-based MIDI channel of each answer voice (voices past the end use the last); (): all on
            ``channel``.
    """

    bpm: float = 120.0
    wait: float = 2.0
    pedal: bool = False
    trigger_key: int | None = None
    length: int = 64
    seconds: float | None = None
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    carry: bool = True
    channel: int = 0
    max_note_length: float = 8.0
    meter: str = DEFAULT_METER
    key: str | None = None
    voice_channels: tuple[int, ...] = ()
    style: str | None = None

    def __post_init__(self):
        def check(ok: bool, flag: str, expected: str, value) -> None:
            if not ok:
                raise UsageError(f"{flag}: expected {expected}, got {value!r}")

        finite = lambda x: isinstance(x, (int, float)) and math.isfinite(x)  # noqa: E731
        check(finite(self.bpm) and 0 < self.bpm <= 1000, "--bpm", "quarter notes per minute in (0, 1000]", self.bpm)
        check(finite(self.wait) and 0 <= self.wait <= 64, "--wait", "beats in [0, 64]", self.wait)
        check(self.wait > 0 or self.pedal or self.trigger_key is not None, "--wait",
              "beats > 0 unless --pedal or --trigger-key ends a phrase", self.wait)
        check(self.trigger_key is None or (isinstance(self.trigger_key, int) and 0 <= self.trigger_key <= 127),
              "--trigger-key", "a MIDI pitch in [0, 127]", self.trigger_key)
        check(isinstance(self.length, int) and 1 <= self.length <= MAX_LENGTH, "--length",
              f"events in [1, {MAX_LENGTH}]", self.length)
        check(self.seconds is None or (finite(self.seconds) and 0 < self.seconds <= 3600), "--seconds",
              "a number of seconds in (0, 3600]", self.seconds)
        check(finite(self.temperature) and self.temperature > 0, "--temperature", "a number > 0", self.temperature)
        check(isinstance(self.top_k, int) and self.top_k >= 0, "--top-k", "an integer >= 0", self.top_k)
        check(finite(self.top_p) and 0 < self.top_p <= 1, "--top-p", "a number in (0, 1]", self.top_p)
        check(isinstance(self.seed, int) and self.seed >= 0, "--seed", "an integer >= 0", self.seed)
        check(isinstance(self.channel, int) and 0 <= self.channel <= 15, "--channel", "a channel in [1, 16]",
              self.channel + 1 if isinstance(self.channel, int) else self.channel)
        check(finite(self.max_note_length) and self.max_note_length >= 0, "--max-note-length", "beats >= 0",
              self.max_note_length)
        parse_meter(self.meter)
        if self.key is not None:
            from musicgen.meter import parse_key

            parse_key(self.key)
        vc = self.voice_channels
        check(isinstance(vc, tuple) and all(isinstance(c, int) and 0 <= c <= 15 for c in vc), "--voice-channels",
              "MIDI channels in [1, 16]", tuple(c + 1 if isinstance(c, int) else c for c in vc)
              if isinstance(vc, tuple) else vc)

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.bpm


class PlayedNote(NamedTuple):
    """A note the player played: ``start``/``end`` in seconds on the session clock, ``program`` from the channel's
    last program change, ``is_drum`` for channel 10.

    Why not ``musicgen.piece.Note``, which has the same first six fields: the meaning differs. A played note's times
    are seconds on the running session clock (not quarter notes or seconds from a piece's start; ``phrase_primer``
    rebases them to the first onset and converts them at ``--bpm``); it may have ``end == start`` (released at the
    instant it was pressed: ``PhraseRecorder`` keeps it, the tokenizer's grid gives it one step), which ``Note``
    refuses; and it has no voice (the player is one part: voice 0). It is recorded in the MIDI input loop, so it is
    a plain tuple that checks nothing.
    """

    pitch: int
    start: float
    end: float
    velocity: int
    program: int = 0
    is_drum: bool = False


class PhraseRecorder:
    """The notes of the phrase being played, from timed MIDI messages (any channel).

    ``feed(t, msg)`` records a message (``t`` in seconds) and returns True when it ends the phrase (pedal or trigger
    key); ``deadline()`` is when the silence ends it; ``take(t)`` returns the phrase (held notes end at ``t``) and
    starts a new one. A sustain pedal (unless it is the trigger) holds released notes until it is lifted.
    ``version`` counts the messages that changed the phrase.
    """

    def __init__(self, settings: LiveSettings):
        self.settings, self.programs, self.pedal_down, self.version = settings, [0] * 16, False, 0
        self.notes: list[PlayedNote] = []
        self.held: dict[tuple[int, int], tuple[float, int]] = {}  # (channel, pitch) -> (start, velocity)
        self.sustained: set[tuple[int, int]] = set()
        self.last: float | None = None

    def feed(self, t: float, msg) -> bool:
        s, kind = self.settings, msg.type
        if kind == "note_on" and msg.velocity > 0:
            if msg.note == s.trigger_key:
                return True
            key = (msg.channel, msg.note)
            if key in self.held:  # a repeated key ends its previous note
                self._end(key, t)
            self.held[key] = (t, msg.velocity)
        elif kind in ("note_on", "note_off"):
            key = (msg.channel, msg.note)
            if msg.note == s.trigger_key or key not in self.held:
                return False
            if self.pedal_down and not s.pedal:
                self.sustained.add(key)
            else:
                self._end(key, t)
        elif kind == "control_change" and msg.control == 64:
            down, was = msg.value >= 64, self.pedal_down
            self.pedal_down = down
            if s.pedal:
                return down and not was
            if not down:
                for key in sorted(self.sustained):
                    self._end(key, t)
        elif kind == "program_change":
            self.programs[msg.channel] = msg.program
            return False
        else:
            return False
        self.last, self.version = t, self.version + 1
        return False

    def _end(self, key: tuple[int, int], t: float) -> None:
        start, velocity = self.held.pop(key)
        self.sustained.discard(key)
        channel, pitch = key
        self.notes.append(PlayedNote(pitch, start, max(t, start), velocity, self.programs[channel],
                                     channel == DRUM_CHANNEL))

    @property
    def has_notes(self) -> bool:
        return bool(self.notes or self.held)

    def deadline(self) -> float | None:
        """Seconds at which the silence ends the phrase; None while a note sounds, before any note, or with wait 0."""
        if self.held or not self.notes or self.settings.wait <= 0:
            return None
        return self.last + self.settings.wait * self.settings.beat_seconds

    def take(self, t: float) -> list[PlayedNote]:
        """The phrase, sorted by (start, pitch), notes still held ended at ``t``; the recorder starts a new one."""
        for key in sorted(self.held):
            self._end(key, t)
        notes, self.notes, self.last = sorted(self.notes, key=lambda n: (n.start, n.pitch)), [], None
        self.version += 1
        return notes


def phrase_primer(notes: list[PlayedNote], tokenizer, bpm: float, since: float | None = None, *,
                  key: int | None = None, meter: tuple[int, int] = (4, 4), history=None,
                  style: int | None = None) -> np.ndarray:
    """A phrase → primer tokens: int64 (T,), ``[BOS, …]`` without EOS; empty when no note is in the tokenizer's range.

    Times are counted from the first onset (beats at ``bpm`` in beat mode, seconds in seconds mode). ``since`` (the
    previous answer's end, seconds): the tokens continue a conversation instead: no BOS, and they open with the rest
    since then (at most ``GAP_CAP_BEATS``; none when the player came in before the answer ended).

    Context vocabularies (``musicgen.live_context``): every note is voice 0; ``key`` (KEY value; None: the phrase's
    analysed key) is the KEY event after BOS, and in ``"normalize"`` the notes are stored moved to C; with TIME_SIG
    events the first onset is a downbeat of ``meter`` (``(numerator, denominator)``): TIME_SIG(meter) at its step,
    unless ``history`` (the conversation's ``ContextTracker``, used with ``since``) has a bar of it start there anyway.
    With STYLE events (``--styles`` bundles) a fresh primer opens ``BOS STYLE(style)`` (style index; None: 0).
    """
    if not notes:
        return np.zeros(0, np.int64)
    first = min(n.start for n in notes)
    t0 = first if since is None else min(first, max(since, first - GAP_CAP_BEATS * 60.0 / bpm))
    cfg = tokenizer.config
    unit = bpm / 60.0 if cfg.time_mode == "beat" else 1.0
    if cfg.key and key is None:
        key = phrase_key(notes)
    cols = np.array([(n.pitch, n.start, n.end, n.velocity, 128 if n.is_drum else n.program) for n in notes]).T
    tokens = tokenizer.encode_arrays(cols[0], (cols[1] - t0) * unit, (cols[2] - t0) * unit, cols[3], cols[4],
                                     key=key, meters=[(0.0, *meter)]).astype(np.int64)
    framing = (tokens == tokenizer.eos_id) | (tokens == tokenizer.bos_id) | tokenizer.kind_mask(tokens, "KEY")
    tokens = tokens[~(framing | tokenizer.kind_mask(tokens, "TIME_SIG"))]
    if not tokenizer.kind_mask(tokens, "NOTE_ON").any():
        return np.zeros(0, np.int64)
    if cfg.meter:
        tokens = open_bar(tokens, tokenizer, meter, history if since is not None else None)
    if since is not None:
        return tokens
    head = ([tokenizer.bos_id] + ([tokenizer.token("STYLE", int(style or 0))] if cfg.styles else [])
            + ([tokenizer.token("KEY", int(key))] if cfg.key else []))
    return np.concatenate([head, tokens]).astype(np.int64)


def live_style(bundle, name: str | None) -> int | None:
    """The STYLE index every phrase of a ``--styles`` bundle is framed with: ``name`` (``--style``; an unknown one is a
    ``UsageError`` listing the bundle's), else ``styles.default_style`` (its recorded default, else the style with the
    most training pieces); None for a bundle without styles (``--style`` is then an error)."""
    from musicgen import styles as st

    names = bundle.tokenizer.config.styles
    if not names:
        if name is not None:
            raise UsageError(f"--style: the bundle {str(bundle.path)!r} was trained without --styles; "
                             f"leave --style out")
        return None
    if name is not None:
        return st.parse_style(name, names)
    return st.default_style(bundle.metrics, names)


@dataclass
class Answer:
    """A continuation ready to play: ``primer`` and ``tokens`` (int64 (T,), the sampled events, closed), the
    ``schedule`` of (seconds after the origin, message) sorted by time, its ``duration`` (seconds), the recorder
    ``version`` it answers, ``compute_seconds`` (encode + sample + decode) and ``key`` (the KEY value the phrase was
    framed with; None without KEY events)."""

    primer: np.ndarray
    tokens: np.ndarray
    schedule: list[tuple[float, mido.Message]]
    duration: float
    version: int = 0
    compute_seconds: float = 0.0
    ready_at: float = 0.0  # session clock seconds, set by the session
    key: int | None = None


class Responder:
    """The model side: a bundle's numpy ``StepModel`` and the state carried from one exchange to the next.

    Args:
        bundle: a ``bundle.Bundle`` (weights, model config, tokenizer, start state).
        settings: ``LiveSettings`` (bpm, length/seconds, sampling knobs, carry, channels, meter, key).

    Context bundles (meter, key, voices): ``musicgen.live_context``; ``conversation`` holds the context and key the
    carried conversation has reached.
    """

    def __init__(self, bundle, settings: LiveSettings):
        from musicgen.meter import parse_key
        from musicgen.sampler import StepModel

        self.settings, self.tokenizer, self.model_config = settings, bundle.tokenizer, bundle.model_config
        if settings.key is not None and not self.tokenizer.config.key:
            raise UsageError(f"--key: the bundle {str(bundle.path)!r} has no KEY events (trained without --key-mode), "
                             f"so it cannot be told a key; leave --key out")
        self.model = StepModel(bundle.weights, bundle.model_config)
        self.start_state = self.state = bundle.start_state
        self.exchanges, self.since = 0, None
        self.meter = parse_meter(settings.meter)
        self.style = live_style(bundle, settings.style)
        # one voice cap for the session, drawn like musicgen sample's (the phrase's own voices are never forbidden)
        caps = draw_for_styles(bundle.metrics, VOICES_METRIC, draw_voice_caps, settings.seed, 1, self.style,
                               self.tokenizer.config.styles) if "VOICE" in self.tokenizer.ranges else None
        self.voice_cap = None if caps is None else int(caps[0])
        self.conversation = Conversation(self.tokenizer, None if settings.key is None else parse_key(settings.key))
        cfg = self.tokenizer.config
        self.step_seconds = (cfg.step_seconds if cfg.time_mode == "seconds"
                             else settings.beat_seconds / cfg.steps_per_quarter)
        s = settings
        self.limit_steps = None if s.seconds is None else max(1, math.ceil(s.seconds / self.step_seconds - 1e-9))
        self.max_note_steps = (max(1, round(s.max_note_length * s.beat_seconds / self.step_seconds))
                               if s.max_note_length else 0)
        self.shift_first, self.shift_count = self.tokenizer.ranges["TIME_SHIFT"]

    def respond(self, notes: list[PlayedNote], version: int = 0) -> Answer | None:
        """Encode ``notes``, sample the continuation, decode it into a schedule; None when no note is in range."""
        from musicgen.sampler import sample_tokens

        began = time.perf_counter()
        s, tok = self.settings, self.tokenizer
        since = self.since if s.carry else None
        history = self.conversation.history if since is not None else None
        key = self.conversation.key_for(notes, continuing=since is not None)
        primer = phrase_primer(notes, tok, s.bpm, since, key=key, meter=self.meter, history=history, style=self.style)
        if primer.size == 0:
            return None
        seed = np.random.SeedSequence([s.seed, self.exchanges])
        events = sample_tokens(self.model, self.model_config, tok, primer, s.length, seed, temperature=s.temperature,
                               top_k=s.top_k, top_p=s.top_p, limit_steps=self.limit_steps,
                               max_note_steps=self.max_note_steps, start_state=self.state, context=history,
                               max_voices=self.voice_cap)[0]
        events = events[events != tok.pad_id].astype(np.int64)
        schedule, duration = self.schedule(primer, events, key)
        return Answer(primer, events, schedule, duration, version, time.perf_counter() - began, key=key)

    def steps(self, tokens: np.ndarray) -> int:
        """Grid steps the TIME_SHIFTs of ``tokens`` add up to."""
        shifts = tokens[(tokens >= self.shift_first) & (tokens < self.shift_first + self.shift_count)]
        return int((shifts - self.shift_first + 1).sum())

    def schedule(self, primer: np.ndarray, events: np.ndarray, key: int | None = None,
                 ) -> tuple[list[tuple[float, mido.Message]], float]:
        """The answer's notes as (seconds after the phrase's end, note_on/note_off) pairs, note-offs first at equal
        times, and the answer's duration in seconds. Decoded after the primer, so its velocity/program carry on.

        ``key``: the KEY value the phrase was framed with: in ``"normalize"`` the notes are moved back from C to it
        (the decoder's rule, which also drops a note moved out of the tokenizer's range) when the primer has no KEY
        of its own (a continued conversation). Voice v plays on ``voice_channels[min(v, len - 1)]`` (default:
        ``channel``), drums on 10; of two notes of one channel and pitch that overlap (two voices or programs in
        unison) the earlier ends where the later starts, which then lasts to the later of their ends."""
        start_step = self.steps(primer)
        head = [self.tokenizer.token("KEY", int(key))] if key is not None and self.tokenizer.config.key else []
        a = self.tokenizer.decode_arrays(np.concatenate([head, primer, events]).astype(np.int64))
        channels = self.settings.voice_channels or (self.settings.channel,)
        notes = sorted((DRUM_CHANNEL if instrument == 128 else channels[min(voice, len(channels) - 1)], pitch,
                        start, end, velocity)
                       for pitch, start, end, velocity, instrument, voice in zip(
                           *(a[k].tolist() for k in ("pitch", "start", "end", "velocity", "instrument", "voice")))
                       if start >= start_step)
        out = []
        for i, (ch, pitch, start, end, velocity) in enumerate(notes):
            later = notes[i + 1] if i + 1 < len(notes) else None
            if later is not None and later[:2] == (ch, pitch) and later[2] < end:  # unison: one sounding note
                notes[i + 1] = (*later[:3], max(later[3], end), later[4])
                end = later[2]
                if end <= start:
                    continue
            out.append(((end - start_step) * self.step_seconds, 0, mido.Message("note_off", channel=ch, note=pitch)))
            out.append(((start - start_step) * self.step_seconds, 1,
                        mido.Message("note_on", channel=ch, note=pitch, velocity=max(1, min(127, velocity)))))
        out.sort(key=lambda e: (e[0], e[1], e[2].note, e[2].channel))
        return [(t, msg) for t, _, msg in out], self.steps(events) * self.step_seconds

    def commit(self, answer: Answer, ended_at: float) -> None:
        """After playing ``answer`` (ended at ``ended_at`` seconds): carry the state past the phrase and the answer."""
        self.exchanges += 1
        if not self.settings.carry:
            return
        tokens = np.concatenate([answer.primer, answer.tokens])
        context = self.conversation.commit(tokens, answer.key)
        _, state = self.model.run(tokens[None], self.model.init_state(1, self.state),
                                  context[None] if self.model.context else None)
        self.state, self.since = [tuple(a[0] for a in layer) for layer in state], ended_at
