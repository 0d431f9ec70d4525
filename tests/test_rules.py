"""EventRules with voices: NOTE_OFF per (voice, program), the per-voice polyphony cap, overdue notes in other voices,
closing tokens, and 10^4 sampled events with voices on (the rules without voices are tested in test_sampler.py)."""

import numpy as np
import pytest

from musicgen.config import ModelConfig, TokenizerConfig
from musicgen.models import expected_weight_shapes
from musicgen.rules import EventRules
from musicgen.sampler import sample_tokens
from musicgen.tokenizer import Tokenizer

CONFIG = TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=8, velocity_bins=4, voices=3)
TOK = Tokenizer(CONFIG)  # 3 + 12 + 12 + 8 + 4 + 129 + 3 ids
MONO = Tokenizer(CONFIG.replace(voice_polyphony=1))
CFG = ModelConfig(vocab_size=TOK.vocab_size, cell="gru", embedding_dim=8, units=16, layers=2)


def ids(*events):
    return [TOK.token(name, value) for name, value in events]


def allowed(rules, stream=0):
    logits = np.zeros((rules.batch, rules.vocab_size), np.float32)
    rules.apply(logits)
    return {TOK.describe(i) for i in np.flatnonzero(np.isfinite(logits[stream]))}


def feed(rules, events):
    for t in ids(*events):
        rules.observe(np.array([t] * rules.batch))


def offs(rules, stream=0):
    return {v for name, v in allowed(rules, stream) if name == "NOTE_OFF"}


def ons(rules, stream=0):
    return {v for name, v in allowed(rules, stream) if name == "NOTE_ON"}


def test_note_off_only_for_pitches_sounding_in_the_current_voice_and_program():
    rules = EventRules(TOK, 1)
    assert ("VOICE", 2) in allowed(rules) and not offs(rules)
    feed(rules, [("NOTE_ON", 50), ("VOICE", 1)])
    assert not offs(rules) and 50 in ons(rules)         # C4 sounds in voice 0, voice 1 may sing it too
    feed(rules, [("NOTE_ON", 50), ("NOTE_ON", 52)])
    assert offs(rules) == {50, 52} and not {50, 52} & ons(rules)
    feed(rules, [("PROGRAM", 40)])                      # voice 1, program 40: nothing sounds there
    assert not offs(rules)
    feed(rules, [("VOICE", 0)])                         # voice 0 keeps program 40: still nothing
    assert not offs(rules)
    feed(rules, [("PROGRAM", 0)])
    assert offs(rules) == {50}
    assert rules.sounding.tolist() == [3] and rules.voice_sounding.tolist() == [[1, 2, 0]]
    assert rules.sounding_notes(0) == [(0, 0, 50), (1, 0, 50), (1, 0, 52)]
    assert rules.closing_tokens(0) == ids(("NOTE_OFF", 50), ("VOICE", 1), ("NOTE_OFF", 50), ("NOTE_OFF", 52))
    feed(rules, [("VOICE", 2), ("PROGRAM", 40)])
    assert rules.closing_tokens(0) == ids(("VOICE", 0), ("PROGRAM", 0), ("NOTE_OFF", 50), ("VOICE", 1),
                                          ("NOTE_OFF", 50), ("NOTE_OFF", 52))


def test_monophonic_voices_hold_one_note_each():
    assert EventRules(MONO, 1).voice_polyphony == 1 and EventRules(TOK, 1).voice_polyphony == 0
    rules = EventRules(MONO, 2)
    feed(rules, [("NOTE_ON", 55)])
    assert not ons(rules) and offs(rules) == {55}       # voice 0 is singing: it can only end its note
    feed(rules, [("VOICE", 1)])
    assert ons(rules) == set(range(48, 60))
    feed(rules, [("NOTE_ON", 48), ("VOICE", 0), ("NOTE_OFF", 55)])
    assert ons(rules) == set(range(48, 60)) and not offs(rules)
    free = EventRules(MONO, 1, voice_polyphony=0)      # the argument overrides the config
    feed(free, [("NOTE_ON", 55)])
    assert ons(free) == set(range(48, 60)) - {55}
    two = EventRules(TOK, 1, voice_polyphony=2)
    feed(two, [("NOTE_ON", 50), ("NOTE_ON", 52)])
    assert not ons(two)


