"""The live loop: ``LiveSession`` listens on an input, has ``live.Responder`` answer each phrase and plays the
answer on an output in time; ``Exchange`` records what happened; ``RealClock`` / ``FastClock`` keep time.

Ports are duck-typed: an input gives ``pending() -> [(seconds, mido.Message)]`` (messages stamped with their arrival
time on the session's clock), an output has ``send(msg)``; ``musicgen.live_ports`` wraps mido/rtmidi ports and
scripted ones. A clock has ``now()`` and ``sleep_until(t)`` (seconds). Never imports TensorFlow.

Timing: a pause is foreseeable, so once every note has ended the answer is computed at once (the wait is free time)
and kept if nothing is played before the pause is over; a pedal or key trigger computes on the spot. The answer's
notes are sent at ``origin + offset``, where ``origin`` is the end of the pause (or the trigger), or the moment the
answer was ready if that is later: relative timing is never squeezed.

Example::

    session = LiveSession(Responder(load_bundle("trained/default"), LiveSettings(bpm=100)), inport, outport)
    exchanges = session.run(max_exchanges=1)
    exchanges[0].latency                    # seconds from the pause's end to the first answered note
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field

import mido

from musicgen.live import DRUM_CHANNEL, Answer, PhraseRecorder, PlayedNote, Responder

POLL_SECONDS = 0.001  # input polling period while listening
SPIN_SECONDS = 0.0005  # the last part of a wait is spun, not slept (sleep overshoots by ~0.1 ms)


# ----------------------------------------------------------------------------------------------------------- clocks
class RealClock:
    """Wall time (``time.perf_counter`` seconds); ``sleep_until`` sleeps, then spins the last half millisecond."""

    now = staticmethod(time.perf_counter)

    def sleep_until(self, t: float) -> None:
        while (left := t - time.perf_counter()) > 0:
            if left > SPIN_SECONDS:
                time.sleep(left - SPIN_SECONDS)


class FastClock:
    """Simulated time for measurements: computing takes real time, waiting takes none (``sleep_until`` jumps)."""

    def __init__(self):
        self.offset = 0.0

    def now(self) -> float:
        return time.perf_counter() + self.offset

    def sleep_until(self, t: float) -> None:
        self.offset += max(0.0, t - self.now())


@dataclass
class Exchange:
    """One call and response. Times in seconds on the session clock: ``ended_at`` (the pause's end, the pedal or
    key), ``ready_at`` (the answer computed), ``origin`` (the phrase's end step is played here), ``sent`` (time,
    message) as sent; ``speculative``: computed during the wait."""

    phrase: list[PlayedNote]
    answer: Answer
    ended_at: float
    ready_at: float
    origin: float
    speculative: bool
    sent: list[tuple[float, mido.Message]] = field(default_factory=list)

    @property
    def latency(self) -> float | None:
        """Seconds from the phrase's end to the first answered note, less the rest the model chose to open with."""
        ons = [t for t, m in self.sent if m.type == "note_on"]
        leads = [t for t, m in self.answer.schedule if m.type == "note_on"]
        return ons[0] - leads[0] - self.ended_at if ons else None


