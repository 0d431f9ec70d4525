"""musicgen.live_session: the listen → answer → play loop on scripted ports (no MIDI hardware), in real and fast
time."""

from pathlib import Path

import mido
import numpy as np
import pytest
from conftest import numpy_bundle

from musicgen.live import LiveSettings, Responder
from musicgen.live_ports import RecordingOutput, ScriptedInput, TurnTakingInput
from musicgen.live_session import FastClock, LiveSession, RealClock

DEFAULT = Path(__file__).resolve().parents[1] / "trained" / "default"


def phrase(start, pitches, step=0.25, length=0.2, velocity=80):
    """(time, message) pairs: ``pitches`` one after the other every ``step`` seconds, each ``length`` long."""
    out = []
    for i, pitch in enumerate(pitches):
        out.append((start + i * step, mido.Message("note_on", note=pitch, velocity=velocity)))
        out.append((start + i * step + length, mido.Message("note_off", note=pitch)))
    return out


def session_for(events, clock, bundle=None, **settings):
    settings = LiveSettings(**{"bpm": 240, "wait": 1, "length": 24, "seed": 2, **settings})
    out = RecordingOutput(clock)
    return LiveSession(Responder(bundle or numpy_bundle(), settings), ScriptedInput(events, clock), out, clock), out


def assert_all_closed(sent):
    sounding = set()
    for _, m in sent:
        if m.type == "note_on":
            sounding.add((m.channel, m.note))
        elif m.type == "note_off":
            sounding.discard((m.channel, m.note))
    assert not sounding
    assert [(m.type, m.control) for _, m in sent[-2:]] == [("control_change", 123)] * 2


def test_answer_starts_after_the_pause_in_time_and_closed_real_clock():
    clock = RealClock()
    t0 = clock.now() + 0.02
    session, out = session_for(phrase(t0, [60, 62, 64, 65]), clock)  # last note off at t0 + 0.95
    [ex] = session.run(max_exchanges=1, until=t0 + 5)
    pause_end = t0 + 0.95 + 0.25  # one beat at 240 bpm
    assert ex.ended_at == pytest.approx(pause_end) and ex.speculative and ex.ready_at < pause_end
    assert [n.pitch for n in ex.phrase] == [60, 62, 64, 65]
    ons = [(t, m.note) for t, m in ex.sent if m.type == "note_on"]
    assert ons and ons[0][0] >= pause_end and 0 <= ex.latency < 0.05
    # the model's note times at 240 bpm, from the tokenizer's own decoding into pretty_midi
    tok = session.responder.tokenizer
    midi = tok.decode(np.concatenate([ex.answer.primer, ex.answer.tokens]), qpm=240)
    phrase_end = session.responder.steps(ex.answer.primer) / 12 * 0.25
    model = sorted((n.start - phrase_end, n.pitch) for i in midi.instruments for n in i.notes
                   if n.start >= phrase_end - 1e-9)
    played = sorted((t - ex.origin, note) for t, note in ons)
    assert [p for _, p in played] == [p for _, p in model]
    errors = np.abs([a - b for (a, _), (b, _) in zip(played, model)])
    # within a few ms of the model's times on a quiet machine (median < 2 ms measured); the bounds allow for a busy
    # shared one, where one scheduling hiccup makes a whole chord late (22 ms measured at load 15), while an answer
    # played off its grid (a step is 21 ms at 240 bpm, a beat 250 ms) still fails
    assert np.median(errors) < 0.03 and errors.max() < 0.06, errors
    assert_all_closed(out.sent)


def test_playing_again_before_the_pause_is_over_keeps_the_phrase_open():
    clock = FastClock()
    t0 = clock.now() + 0.01
    events = phrase(t0, [60, 62]) + phrase(t0 + 0.6, [64])  # a 0.15 s gap: shorter than the 0.25 s wait
    session, _ = session_for(events, clock)
    [ex] = session.run(max_exchanges=1, until=t0 + 10)
    assert [n.pitch for n in ex.phrase] == [60, 62, 64]
    assert ex.ended_at == pytest.approx(t0 + 0.8 + 0.25) and ex.speculative


@pytest.mark.parametrize("trigger", ["pedal", "key"])
def test_pedal_or_key_answers_at_once(trigger):
    clock = FastClock()
    t0 = clock.now() + 0.01
    end = (mido.Message("control_change", control=64, value=127) if trigger == "pedal"
           else mido.Message("note_on", note=21, velocity=64))
    options = dict(pedal=True) if trigger == "pedal" else dict(trigger_key=21)
    session, out = session_for(phrase(t0, [60, 62, 64]) + [(t0 + 0.7, end)], clock, wait=0, **options)
    [ex] = session.run(max_exchanges=1, until=t0 + 10)
    assert ex.ended_at == pytest.approx(t0 + 0.7) and not ex.speculative
    assert [n.pitch for n in ex.phrase] == [60, 62, 64]
    assert ex.origin == pytest.approx(ex.ready_at) and ex.latency >= 0
    assert_all_closed(out.sent)