def test_overdue_note_in_another_voice_is_reached_by_a_voice_switch():
    rules = EventRules(TOK, 1, max_note_steps=10)
    feed(rules, [("VOICE", 2), ("PROGRAM", 40), ("NOTE_ON", 50), ("VOICE", 0), ("PROGRAM", 0), ("NOTE_ON", 52),
                 ("TIME_SHIFT", 8), ("TIME_SHIFT", 2)])
    assert allowed(rules) == {("NOTE_OFF", 52)}         # both overdue: the current voice's note first
    feed(rules, [("NOTE_OFF", 52)])
    assert allowed(rules) == {("VOICE", 2)}             # 50 sounds in voice 2, program 40
    feed(rules, [("VOICE", 2)])
    assert allowed(rules) == {("PROGRAM", 40)}          # voice 2 still plays program 0 (registers are independent)
    feed(rules, [("PROGRAM", 40)])
    assert allowed(rules) == {("NOTE_OFF", 50)}
    feed(rules, [("NOTE_OFF", 50)])
    assert len(allowed(rules)) > 10


def replay(tokens):
    """Independent check of one stream: (orphan NOTE_OFFs, sounding (voice, program, pitch) set, most notes at once
    in one voice, NOTE_ONs of a note already sounding)."""
    sounding, voice, program, orphans, most, repeats = set(), 0, 0, 0, 0, 0
    for t in tokens:
        name, value = TOK.describe(int(t))
        if name == "VOICE":
            voice = value
        elif name == "PROGRAM":
            program = value
        elif name == "NOTE_ON":
            repeats += (voice, program, value) in sounding
            sounding.add((voice, program, value))
            most = max(most, sum(v == voice for v, _, _ in sounding))
        elif name == "NOTE_OFF":
            orphans += (voice, program, value) not in sounding
            sounding.discard((voice, program, value))
    return orphans, sounding, most, repeats


def voice_weights(seed=3):
    """Random weights whose logits favour NOTE_OFF and VOICE switches, so the masks have orphans to stop."""
    rng = np.random.default_rng(seed)
    w = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in expected_weight_shapes(CFG).items()}
    for name, shift in (("NOTE_OFF", 4.0), ("NOTE_ON", 3.0), ("VOICE", 3.0), ("PROGRAM", -3.0), ("VELOCITY", -2.0)):
        first, size = TOK.ranges[name]
        w["logits_bias"][first:first + size] += shift
    return w


@pytest.mark.parametrize("tokenizer", [TOK, MONO], ids=["voices", "monophonic-voices"])
def test_ten_thousand_sampled_events_with_voices_have_no_orphan_note_off(tokenizer):
    out = sample_tokens(voice_weights(), CFG, tokenizer, [TOK.bos_id], 500, 0, num_samples=20, max_note_steps=24)
    kinds = [TOK.describe(int(t))[0] for t in out.ravel()]
    assert out.shape[1] >= 500 and kinds.count("NOTE_OFF") > 1000 and kinds.count("NOTE_ON") > 1000
    assert kinds.count("VOICE") > 1000
    voices_used = {TOK.describe(int(t))[1] for t in out.ravel() if TOK.describe(int(t))[0] == "VOICE"}
    assert voices_used == {0, 1, 2}
    for row in out:
        orphans, left, most, repeats = replay(row)
        assert (orphans, left, repeats) == (0, set(), 0)
        assert most <= 1 or tokenizer is TOK
    if tokenizer is TOK:  # not vacuous: without the cap voices do hold chords
        assert max(replay(row)[2] for row in out) > 1


