"""MIDI ports for ``musicgen live``: mido + python-rtmidi (the ``[live]`` extra), scripted ports, the CLI handler.

A session input gives ``pending() -> [(seconds, mido.Message)]``, each message stamped on the session's clock when it
arrived; an output has ``send(msg)``. ``TimedInput`` stamps a real port's messages in rtmidi's callback thread, so a
busy session loop never delays a timestamp. ``ScriptedInput`` and ``RecordingOutput`` stand in for a keyboard and a
synthesizer in tests and in ``scripts/live_latency.py``.

python-rtmidi is imported only when a real port is listed or opened; every failure there (no python-rtmidi, no MIDI
system such as a container without ``/dev/snd/seq``, an unknown port name, no virtual ports on Windows) is one
``UsageError`` line saying what to do.
"""

from __future__ import annotations

import collections
import contextlib
import os
import secrets
import sys

from musicgen.errors import UsageError

INSTALL_HINT = "pip install 'musicgen[live]'"
VIRTUAL_IN, VIRTUAL_OUT = "musicgen in", "musicgen out"


class ScriptedInput:
    """A player in a script: ``events`` is a list of (seconds on ``clock``, mido message); ``pending()`` hands out
    those whose time has come, in time order, stamped with their scripted time."""

    def __init__(self, events, clock):
        self.events = collections.deque(sorted(events, key=lambda e: e[0]))
        self.clock, self.name = clock, "script"

    def pending(self) -> list:
        now, out = self.clock.now(), []
        while self.events and self.events[0][0] <= now:
            out.append(self.events.popleft())
        return out

    def close(self) -> None:
        self.events.clear()


class TurnTakingInput:
    """A player who waits for each answer: phrase k (a list of (seconds from its start, message)) starts ``gap``
    seconds after ``answered()`` (e.g. ``lambda: len(session.exchanges)``) reaches k and the input is next read."""

    def __init__(self, phrases, clock, answered, gap: float = 0.05):
        self.phrases, self.clock, self.answered, self.gap, self.name = list(phrases), clock, answered, gap, "turns"
        self.next, self.script = 0, ScriptedInput([], clock)

    def pending(self) -> list:
        if not self.script.events and self.next < len(self.phrases) and self.answered() >= self.next:
            start = self.clock.now() + self.gap
            self.script = ScriptedInput([(start + t, m) for t, m in self.phrases[self.next]], self.clock)
            self.next += 1
        return self.script.pending()

    def close(self) -> None:
        self.phrases.clear()


class RecordingOutput:
    """A synthesizer that writes down what it is sent: ``sent`` is a list of (seconds on ``clock``, message)."""

    def __init__(self, clock):
        self.clock, self.sent, self.name = clock, [], "recording"

    def send(self, msg) -> None:
        self.sent.append((self.clock.now(), msg))

    def close(self) -> None:
        pass


class TimedInput:
    """A mido input port whose messages are stamped with ``clock.now()`` on arrival (in rtmidi's thread)."""

    def __init__(self, port_factory, clock):
        self.clock, self.queue = clock, collections.deque()
        self.port = port_factory(callback=self._arrived)
        self.name = self.port.name

    def _arrived(self, msg) -> None:
        self.queue.append((self.clock.now(), msg))

    def pending(self) -> list:
        out = []
        while self.queue:
            out.append(self.queue.popleft())
        return out

    def close(self) -> None:
        self.port.close()


def _mido(flag: str):
    """mido with python-rtmidi behind it, or a ``UsageError`` (naming ``flag``) with the install command."""
    try:
        import rtmidi  # noqa: F401
    except ImportError:
        raise UsageError(f"{flag}: python-rtmidi is not installed ({INSTALL_HINT})") from None
    import mido

    return mido


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 meanwhile: ALSA's C library prints its own lines before rtmidi raises."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _system_error(exc: BaseException, flag: str) -> UsageError:
    text = " ".join(str(a) for a in getattr(exc, "args", ()) if a) or type(exc).__name__
    if "ALSA" in text or "sequencer" in text:
        return UsageError(f"{flag}: no MIDI system: cannot open the ALSA sequencer /dev/snd/seq (load it with "
                          f"`sudo modprobe snd-seq`, or run where a MIDI device is available)")
    return UsageError(f"{flag}: MIDI system error: {text}")