@pytest.mark.parametrize("carry", [True, False])
def test_each_phrase_gets_an_answer_and_the_conversation_carries_on(carry):
    clock = FastClock()
    out = RecordingOutput(clock)
    responder = Responder(numpy_bundle(), LiveSettings(bpm=240, wait=1, length=24, carry=carry))
    session = LiveSession(responder, None, out, clock)
    session.inport = TurnTakingInput([phrase(0, [60, 64]), phrase(0, [67, 65, 64])], clock,
                                     lambda: len(session.exchanges), gap=0.1)
    first, second = session.run(max_exchanges=2, until=clock.now() + 60)
    assert [n.pitch for n in second.phrase] == [67, 65, 64]
    assert second.ended_at > first.origin + first.answer.duration
    bos = responder.tokenizer.bos_id
    assert first.answer.primer[0] == bos and (second.answer.primer[0] == bos) != carry
    if carry:  # the 0.1 s rest since the answer ended (0.4 beats: 5 steps) opens the second primer
        assert second.answer.primer[0] == responder.tokenizer.token("TIME_SHIFT", 5)
    assert_all_closed(out.sent)


def test_input_during_the_answer_belongs_to_the_next_phrase():
    clock = FastClock()
    t0 = clock.now() + 0.01
    events = phrase(t0, [60, 62]) + phrase(t0 + 0.9, [72])  # the answer starts at t0 + 0.7 and lasts longer
    session, out = session_for(events, clock)
    first, second = session.run(max_exchanges=2, until=t0 + 60)
    assert [n.pitch for n in first.phrase] == [60, 62] and [n.pitch for n in second.phrase] == [72]
    assert second.phrase[0].start == pytest.approx(t0 + 0.9)
    assert second.ended_at == pytest.approx(t0 + 1.1 + 0.25) and second.origin >= first.origin + first.answer.duration


class InterruptedOutput(RecordingOutput):
    """Ctrl-C arrives while the third answer note is being sent."""

    def send(self, msg):
        super().send(msg)
        if msg.type == "note_on" and sum(m.type == "note_on" for _, m in self.sent) == 3:
            raise KeyboardInterrupt


def test_ctrl_c_ends_every_sounding_note():
    clock = FastClock()
    t0 = clock.now() + 0.01
    out = InterruptedOutput(clock)
    session = LiveSession(Responder(numpy_bundle(), LiveSettings(bpm=240, wait=1, length=64)),
                          ScriptedInput(phrase(t0, [60, 62, 64]), clock), out, clock)
    with pytest.raises(KeyboardInterrupt):
        session.run()
    assert sum(m.type == "note_on" for _, m in out.sent) == 3
    assert_all_closed(out.sent)


def test_until_ends_a_session_that_hears_nothing():
    clock = FastClock()
    session, out = session_for([], clock)
    assert session.run(until=clock.now() + 1.0) == []
    assert [m.control for _, m in out.sent] == [123, 123]


@pytest.mark.skipif(not (DEFAULT / "weights.npz").is_file(), reason="trained/default is not in this checkout")
def test_latency_of_64_event_answers_from_the_default_model_real_clock():
    """Goal (issue 16): p99 <= 50 ms from the end of the pause to the first answered note, 64-event answers.
    The answer is computed during the wait (8 beats at 480 bpm = 1 s: room for a 64-event answer even at load 14 on
    2 cores, where one took up to 0.67 s), so what is left is waking up in time."""
    from musicgen.bundle import load_bundle

    clock = RealClock()
    out = RecordingOutput(clock)
    responder = Responder(load_bundle(DEFAULT), LiveSettings(bpm=480, wait=8, length=64, seed=0))
    session = LiveSession(responder, None, out, clock)
    tunes = [[60, 62, 64, 65, 67], [67, 65, 64, 62, 60], [60, 64, 67, 72], [72, 71, 69, 67, 65, 64],
             [62, 65, 69, 67], [64, 62, 60, 59, 60]]
    session.inport = TurnTakingInput([phrase(0, t, step=0.125, length=0.1) for t in tunes], clock,
                                     lambda: len(session.exchanges))
    exchanges = session.run(max_exchanges=len(tunes), until=clock.now() + 120)
    assert len(exchanges) == len(tunes) and all(ex.speculative for ex in exchanges)
    latencies = np.array([ex.latency for ex in exchanges])
    assert latencies.min() >= 0 and np.median(latencies) <= 0.005 and np.percentile(latencies, 99) <= 0.05, latencies
    assert all(len(ex.answer.tokens) >= 64 and closed_notes(ex) for ex in exchanges)


def closed_notes(ex) -> bool:
    ons = sum(m.type == "note_on" for _, m in ex.sent)
    return ons > 0 and ons == sum(m.type == "note_off" for _, m in ex.sent)
