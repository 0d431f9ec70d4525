"""musicgen.live_context: `musicgen live` with bundles trained with --meter, --key-mode and --voices (framing, the
key's transposition, voice channels, and the context a carried conversation keeps)."""

import dataclasses

import mido
import numpy as np
import pytest
from conftest import numpy_bundle

from musicgen.context import ContextTracker, context_features, context_names, context_sizes
from musicgen.errors import UsageError
from musicgen.live import LiveSettings, PlayedNote, Responder, phrase_primer
from musicgen.live_context import Conversation, describe, open_bar, parse_channels, parse_meter, phrase_key
from musicgen.live_ports import RecordingOutput, TurnTakingInput
from musicgen.live_session import FastClock, LiveSession
from musicgen.meter import time_signature_value
from musicgen.models import expected_weight_shapes
from musicgen.sampler import StepModel


def context_bundle(seed=0, voice_bias=0.0, **tokenizer_options):
    """``numpy_bundle`` with context inputs (``ModelConfig.context`` = the tokenizer's ``context_sizes``, seeded
    N(0, 0.5) context embeddings) as training with --meter/--key-mode makes; ``voice_bias`` is added to the logit bias
    of every VOICE id, so answers switch voices."""
    bundle = numpy_bundle("gru", seed, **tokenizer_options)
    cfg = dataclasses.replace(bundle.model_config, context=context_sizes(bundle.tokenizer_config))
    rng = np.random.default_rng(seed + 100)
    weights = dict(bundle.weights)
    for name, shape in expected_weight_shapes(cfg).items():
        weights.setdefault(name, (0.5 * rng.standard_normal(shape)).astype(np.float32))
    if voice_bias:
        first, size = bundle.tokenizer.ranges["VOICE"]
        weights["logits_bias"] = weights["logits_bias"].copy()
        weights["logits_bias"][first:first + size] += voice_bias
    return dataclasses.replace(bundle, model_config=cfg, weights=weights, _tokenizer=None)