class LiveSession:
    """Listen, answer, play, repeat. ``inport.pending()`` → [(seconds, msg)]; ``outport.send(msg)``; ``clock``:
    ``RealClock`` (default) or ``FastClock``; ``log``: called with one line per exchange (None: silent)."""

    def __init__(self, responder: Responder, inport, outport, clock=None, log=None):
        self.responder, self.inport, self.outport = responder, inport, outport
        self.clock, self.log = clock or RealClock(), log
        self.recorder = PhraseRecorder(responder.settings)
        self.inbox: collections.deque = collections.deque()
        self.sounding: set[tuple[int, int]] = set()
        self.exchanges: list[Exchange] = []

    def run(self, max_exchanges: int | None = None, until: float | None = None) -> list[Exchange]:
        """Exchange until ``max_exchanges`` are done or, while listening, the clock passes ``until`` (None: forever);
        every sounding note is ended on the way out, Ctrl-C included."""
        from musicgen.generate import one_blas_thread

        try:
            with one_blas_thread():
                while max_exchanges is None or len(self.exchanges) < max_exchanges:
                    exchange = self.exchange(until)
                    if exchange is None:
                        break
                    self.exchanges.append(exchange)
        finally:
            self.silence()
        return self.exchanges

    def exchange(self, until: float | None = None) -> Exchange | None:
        """Listen for one phrase and play its answer; None when ``until`` passed first."""
        while True:
            heard = self.listen(until)
            if heard is None:
                return None
            notes, ended_at, answer = heard
            speculative = answer is not None
            answer = answer or self._respond(notes)
            if answer is not None:
                break
            self._log("no note of the phrase is in the model's pitch range; listening again")
        origin = max(ended_at, answer.ready_at)
        exchange = Exchange(notes, answer, ended_at, answer.ready_at, origin, speculative)
        self.play(answer.schedule, origin, exchange.sent)
        self.responder.commit(answer, origin + answer.duration)
        lat = exchange.latency
        self._log(f"answer {len(self.exchanges) + 1}: {len(notes)} notes in, {len(answer.tokens)} events and "
                  f"{sum(m.type == 'note_on' for _, m in answer.schedule)} notes out; computed in "
                  f"{answer.compute_seconds * 1e3:.1f} ms{' during the wait' if speculative else ''}; first note "
                  + (f"{lat * 1e3:.1f} ms after the phrase ended" if lat is not None else "none"))
        return exchange

    def listen(self, until: float | None) -> tuple[list[PlayedNote], float, Answer | None] | None:
        """Record until the phrase ends: ``(notes, end time, the answer computed during the wait or None)``."""
        rec, spec = self.recorder, None
        while True:
            self.inbox.extend(self.inport.pending())
            while self.inbox:
                deadline = rec.deadline()
                t, msg = self.inbox[0]
                if deadline is not None and t >= deadline:  # it came after the pause: the next phrase's
                    break
                self.inbox.popleft()
                if rec.feed(t, msg) and rec.has_notes:
                    return rec.take(t), t, None
            deadline, now = rec.deadline(), self.clock.now()
            if deadline is not None:
                if now >= deadline or self.inbox:
                    ok = spec is not None and spec.version == rec.version
                    return rec.take(deadline), deadline, spec if ok else None
                if spec is None or spec.version != rec.version:
                    spec = self._respond(list(rec.notes), rec.version)
                    continue  # hear what came in meanwhile before the pause is taken as over
            if until is not None and now >= until:
                return None
            self.clock.sleep_until(min(now + POLL_SECONDS, deadline if deadline is not None else math.inf))

    def _respond(self, notes: list[PlayedNote], version: int = 0) -> Answer | None:
        answer = self.responder.respond(notes, version)
        if answer is not None:
            answer.ready_at = self.clock.now()
        return answer

    def play(self, schedule: list[tuple[float, mido.Message]], origin: float, sent: list) -> None:
        """Send each message at ``origin`` + its time (late ones at once), appending (time sent, msg) to ``sent``."""
        for offset, msg in schedule:
            self.clock.sleep_until(origin + offset)
            self._send(msg)
            sent.append((self.clock.now(), msg))

    def _send(self, msg) -> None:
        key = (msg.channel, msg.note)
        if msg.type == "note_on":
            self.sounding.add(key)
        else:
            self.sounding.discard(key)
        self.outport.send(msg)

    def silence(self) -> None:
        """A note_off for every note this session left sounding, then All Notes Off (CC 123) on its channels."""
        for channel, note in sorted(self.sounding):
            self._send(mido.Message("note_off", channel=channel, note=note))
        settings = self.responder.settings
        for channel in sorted({settings.channel, DRUM_CHANNEL, *settings.voice_channels}):
            self.outport.send(mido.Message("control_change", channel=channel, control=123, value=0))

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(line)