def test_unmasked_voice_model_would_emit_orphans_and_rules_track_what_replay_tracks():
    free = sample_tokens(voice_weights(), CFG, TOK, [TOK.bos_id], 300, 1, num_samples=4, well_formed=False)
    assert sum(replay(row)[0] for row in free) > 50
    out = sample_tokens(voice_weights(), CFG, TOK, [TOK.bos_id], 300, 2, num_samples=4, close=False)
    for row in out:
        rules = EventRules(TOK, 1)
        for t in row:
            rules.observe(np.array([t]))
        assert set(rules.sounding_notes(0)) == replay(row)[1]
        closed = np.concatenate([row, rules.closing_tokens(0)])
        assert replay(closed)[:2] == (0, set())


# ------------------------------------------------------------------------------------------------- meter and key
METERKEY = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=8, velocity_bins=4, meter=True,
                                     key="token"))


def mk(*events):
    from musicgen.tokenizer import time_signature_value

    return [METERKEY.token(n, time_signature_value(*v) if n == "TIME_SIG" else v) for n, v in events]


def mk_allowed(rules, stream=0):
    logits = rules.apply(np.zeros((rules.batch, rules.vocab_size), np.float32))
    return {METERKEY.describe(i) for i in np.flatnonzero(np.isfinite(logits[stream]))}


def mk_feed(rules, *events):
    for t in mk(*events):
        rules.observe(np.array([t] * rules.batch))


def kinds(allowed_set, name):
    return {v for n, v in allowed_set if n == name}


def test_key_right_after_bos_and_nowhere_else():
    rules = EventRules(METERKEY, 2)
    mk_feed(rules, ("BOS", 0))
    assert {n for n, _ in mk_allowed(rules)} == {"KEY"} and kinds(mk_allowed(rules), "KEY") == set(range(24))
    mk_feed(rules, ("KEY", 3))
    assert not kinds(mk_allowed(rules), "KEY") and kinds(mk_allowed(rules), "TIME_SIG") == set(range(64))
    mk_feed(rules, ("NOTE_ON", 50), ("TIME_SHIFT", 4), ("BOS", 0))  # a new piece: a KEY again
    assert {n for n, _ in mk_allowed(rules, 1)} == {"KEY"}
    forced = EventRules(METERKEY, 1, key=14)
    mk_feed(forced, ("BOS", 0))
    assert mk_allowed(forced) == {("KEY", 14)}
    with pytest.raises(ValueError, match="key"):
        EventRules(TOK, 1, key=2)


def test_time_signature_only_at_a_bar_start_or_while_the_meter_is_unknown_once_per_step():
    rules = EventRules(METERKEY, 1)
    mk_feed(rules, ("BOS", 0), ("KEY", 0), ("TIME_SHIFT", 5))
    assert kinds(mk_allowed(rules), "TIME_SIG")  # meter unknown: anywhere
    mk_feed(rules, ("TIME_SIG", (3, 4)))
    assert not kinds(mk_allowed(rules), "TIME_SIG")  # one per step
    mk_feed(rules, ("TIME_SHIFT", 8))
    assert not kinds(mk_allowed(rules), "TIME_SIG")  # step 8 of a 36-step bar
    mk_feed(rules, ("TIME_SHIFT", 8), ("TIME_SHIFT", 8), ("TIME_SHIFT", 8), ("TIME_SHIFT", 4))
    assert kinds(mk_allowed(rules), "TIME_SIG") == set(range(64))  # bar start (a chained shift reached it)
    mk_feed(rules, ("VELOCITY", 2))
    assert not kinds(mk_allowed(rules), "TIME_SIG")  # after another event of the step
    pickup = EventRules(METERKEY, 1)
    mk_feed(pickup, ("BOS", 0), ("KEY", 0), ("TIME_SIG", (1, 4)), ("NOTE_ON", 50), ("TIME_SHIFT", 8),
            ("TIME_SHIFT", 4))
    assert kinds(mk_allowed(pickup), "TIME_SIG")  # the pickup bar ends: 4/4 may start here
    plain = EventRules(TOK, 1)
    assert "TIME_SIG" not in {n for n, _ in allowed(plain)} and "KEY" not in {n for n, _ in allowed(plain)}