class RecordingModel(StepModel):
    """The bundle's real ``StepModel`` that writes down each fed token and the context it was given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[int, tuple]] = []

    def step(self, state, tokens, context=None):
        self.seen.append((int(tokens[0]), () if context is None else tuple(int(v) for v in context[0])))
        return super().step(state, tokens, context)


def scale(pitches, start=0.0, beat=0.5, long=()):
    """One note per beat (120 bpm: 0.5 s), 0.4 s long, or 0.9 s for the pitches in ``long``."""
    return [PlayedNote(p, start + i * beat, start + i * beat + (0.9 if p in long else 0.4), 80)
            for i, p in enumerate(pitches)]


D_MAJOR = scale([62, 64, 66, 67, 69, 71, 73, 74], long=(62, 69, 74))  # tonic and dominant held: D major


def onsets(schedule):
    return sorted(m.note for _, m in schedule if m.type == "note_on")


# ------------------------------------------------------------------------------------------------------- parsing
def test_meter_key_and_voice_channels_are_checked_in_one_line_naming_the_flag():
    assert parse_meter("3/4") == (3, 4) and parse_meter("12/8") == (12, 8) and parse_meter(" 4 / 4 ") == (4, 4)
    for bad in ("5/3", "17/4", "0/4", "4", "4/4/4", "a/4", "", None):
        with pytest.raises(UsageError, match=r"^--meter: expected NUM/DEN .*, got "):
            parse_meter(bad)
    assert parse_channels("1,2,16") == (0, 1, 15) and parse_channels("") == ()
    for bad in ("0", "17", "1,,2", "x"):
        with pytest.raises(UsageError, match=r"^--voice-channels: expected MIDI channels in \[1, 16\]"):
            parse_channels(bad)
    for options, flag in [(dict(meter="7/5"), "--meter"), (dict(key="H major"), "--key"),
                          (dict(voice_channels=(16,)), "--voice-channels")]:
        with pytest.raises(UsageError, match=f"^{flag}: expected .*, got "):
            LiveSettings(**options)
    with pytest.raises(UsageError, match="^--key: the bundle .* has no KEY events"):
        Responder(numpy_bundle(), LiveSettings(key="D minor"))


def test_describe_says_how_a_bundle_frames_phrases():
    both = numpy_bundle(voices=4, meter=True, key="normalize").tokenizer_config
    assert describe(both, "3/4", None, True) == ("each phrase starts a bar of 3/4; key analysed from the first phrase "
                                                 "(moved to C for the model); your phrase is voice 0 of 4")
    assert describe(numpy_bundle(key="token").tokenizer_config, "4/4", "D minor", False) == "key D minor"
    assert describe(numpy_bundle().tokenizer_config, "4/4", None, True) == ""


def test_phrase_key_is_the_ingest_analysis_of_the_played_notes():
    assert phrase_key(D_MAJOR) == 2  # D major
    d_minor = scale([62, 65, 69, 74, 73, 74], long=(62, 69, 74))  # D F A D C# D
    assert phrase_key(d_minor) == 14  # D minor
    drums = [PlayedNote(61, 0.0, 10.0, 80, is_drum=True)]  # a long drum note on C# changes nothing
    assert phrase_key(D_MAJOR + drums) == 2 and phrase_key([]) == 0 and phrase_key(drums) == 0


def test_open_bar_puts_the_time_sig_at_the_first_onset_unless_a_bar_starts_there():
    tok = numpy_bundle(meter=True).tokenizer
    T = tok.token
    four, three = T("TIME_SIG", time_signature_value(4, 4)), T("TIME_SIG", time_signature_value(3, 4))
    history = ContextTracker(tok, 1)
    history.run([tok.bos_id, four, T("TIME_SHIFT", 24)])  # two beats into a 4/4 bar
    on_bar = np.array([T("TIME_SHIFT", 24), T("NOTE_ON", 60)])  # two more beats: the next bar
    off_bar = np.array([T("TIME_SHIFT", 12), T("NOTE_ON", 60)])
    assert open_bar(on_bar, tok, (4, 4), history).tolist() == on_bar.tolist()
    assert open_bar(on_bar, tok, (3, 4), history).tolist() == [T("TIME_SHIFT", 24), three, T("NOTE_ON", 60)]
    assert open_bar(off_bar, tok, (4, 4), history).tolist() == [T("TIME_SHIFT", 12), four, T("NOTE_ON", 60)]
    assert open_bar(on_bar, tok, (4, 4), None).tolist() == [T("TIME_SHIFT", 24), four, T("NOTE_ON", 60)]
    assert history.position.tolist() == [24]  # probing left the conversation where it was


# --------------------------------------------------------------------------------------------------------- meter
def test_meter_primer_is_bos_time_sig_notes_and_the_model_counts_bars_of_that_meter():
    bundle = context_bundle(meter=True)
    tok = bundle.tokenizer
    T = tok.token
    notes = [PlayedNote(60, 3.0, 3.5, 80), PlayedNote(64, 3.5, 4.0, 80)]  # two quarter notes at 120 bpm
    primer = phrase_primer(notes, tok, 120, meter=(3, 4))
    three = T("TIME_SIG", time_signature_value(3, 4))
    assert primer.tolist() == [tok.bos_id, three, T("VELOCITY", 5), T("NOTE_ON", 60), T("TIME_SHIFT", 12),
                               T("NOTE_OFF", 60), T("NOTE_ON", 64), T("TIME_SHIFT", 12), T("NOTE_OFF", 64)]
    # the context after each primer event: (1 + step in beat, 1 + beat in bar, 2 on a bar start / 1 off it)
    assert context_features(primer, tok).tolist() == [[0, 0, 0], [1, 1, 2], [1, 1, 2], [1, 1, 2], [1, 2, 1],
                                                      [1, 2, 1], [1, 2, 1], [1, 3, 1], [1, 3, 1]]
    responder = Responder(bundle, LiveSettings(bpm=120, meter="3/4", length=40, seed=3))
    responder.model = RecordingModel(bundle.weights, bundle.model_config)
    answer = responder.respond(notes)
    assert answer.primer.tolist() == primer.tolist()
    seen = responder.model.seen
    full = np.concatenate([answer.primer, answer.tokens])
    assert [t for t, _ in seen] == full[:len(seen)].tolist()
    assert [list(c) for _, c in seen] == context_features(full, tok)[:len(seen)].tolist()
    # any TIME_SIG the model adds stands at a bar start (the rules' mask), and the notes decode in range
    for i in np.flatnonzero(tok.kind_mask(full, "TIME_SIG"))[1:]:
        assert context_features(full[:i], tok)[-1, 2] == 2
    assert onsets(answer.schedule) and all(48 <= p <= 72 for p in onsets(answer.schedule))
    plain = Responder(numpy_bundle(meter=True), LiveSettings(meter="3/4")).respond(notes)  # no context inputs
    assert plain.primer[:2].tolist() == [tok.bos_id, three]


# ----------------------------------------------------------------------------------------------------------- key
def stored_onsets(tok, primer, events):
    """The answer's note pitches as stored (decoded without the KEY, so nothing moves), from the primer's end."""
    tokens = np.concatenate([primer, events])
    a = tok.decode_arrays(tokens[~tok.kind_mask(tokens, "KEY")])
    first = tok.ranges["TIME_SHIFT"][0]
    start = int((primer[tok.kind_mask(primer, "TIME_SHIFT")] - first + 1).sum())
    return sorted(a["pitch"][a["start"] >= start].tolist())


@pytest.mark.parametrize("fixed, tonic, back", [(None, 2, 2), ("F# major", 6, -6), ("d minor", 14, 2)])
def test_key_normalize_moves_the_phrase_to_c_and_the_answer_back(fixed, tonic, back):
    bundle = context_bundle(key="normalize")
    tok = bundle.tokenizer
    responder = Responder(bundle, LiveSettings(bpm=120, key=fixed, length=48, seed=5))
    answer = responder.respond(D_MAJOR)
    assert answer.key == tonic and answer.primer[:2].tolist() == [tok.bos_id, tok.token("KEY", tonic)]
    played_in_range = [n.pitch for n in D_MAJOR if 48 <= n.pitch <= 72 and 48 <= n.pitch - back <= 72]
    primer_ons = [tok.describe(int(t))[1] for t in answer.primer if tok.describe(int(t))[0] == "NOTE_ON"]
    assert primer_ons == [p - back for p in played_in_range]  # stored on C: D → C (-2), F# → C (+6)
    stored = stored_onsets(tok, answer.primer, answer.tokens)
    assert len(stored) >= 3
    assert onsets(answer.schedule) == [p + back for p in stored if 48 <= p + back <= 72]
    # a carried conversation keeps its key: no second KEY, the answer still moved back
    responder.commit(answer, ended_at=D_MAJOR[-1].end + 1.0)
    later = responder.respond(scale([62, 66, 69], start=D_MAJOR[-1].end + 1.5))
    assert later.key == tonic and not (later.primer == tok.token("KEY", tonic)).any()
    assert onsets(later.schedule) == [p + back for p in stored_onsets(tok, later.primer, later.tokens)
                                      if 48 <= p + back <= 72]


def test_key_token_mode_writes_the_key_and_keeps_the_notes_as_played():
    bundle = context_bundle(key="token")
    tok = bundle.tokenizer
    answer = Responder(bundle, LiveSettings(bpm=120, length=32, seed=1)).respond(D_MAJOR)
    assert answer.primer[:2].tolist() == [tok.bos_id, tok.token("KEY", 2)]
    assert [tok.describe(int(t))[1] for t in answer.primer if tok.describe(int(t))[0] == "NOTE_ON"] == \
        [n.pitch for n in D_MAJOR if n.pitch <= 72]
    assert onsets(answer.schedule) == stored_onsets(tok, answer.primer, answer.tokens)
    fresh = Conversation(tok)
    assert fresh.key_for(D_MAJOR, continuing=True) == 2  # nothing committed yet: the phrase's own key


# -------------------------------------------------------------------------------------------------------- voices
def test_voices_phrase_is_voice_0_and_each_answer_voice_gets_its_channel():
    bundle = numpy_bundle(voices=4)
    tok = bundle.tokenizer
    T = tok.token
    primer = phrase_primer(scale([60, 62]), tok, 120)
    assert primer[:4].tolist() == [tok.bos_id, T("VOICE", 0), T("VELOCITY", 5), T("NOTE_ON", 60)]
    events = np.array([T("VOICE", 1), T("NOTE_ON", 64), T("VOICE", 3), T("NOTE_ON", 64), T("NOTE_ON", 67),
                       T("TIME_SHIFT", 6), T("VOICE", 1), T("NOTE_OFF", 64), T("TIME_SHIFT", 6), T("VOICE", 0),
                       T("NOTE_ON", 55), T("TIME_SHIFT", 12)])  # then every note still sounding is closed
    split = Responder(bundle, LiveSettings(bpm=120, voice_channels=(4, 5, 6)))
    schedule, duration = split.schedule(primer, events)
    assert [(t, m.type, m.note, m.channel) for t, m in schedule] == [
        (0.0, "note_on", 64, 5), (0.0, "note_on", 64, 6), (0.0, "note_on", 67, 6), (0.25, "note_off", 64, 5),
        (0.5, "note_on", 55, 4), (1.0, "note_off", 55, 4), (1.0, "note_off", 64, 6), (1.0, "note_off", 67, 6)]
    assert duration == pytest.approx(1.0)  # 24 steps of 1/24 s
    # on one channel the unison of voices 1 and 3 is one note: the earlier ends where the later starts
    one, _ = Responder(bundle, LiveSettings(bpm=120, channel=2)).schedule(primer, events)
    assert [(t, m.type, m.note, m.channel) for t, m in one] == [
        (0.0, "note_on", 64, 2), (0.0, "note_on", 67, 2), (0.5, "note_on", 55, 2), (1.0, "note_off", 55, 2),
        (1.0, "note_off", 64, 2), (1.0, "note_off", 67, 2)]


def test_voices_answer_uses_several_voices_on_their_channels():
    bundle = context_bundle(voices=4, voice_bias=3.0)  # no context features: voices only
    assert bundle.model_config.context == ()
    responder = Responder(bundle, LiveSettings(bpm=120, length=64, seed=2, voice_channels=(0, 1, 2, 3)))
    answer = responder.respond(scale([60, 62, 64]))
    a = bundle.tokenizer.decode_arrays(np.concatenate([answer.primer, answer.tokens]))
    late = a["start"] >= responder.steps(answer.primer)
    assert len(set(a["voice"][late].tolist())) >= 2
    assert {m.channel for _, m in answer.schedule} == set(a["voice"][late].tolist())


def test_voices_answers_keep_to_the_session_voice_cap_drawn_from_the_training_counts():
    import dataclasses

    from musicgen.voices import METRIC

    bundle = context_bundle(voices=4, voice_bias=3.0)
    settings = LiveSettings(bpm=120, length=64, seed=2, voice_channels=(0, 1, 2, 3))

    def voices_used(responder):
        answer = responder.respond(scale([60, 62, 64]))
        a = bundle.tokenizer.decode_arrays(np.concatenate([answer.primer, answer.tokens]))
        return set(a["voice"].tolist())

    free = Responder(bundle, settings)
    assert free.voice_cap is None and max(voices_used(free)) >= 2
    capped = Responder(dataclasses.replace(bundle, metrics={METRIC: {"2": 1}}), settings)
    assert capped.voice_cap == 2 and voices_used(capped) <= {0, 1}


# ----------------------------------------------------------------------------------------- all three, carried on
def test_carried_conversation_sees_the_context_of_the_whole_token_history():
    bundle = context_bundle(voices=4, meter=True, key="normalize", voice_bias=1.0)
    tok = bundle.tokenizer
    responder = Responder(bundle, LiveSettings(bpm=120, length=40, seed=4, voice_channels=(0, 1, 2, 3)))
    responder.model = model = RecordingModel(bundle.weights, bundle.model_config)
    four = tok.token("TIME_SIG", time_signature_value(4, 4))
    first = responder.respond(D_MAJOR)
    assert first.primer[:4].tolist() == [tok.bos_id, tok.token("KEY", 2), four, tok.token("VOICE", 0)]
    responder.commit(first, ended_at=10.0)
    on_bar = responder.respond(scale([66, 64, 62], start=10.5))  # a beat of rest: the next bar starts there
    assert on_bar.primer[:2].tolist() == [tok.token("TIME_SHIFT", 12), tok.token("VOICE", 0)]  # no TIME_SIG needed
    model.seen.clear()
    second = responder.respond(scale([66, 64, 62], start=10.25))  # half a beat of rest
    assert responder.conversation.history.position.tolist() == [420]  # the first answer ended 36 steps into a bar
    assert second.primer[:3].tolist() == [tok.token("TIME_SHIFT", 6), four, tok.token("VOICE", 0)]
    history = np.concatenate([first.primer, first.tokens, second.primer, second.tokens])
    features = context_features(history, tok)
    offset = len(first.primer) + len(first.tokens)
    fed = [t for t, _ in model.seen]
    assert len(fed) >= len(second.primer) and fed == history[offset:offset + len(fed)].tolist()
    assert [list(c) for _, c in model.seen] == features[offset:offset + len(fed)].tolist()
    assert features[offset + 1].tolist()[:3] == [1, 1, 2]  # the TIME_SIG re-opens the bar at the first onset
    # committing carries the state of the whole history, fed with the history's features
    responder.commit(second, ended_at=20.0)
    plain = StepModel(bundle.weights, bundle.model_config)
    _, state = plain.run(history[None], plain.init_state(1, bundle.start_state), features[None])
    for mine, whole in zip(responder.state, state):
        for a, b in zip(mine, whole):
            np.testing.assert_allclose(a, b[0], rtol=1e-5, atol=1e-6)
    assert onsets(second.schedule) == [p + 2 for p in stored_onsets(tok, second.primer, second.tokens)
                                       if 48 <= p + 2 <= 72]


def test_a_session_with_a_voices_meter_key_bundle_answers_every_phrase_and_ends_every_note():
    clock = FastClock()
    out = RecordingOutput(clock)
    bundle = context_bundle(voices=4, meter=True, key="normalize", voice_bias=1.0)
    responder = Responder(bundle, LiveSettings(bpm=240, wait=1, length=32, seed=1, meter="6/8",
                                               voice_channels=(0, 1, 2, 3)))
    session = LiveSession(responder, None, out, clock)
    tune = []
    for i, pitch in enumerate([62, 66, 69, 74]):
        tune += [(i * 0.25, mido.Message("note_on", note=pitch, velocity=80)),
                 (i * 0.25 + 0.2, mido.Message("note_off", note=pitch))]
    session.inport = TurnTakingInput([tune, tune, tune], clock, lambda: len(session.exchanges), gap=0.1)
    exchanges = session.run(max_exchanges=3, until=clock.now() + 60)
    assert len(exchanges) == 3 and responder.conversation.key == 2
    six_eight = bundle.tokenizer.token("TIME_SIG", time_signature_value(6, 8))
    assert exchanges[0].answer.primer[2] == six_eight and all(ex.answer.primer[0] != bundle.tokenizer.bos_id
                                                              for ex in exchanges[1:])
    sounding = set()
    for _, m in out.sent:
        if m.type == "note_on":
            sounding.add((m.channel, m.note))
        elif m.type == "note_off":
            sounding.discard((m.channel, m.note))
    assert not sounding and sum(m.type == "note_on" for _, m in out.sent) >= 3
    assert sorted(m.channel for _, m in out.sent if m.type == "control_change") == [0, 1, 2, 3, 9]


def test_a_context_bundle_on_disk_loads_and_answers_without_tensorflow(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from conftest import make_bundle, rehash

    from musicgen.config import TokenizerConfig

    tc = TokenizerConfig(min_pitch=48, max_pitch=72, velocity_bins=8, programs=False, voices=4, meter=True,
                         key="normalize")
    path = make_bundle(tmp_path / "ctx", tc, with_keras=False, note_bias=2.0)
    info = json.loads((path / "model_config.json").read_text())
    info["context"] = list(context_sizes(tc))
    (path / "model_config.json").write_text(json.dumps(info))
    weights = dict(np.load(path / "weights.npz"))
    for k, size in enumerate(context_sizes(tc)):
        weights[f"context_{k}"] = np.random.default_rng(k).normal(0, 0.5, (size, 4)).astype(np.float32)
    np.savez(path / "weights.npz", **weights)
    rehash(path)
    code = ("import sys\n"
            "from musicgen.bundle import load_bundle\n"
            "from musicgen.live import LiveSettings, PlayedNote, Responder\n"
            f"r = Responder(load_bundle({str(path)!r}), LiveSettings(length=16, meter='3/4'))\n"
            "notes = [PlayedNote(p, 0.5 * i, 0.5 * i + 0.4, 80) for i, p in enumerate([62, 66, 69, 66, 62])]\n"
            "a = r.respond(notes)\n"
            "r.commit(a, 5.0)\n"
            "b = r.respond([PlayedNote(n.pitch, n.start + 5.5, n.end + 5.5, 80) for n in notes])\n"
            "heavy = {'tensorflow', 'keras', 'music21', 'matplotlib', 'symusic'} & set(sys.modules)\n"
            "assert not heavy, heavy\n"
            "print(a.key, len(a.tokens) >= 16, len(b.tokens) >= 16)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0 and run.stdout == "2 True True\n", run.stderr  # D F# A F# D: D major


# -------------------------------------------------------------------------------------------------------- styles
def test_styles_bundle_frames_each_phrase_with_its_style():
    """``BOS STYLE KEY`` heads a fresh primer; the style is --style, else the one with the most training pieces; the
    model is fed the style feature with it; --style on a plain bundle or an unknown name is one line."""
    bundle = context_bundle(key="token", styles=("bach", "folk"))
    bundle = dataclasses.replace(bundle, metrics={"style_pieces": {"bach": 3, "folk": 7}})
    tok = bundle.tokenizer
    answer = Responder(bundle, LiveSettings(bpm=120, length=16, seed=1)).respond(D_MAJOR)
    assert answer.primer[:3].tolist() == [tok.bos_id, tok.token("STYLE", 1), tok.token("KEY", 2)]
    responder = Responder(bundle, LiveSettings(bpm=120, length=16, seed=1, style="bach"))
    responder.model = RecordingModel(bundle.weights, bundle.model_config)
    answer = responder.respond(D_MAJOR)
    assert answer.primer[1] == tok.token("STYLE", 0)
    style_column = context_names(tok.config).index("style")
    assert [ctx[style_column] for _, ctx in responder.model.seen[1:4]] == [1, 1, 1]  # 1 + style "bach"
    assert describe(tok.config, "4/4", None, True, 0).startswith("style bach; ")
    with pytest.raises(UsageError, match="--style: unknown style 'jazz'; the bundle knows bach, folk"):
        Responder(bundle, LiveSettings(style="jazz"))
    with pytest.raises(UsageError, match="--style: the bundle 'numpy-bundle' was trained without --styles"):
        Responder(context_bundle(key="token"), LiveSettings(style="bach"))
