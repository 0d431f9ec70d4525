"""musicgen.live: settings, the phrase recorder, phrase → primer, the responder's answers and schedules."""

import mido
import numpy as np
import pytest
from conftest import numpy_bundle

from musicgen.errors import UsageError
from musicgen.live import LiveSettings, PhraseRecorder, PlayedNote, Responder, phrase_primer
from musicgen.tokenizer import Tokenizer


def on(note, velocity=80, channel=0):
    return mido.Message("note_on", note=note, velocity=velocity, channel=channel)


def off(note, channel=0):
    return mido.Message("note_off", note=note, channel=channel)


def pedal(value):
    return mido.Message("control_change", control=64, value=value)


# ------------------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("options, flag", [
    (dict(bpm=0), "--bpm"), (dict(bpm=float("nan")), "--bpm"), (dict(wait=-1), "--wait"), (dict(wait=0), "--wait"),
    (dict(trigger_key=128), "--trigger-key"), (dict(length=0), "--length"), (dict(seconds=0), "--seconds"),
    (dict(temperature=0), "--temperature"), (dict(top_p=0), "--top-p"), (dict(top_k=-1), "--top-k"),
    (dict(seed=-1), "--seed"), (dict(channel=16), "--channel"), (dict(max_note_length=-1), "--max-note-length"),
])
def test_settings_name_the_flag_and_the_value(options, flag):
    with pytest.raises(UsageError, match=f"^{flag}: expected .*, got "):
        LiveSettings(**options)


def test_wait_zero_is_fine_with_a_pedal_or_a_key_and_channel_is_reported_one_based():
    assert LiveSettings(wait=0, pedal=True).wait == 0 and LiveSettings(wait=0, trigger_key=21).trigger_key == 21
    with pytest.raises(UsageError, match="got 17$"):
        LiveSettings(channel=16)


# ------------------------------------------------------------------------------------------------------ recorder
def test_recorder_notes_repeated_keys_velocity_zero_and_the_pause_deadline():
    rec = PhraseRecorder(LiveSettings(bpm=120, wait=1))  # one beat = 0.5 s
    assert rec.deadline() is None
    for t, msg in [(0.0, on(60, 90)), (0.4, on(64, 70)), (0.5, off(60)), (0.6, on(64, 50)),
                   (0.9, mido.Message("note_on", note=64, velocity=0))]:
        assert rec.feed(t, msg) is False
        assert (rec.deadline() is None) == (t < 0.9)
    assert rec.deadline() == pytest.approx(1.4)
    assert rec.take(2.0) == [PlayedNote(60, 0.0, 0.5, 90), PlayedNote(64, 0.4, 0.6, 70), PlayedNote(64, 0.6, 0.9, 50)]
    assert rec.take(3.0) == [] and rec.deadline() is None


def test_sustain_pedal_holds_released_notes_until_lifted():
    rec = PhraseRecorder(LiveSettings(bpm=120, wait=1))
    for t, msg in [(0.0, pedal(127)), (0.1, on(60)), (0.2, off(60))]:
        rec.feed(t, msg)
    assert rec.deadline() is None  # the pedal still sounds it
    rec.feed(0.7, pedal(0))
    assert rec.deadline() == pytest.approx(1.2)
    assert rec.take(2.0) == [PlayedNote(60, 0.1, 0.7, 80)]


def test_pedal_trigger_ends_the_phrase_and_closes_held_notes():
    rec = PhraseRecorder(LiveSettings(wait=0, pedal=True))
    assert rec.feed(0.0, on(60)) is False and rec.feed(0.1, on(64)) is False
    assert rec.feed(0.2, off(64)) is False  # no sustain in pedal mode
    assert rec.feed(0.3, pedal(100)) is True
    assert rec.feed(0.35, pedal(110)) is False  # still down: not a new press
    assert rec.deadline() is None
    assert rec.take(0.3) == [PlayedNote(60, 0.0, 0.3, 80), PlayedNote(64, 0.1, 0.2, 80)]


def test_trigger_key_is_not_recorded_and_programs_and_drums_are_kept():
    rec = PhraseRecorder(LiveSettings(trigger_key=21))
    rec.feed(0.0, mido.Message("program_change", channel=2, program=40))
    rec.feed(0.0, on(60, channel=2))
    rec.feed(0.1, on(36, channel=9))
    rec.feed(0.2, off(36, channel=9))
    assert rec.feed(0.5, on(21)) is True
    assert rec.feed(0.6, off(21)) is False
    assert rec.take(0.5) == [PlayedNote(60, 0.0, 0.5, 80, 40, False), PlayedNote(36, 0.1, 0.2, 80, 0, True)]


# ------------------------------------------------------------------------------------------------------- primer
def test_phrase_primer_counts_beats_at_the_bpm_and_continues_a_conversation():
    tok = Tokenizer(numpy_bundle().tokenizer_config)  # 12 steps per quarter, 8 velocity bins, no programs
    T, vel5 = lambda n, v=0: tok.token(n, v), tok.token("VELOCITY", 5)  # velocity 80 is in bin 5 (65..80)
    notes = [PlayedNote(60, 10.0, 10.5, 80), PlayedNote(64, 10.5, 11.0, 80)]  # two quarter notes at 120 bpm
    body = [vel5, T("NOTE_ON", 60), T("TIME_SHIFT", 12), T("NOTE_OFF", 60), T("NOTE_ON", 64), T("TIME_SHIFT", 12),
            T("NOTE_OFF", 64)]
    assert phrase_primer(notes, tok, 120).tolist() == [tok.bos_id] + body
    assert phrase_primer(notes, tok, 120, since=9.75).tolist() == [T("TIME_SHIFT", 6)] + body  # half a beat of rest
    assert phrase_primer(notes, tok, 120, since=0.0).tolist() == [T("TIME_SHIFT", 48)] + body  # capped at 4 beats
    assert phrase_primer(notes, tok, 120, since=10.2).tolist() == body  # came in before the answer ended
    assert phrase_primer(notes, tok, 60).tolist()[:4] == [tok.bos_id, vel5, T("NOTE_ON", 60), T("TIME_SHIFT", 6)]
    assert phrase_primer([PlayedNote(100, 0.0, 1.0, 80)], tok, 120).size == 0  # out of the model's range
    assert phrase_primer([], tok, 120).size == 0


