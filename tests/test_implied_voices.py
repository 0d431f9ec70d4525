"""voice_events="implied": a NOTE_OFF names its voice by its sounding pitch, so VOICE events stand only before a
NOTE_ON in another voice or a NOTE_OFF whose pitch sounds in two voices. The tokens by hand, the same notes as
voice_events="all" (property test), the rules accept every encoded event and keep sampled streams well formed, the
consumers that read the voice register (fingerprints, continuation context, two-sample excerpts) and the flags."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.cli import main
from musicgen.config import ModelConfig, TokenizerConfig
from musicgen.errors import ConfigError
from musicgen.event_arrays import velocity_tables
from musicgen.fingerprints import batch_fingerprints
from musicgen.generate import _context_tokens
from musicgen.models import expected_weight_shapes
from musicgen.piece import Note
from musicgen.rules import EventRules
from musicgen.sampler import sample_tokens
from musicgen.tokenizer import Tokenizer
from musicgen.twosample import excerpts

ALL = Tokenizer(TokenizerConfig(voices=4))
IMPLIED = Tokenizer(TokenizerConfig(voices=4, voice_events="implied"))


def ids(tok, *events):
    return [tok.bos_id] + [tok.token(name, value) for name, value in events] + [tok.eos_id]


def vtuples(notes):
    return sorted((n.pitch, n.start, n.end, n.velocity, n.program, n.is_drum, n.voice) for n in notes)


def test_four_voices_by_hand():
    # soprano, alto, bass move at beat 1, the tenor holds; the alto repeats its pitch
    notes = [Note(67, 0.0, 1.0, 78, voice=0), Note(64, 0.0, 1.0, 78, voice=1), Note(60, 0.0, 2.0, 78, voice=2),
             Note(48, 0.0, 1.0, 78, voice=3), Note(69, 1.0, 2.0, 78, voice=0), Note(64, 1.0, 2.0, 78, voice=1),
             Note(50, 1.0, 2.0, 78, voice=3)]
    tokens = IMPLIED.encode_notes(notes)
    assert tokens.tolist() == ids(IMPLIED, ("VOICE", 0), ("PROGRAM", 0), ("VELOCITY", 20), ("NOTE_ON", 67),
                                  ("VOICE", 1), ("NOTE_ON", 64), ("VOICE", 2), ("NOTE_ON", 60), ("VOICE", 3),
                                  ("NOTE_ON", 48), ("TIME_SHIFT", 12),
                                  ("NOTE_OFF", 67), ("NOTE_ON", 69), ("NOTE_OFF", 64), ("NOTE_ON", 64),
                                  ("NOTE_OFF", 48), ("NOTE_ON", 50), ("TIME_SHIFT", 12),
                                  ("NOTE_OFF", 69), ("NOTE_OFF", 64), ("NOTE_OFF", 60), ("NOTE_OFF", 50))
    assert vtuples(IMPLIED.decode_notes(tokens)) == vtuples(notes)
    assert IMPLIED.voice_track(tokens).tolist() == [0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 0, 0, 1, 1, 3, 3, 3,
                                                    0, 1, 2, 3, 3]
    every = ALL.encode_notes(notes)  # the same notes with every VOICE: 7 more events
    assert ALL.kind_mask(every, "VOICE").sum() == 11 and IMPLIED.kind_mask(tokens, "VOICE").sum() == 4
    assert len(every) - len(tokens) == 7


def test_a_unison_needs_its_voice_named():
    # soprano and alto on E4; the alto's NOTE_ON came last, so the soprano's NOTE_OFF must say VOICE 0
    notes = [Note(64, 0.0, 1.0, 78, voice=0), Note(64, 0.0, 1.0, 78, voice=1), Note(65, 1.0, 2.0, 78, voice=0),
             Note(62, 1.0, 2.0, 78, voice=1)]
    tokens = IMPLIED.encode_notes(notes)
    assert tokens.tolist() == ids(IMPLIED, ("VOICE", 0), ("PROGRAM", 0), ("VELOCITY", 20), ("NOTE_ON", 64),
                                  ("VOICE", 1), ("NOTE_ON", 64), ("TIME_SHIFT", 12), ("VOICE", 0), ("NOTE_OFF", 64),
                                  ("NOTE_ON", 65), ("NOTE_OFF", 64), ("NOTE_ON", 62), ("TIME_SHIFT", 12),
                                  ("NOTE_OFF", 65), ("NOTE_OFF", 62))
    assert vtuples(IMPLIED.decode_notes(tokens)) == vtuples(notes)
    # decoding rule: a NOTE_OFF of a pitch not in the register's voice goes to the lowest voice sounding it
    loose = ids(IMPLIED, ("VOICE", 2), ("NOTE_ON", 64), ("VOICE", 1), ("NOTE_ON", 64), ("VOICE", 3),
                ("TIME_SHIFT", 6), ("NOTE_OFF", 64), ("NOTE_ON", 70), ("NOTE_OFF", 99), ("TIME_SHIFT", 6))
    got = [(n.pitch, n.start, n.end, n.voice) for n in IMPLIED.decode_notes(loose)]
    assert got == [(64, 0.0, 0.5, 1), (64, 0.0, 1.0, 2), (70, 0.5, 1.0, 1)]  # NOTE_OFF 99: nothing, voice kept


@st.composite
def voiced_notes(draw, per_unit=12):
    """Notes on the grid in voices 0..5 (4 and 5 share voice 3), two programs and drums; unisons across voices are
    common, notes of one (voice, program, pitch) may overlap (the encoder cuts them)."""
    raw = draw(st.lists(st.tuples(st.integers(0, 5), st.sampled_from([0, 40, 128]), st.integers(58, 62),
                                  st.integers(0, 24), st.integers(1, 30), st.integers(1, 32)), max_size=50))
    centre = velocity_tables(32)[1]
    return [Note(pitch, s / per_unit, (s + length) / per_unit, int(centre[b]), 0 if inst == 128 else inst,
                 inst == 128, voice) for voice, inst, pitch, s, length, b in raw]


@settings(max_examples=200, deadline=None)
@given(notes=voiced_notes())
def test_implied_voices_decode_to_the_same_notes_with_fewer_events(notes):
    every, implied = ALL.encode_notes(notes), IMPLIED.encode_notes(notes)
    assert vtuples(IMPLIED.decode_notes(implied)) == vtuples(ALL.decode_notes(every))
    assert len(implied) <= len(every)
    # only VOICE events go: the rest is the same sequence
    keep = ~ALL.kind_mask(every, "VOICE")
    assert every[keep].tolist() == implied[~IMPLIED.kind_mask(implied, "VOICE")].tolist()
    # the rules allow every event the encoder writes (no voice cap: the drawn notes hold chords within a voice)
    rules = EventRules(IMPLIED, 1, voice_polyphony=0)
    for t in implied[1:-1]:
        logits = np.zeros((1, IMPLIED.vocab_size), np.float32)
        assert np.isfinite(rules.apply(logits)[0, t]), IMPLIED.describe(int(t))
        rules.observe(np.array([t]))
    assert rules.sounding_notes(0) == []


def replay(tok, tokens):
    """Independent decoder of the implied register: (orphan NOTE_OFFs, sounding (voice, program, pitch), most notes
    at once in one voice)."""
    sounding, voice, program, orphans, most = set(), 0, 0, 0, 0
    for t in tokens:
        name, value = tok.describe(int(t))
        if name == "VOICE":
            voice = value
        elif name == "PROGRAM":
            program = value
        elif name == "NOTE_ON":
            sounding.add((voice, program, value))
            most = max(most, sum(v == voice for v, _, _ in sounding))
        elif name == "NOTE_OFF":
            if (voice, program, value) not in sounding:
                owners = sorted(v for v, p, q in sounding if (p, q) == (program, value))
                orphans += not owners
                voice = owners[0] if owners else voice
            sounding.discard((voice, program, value))
    return orphans, sounding, most


def test_sampled_streams_with_implied_voices_stay_well_formed():
    tok = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=8, velocity_bins=4, voices=3,
                                    voice_polyphony=1, voice_events="implied"))
    cfg = ModelConfig(vocab_size=tok.vocab_size, cell="gru", embedding_dim=8, units=16, layers=2)
    rng = np.random.default_rng(3)
    w = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in expected_weight_shapes(cfg).items()}
    for name, shift in (("NOTE_OFF", 4.0), ("NOTE_ON", 3.0), ("VOICE", 2.0), ("PROGRAM", -3.0)):
        first, size = tok.ranges[name]
        w["logits_bias"][first:first + size] += shift
    out = sample_tokens(w, cfg, tok, [tok.bos_id], 500, 0, num_samples=20, max_note_steps=24)
    kinds = [tok.describe(int(t))[0] for t in out.ravel()]
    assert kinds.count("NOTE_OFF") > 1000 and kinds.count("NOTE_ON") > 1000
    moved = 0
    for row in out:
        orphans, left, most = replay(tok, row)
        assert (orphans, left) == (0, set()) and most <= 1
        assert tok.decode_arrays(row)["pitch"].size > 0
        moved += int((tok.kind_mask(row, "NOTE_OFF")[1:] & (np.diff(tok.voice_track(row)) != 0)).sum())
    assert moved > 100  # not vacuous: NOTE_OFFs moved the register on their own
    free = sample_tokens(w, cfg, tok, [tok.bos_id], 300, 1, num_samples=4, well_formed=False)
    assert sum(replay(tok, row)[0] for row in free) > 20  # without the masks there would be orphans


def test_consumers_of_the_voice_register():
    notes = [Note(60 + (i % 5), i / 2, i / 2 + 1.5, 80, voice=i % 3) for i in range(24)]
    every, implied = ALL.encode_notes(notes), IMPLIED.encode_notes(notes)
    a, b = batch_fingerprints([every], ALL, 4), batch_fingerprints([implied], IMPLIED, 4)
    assert a.hashes.tolist() == b.hashes.tolist() and a.music == b.music and len(b.hashes) > 5
    # a continuation starts in the voice the primer ended in, even when a NOTE_OFF put it there
    track = IMPLIED.voice_track(implied)
    moved = np.flatnonzero(IMPLIED.kind_mask(implied, "NOTE_OFF")[1:] & (np.diff(track) != 0)) + 1
    cut = int(moved[-1]) + 1  # the primer ends on a NOTE_OFF that moved the voice register
    context = _context_tokens(implied[:cut], IMPLIED)
    assert IMPLIED.token("VOICE", int(IMPLIED.voice_track(implied[:cut])[-1])) in context
    got_a, _ = excerpts(ALL, [every], 20)
    got_b, _ = excerpts(IMPLIED, [implied], 14)
    assert len(got_b) and all(n.voice in (0, 1, 2) for ex in got_b for n in ex)


def test_config_and_flags(tmp_path, capsys):
    cfg = TokenizerConfig(voices=4, voice_events="implied")
    assert json.loads(cfg.to_json())["voice_events"] == "implied"
    assert "voice_events" not in json.loads(TokenizerConfig(voices=4).to_json())  # older caches hash as before
    assert TokenizerConfig.from_dict({"voices": 4}).voice_events == "all"
    with pytest.raises(ConfigError, match="voice_events"):
        TokenizerConfig(voice_events="implied")
    with pytest.raises(ConfigError, match="voice_events"):
        TokenizerConfig(voices=2, voice_events="some")
    music = tmp_path / "music"
    music.mkdir()
    notes = [Note(60 + 4 * v, 0.5 * i, 0.5 * i + 0.5, 80, voice=v) for v in range(3) for i in range(8)]
    IMPLIED.decode(IMPLIED.encode_notes(notes)).write(str(music / "a.mid"))
    assert main(["ingest", str(music), "--out", str(tmp_path / "c"), "--voice-events", "implied"]) == 2
    assert "--voice-events: implied needs --voices" in capsys.readouterr().err
    assert main(["ingest", str(music), "--out", str(tmp_path / "c"), "--voices", "auto", "--voice-events",
                 "implied"]) == 0
    saved = TokenizerConfig.load(tmp_path / "c" / "tokenizer.json")
    assert (saved.voices, saved.voice_events, saved.voice_polyphony) == (3, "implied", 1)
    assert main(["train", str(music), "--voice-events", "implied", "--out", str(tmp_path / "m")]) == 2
    assert "--voice-events: give --voices" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "c"), "--voice-events", "all", "--out", str(tmp_path / "m")]) == 2
    assert "made with voice_events='implied'" in capsys.readouterr().err