def port_names() -> tuple[list[str], list[str]]:
    """``(input names, output names)`` as mido/rtmidi see them."""
    mido = _mido("--list-ports")
    try:
        with _quiet_stderr():
            return list(mido.get_input_names()), list(mido.get_output_names())
    except (OSError, RuntimeError) as exc:
        raise _system_error(exc, "--list-ports") from None


def _open(mido, kind: str, name: str | None, flag: str, **kwargs):
    opener = mido.open_input if kind == "input" else mido.open_output
    virtual = name is None
    label = (VIRTUAL_IN if kind == "input" else VIRTUAL_OUT) if virtual else name
    try:
        with _quiet_stderr():
            return opener(label, virtual=virtual, **kwargs)
    except NotImplementedError:
        raise UsageError(f"{flag}: this OS has no virtual MIDI ports; name a port from `musicgen live --list-ports` "
                         f"(on Windows create one with loopMIDI)") from None
    except (OSError, RuntimeError) as exc:
        text = str(exc)
        if "unknown port" in text or "no ports" in text:
            names = mido.get_input_names() if kind == "input" else mido.get_output_names()
            raise UsageError(f"{flag}: no {kind} port {name!r}; available: {', '.join(map(repr, names)) or 'none'} "
                             f"(see `musicgen live --list-ports`; omit {flag} for a virtual port)") from None
        if "Virtual ports are not supported" in text or "virtual" in text.lower() and "support" in text.lower():
            raise UsageError(f"{flag}: this OS has no virtual MIDI ports; name a port from "
                             f"`musicgen live --list-ports`") from None
        raise _system_error(exc, flag) from None


def open_ports(in_name: str | None, out_name: str | None, clock) -> tuple[TimedInput, object]:
    """Open the input (stamped on ``clock``) and the output; a None name makes a virtual port ("musicgen in" /
    "musicgen out") that other programs can connect to. Raises ``UsageError`` (one line) on any failure."""
    mido = _mido("--in")
    inport = TimedInput(lambda callback: _open(mido, "input", in_name, "--in", callback=callback), clock)
    try:
        outport = _open(mido, "output", out_name, "--out")
    except BaseException:
        inport.close()
        raise
    return inport, outport


# ------------------------------------------------------------------------------------------------------------ CLI
def cli_live(args) -> int:
    """``musicgen live``: list the ports, or answer the player until Ctrl-C (which ends every note first)."""
    if args.list_ports:
        inputs, outputs = port_names()
        print("inputs:" + "".join(f"\n  {n}" for n in inputs) if inputs else "inputs: none")
        print("outputs:" + "".join(f"\n  {n}" for n in outputs) if outputs else "outputs: none")
        return 0
    from musicgen.generate import load_model
    from musicgen.live import LiveSettings, Responder
    from musicgen.live_context import describe, parse_channels
    from musicgen.live_session import LiveSession, RealClock

    seed = secrets.randbits(31) if args.seed is None else args.seed
    settings = LiveSettings(bpm=args.bpm, wait=args.wait, pedal=args.pedal, trigger_key=args.trigger_key,
                            length=args.length, seconds=args.seconds, temperature=args.temperature,
                            top_k=args.top_k, top_p=args.top_p, seed=seed, carry=args.carry,
                            channel=args.channel - 1 if isinstance(args.channel, int) else args.channel,
                            max_note_length=args.max_note_length, meter=args.meter, key=args.key, style=args.style,
                            voice_channels=parse_channels(args.voice_channels))
    responder = Responder(load_model(args.model), settings)
    clock = RealClock()
    inport, outport = open_ports(args.in_port, args.out_port, clock)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    ends = [f"{settings.wait:g} beats of silence"] if settings.wait else []
    ends += ["the sustain pedal"] if settings.pedal else []
    ends += [f"key {settings.trigger_key}"] if settings.trigger_key is not None else []
    log(f"listening on {inport.name!r}, answering on {outport.name!r} at {settings.bpm:g} bpm (seed {seed}); "
        f"a phrase ends with {' or '.join(ends)}; Ctrl-C stops")
    framing = describe(responder.tokenizer.config, settings.meter, settings.key, settings.carry, responder.style)
    if framing:
        log(f"context bundle: {framing}")
    try:
        LiveSession(responder, inport, outport, clock, log).run()
    except KeyboardInterrupt:
        log("stopped; all notes off")
    finally:
        inport.close()
        outport.close()
    return 0