def test_a_note_released_as_it_was_pressed_gets_one_step():
    """Why ``PlayedNote`` is not ``piece.Note``: it may have end == start (``Note`` refuses that)."""
    tok = Tokenizer(numpy_bundle().tokenizer_config)
    T = tok.token
    assert phrase_primer([PlayedNote(60, 3.0, 3.0, 80)], tok, 120).tolist() == [
        tok.bos_id, T("VELOCITY", 5), T("NOTE_ON", 60), T("TIME_SHIFT", 1), T("NOTE_OFF", 60)]


# ---------------------------------------------------------------------------------------------------- responder
def test_schedule_is_the_answer_in_seconds_after_the_phrase_end():
    bundle = numpy_bundle()
    tok = bundle.tokenizer
    T = tok.token
    responder = Responder(bundle, LiveSettings(bpm=120, channel=3))  # a step is 1/24 s
    primer = np.array([tok.bos_id, T("VELOCITY", 5), T("NOTE_ON", 60), T("TIME_SHIFT", 12), T("NOTE_OFF", 60)])
    events = np.array([T("NOTE_ON", 64), T("TIME_SHIFT", 6), T("NOTE_OFF", 64), T("TIME_SHIFT", 6),
                       T("NOTE_ON", 67), T("TIME_SHIFT", 12), T("NOTE_OFF", 67)])
    schedule, duration = responder.schedule(primer, events)
    assert [(t, m.type, m.note, m.velocity, m.channel) for t, m in schedule] == [
        (0.0, "note_on", 64, 72, 3), (0.25, "note_off", 64, 64, 3), (0.5, "note_on", 67, 72, 3),
        (1.0, "note_off", 67, 64, 3)]  # bin 5 decodes to 72, the middle of 65..80
    assert duration == pytest.approx(1.0)


def test_drums_go_to_channel_ten():
    bundle = numpy_bundle(programs=True)
    tok = bundle.tokenizer
    primer = np.array([tok.bos_id, tok.token("PROGRAM", 128), tok.token("NOTE_ON", 50), tok.token("TIME_SHIFT", 3)])
    schedule, _ = Responder(bundle, LiveSettings()).schedule(primer, np.array([tok.token("NOTE_ON", 60),
                                                                                tok.token("TIME_SHIFT", 3)]))
    assert [(m.type, m.note, m.channel) for _, m in schedule] == [("note_on", 60, 9), ("note_off", 60, 9)]


PHRASE = [PlayedNote(60, 1.0, 1.4, 80), PlayedNote(62, 1.5, 1.9, 80), PlayedNote(64, 2.0, 2.9, 90)]


def closed(schedule) -> bool:
    """Every note_on is followed by its note_off, and nothing else is left sounding."""
    sounding = set()
    for _, m in schedule:
        key = (m.channel, m.note)
        if m.type == "note_on":
            if key in sounding:
                return False
            sounding.add(key)
        elif m.type == "note_off":
            sounding.discard(key)
    return not sounding


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_answer_is_a_closed_in_range_continuation_seeded_per_exchange(cell):
    bundle = numpy_bundle(cell)
    responder = Responder(bundle, LiveSettings(bpm=100, length=48, seed=7))
    answer = responder.respond(PHRASE, version=3)
    assert answer.version == 3 and answer.primer[0] == bundle.tokenizer.bos_id and len(answer.tokens) >= 48
    times = [t for t, _ in answer.schedule]
    assert times == sorted(times) and times[0] >= 0 and times[-1] <= answer.duration + 1e-9
    assert all(48 <= m.note <= 72 for _, m in answer.schedule) and closed(answer.schedule)
    assert sum(m.type == "note_on" for _, m in answer.schedule) >= 3
    again = Responder(bundle, LiveSettings(bpm=100, length=48, seed=7)).respond(PHRASE)
    assert np.array_equal(again.tokens, answer.tokens)
    assert responder.state is None
    responder.commit(answer, ended_at=12.0)
    assert responder.exchanges == 1 and responder.since == 12.0
    assert [a.shape for layer in responder.state for a in layer] == [(12,)] * (4 if cell == "lstm" else 2)
    later = responder.respond(PHRASE)
    assert later.primer[0] != bundle.tokenizer.bos_id  # the conversation goes on: no new BOS
    assert not np.array_equal(later.tokens[:len(answer.tokens)], answer.tokens)


def test_no_carry_starts_every_answer_from_the_bundle_start_and_seconds_bound_the_answer():
    responder = Responder(numpy_bundle(), LiveSettings(bpm=120, carry=False, seconds=1.0, length=500))
    assert responder.limit_steps == 24 and responder.max_note_steps == 96
    answer = responder.respond(PHRASE)
    responder.commit(answer, ended_at=5.0)
    assert responder.state is None and responder.since is None
    assert responder.respond(PHRASE).primer[0] == responder.tokenizer.bos_id
    assert len(answer.tokens) < 500 and answer.duration <= 1.0 + 48 / 24


def test_a_phrase_out_of_range_gets_no_answer():
    assert Responder(numpy_bundle(), LiveSettings()).respond([PlayedNote(100, 0.0, 1.0, 80)]) is None