# ------------------------------------------------------------------------------------------- programs (--instruments)
def test_programs_switch_out_of_a_left_out_program_first_then_play_only_theirs():
    rules = EventRules(TOK, 1, programs=[40, 73])
    start = allowed(rules)  # program 0 is left out: no NOTE_ON, no TIME_SHIFT until a switch
    assert {v for name, v in start if name == "PROGRAM"} == {40, 73}
    assert not ons(rules) and not any(name == "TIME_SHIFT" for name, _ in start)
    feed(rules, [("PROGRAM", 40)])
    now = allowed(rules)
    assert ons(rules) == set(range(48, 60)) and ("TIME_SHIFT", 1) in now
    assert {v for name, v in now if name == "PROGRAM"} == {40, 73}  # never 0, 5 or drums (128)


def test_programs_let_an_overdue_note_of_a_left_out_program_end():
    """A primer's note in program 0 may still be ended: the forced switch back to 0 is allowed when nothing else is."""
    rules = EventRules(TOK, 1, max_note_steps=4, programs=[40])
    feed(rules, [("NOTE_ON", 50), ("PROGRAM", 40), ("TIME_SHIFT", 4)])
    assert allowed(rules) == {("PROGRAM", 0)}
    feed(rules, [("PROGRAM", 0)])
    assert allowed(rules) == {("NOTE_OFF", 50)}


def test_programs_make_a_voice_model_switch_program_before_anything_else():
    """A voices vocabulary whose corpus had one program never writes PROGRAM: with --instruments 40 the next event
    must be PROGRAM 40 (not VOICE or VELOCITY, which would let the model wander without a note)."""
    rules = EventRules(TOK, 1, programs=[40])  # TOK has VOICE events
    feed(rules, [("VOICE", 1)])
    assert allowed(rules) == {("PROGRAM", 40)}
    feed(rules, [("PROGRAM", 40)])
    assert {n for n, _ in allowed(rules)} >= {"VOICE", "VELOCITY", "NOTE_ON", "TIME_SHIFT"}


def test_voice_caps_per_stream_and_a_used_voice_is_never_forbidden():
    rules = EventRules(TOK, 2, max_voices=[1, 2])

    def voices(stream):
        return {v for name, v in allowed(rules, stream) if name == "VOICE"}

    assert voices(0) == {0} and voices(1) == {0, 1}
    rules.observe(np.array(ids(("VOICE", 2), ("VOICE", 1))))    # e.g. a primer's own voices
    assert voices(0) == {0, 1, 2} and voices(1) == {0, 1}
    assert {v for name, v in allowed(EventRules(TOK, 1, max_voices=0)) if name == "VOICE"} == {0, 1, 2}
    with pytest.raises(ValueError, match="max_voices"):
        EventRules(Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59)), 1, max_voices=2)


def test_sampled_streams_keep_below_their_voice_caps():
    rng = np.random.default_rng(0)
    weights = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in expected_weight_shapes(CFG).items()}
    free = sample_tokens(weights, CFG, TOK, [TOK.bos_id], 400, 3, num_samples=2)
    capped = sample_tokens(weights, CFG, TOK, [TOK.bos_id], 400, 3, num_samples=2, max_voices=np.array([1, 2]))
    voice0 = TOK.ranges["VOICE"][0]
    assert (free[0] == voice0 + 2).any() and (free[1] == voice0 + 2).any()  # uncapped, both streams reach voice 2
    assert not ((capped[0] > voice0) & (capped[0] < voice0 + 3)).any()
    assert not ((capped[1] > voice0 + 1) & (capped[1] < voice0 + 3)).any()
